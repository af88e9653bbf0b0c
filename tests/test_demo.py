"""`python -m proxy --demo` as a user runs it: no key, no network, and it says so (issue 13)."""

from __future__ import annotations

import signal

import numpy as np
import trio

from proxy.testing import open_agent_client
from proxy.testing.offline import synthesize

from .daemon import running_proxy
from .oracles import validate_deepgram_server_message
from .test_playground import http_get, split

# Where nothing listens: the demo must not try it (no network).
UNREACHABLE = "wss://127.0.0.1:9/v1/realtime"

SETTINGS_48K = {
    "type": "Settings",
    "audio": {
        "input": {"encoding": "linear16", "sample_rate": 48000},
        "output": {"encoding": "linear16", "sample_rate": 48000, "container": "none"},
    },
    "agent": {"think": {"provider": {"type": "open_ai", "model": "gpt-4o-mini"}, "prompt": "Be brief."}},
}


async def test_demo_answers_typed_and_spoken_turns_without_a_key():
    with trio.fail_after(30):
        async with running_proxy(UNREACHABLE, "--demo", env={"OPENAI_API_KEY": ""}) as daemon:
            notice = await daemon.wait_for_line("offline demo")
            assert daemon.stderr.index(notice) < daemon.stderr.index("listening on")
            await daemon.wait_for_line("playground on http://")
            async with open_agent_client(daemon.url, validate=validate_deepgram_server_message) as client:
                await client.settings(SETTINGS_48K)
                await client.next("SettingsApplied")
                await client.send({"type": "InjectUserMessage", "content": "Are you there?"})
                await client.next("AgentAudioDone")
                typed_reply = client.messages("ConversationText")[-1]["content"]
                assert typed_reply.startswith('You said: "Are you there?".') and "offline demo" in typed_reply
                # A spoken turn at the browser's 48 kHz, in 20 ms frames.
                quiet = np.zeros(48000 // 2, dtype="<i2").tobytes()
                speech = quiet + synthesize("one two three four", rate=48000) + quiet + quiet
                for start in range(0, len(speech), 1920):
                    await client.send_audio(speech[start : start + 1920])
                await client.next("UtteranceEnd")
                await client.next("AgentAudioDone")
                user = [m["content"] for m in client.messages("ConversationText") if m["role"] == "user"]
                assert user[-1].startswith("(spoken turn of ")
                assert client.messages("ConversationText")[-1]["content"].startswith("I heard you speak for ")
                assert client.messages("Error") == [] and client.validation_errors == []
                assert len(client.audio) > 48000  # generated speech, at the rate asked for
            port = int(daemon.url.rsplit(":", 1)[1].split("/")[0])
            status, _, body = split(await http_get(port, "/playground.json"))
            assert status == "HTTP/1.1 200 OK" and b'"demo": true' in body
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait() == 0
    assert "upstream connect failed" not in daemon.stderr
