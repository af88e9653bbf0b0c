"""The client's address on handshake and connection records (issue 13), and
X-Forwarded-For only from a trusted proxy (OPENAI_PROXY_TRUSTED_PROXIES)."""

from __future__ import annotations

import logging

import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from proxy.logs import JsonFormatter

FORWARDED = [(b"x-forwarded-for", b"198.51.100.23")]


def of(caplog, message: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage() == message]


async def test_rejected_handshake_and_connection_records_carry_the_peer(proxy_factory, fake, caplog):
    caplog.set_level(logging.INFO, logger="proxy")
    proxy = await proxy_factory(auth_tokens=("right-token-0123456789",))
    with trio.fail_after(10):
        with pytest.raises(ConnectionRejected):
            async with open_websocket_url(proxy.url, extra_headers=FORWARDED):
                pass
        async with proxy.connect(subprotocols=["token", "right-token-0123456789"], extra_headers=FORWARDED) as client:
            await client.next("Welcome")
        while proxy.server.connections:
            await trio.sleep(0.01)
    # Nobody is trusted: the header is ignored and the peer is logged.
    assert [r.client_address for r in of(caplog, "handshake rejected")] == ["127.0.0.1"]
    assert [r.client_address for r in of(caplog, "client connected")] == ["127.0.0.1"]
    assert [r.client_address for r in of(caplog, "connection ended")] == ["127.0.0.1"]
    line = JsonFormatter().format(of(caplog, "client connected")[0])
    assert '"client.address": "127.0.0.1"' in line


async def test_forwarded_for_from_a_trusted_peer(proxy_factory, fake, caplog):
    caplog.set_level(logging.INFO, logger="proxy")
    proxy = await proxy_factory(trusted_proxies=("127.0.0.0/8",))
    with trio.fail_after(10):
        async with proxy.connect(extra_headers=FORWARDED) as client:
            await client.next("Welcome")
    assert [r.client_address for r in of(caplog, "client connected")] == ["198.51.100.23"]
