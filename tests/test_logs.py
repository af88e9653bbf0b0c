"""Structured logs: the fields each record carries, and what a record must never carry (P1.5, P2.7, P2.8)."""

from __future__ import annotations

import base64
import json
import logging
import signal
import sys

import trio

from proxy import logs
from proxy.testing import open_agent_client

from .conftest import TEST_KEY
from .daemon import running_proxy

CLIENT_TOKEN = "tok-" + "c" * 28
# Distinctive audio both ways, so its base64 is recognisable anywhere in the logs.
MIC_FRAMES = [bytes((i * 7 + j) % 256 for j in range(960)) for i in range(1, 4)]
AGENT_AUDIO = bytes((j * 13 + 5) % 256 for j in range(2880))


async def full_session(fake, daemon) -> None:
    """A spoken turn, a text turn, a bad message, then a normal close."""

    async def reply(connection, create):
        await connection.play_response(transcript="Sure thing.", audio=AGENT_AUDIO, create=create)

    fake.responder = reply
    url = f"{daemon.url}?traceId=trace-abc-123"
    async with open_agent_client(url, subprotocols=["token", CLIENT_TOKEN]) as client:
        await client.settings()
        await client.next("SettingsApplied")
        upstream = await fake.next_connection()
        for frame in MIC_FRAMES:
            await client.send_audio(frame)
        await upstream.wait_audio(sum(map(len, MIC_FRAMES)))
        await client.send({"type": "InjectUserMessage", "content": "Hello there"})
        await client.wait_audio(len(AGENT_AUDIO))
        await client.next("AgentAudioDone")
        await client.send_text("{not json")
        await client.next("Error")


async def test_full_session_logs_never_carry_secrets_or_audio(fake):
    """Debug level (the most verbose) over a whole session: grep the captured stderr."""
    env = {"LOG_LEVEL": "debug", "OPENAI_PROXY_AUTH_TOKENS": f"other-token-{'o' * 8},{CLIENT_TOKEN}"}
    with trio.fail_after(20):
        async with running_proxy(fake.url, env=env) as daemon:
            await full_session(fake, daemon)
            await daemon.wait_for_line('"client.close_code"')
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait() == 0
    text = daemon.stderr
    assert TEST_KEY not in text and TEST_KEY[8:] not in text  # P1.5, even in part
    assert CLIENT_TOKEN not in text  # P2.7
    assert "other-token" not in text
    for frame in (*MIC_FRAMES, AGENT_AUDIO[:960]):
        assert base64.b64encode(frame)[:32].decode() not in text
        assert frame[:32].hex() not in text
    assert "\\u0001\\u0000" not in text  # no raw PCM smuggled as a JSON string

    records = daemon.records()
    assert records and len(records) == len([line for line in daemon.lines if line.strip()]), "every line is JSON"
    for record in records:
        assert {"time", "level", "message"} <= record.keys()
        assert record["time"].endswith("Z")
    session = [r for r in records if r.get("connection_id")]
    # P2.8: the client's traceId on every record of its connection.
    assert session and all(r["trace_id"] == "trace-abc-123" for r in session)
    assert len({r["connection_id"] for r in session}) == 1
    # Frame-level records at debug, with direction and message type.
    frames = [r for r in session if r["level"] == "debug" and r.get("message_type")]
    kinds = {(r.get("direction"), r["message_type"]) for r in frames}
    assert ("upstream", "session.update") in kinds
    assert ("client", "SettingsApplied") in kinds
    errors = [r for r in session if r.get("error.code")]
    assert [r["error.code"] for r in errors] == ["INVALID_MESSAGE"]
    closes = [r for r in session if "client.close_code" in r]
    assert closes and closes[-1]["client.close_code"] == 1000


async def test_info_level_has_no_frame_records_and_text_format(fake):
    """`--log-format text`: one human line per record, no frame-level records at info."""
    with trio.fail_after(20):
        async with running_proxy(fake.url, "--log-format", "text") as daemon:
            async with open_agent_client(daemon.url) as client:
                await client.settings()
                await client.next("SettingsApplied")
            await daemon.wait_for_line("connection ended")
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait() == 0
    lines = [line for line in daemon.lines if line.strip()]
    assert not any(line.startswith("{") for line in lines)
    assert any(" INFO " in line and "listening on ws://127.0.0.1:" in line for line in lines)
    connected = next(line for line in lines if "client connected" in line)
    assert "connection_id=" in connected and "trace_id=" in connected and "direction=client" in connected
    assert not any("to upstream" in line or "to client" in line for line in lines)
    assert not any(" DEBUG " in line for line in lines)


def make_record(message: str, **extra) -> logging.LogRecord:
    record = logging.LogRecord("proxy", logging.ERROR, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_fields_are_whitelisted_and_renamed():
    record = make_record(
        "closing", connection_id="c1", error_code="X", client_close_code=1001, audio=b"\x01\x02", api_key="sk-x"
    )
    entry = json.loads(logs.JsonFormatter().format(record))
    assert entry["error.code"] == "X" and entry["client.close_code"] == 1001
    assert "audio" not in entry and "api_key" not in entry and "error_code" not in entry
    line = logs.TextFormatter().format(record)
    assert "error.code=X" in line and "client.close_code=1001" in line and "audio" not in line


def test_secrets_are_masked_even_in_messages_and_tracebacks():
    """Second guard (P1.5): a secret that reaches a message or an exception text is masked."""
    secret, token = "sk-live-" + "s" * 30, "tok-" + "t" * 20
    try:
        raise RuntimeError(f"upstream said no to Bearer {secret}")
    except RuntimeError:
        record = logging.LogRecord("proxy", logging.ERROR, __file__, 1, "token %s refused", (token,), sys.exc_info())
    for formatter in (logs.JsonFormatter([secret, token]), logs.TextFormatter([secret, token])):
        line = formatter.format(record)
        assert secret not in line and token not in line
        assert logs.REDACTED in line


# ------------------------------------------- issue 10 "Edges": masking and escaping


def test_secrets_are_masked_as_whole_words_only():
    """A short secret (`1`) must not eat into timestamps or ids; as a word of its own it is masked."""
    record = make_record("retry 1 of 3 at 2026-12-01T11:21:31 for conn-1a", connection_id="c1-a1b2", status=1)
    entry = json.loads(logs.JsonFormatter(["1"]).format(record))
    assert entry["message"] == f"retry {logs.REDACTED} of 3 at 2026-12-01T11:21:31 for conn-1a"
    assert logs.REDACTED not in entry["time"] and entry["connection_id"] == "c1-a1b2"
    assert entry["status"] == 1  # a number field stays a number
    line = logs.TextFormatter(["1"]).format(record)
    assert "2026-12-01T11:21:31" in line and f"retry {logs.REDACTED} of" in line


def test_a_long_secret_is_masked_even_inside_a_word_and_any_openai_key_is_masked():
    secret = "tok-" + "z" * 20
    other_key = "sk-proj-" + "Q" * 40  # not the configured key: an upstream error may echo it
    record = make_record(f"prefix{secret}suffix; Incorrect API key provided: {other_key}.")
    message = json.loads(logs.JsonFormatter([secret]).format(record))["message"]
    assert secret not in message and other_key not in message
    assert message == f"prefix{logs.REDACTED}suffix; Incorrect API key provided: {logs.REDACTED}."


def test_json_stays_valid_and_masks_secrets_that_json_would_escape():
    """Masking happens before encoding: a secret with a quote or non-ASCII is still found, and the line parses."""
    secret = 'quote"and\\slash-é-token'
    record = make_record(f'said "{secret}"\nnext line \ud83d \x1b[31m', trace_id="t\r\n1")
    line = logs.JsonFormatter([secret]).format(record)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    entry = json.loads(line)
    assert entry["message"] == f'said "{logs.REDACTED}"\nnext line \ud83d \x1b[31m'
    assert entry["trace_id"] == "t\r\n1"
    assert "quote" not in line


def test_text_format_escapes_control_characters_so_nothing_forges_a_record():
    """A field or message with a newline (a `?traceId=` with %0A, an upstream text) stays one line."""
    forged = "x\n12:00:00.000 ERROR   forged record [connection_id=other]"
    record = make_record(f"upstream said: {forged}", trace_id=forged, reason="a b", detail="\x1b[2Jclear", status=7)
    line = logs.TextFormatter().format(record)
    assert line.count("\n") == 0 and "\x1b" not in line and "\r" not in line
    assert "upstream said: x\\n12:00:00.000 ERROR   forged record" in line
    # Values that are not plain are quoted, so they cannot fake another field either.
    assert 'trace_id="x\\n12:00:00.000 ERROR   forged record [connection_id=other]"' in line
    assert 'reason="a b"' in line and 'detail="\\x1b[2Jclear"' in line and "status=7" in line
    # A lone surrogate (a string cut mid-emoji) cannot break a UTF-8 stderr.
    surrogate = logs.TextFormatter().format(make_record("half an emoji: \ud83d"))
    assert surrogate.endswith("half an emoji: \\ud83d")
    surrogate.encode("utf-8")


def test_text_format_traceback_lines_are_indented():
    """Every line after the record's own begins with white space, even an exception text that forges one."""
    try:
        raise ValueError("bad\n12:00:00.000 INFO    forged")
    except ValueError:
        record = logging.LogRecord("proxy", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    first, *rest = logs.TextFormatter().format(record).split("\n")
    assert first.endswith("ERROR   failed")
    assert rest and all(line.startswith("  ") for line in rest)
    assert any("forged" in line for line in rest)


async def test_a_forged_trace_id_neither_forges_a_line_nor_lands_in_records(fake):
    """P2.8: `?traceId=` with %0A, or 5,000 characters: the connection id is used, and a record says so."""
    forged = "x%0A12:00:00.000%20ERROR%20%20%20forged"
    with trio.fail_after(20):
        async with running_proxy(fake.url, "--log-format", "text") as daemon:
            for trace_id in (forged, "y" * 5000):
                async with open_agent_client(f"{daemon.url}?traceId={trace_id}") as client:
                    await client.settings()
                    await client.next("SettingsApplied")
            while daemon.stderr.count("connection ended") < 2:
                await trio.sleep(0.02)
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait() == 0
    lines = [line for line in daemon.lines if line.strip()]
    assert not any(line.startswith("12:00:00.000") or "forged" in line for line in lines)
    assert not any("y" * 129 in line for line in lines)
    refused = [line for line in lines if "client traceId not used" in line]
    assert len(refused) == 2 and " WARNING " in refused[0]
    assert "characters outside" in refused[0] and "longer than 128 characters (5000)" in refused[1]
    for line in (line for line in lines if "connection_id=" in line):
        connection_id = line.split("connection_id=")[1].split()[0]
        assert f"trace_id={connection_id}" in line  # the fallback of P2.8


def test_every_extra_the_proxy_logs_is_a_whitelisted_field():
    """A record's extras reach the output only through FIELDS: one missing there is silently lost."""
    import pathlib
    import re

    from proxy.logfields import FIELDS

    whitelisted = {attribute for attribute, _ in FIELDS}
    used: set[str] = set()
    for path in pathlib.Path(__file__).parent.parent.joinpath("proxy").rglob("*.py"):
        for extra in re.findall(r"extra=\{([^}]*)\}", path.read_text()):
            used.update(re.findall(r'"([a-z_]+)":', extra))
    assert used - whitelisted == set()
