"""Transparent session renewal through real sockets (README "Session renewal").

The fake upstream ends sessions the way the live API does: `session_expired`
(`event_id: null`) then a close with 1001 and the service's reason, the close
alone, or `server_error` then an abnormal close. The client keeps its
connection, gets one `Warning` UPSTREAM_RENEWED, and the new upstream is given
the session configuration and the conversation so far.
"""

from __future__ import annotations

import logging

import trio

from proxy.testing import DEFAULT_REPLY, DEFAULT_SETTINGS
from proxy.testing.fake_upstream import EXPIRED_REASON

DEADLINE = 10
SETTINGS = {
    **DEFAULT_SETTINGS,
    "agent": {
        **DEFAULT_SETTINGS["agent"],
        "think": {**DEFAULT_SETTINGS["agent"]["think"], "prompt": "You are a travel agent."},
        "speak": {"provider": {"type": "open_ai", "model": "tts-1", "voice": "cedar"}},
    },
}


async def text_turn(client, content: str) -> None:
    done = len(client.messages("AgentAudioDone"))
    await client.send({"type": "InjectUserMessage", "content": content})
    while len(client.messages("AgentAudioDone")) <= done:
        await client.next("AgentAudioDone")


def replayed_texts(upstream) -> list[tuple[str, str]]:
    """(role, text) of every message item the proxy created on this upstream."""
    texts = []
    for event in upstream.of_type("conversation.item.create"):
        item = event["item"]
        if item["type"] == "message":
            texts.append((item["role"], item["content"][0]["text"]))
    return texts


async def test_session_expired_then_1001_renews_with_config_and_conversation(proxy, fake):
    with trio.fail_after(DEADLINE):
        async with proxy.session(fake, SETTINGS) as (client, first):
            await text_turn(client, "Book me a flight")
            await first.expire()
            warning = await client.next("Warning")
            assert warning["code"] == "UPSTREAM_RENEWED"
            second = await fake.next_connection()
            update = await second.next("session.update")
            assert update["session"]["instructions"] == "You are a travel agent."
            assert update["session"]["audio"]["output"]["voice"] == "cedar"
            await text_turn(client, "To Oslo")
            # The conversation so far came first, then the new turn.
            assert replayed_texts(second) == [
                ("user", "Book me a flight"),
                ("assistant", DEFAULT_REPLY),
                ("user", "To Oslo"),
            ]
            assert client.messages("ConversationText")[-1]["content"] == DEFAULT_REPLY
            assert client.close_code is None
            assert first.closed is not None
            assert [m["code"] for m in client.messages("Error")] == []  # session_expired is not the client's concern


async def test_a_close_with_1001_alone_renews(proxy, fake):
    with trio.fail_after(DEADLINE):
        async with proxy.session(fake) as (client, first):
            await first.expire(error=False)
            assert (await client.next("Warning"))["code"] == "UPSTREAM_RENEWED"
            await fake.next_connection()
            await text_turn(client, "still there?")
            assert client.close_code is None


async def test_server_error_then_abnormal_close_renews(proxy, fake):
    with trio.fail_after(DEADLINE):
        async with proxy.session(fake) as (client, first):
            await text_turn(client, "hello")
            await first.fail()
            assert (await client.next("Warning"))["code"] == "UPSTREAM_RENEWED"
            second = await fake.next_connection()
            await text_turn(client, "again")
            assert ("user", "hello") in replayed_texts(second)
            # P6/P2.4: the upstream's error is still delivered (first), then the call goes on.
            assert [m["code"] for m in client.messages("Error")] == ["server_error"]
            assert client.types().index("Error") < client.types().index("Warning")


async def test_an_abnormal_close_mid_response_ends_that_turn_and_renews(proxy, fake):
    fake.responder = None
    with trio.fail_after(DEADLINE):
        async with proxy.session(fake) as (client, first):
            await client.send({"type": "InjectUserMessage", "content": "tell me a long story"})
            create = await first.next("response.create")
            response_id = await first.begin_response(create)
            item = {"response_id": response_id, "item_id": "item_story", "output_index": 0, "content_index": 0}
            await first.send({"type": "response.output_audio.delta", **item, "delta": "AAAAAA=="})
            await client.next("AgentStartedSpeaking")
            await first.close(1011, "internal error")
            # The interrupted turn is ended for the client, and not replayed.
            await client.next("AgentAudioDone")
            assert (await client.next("Warning"))["code"] == "UPSTREAM_RENEWED"
            second = await fake.next_connection()
            await second.next("session.update")
            fake.responder = __import__("proxy.testing", fromlist=["speak_reply"]).speak_reply
            await text_turn(client, "are you there?")
            assert replayed_texts(second) == [("user", "tell me a long story"), ("user", "are you there?")]
            assert client.close_code is None


async def test_a_function_call_round_in_flight_is_cancelled_at_a_renewal(proxy, fake):
    fake.responder = None
    settings = {
        **DEFAULT_SETTINGS,
        "agent": {
            **DEFAULT_SETTINGS["agent"],
            "think": {
                **DEFAULT_SETTINGS["agent"]["think"],
                "functions": [{"name": "weather", "description": "d", "parameters": {"type": "object", "properties": {}}}],
            },
        },
    }
    with trio.fail_after(DEADLINE):
        async with proxy.session(fake, settings) as (client, first):
            await client.send({"type": "InjectUserMessage", "content": "weather?"})
            create = await first.next("response.create")
            (call_id,) = await first.play_function_calls([("weather", "{}")], create)
            await client.next("FunctionCallRequest")
            await first.expire()
            cancelled = await client.next("FunctionCallCancelled")
            assert cancelled["functions"] == [{"id": call_id, "name": "weather"}]
            second = await fake.next_connection()
            await second.next("session.update")
            # A late answer to the cancelled call goes nowhere and asks for nothing.
            await client.send({"type": "FunctionCallResponse", "id": call_id, "name": "weather", "content": "sunny"})
            await client.send({"type": "KeepAlive"})
            await trio.sleep(0.2)
            assert not [e for e in second.of_type("conversation.item.create") if e["item"]["type"] != "message"]
            assert second.of_type("response.create") == []


async def test_proactive_renewal_waits_for_an_idle_moment(proxy_factory, fake):
    proxy = await proxy_factory(renew_after_s=0.2)
    fake.responder = None
    with trio.fail_after(DEADLINE):
        async with proxy.session(fake) as (client, first):
            await client.send({"type": "InjectUserMessage", "content": "hello"})
            create = await first.next("response.create")
            response_id = await first.begin_response(create)
            await trio.sleep(0.4)  # past the renewal age, mid-response
            assert len(fake.connections) == 1
            await first.end_response(response_id)
            await client.next("AgentAudioDone")
            assert (await client.next("Warning"))["code"] == "UPSTREAM_RENEWED"
            second = await fake.next_connection()
            await second.next("session.update")
            assert await first.wait_closed() == 1000  # the proxy closed the old session itself


async def test_give_up_past_the_budget_ends_with_session_max_duration_and_the_reason(proxy_factory, fake):
    proxy = await proxy_factory(max_renewals=1)
    with trio.fail_after(DEADLINE):
        async with proxy.session(fake) as (client, first):
            await first.expire()
            second = await fake.next_connection()
            await second.next("session.update")
            await client.next("Warning")
            await second.expire()
            error = await client.next("Error")
            assert error["code"] == "session_max_duration"
            code = await client.wait_closed()
            assert code == 1000
            assert EXPIRED_REASON in (client.close_reason or "")
            assert len(fake.connections) == 2


async def test_renewal_switched_off_ends_as_before_but_with_the_right_code(proxy_factory, fake, caplog):
    """P2.4 with renewal off: the time limit is session_max_duration and a close 1000 with the upstream's reason."""
    caplog.set_level(logging.INFO, logger="proxy")
    proxy = await proxy_factory(renewal=False)
    with trio.fail_after(DEADLINE):
        async with proxy.session(fake) as (client, first):
            await first.expire()
            error = await client.next("Error")
            assert error["code"] == "session_max_duration"
            assert await client.wait_closed() == 1000
            assert EXPIRED_REASON in (client.close_reason or "")
    assert any(EXPIRED_REASON in str(getattr(record, "reason", "")) for record in caplog.records)
    assert len(fake.connections) == 1


async def test_switched_off_an_abnormal_close_is_still_1011(proxy_factory, fake):
    """P2.4: anything abnormal becomes 1011, now with the upstream's reason."""
    proxy = await proxy_factory(renewal=False)
    with trio.fail_after(DEADLINE):
        async with proxy.session(fake) as (client, first):
            await first.close(1011, "internal error")
            assert await client.wait_closed() == 1011
            assert "internal error" in (client.close_reason or "")


async def test_a_client_close_is_never_renewed(proxy, fake):
    with trio.fail_after(DEADLINE):
        async with proxy.session(fake) as (client, first):
            pass
        assert await first.wait_closed() == 1000
        await trio.sleep(0.2)
        assert len(fake.connections) == 1


async def test_twenty_turns_renewing_every_few_turns_keep_the_whole_conversation(proxy_factory, fake):
    proxy = await proxy_factory(max_renewals=10)
    with trio.fail_after(4 * DEADLINE):
        async with proxy.session(fake) as (client, upstream):
            said: list[str] = []
            for turn in range(20):
                content = f"turn {turn}"
                await text_turn(client, content)
                said.append(content)
                if turn % 4 == 3:
                    await upstream.expire()
                    await client.next("Warning")
                    upstream = await fake.next_connection()
                    await upstream.next("session.update")
                    # Everything said so far is replayed, in order, with the replies.
                    expected = [pair for text in said for pair in (("user", text), ("assistant", DEFAULT_REPLY))]
                    await wait_for_items(upstream, len(expected))
                    assert replayed_texts(upstream) == expected
            assert client.close_code is None
            assert len(client.messages("AgentAudioDone")) == 20
            assert len(fake.connections) == 6


async def test_a_two_hour_call_with_a_shortened_limit_answers_every_turn(proxy_factory, fake):
    # The fake ends each session 0.5 s after it opened ("60 minutes"); the proxy
    # renews at 0.3 s ("55 minutes") when idle, or when the fake cuts it off.
    proxy = await proxy_factory(renew_after_s=0.3, max_renewals=100, renewal_window_s=60)
    fake.max_duration_s = 0.5
    with trio.fail_after(6 * DEADLINE):
        async with proxy.session(fake) as (client, _):
            for turn in range(40):  # 40 turns of "3 minutes"
                await text_turn(client, f"minute {3 * turn}")
                await trio.sleep(0.03)
            assert client.close_code is None
            assert len(client.messages("AgentAudioDone")) >= 40
            assert not client.messages("Error")
            assert len(fake.connections) >= 3
            # The last upstream knows the conversation's latest turns.
            last = fake.connections[-1]
            assert any(text.startswith("minute") for _, text in replayed_texts(last))


async def wait_for_items(upstream, count: int) -> None:
    while len(replayed_texts(upstream)) < count:
        await trio.sleep(0.01)
