"""Connection lifecycle through real sockets (P2.1-P2.5, P2.8-P2.10).

Each test has a deadline; "never hangs" is asserted by the deadline itself.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import ssl
from functools import partial

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from proxy.testing import DEFAULT_REPLY, DEFAULT_SETTINGS

from .tls_relay import relay_to

DEADLINE = 5


def free_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def wait_until(predicate, interval: float = 0.005) -> None:
    while not predicate():
        await trio.sleep(interval)


async def text_turn(client, content: str = "hello") -> None:
    await client.send({"type": "InjectUserMessage", "content": content})
    await client.next("AgentAudioDone")
    assert client.messages("ConversationText")[-1]["content"] == DEFAULT_REPLY


# ------------------------------------------------------------------ P2.1


async def test_p2_1_welcome_at_once_while_the_upstream_is_still_connecting(proxy, fake):
    fake.accept_delay = 30  # the upstream handshake is not answered during this test
    with trio.fail_after(DEADLINE):
        async with proxy.connect() as client:
            welcome = await client.next("Welcome")
            assert len(welcome["request_id"]) == 36  # a uuid
            assert fake.connections == []


# ------------------------------------------------------------------ P2.2


async def fill_hold(client, frames: int, size: int) -> None:
    for _ in range(frames):
        await client.send_audio(b"\x00" * size)
    # A malformed frame is answered at once, so its Error proves every frame
    # before it was taken in (and none of them overflowed).
    await client.send_text("{sync")
    await client.next("Error")


@pytest.mark.parametrize("not_ready", ["accept_delayed", "updates_ignored"])
async def test_p2_2_default_hold_overflows_on_the_257th_frame_with_1013(proxy, fake, not_ready):
    with trio.fail_after(DEADLINE):
        if not_ready == "accept_delayed":
            fake.accept_delay = 30
        async with proxy.connect() as client:
            if not_ready == "updates_ignored":
                upstream = await fake.next_connection()
                upstream.ignore_updates = True
            await client.settings()  # does not count
            await fill_hold(client, 256, 960)
            assert [e["code"] for e in client.messages("Error")] == ["INVALID_MESSAGE"]
            assert client.close_code is None
            await client.send_audio(b"\x00" * 960)
            assert await client.wait_closed() == 1013
            assert client.messages("Error")[-1]["code"] == "CLIENT_BUFFER_FULL"
            assert not client.messages("SettingsApplied")
    with trio.fail_after(DEADLINE):
        await wait_until(lambda: not proxy.server.connections)


async def test_p2_2_configured_frame_bound_counts_messages_too(proxy_factory, fake):
    proxy = await proxy_factory(max_held_frames=4)
    fake.accept_delay = 30
    with trio.fail_after(DEADLINE):
        async with proxy.connect() as client:
            await client.settings()
            await client.send({"type": "InjectUserMessage", "content": "one"})
            await fill_hold(client, 3, 10)
            assert client.close_code is None
            await client.send({"type": "InjectUserMessage", "content": "five"})
            assert await client.wait_closed() == 1013
            assert client.messages("Error")[-1]["code"] == "CLIENT_BUFFER_FULL"
            # P3.6: a held message was never echoed.
            assert not client.messages("ConversationText")


async def test_p2_2_byte_bound(proxy_factory, fake):
    proxy = await proxy_factory(max_held_frames=1000, max_held_bytes=8192)
    with trio.fail_after(DEADLINE):
        async with proxy.connect() as client:
            upstream = await fake.next_connection()
            upstream.ignore_updates = True
            await client.settings()
            await fill_hold(client, 8, 1024)
            assert client.close_code is None
            await client.send_audio(b"\x00")
            assert await client.wait_closed() == 1013
            assert client.messages("Error")[-1]["code"] == "CLIENT_BUFFER_FULL"
            # Nothing held was ever sent upstream.
            assert upstream.of_type("input_audio_buffer.append") == []


async def test_p2_2_held_frames_replayed_in_order_once_the_upstream_opens(proxy, fake):
    fake.accept_delay = 0.2
    frames = [bytes([n]) * 100 for n in range(1, 21)]
    with trio.fail_after(DEADLINE):
        async with proxy.connect() as client:
            await client.settings()
            for frame in frames:
                await client.send_audio(frame)
            await client.send({"type": "InjectUserMessage", "content": "after the audio"})
            await client.next("SettingsApplied")
            await client.next("AgentAudioDone")
            upstream = await fake.next_connection()
            assert bytes(upstream.audio) == b"".join(frames)
            kinds = [e["type"] for e in upstream.received]
            assert kinds[0] == "session.update"
            assert kinds.index("conversation.item.create") > max(
                i for i, kind in enumerate(kinds) if kind == "input_audio_buffer.append"
            )


# ------------------------------------------------------------------ P2.3


async def expect_upstream_failure(proxy, code: str, close: int) -> dict:
    async with proxy.connect() as client:
        await client.settings()
        error = await client.next("Error")
        assert error["code"] == code
        assert await client.wait_closed() == close
        assert "sk-" not in error["description"]  # P1.5
        return error


async def test_p2_3_connection_refused(proxy_factory, fake):
    port = free_port()
    proxy = await proxy_factory(upstream_url=f"ws://127.0.0.1:{port}/v1/realtime")
    with trio.fail_after(DEADLINE):
        error = await expect_upstream_failure(proxy, "UPSTREAM_UNAVAILABLE", 1011)
        # The client never learns where the upstream is (PROTOCOL preamble): no host, no port.
        assert "127.0.0.1" not in error["description"] and str(port) not in error["description"]
        assert "refused" in error["description"]
        # The server survives: the next client gets the same clear answer.
        await expect_upstream_failure(proxy, "UPSTREAM_UNAVAILABLE", 1011)
        await wait_until(lambda: not proxy.server.connections)


async def test_p2_3_dns_failure(proxy_factory, fake):
    # A short connect timeout: on a machine whose resolver is unreachable the
    # lookup may hang instead of failing, and either way the answer is UNAVAILABLE.
    proxy = await proxy_factory(upstream_url="ws://no-such-host.invalid/v1/realtime", upstream_connect_timeout_s=1.0)
    with trio.fail_after(DEADLINE):
        error = await expect_upstream_failure(proxy, "UPSTREAM_UNAVAILABLE", 1011)
        assert "no-such-host" not in error["description"]


async def test_p2_3_tls_failure_names_no_host(proxy_factory, fake, nursery):
    """A wss:// upstream that answers in plain text: UNAVAILABLE, and no host in the text."""

    async def plain_text(stream: trio.SocketStream) -> None:
        await stream.send_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await stream.aclose()

    listeners = await nursery.start(partial(trio.serve_tcp, plain_text, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    proxy = await proxy_factory(upstream_url=f"wss://127.0.0.1:{port}/v1/realtime")
    with trio.fail_after(DEADLINE):
        error = await expect_upstream_failure(proxy, "UPSTREAM_UNAVAILABLE", 1011)
        assert "127.0.0.1" not in error["description"] and str(port) not in error["description"]
        assert "TLS" in error["description"]


@pytest.mark.parametrize(
    "status, code, close",
    [(401, "UPSTREAM_UNAUTHORIZED", 1008), (403, "UPSTREAM_UNAUTHORIZED", 1008), (500, "UPSTREAM_UNAVAILABLE", 1011)],
)
async def test_p2_3_non_101_status(proxy, fake, status, code, close):
    fake.reject_status = status
    with trio.fail_after(DEADLINE):
        error = await expect_upstream_failure(proxy, code, close)
        assert str(status) in error["description"]
        # The server survives: once the upstream answers again, a client gets a whole turn.
        fake.reject_status = None
        async with proxy.connect() as client:
            await client.settings()
            await client.next("SettingsApplied")
            await text_turn(client)


async def test_p2_3_wrong_api_key_is_unauthorized(proxy, fake):
    fake.api_key = "sk-a-different-key"  # the fake answers 401 like the real service
    with trio.fail_after(DEADLINE):
        error = await expect_upstream_failure(proxy, "UPSTREAM_UNAUTHORIZED", 1008)
        assert "401" in error["description"]


async def test_p2_3_accept_delayed_beyond_the_connect_timeout(proxy_factory, fake):
    proxy = await proxy_factory(upstream_connect_timeout_s=0.3)
    fake.accept_delay = 30
    with trio.fail_after(DEADLINE):
        start = trio.current_time()
        await expect_upstream_failure(proxy, "UPSTREAM_UNAVAILABLE", 1011)
        assert trio.current_time() - start < DEADLINE - 1  # bounded by the timeout, not the fake


async def test_p2_3_tcp_accepted_but_never_answered(proxy_factory, fake, nursery):
    """A listener that takes the TCP connection and says nothing: the timeout still applies."""
    silent = trio.socket.socket()
    await silent.bind(("127.0.0.1", 0))
    silent.listen()
    proxy = await proxy_factory(
        upstream_url=f"ws://127.0.0.1:{silent.getsockname()[1]}/v1/realtime", upstream_connect_timeout_s=0.3
    )
    try:
        with trio.fail_after(DEADLINE):
            await expect_upstream_failure(proxy, "UPSTREAM_UNAVAILABLE", 1011)
    finally:
        silent.close()


async def test_p2_3_wss_upstream_with_a_trusted_certificate_works(proxy_factory, fake, nursery, monkeypatch, tmp_path):
    """The TLS path to the upstream (done before the WebSocket handshake) verifies and then serves a turn."""
    import trustme

    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # read by ssl.create_default_context()

    relay = relay_to(fake.port)

    listeners = await nursery.start(partial(trio.serve_ssl_over_tcp, relay, 0, server_context, host="127.0.0.1"))
    port = listeners[0].transport_listener.socket.getsockname()[1]
    proxy = await proxy_factory(upstream_url=f"wss://127.0.0.1:{port}/v1/realtime?model=gpt-realtime")
    with trio.fail_after(DEADLINE):
        async with proxy.connect() as client:
            await client.settings()
            await client.next("SettingsApplied")
            await text_turn(client)
        upstream = await fake.next_connection()
        assert upstream.path == "/v1/realtime?model=gpt-realtime"
        assert upstream.headers["authorization"].startswith("Bearer ")


# ------------------------------------------------------------------ P2.4


async def mid_turn(fake, client):
    """Set up, ask a question, and let the upstream start (not finish) the response."""
    fake.responder = None
    await client.settings()
    await client.next("SettingsApplied")
    upstream = await fake.next_connection()
    await client.send({"type": "InjectUserMessage", "content": "tell me a story"})
    create = await upstream.next("response.create")
    response_id = await upstream.begin_response(create)
    await upstream.send({"type": "response.output_audio.delta", "response_id": response_id, "item_id": "item_1",
                         "output_index": 0, "content_index": 0, "delta": base64.b64encode(b"\x01\x00" * 240).decode()})
    await client.next("AgentStartedSpeaking")
    return upstream


@pytest.mark.parametrize("upstream_code, client_code", [(1000, 1000), (1001, 1011), (1011, 1011), (4000, 1011)])
async def test_p2_4_upstream_close_mid_turn(proxy_factory, fake, upstream_code, client_code):
    # P2.4 as written: with renewal off (README "Session renewal" renews these instead).
    proxy = await proxy_factory(renewal=False)
    with trio.fail_after(DEADLINE):
        async with proxy.connect() as client:
            upstream = await mid_turn(fake, client)
            await upstream.close(upstream_code, "bye")
            assert await client.wait_closed() == client_code
            assert client.close_reason  # a short reason
        await wait_until(lambda: not proxy.server.connections)


async def test_p2_4_upstream_tcp_drop_mid_turn_is_1011(proxy_factory, fake):
    # P2.4 as written: with renewal off (README "Session renewal" renews these instead).
    proxy = await proxy_factory(renewal=False)
    with trio.fail_after(DEADLINE):
        async with proxy.connect() as client:
            upstream = await mid_turn(fake, client)
            await upstream.socket._stream.aclose()  # no close frame: an abnormal end
            assert await client.wait_closed() == 1011
        await wait_until(lambda: not proxy.server.connections)


@pytest.mark.parametrize("upstream_code, client_code", [(1000, 1000), (1011, 1011)])
async def test_p2_4_upstream_error_before_close_is_delivered_first(proxy_factory, fake, upstream_code, client_code):
    # P2.4 as written: with renewal off (README "Session renewal" renews these instead).
    proxy = await proxy_factory(renewal=False)
    with trio.fail_after(DEADLINE):
        async with proxy.connect() as client:
            upstream = await mid_turn(fake, client)
            await upstream.send({"type": "error", "error": {
                "type": "invalid_request_error", "code": "session_max_duration",
                "message": "Your session hit the maximum duration of 60 minutes."}})
            await upstream.close(upstream_code, "session expired")
            assert await client.wait_closed() == client_code
            assert client.types()[-1] == "Error"
            assert client.messages("Error")[-1]["code"] == "session_max_duration"


# ------------------------------------------------------------------ P2.5


async def test_p2_5_client_close_closes_the_upstream_with_1000_within_a_second(proxy, fake):
    with trio.fail_after(DEADLINE):
        async with proxy.session(fake) as (client, upstream):
            await text_turn(client)
        # The client's close handshake is done here.
    with trio.fail_after(1):
        assert await upstream.wait_closed() == 1000
        await wait_until(lambda: not proxy.server.connections)
    with trio.fail_after(1):
        await wait_until(lambda: not proxy.server._handlers.child_tasks)  # no task outlives it


async def raw_handshake(port: int, path: str = "/openai") -> trio.SocketStream:
    """A WebSocket opening handshake by hand, so the TCP connection can be dropped without a close frame."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    await stream.send_all(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += await stream.receive_some(4096)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return stream


@pytest.mark.parametrize("when", ["before_settings", "after_settings"])
async def test_p2_5_client_tcp_drop_closes_the_upstream_with_1000(proxy, fake, when):
    with trio.fail_after(DEADLINE):
        stream = await raw_handshake(proxy.server.port)
        upstream = await fake.next_connection()
        if when == "after_settings":
            # A masked text frame carrying a Settings message (RFC 6455 5.2).
            payload = json.dumps(DEFAULT_SETTINGS).encode()
            mask = os.urandom(4)
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            header = bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + mask
            await stream.send_all(header + masked)
            await upstream.next("session.update")
        await stream.aclose()
    with trio.fail_after(1):
        assert await upstream.wait_closed() == 1000
        await wait_until(lambda: not proxy.server.connections)


async def test_p2_5_client_leaving_while_the_upstream_is_still_connecting(proxy, fake):
    fake.accept_delay = 30
    with trio.fail_after(DEADLINE):
        async with proxy.connect() as client:
            await client.next("Welcome")
            await client.settings()
    with trio.fail_after(1):
        await wait_until(lambda: not proxy.server.connections)
        await wait_until(lambda: not proxy.server._handlers.child_tasks)


# ------------------------------------------------------------ P2.8 - P2.10


def records_of(caplog, connection_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "connection_id", None) == connection_id]


async def test_p2_8_trace_id_is_on_every_record_of_the_connection(proxy, fake, caplog):
    caplog.set_level(logging.DEBUG, logger="proxy")
    with trio.fail_after(DEADLINE):
        async with proxy.connect(path="/openai?traceId=trace-abc-123") as traced:
            traced_id = (await traced.next("Welcome"))["request_id"]
            await traced.settings()
            await traced.next("SettingsApplied")
            await traced.send_text("{bad")  # an error record too
            await traced.next("Error")
            await text_turn(traced)
        async with proxy.connect() as plain:
            plain_id = (await plain.next("Welcome"))["request_id"]
            await plain.settings()
            await plain.next("SettingsApplied")
        await wait_until(lambda: not proxy.server.connections)
    traced_records = records_of(caplog, traced_id)
    assert len(traced_records) >= 4  # connected, upstream connected, error, closed, ended
    assert {r.trace_id for r in traced_records} == {"trace-abc-123"}
    plain_records = records_of(caplog, plain_id)
    assert plain_records and {r.trace_id for r in plain_records} == {plain_id}  # default: the connection id
    # Records emitted by the session itself (errors) carry the ids too.
    assert any(getattr(r, "error_code", None) == "INVALID_MESSAGE" for r in traced_records)


async def test_p2_9_first_offered_subprotocol_selected(proxy, fake):
    with trio.fail_after(DEADLINE):
        async with proxy.connect(subprotocols=["token", "abc"]) as client:
            assert client.socket.subprotocol == "token"
            await client.settings()
            await client.next("SettingsApplied")
            await text_turn(client)


async def test_p2_10_deepgram_agent_path_completes_a_turn(proxy, fake):
    with trio.fail_after(DEADLINE):
        async with proxy.connect(path="/v1/agent/converse") as client:
            await client.settings()
            await client.next("SettingsApplied")
            await text_turn(client)


@pytest.mark.parametrize("path", ["/", "/openai/extra", "/v1/agent", "/v1/agent/converse/x", "/OPENAI"])
async def test_p2_10_other_paths_get_404_and_no_upstream(proxy, fake, path):
    with trio.fail_after(DEADLINE):
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(f"ws://127.0.0.1:{proxy.server.port}{path}"):
                pass
        assert rejected.value.status_code == 404
        assert fake.handshakes == 0


async def test_p2_3_the_log_names_the_cause_the_client_does_not(proxy_factory, fake, caplog):
    port = free_port()
    proxy = await proxy_factory(upstream_url=f"ws://127.0.0.1:{port}/v1/realtime")
    caplog.set_level(logging.WARNING, logger="proxy")
    with trio.fail_after(DEADLINE):
        error = await expect_upstream_failure(proxy, "UPSTREAM_UNAVAILABLE", 1011)
    assert str(port) not in error["description"]
    failed = [r for r in caplog.records if r.getMessage() == "upstream connect failed"]
    assert len(failed) == 1 and failed[0].levelno == logging.ERROR
    assert f"127.0.0.1:{port}" in failed[0].detail  # an operator at warning level still sees where


async def test_p2_6_going_away_closes_with_1001_even_when_the_translator_is_busy(proxy_factory, fake, monkeypatch):
    """P2.6: if the going-away request cannot be queued (translator channel full),
    the teardown that follows still closes the client with 1001, not 1011."""
    import proxy.server as server_module

    monkeypatch.setattr(server_module, "CLOSE_TIMEOUT_S", 0.2)
    proxy = await proxy_factory(shutdown_grace_s=0)
    with trio.fail_after(5):
        async with proxy.session(fake) as (client, _upstream):
            (connection,) = proxy.server.connections
            full_send, _full_receive = trio.open_memory_channel(0)  # every send_nowait would block
            connection._inbound = full_send
            await proxy.server.shutdown()
            assert await client.wait_closed() == 1001


async def test_a_client_that_stops_reading_is_closed_and_its_upstream_released(proxy_factory, fake, monkeypatch):
    """No path hangs: a client that never reads holds the writer only for the
    stall deadline; then the connection ends and the upstream is closed with
    1000 (P2.5), instead of an OpenAI session held open forever."""
    import proxy.server as server_module
    from bench import wsraw

    monkeypatch.setattr(server_module, "STALLED_PEER_TIMEOUT_S", 0.5)
    fake.responder = None
    proxy = await proxy_factory()
    with trio.fail_after(10):
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await sock.connect(("127.0.0.1", proxy.server.port))
        request, _accept = wsraw.client_handshake("127.0.0.1", proxy.server.port, "/openai")
        await sock.send(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += await sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 101")
        await sock.send(wsraw.frame(0x1, json.dumps(DEFAULT_SETTINGS).encode(), masked=True))
        upstream = await fake.next_connection()
        await upstream.next("session.update")
        response_id = await upstream.begin_response()
        chunk = base64.b64encode(b"\x01\x02" * 24000).decode()  # 1 s of audio per delta

        async def pump() -> None:
            try:
                for _ in range(2000):  # bounded: far more than the socket buffers hold
                    await upstream.send({"type": "response.output_audio.delta", "response_id": response_id,
                                         "item_id": "item_a", "output_index": 0, "content_index": 0, "delta": chunk})
            except ConnectionClosed:
                pass  # the proxy let go of the upstream: what this test waits for

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump)
            assert await upstream.wait_closed() == 1000
            nursery.cancel_scope.cancel()
        sock.close()
        while proxy.server.connections:
            await trio.sleep(0.01)


async def test_an_upstream_that_stops_reading_ends_the_connection_with_1011(proxy_factory, fake, monkeypatch):
    """No path hangs: a stalled upstream ends the connection (1011) after the
    stall deadline instead of backing the client up forever."""
    import proxy.server as server_module

    monkeypatch.setattr(server_module, "STALLED_PEER_TIMEOUT_S", 0.5)
    proxy = await proxy_factory()
    with trio.fail_after(10):
        async with proxy.session(fake) as (client, upstream):
            async def stop_reading(frame):
                await trio.sleep_forever()

            upstream._on_frame = stop_reading  # the next frame is never read
            frame = b"\x00\x01" * 32000  # about 1.3 s of audio

            async def talk() -> None:
                try:
                    for _ in range(2000):  # bounded: far more than the socket buffers hold
                        await client.send_audio(frame)
                except ConnectionClosed:
                    pass

            async with trio.open_nursery() as nursery:
                nursery.start_soon(talk)
                assert await client.wait_closed() == 1011
                nursery.cancel_scope.cancel()
