"""Session renewal fed to the pure Session (README "Session renewal").

The socket-level behaviour is in tests/test_renewal.py; these pin the
orders only the pure session can show exactly.
"""

from __future__ import annotations

import base64
import copy

from proxy.testing import DEFAULT_SETTINGS
from proxy.translate import UpstreamClosed
from proxy.translate.session import AUDIO_PAUSE_TIMER

from .session_harness import Harness

EXPIRED = "Your session hit the maximum duration of 60 minutes."


def appended(events) -> bytes:
    return b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "input_audio_buffer.append")


def test_the_resampler_tail_waits_for_the_renewed_upstream_and_is_not_lost():
    """P3.6/P5.9: no append reaches a new upstream before it is configured; the tail still arrives after."""
    settings = copy.deepcopy(DEFAULT_SETTINGS)
    settings["audio"]["input"]["sample_rate"] = 16000
    h = Harness()
    h.ready(settings)
    for _ in range(10):  # 200 ms at 16 kHz: the resampler keeps a tail of it
        h.audio(b"\x10\x00" * 320)
    before = appended(h.upstream)
    h.take(h.session.handle(UpstreamClosed(1001, EXPIRED), h.now))  # renewal under way
    h.clear()
    h.now += 1.0
    h.fire(AUDIO_PAUSE_TIMER)  # the pause comes while the new upstream is not configured
    assert "input_audio_buffer.append" not in h.upstream_types()
    h.up("session.updated", session={})  # configured: replay, then what waited
    while AUDIO_PAUSE_TIMER in h.timers:
        h.now += 0.2
        h.fire(AUDIO_PAUSE_TIMER)
    after = appended(h.upstream)
    assert len(before) + len(after) == 200 * 24 * 2  # every sample, once


def test_a_renewed_upstream_gets_every_acknowledged_update_and_not_a_rejected_one():
    """README "Session renewal": prompt, think, speak and listen updates as acknowledged (P5.4-P5.7)."""
    h = Harness()
    h.ready()

    def update(message, accept=True):
        h.send(message)
        if accept:
            h.up("session.updated", session={})
        else:
            event_id = h.last_upstream("session.update")["event_id"]
            h.up("error", error={"type": "invalid_request_error", "code": "invalid_value", "message": "no",
                                 "param": None, "event_id": event_id})

    update({"type": "UpdatePrompt", "prompt": "Be brief."})
    update({"type": "UpdateSpeak", "speak": {"provider": {"type": "open_ai", "voice": "cedar"}}})
    update({"type": "UpdateSpeak", "speak": {"provider": {"type": "open_ai", "voice": "ash"}}}, accept=False)
    update({"type": "UpdateListen", "listen": {"provider": {"type": "deepgram", "model": "nova-3", "language": "fr"}}})
    h.take(h.session.handle(UpstreamClosed(1001, EXPIRED), h.now))
    session = h.last_upstream("session.update")["session"]
    assert session["instructions"].endswith("Be brief.")
    assert session["audio"]["output"]["voice"] == "cedar"
    assert session["audio"]["input"]["transcription"]["language"] == "fr"


def test_push_to_talk_after_a_renewal_counts_only_the_new_upstreams_audio():
    """ForceEndTurn (turn detection none) must not commit audio the old upstream took away with it."""
    h = Harness(turn_detection="none")
    h.ready()
    for _ in range(10):  # 200 ms, never committed
        h.audio(b"\x01\x00" * 480)
    h.take(h.session.handle(UpstreamClosed(1001, EXPIRED), h.now))
    h.up("session.updated", session={})
    h.audio(b"\x01\x00" * 480 * 2)  # 40 ms on the new upstream: too short to commit
    h.clear()
    h.send({"type": "ForceEndTurn"})
    assert "input_audio_buffer.commit" not in h.upstream_types()
    assert [m["code"] for m in h.of_type("Warning")] == ["TURN_TOO_SHORT"]


def test_p2_4_a_clean_1000_is_never_renewed_even_after_a_server_error():
    """P2.4 (1000 stays 1000): a server_error the session survived does not make a later clean close a loss."""
    h = Harness()
    h.ready()
    h.up("error", error={"type": "server_error", "code": None, "message": "The server had an error", "param": None,
                         "event_id": None})
    h.take(h.session.handle(UpstreamClosed(1000, "bye"), h.now))
    assert h.closed is not None and h.closed.code == 1000
    assert "session.update" not in h.upstream_types()[1:]  # no renewal's configuration sent
