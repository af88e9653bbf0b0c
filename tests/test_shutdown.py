"""P2.6: SIGTERM/SIGINT drain the proxy, run as a real process with live sessions."""

from __future__ import annotations

import signal

import pytest
import trio

from proxy.testing import DEFAULT_REPLY, open_agent_client

from .daemon import running_proxy


async def refused(url: str) -> bool:
    """True if a new client cannot get a session: connection refused or reset, or HTTP 503.

    A raw handshake rather than a WebSocket client: a connection that reached
    the kernel's backlog just before the listener closed is reset, and the
    answer (or its absence) is what this test is about.
    """
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    try:
        with trio.fail_after(5):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(
                    b"GET /openai HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                )
                answer = await stream.receive_some(100)
    except (OSError, trio.BrokenResourceError):
        return True
    return answer == b"" or answer.startswith(b"HTTP/1.1 503")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_drains_then_closes_with_1001_and_exits_0(fake, signum):
    """Stop accepting at once; open sessions work through the grace; then 1001 / 1000; exit 0."""
    fake.responder = None
    with trio.fail_after(20):
        async with running_proxy(fake.url, env={"OPENAI_PROXY_SHUTDOWN_GRACE_S": "1.5"}) as daemon:
            async with open_agent_client(daemon.url) as first, open_agent_client(daemon.url) as second:
                for client in (first, second):
                    await client.settings()
                    await client.next("SettingsApplied")
                upstreams = [await fake.next_connection(0), await fake.next_connection(1)]

                daemon.signal(signum)
                await daemon.wait_for_line("shutting down")
                started = trio.current_time()
                assert await refused(daemon.url)

                # Within the grace the session carries on normally: a whole turn.
                await first.send({"type": "InjectUserMessage", "content": "still there?"})
                create = await upstreams[0].next("response.create")
                await upstreams[0].play_response(transcript=DEFAULT_REPLY, create=create)
                await first.next("AgentAudioDone")
                assert first.close_code is None and second.close_code is None

                # After the grace: going away (1001) to clients, 1000 upstream.
                assert await first.wait_closed() == 1001
                assert await second.wait_closed() == 1001
                assert trio.current_time() - started >= 1.4
                assert [await upstream.wait_closed() for upstream in upstreams] == [1000, 1000]
            assert await daemon.wait() == 0
    assert '"client.close_code": 1001' in daemon.stderr


async def test_idle_proxy_exits_at_once(fake):
    """No session open: the grace is not waited out."""
    with trio.fail_after(10):
        async with running_proxy(fake.url, env={"OPENAI_PROXY_SHUTDOWN_GRACE_S": "30"}) as daemon:
            daemon.signal(signal.SIGTERM)
            started = trio.current_time()
            assert await daemon.wait() == 0
            assert trio.current_time() - started < 10


async def test_sessions_that_end_in_the_grace_end_the_drain(fake):
    """The proxy exits as soon as the last session ends, not at the end of the grace."""
    with trio.fail_after(10):
        async with running_proxy(fake.url, env={"OPENAI_PROXY_SHUTDOWN_GRACE_S": "30"}) as daemon:
            async with open_agent_client(daemon.url) as client:
                await client.next("Welcome")
                await fake.next_connection()
                daemon.signal(signal.SIGTERM)
                await daemon.wait_for_line("shutting down")
            started = trio.current_time()
            assert await daemon.wait() == 0
            assert trio.current_time() - started < 10


async def test_second_signal_cuts_the_grace_short(fake):
    """Ctrl-C twice: the second signal closes the sessions with 1001 at once, then exit 0."""
    with trio.fail_after(15):
        async with running_proxy(fake.url, env={"OPENAI_PROXY_SHUTDOWN_GRACE_S": "60"}) as daemon:
            async with open_agent_client(daemon.url) as client:
                await client.next("Welcome")
                upstream = await fake.next_connection()
                daemon.signal(signal.SIGINT)
                await daemon.wait_for_line("shutting down")
                await trio.sleep(0.2)
                assert client.close_code is None  # still in its grace
                daemon.signal(signal.SIGINT)
                assert await client.wait_closed() == 1001
                assert await upstream.wait_closed() == 1000
            assert await daemon.wait() == 0
