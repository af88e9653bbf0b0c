"""The fake upstream's server VAD and offline agent (issue 13, "Try it without a key").

The demo's conversation comes from these, so they are held to the live
service's shapes: every event the fake sends validates as a GA server event.
"""

from __future__ import annotations

import numpy as np
import pytest
import trio

from proxy.testing import offline
from proxy.testing.vad import EnergyVad, SpeechStarted, SpeechStopped

from .oracles import validate_openai_server_event

RATE = 24000


def tone(seconds: float, level: float = 0.2, rate: int = RATE) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (level * 32767 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


def silence(seconds: float, rate: int = RATE) -> bytes:
    return b"\0\0" * int(seconds * rate)


def test_vad_finds_one_turn_with_its_padding_and_length():
    vad = EnergyVad()
    events = vad.feed(silence(0.5) + tone(1.0) + silence(1.0))
    assert events == [SpeechStarted(audio_start_ms=200), SpeechStopped(audio_end_ms=1500, speech_ms=1000)]
    assert not vad.speaking


@pytest.mark.parametrize("frame", [1, 333, 960, 4801])
def test_vad_does_not_depend_on_framing(frame):
    """Odd frames too: a dangling byte waits for the next frame, as P5.9 has it for the proxy."""
    audio = silence(0.3) + tone(0.6) + silence(0.8) + tone(0.4) + silence(0.7)
    whole = EnergyVad().feed(audio)
    vad = EnergyVad()
    pieces = [event for start in range(0, len(audio), frame) for event in vad.feed(audio[start : start + frame])]
    assert pieces == whole
    assert [type(e) for e in whole] == [SpeechStarted, SpeechStopped, SpeechStarted, SpeechStopped]


def test_vad_ignores_blips_and_quiet():
    vad = EnergyVad()
    assert vad.feed(silence(0.2) + tone(0.05) + silence(1.0)) == []  # shorter than MIN_SPEECH_MS
    assert vad.feed(tone(1.0, level=0.002) + silence(1.0)) == []  # below the threshold


def test_vad_bridges_pauses_shorter_than_the_silence_duration():
    vad = EnergyVad(silence_duration_ms=500)
    events = vad.feed(tone(0.4) + silence(0.3) + tone(0.4) + silence(0.6))
    assert events == [SpeechStarted(0), SpeechStopped(1100, 1100)]


def test_synthesized_reply_is_short_pcm16_and_audible():
    audio = offline.synthesize("word " * 200)
    samples = np.frombuffer(audio, dtype="<i2")
    assert len(audio) % 2 == 0
    assert 0.5 < len(samples) / RATE < 4.5  # capped, whatever the text
    assert np.sqrt(np.mean((samples / 32768.0) ** 2)) > 0.02
    assert offline.synthesize("Hello there") == offline.synthesize("Hello there")  # no randomness


def test_reply_texts_say_it_is_the_offline_demo():
    assert "offline demo" in offline.reply_text("What's the weather?")
    assert '"What\'s the weather?"' in offline.reply_text("What's the weather?")
    assert "1.2 seconds" in offline.reply_text(None, 1200)
    assert offline.spoken_placeholder(1234) == "(spoken turn of 1.2 s)"
    assert len(offline.reply_text("x" * 500)) < 200


def offline_fake(fake) -> None:
    """The fake as the offline demo runs it: its server VAD on, the demo's replies."""
    fake.server_vad = True
    fake.responder = offline.offline_reply


def _server_events_valid(upstream) -> None:
    for event in upstream.sent:
        validate_openai_server_event(event)


async def test_spoken_turn_through_the_proxy(proxy, fake):
    """Server VAD on mic audio -> P6 rows for a spoken turn, in the P6.2 order, with the demo's reply."""
    offline_fake(fake)
    with trio.fail_after(15):
        async with proxy.session(fake) as (client, upstream):
            audio = silence(0.3) + offline.synthesize("this is a spoken turn") + silence(0.8)
            for start in range(0, len(audio), 960):
                await client.send_audio(audio[start : start + 960])
            await client.next("LatencyReport")  # after each agent turn (issue 11)
            types = [t for t in client.types() if t not in ("Welcome", "SettingsApplied")]
            assert types[-1] == "LatencyReport"
            types = types[:-1]
            # Live captions: the final Results follows the user's ConversationText (issue 14).
            assert types[types.index("ConversationText") + 1] == "Results"
            types = [t for t in types if t != "Results"]
            first_audio = types.index("<audio>")
            assert types[:4] == ["UserStartedSpeaking", "UtteranceEnd", "ConversationText", "AgentThinking"]
            assert types[4] == "AgentStartedSpeaking" and first_audio == 5
            assert types[-2:] == ["ConversationText", "AgentAudioDone"]
            user, assistant = client.messages("ConversationText")
            assert user["role"] == "user" and user["content"].startswith("(spoken turn of ")
            assert assistant["role"] == "assistant" and "offline demo" in assistant["content"]
            assert client.audio == offline.synthesize(assistant["content"])
            assert upstream.of_type("response.create") == []  # server VAD made the response
            _server_events_valid(upstream)


async def test_typed_turn_is_echoed(proxy, fake):
    offline_fake(fake)
    with trio.fail_after(15):
        async with proxy.session(fake) as (client, upstream):
            await client.send({"type": "InjectUserMessage", "content": "Hello offline"})
            await client.next("AgentAudioDone")
            assistant = client.messages("ConversationText")[-1]
            assert assistant["content"].startswith('You said: "Hello offline".')
            assert len(client.audio) > 0
            _server_events_valid(upstream)


async def test_speech_during_a_reply_interrupts_it(proxy, fake):
    """P7 through the fake's VAD: speech cancels the reply (interrupt_response), then a new turn is answered."""
    offline_fake(fake)
    with trio.fail_after(15):
        async with proxy.session(fake) as (client, upstream):
            await client.send({"type": "InjectUserMessage", "content": "Tell me a long story " * 5})
            await client.next("AgentStartedSpeaking")
            speech = tone(0.5) + silence(0.7)
            for start in range(0, len(speech), 4800):
                await client.send_audio(speech[start : start + 4800])
            await client.next("UserStartedSpeaking")
            await client.next("AgentAudioDone")
            await client.next("AgentAudioDone")  # the spoken turn's reply
            done = [e["response"]["status"] for e in upstream.sent if e["type"] == "response.done"]
            assert done == ["cancelled", "completed"]
            assert upstream.of_type("conversation.item.truncate")  # P7
            _server_events_valid(upstream)


async def test_no_vad_without_turn_detection(proxy_factory, fake):
    """OPENAI_PROXY_TURN_DETECTION=none: the fake's VAD stays quiet, as the service does."""
    offline_fake(fake)
    proxy = await proxy_factory(turn_detection="none")
    with trio.fail_after(10):
        async with proxy.session(fake) as (client, upstream):
            audio = tone(0.6) + silence(0.8)
            await client.send_audio(audio)
            await upstream.wait_audio(len(audio))
            assert not [e for e in upstream.sent if e["type"].startswith("input_audio_buffer.speech")]


async def test_a_long_run_keeps_no_history(proxy, fake):
    """The demo and python -m proxy.testing run for hours: nothing per frame or per connection stays."""
    offline_fake(fake)
    fake.history = False
    with trio.fail_after(15):
        async with proxy.connect() as client:
            await client.settings()
            await client.next("SettingsApplied")
            audio = tone(0.5) + silence(0.7)
            for start in range(0, len(audio), 960):
                await client.send_audio(audio[start : start + 960])
            await client.next("AgentAudioDone")
            (upstream,) = fake.connections
            assert (upstream.received, upstream.sent, bytes(upstream.audio)) == ([], [], b"")
        while fake.connections:
            await trio.sleep(0.01)


async def test_every_script_of_the_fake_sends_ga_server_events(proxy, fake):
    """The scripted turns tests use (user_turn, text and audio responses, function calls) validate too."""
    fake.responder = None
    with trio.fail_after(10):
        async with proxy.session(fake) as (client, upstream):
            await upstream.user_turn("hello")
            await upstream.play_response(transcript="Hi", text=True)
            await upstream.play_response(transcript="Hi", audio=tone(0.1))
            await upstream.play_function_calls([("lookup", "{}")])
            await upstream.play_response(status="failed", error={"type": "server_error", "code": "oops"})
            await client.next("FunctionCallRequest")
            _server_events_valid(upstream)
            assert {event["type"] for event in upstream.sent} >= {
                "session.created", "session.updated", "input_audio_buffer.speech_started",
                "conversation.item.input_audio_transcription.completed", "response.output_text.done",
                "response.output_audio.delta", "response.function_call_arguments.done", "response.done",
            }
