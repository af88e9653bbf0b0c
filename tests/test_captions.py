"""Live captions as Deepgram listen `Results` (P6 compatibility extra, P1.4): the pure builder."""

from __future__ import annotations

import json

from proxy.protocol.wire import encode_client
from proxy.translate.captions import MAX_OPEN_ITEMS, MAX_TEXT_CHARS, Captions

from .oracles import validate_deepgram_server_message


def wire(message) -> dict:
    return json.loads(encode_client(message))


def test_interims_carry_the_text_so_far_and_the_final_the_completed_transcript():
    captions = Captions("conn-1", "gpt-4o-mini-transcribe")
    captions.speech_started("item_1", 500)
    captions.speech_stopped("item_1", 2250)
    first = wire(captions.interim("item_1", "Hello"))
    second = wire(captions.interim("item_1", " there"))
    final = wire(captions.final("item_1", "Hello there."))
    for message in (first, second, final):
        validate_deepgram_server_message(message)  # deepgram-sdk's ListenV1Results, nothing extra
    transcript = [m["channel"]["alternatives"][0]["transcript"] for m in (first, second, final)]
    assert transcript == ["Hello", "Hello there", "Hello there."]
    assert [(m["is_final"], m["speech_final"]) for m in (first, second, final)] == [
        (False, False), (False, False), (True, True)]
    assert final["start"] == 0.5 and final["duration"] == 1.75  # from server VAD's audio_*_ms
    assert final["channel_index"] == [0, 1]
    assert final["metadata"]["request_id"] == "conn-1"
    assert final["metadata"]["model_info"]["name"] == "gpt-4o-mini-transcribe"


def test_items_are_kept_apart_and_a_finished_item_starts_again_empty():
    captions = Captions("c", "m")
    captions.interim("a", "one")
    assert wire(captions.interim("b", "two"))["channel"]["alternatives"][0]["transcript"] == "two"
    captions.final("a", "one")
    assert wire(captions.interim("a", "x"))["channel"]["alternatives"][0]["transcript"] == "x"


def test_an_empty_delta_sends_nothing():
    assert Captions("c", "m").interim("a", "") is None
    assert Captions("c", "m").interim("a", None) is None


def test_a_final_without_deltas_or_vad_events_is_still_valid():
    message = wire(Captions("c", "m").final("never-seen", "typed?"))
    validate_deepgram_server_message(message)
    assert (message["start"], message["duration"]) == (0.0, 0.0)


def test_open_items_and_text_are_bounded():
    captions = Captions("c", "m")
    for index in range(MAX_OPEN_ITEMS + 5):
        captions.interim(f"item{index}", "words")
    assert len(captions._items) == MAX_OPEN_ITEMS
    assert "item0" not in captions._items and f"item{MAX_OPEN_ITEMS + 4}" in captions._items
    captions.interim("long", "x" * (MAX_TEXT_CHARS - 1))
    assert len(wire(captions.interim("long", "yy"))["channel"]["alternatives"][0]["transcript"]) == MAX_TEXT_CHARS
    assert captions.interim("long", "more") is None  # nothing new to show
    captions.forget("long")
    assert "long" not in captions._items


def test_the_final_caption_follows_the_user_text_and_precedes_the_reply_it_releases():
    """Issue 14: final Results right after the user's ConversationText, even when that
    ConversationText releases an assistant reply held for the live API's order."""
    from .session_harness import Harness

    harness = Harness()
    harness.ready()
    harness.up("input_audio_buffer.speech_started", audio_start_ms=0, item_id="item_u")
    harness.up("input_audio_buffer.speech_stopped", audio_end_ms=900, item_id="item_u")
    harness.up("input_audio_buffer.committed", item_id="item_u", previous_item_id=None)
    harness.created("resp_1")
    harness.up("response.output_audio_transcript.done", response_id="resp_1", item_id="item_a", output_index=0,
               content_index=0, transcript="Sure.")
    harness.done("resp_1")
    harness.up("conversation.item.input_audio_transcription.delta", item_id="item_u", content_index=0, delta="Help")
    harness.clear()
    harness.up("conversation.item.input_audio_transcription.completed", item_id="item_u", content_index=0,
               transcript="Help me.")
    messages = [m for m in harness.client if isinstance(m, dict)]
    assert [(m["type"], m.get("role"), m.get("is_final")) for m in messages] == [
        ("ConversationText", "user", None), ("Results", None, True), ("ConversationText", "assistant", None)]
    for message in messages:
        validate_deepgram_server_message(message)
