"""Integration: whole turns through real sockets, proxy <-> fake upstream (issue 2 "done when")."""

from __future__ import annotations

import base64

import trio

from proxy.testing import DEFAULT_AUDIO, DEFAULT_REPLY


async def test_text_turn(proxy, fake):
    """P2.1, P3.3, P5.1, P6: InjectUserMessage -> echo -> audio -> assistant text -> AgentAudioDone."""
    with trio.fail_after(10):
        async with proxy.connect() as client:
            welcome = await client.next("Welcome")
            assert welcome["request_id"]
            await client.settings()
            await client.next("SettingsApplied")
            await client.send({"type": "InjectUserMessage", "content": "What's the weather?"})
            await client.next("LatencyReport")  # the last message of a turn
            upstream = await fake.next_connection()
            assert upstream.headers["authorization"].startswith("Bearer sk-test-")  # P1.5
            types = [t for t in client.types() if t not in ("Welcome", "SettingsApplied")]
            assert types == [
                "ConversationText",
                "AgentThinking",
                "AgentStartedSpeaking",
                "<audio>",
                "<audio>",
                "<audio>",
                "ConversationText",
                "AgentAudioDone",
                "LatencyReport",
            ]
            texts = client.messages("ConversationText")
            assert texts[0] == {"type": "ConversationText", "role": "user", "content": "What's the weather?"}
            assert texts[1] == {"type": "ConversationText", "role": "assistant", "content": DEFAULT_REPLY}
            assert client.audio == DEFAULT_AUDIO
            # P5.1: response.create only after the item was acknowledged, exactly once.
            kinds = [e["type"] for e in upstream.received]
            assert kinds.count("response.create") == 1
            assert kinds.index("conversation.item.create") < kinds.index("response.create")


async def test_audio_turn(proxy, fake):
    """P5.9, P6: mic frames -> appends with the same bytes; VAD events -> client messages."""
    fake.responder = None
    with trio.fail_after(10):
        async with proxy.session(fake) as (client, upstream):
            frames = [bytes([i]) * 960 for i in range(1, 6)]
            for frame in frames:
                await client.send_audio(frame)
            assert await upstream.wait_audio(len(b"".join(frames))) == b"".join(frames)
            for append in upstream.of_type("input_audio_buffer.append"):
                assert base64.b64decode(append["audio"])  # well-formed base64
            await upstream.user_turn("book a table", audio_end_ms=1500)
            await client.next("UserStartedSpeaking")
            end = await client.next("UtteranceEnd")
            assert end == {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 1.5}
            text = await client.next("ConversationText")
            assert text == {"type": "ConversationText", "role": "user", "content": "book a table"}
            # Server VAD would create the response itself; the proxy never commits (P4).
            await upstream.play_response(transcript="Sure.")
            await client.next("AgentAudioDone")
            assert "input_audio_buffer.commit" not in [e["type"] for e in upstream.received]
