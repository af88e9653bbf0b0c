"""P2.7, P2.9, P2.10, P5.11: who may connect, checked through real sockets.

Every rejected handshake is also checked against the fake upstream's
`handshakes` counter: a stranger must never cost an upstream connection.
"""

from __future__ import annotations

import json

import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from proxy.testing.client import DEFAULT_SETTINGS

TOKEN = "client-token-123"
OTHER = "second-token-456"


async def expect_rejected(url: str, **kwargs) -> ConnectionRejected:
    with pytest.raises(ConnectionRejected) as caught:
        async with open_websocket_url(url, **kwargs):
            pass
    return caught.value


async def expect_accepted(proxy, url: str | None = None, **kwargs) -> str | None:
    """Open a session; return the subprotocol the proxy selected."""
    async with open_websocket_url(url or proxy.url, **kwargs) as socket:
        welcome = await socket.get_message()
        assert '"Welcome"' in welcome
        # Stay until the upstream has the session: leaving right after the
        # Welcome races the proxy's upstream connect, which is then cancelled.
        await socket.send_message(json.dumps(DEFAULT_SETTINGS))
        while '"SettingsApplied"' not in await socket.get_message():
            pass
        return socket.subprotocol


@pytest.mark.parametrize(
    "carrier",
    ["query", "bearer_header", "token_subprotocol", "bearer_subprotocol"],
)
async def test_each_token_carrier_is_accepted(proxy_factory, fake, carrier):
    """P2.7: `?token=`, `Authorization: Bearer`, and the `token`/`bearer` subprotocol pairs."""
    proxy = await proxy_factory(auth_tokens=(OTHER, TOKEN))
    kwargs: dict = {}
    url = proxy.url
    if carrier == "query":
        url += f"?token={TOKEN}"
    elif carrier == "bearer_header":
        kwargs["extra_headers"] = [(b"Authorization", f"Bearer {TOKEN}".encode())]
    elif carrier == "token_subprotocol":
        kwargs["subprotocols"] = ["token", TOKEN]
    else:
        kwargs["subprotocols"] = ["bearer", TOKEN]
    with trio.fail_after(5):
        selected = await expect_accepted(proxy, url, **kwargs)
        await fake.next_connection()
    assert fake.handshakes == 1
    if "subprotocol" in carrier:
        # P2.9: the answer selects the first offer, or a browser aborts.
        assert selected == kwargs["subprotocols"][0]


@pytest.mark.parametrize(
    "kwargs_for",
    [
        lambda url: {"url": url},
        lambda url: {"url": url + "?token=wrong"},
        lambda url: {"url": url + "?token="},
        lambda url: {"url": url, "extra_headers": [(b"Authorization", b"Bearer wrong")]},
        lambda url: {"url": url, "extra_headers": [(b"Authorization", f"Basic {TOKEN}".encode())]},
        lambda url: {"url": url, "subprotocols": ["token", "wrong"]},
        lambda url: {"url": url, "subprotocols": [TOKEN]},  # a token alone is no scheme pair
        lambda url: {"url": url + f"?token={TOKEN[:-1]}"},  # a prefix is not the token
    ],
    ids=["none", "wrong_query", "empty_query", "wrong_bearer", "basic_scheme", "wrong_subprotocol",
         "bare_subprotocol", "prefix"],
)
async def test_missing_or_wrong_token_is_401_without_upstream(proxy_factory, fake, kwargs_for):
    """P2.7: rejected with 401 before any upstream connection is made."""
    proxy = await proxy_factory(auth_tokens=(TOKEN,))
    kwargs = kwargs_for(proxy.url)
    url = kwargs.pop("url")
    with trio.fail_after(5):
        rejected = await expect_rejected(url, **kwargs)
    assert rejected.status_code == 401
    await trio.sleep(0.05)  # a connect started by mistake would have reached the fake by now
    assert fake.handshakes == 0


async def test_origin_allowlist(proxy_factory, fake):
    """P2.7: an Origin not on the list gets 403; no Origin at all (SDKs) passes; a listed one passes."""
    proxy = await proxy_factory(allowed_origins=("https://app.example",))
    with trio.fail_after(5):
        rejected = await expect_rejected(proxy.url, extra_headers=[(b"Origin", b"https://evil.example")])
        assert rejected.status_code == 403
        await trio.sleep(0.05)
        assert fake.handshakes == 0
        await expect_accepted(proxy)
        await expect_accepted(proxy, extra_headers=[(b"Origin", b"https://app.example")])
        await fake.next_connection(1)


async def test_origin_is_checked_before_the_token(proxy_factory, fake):
    """P2.7: a good token from a foreign page is still a foreign page."""
    proxy = await proxy_factory(allowed_origins=("https://app.example",), auth_tokens=(TOKEN,))
    with trio.fail_after(5):
        rejected = await expect_rejected(
            proxy.url + f"?token={TOKEN}", extra_headers=[(b"Origin", b"https://evil.example")]
        )
    assert rejected.status_code == 403
    assert fake.handshakes == 0


async def test_over_max_connections_is_503(proxy_factory, fake):
    """P8 OPENAI_PROXY_MAX_CONNECTIONS: over the limit, HTTP 503 at the handshake, no upstream."""
    proxy = await proxy_factory(max_connections=1)
    with trio.fail_after(5):
        async with open_websocket_url(proxy.url) as first:
            await first.get_message()
            await fake.next_connection()
            rejected = await expect_rejected(proxy.url)
            assert rejected.status_code == 503
            await trio.sleep(0.05)
            assert fake.handshakes == 1
        # The slot frees when the first session ends.
        while proxy.server.connections:
            await trio.sleep(0.01)
        await expect_accepted(proxy)


async def test_unknown_path_is_404_and_deepgram_path_is_served(proxy_factory, fake):
    """P2.10."""
    proxy = await proxy_factory()
    base = f"ws://127.0.0.1:{proxy.server.port}"
    with trio.fail_after(5):
        rejected = await expect_rejected(base + "/elsewhere")
        assert rejected.status_code == 404
        assert fake.handshakes == 0
        await expect_accepted(proxy, base + "/v1/agent/converse")


async def test_first_subprotocol_selected_without_auth(proxy_factory, fake):
    """P2.9: with no tokens configured, the first offered subprotocol is still echoed."""
    proxy = await proxy_factory()
    with trio.fail_after(5):
        assert await expect_accepted(proxy, subprotocols=["token", "anything"]) == "token"
        assert await expect_accepted(proxy) is None


async def test_oversized_frame_closes_with_1009(proxy_factory, fake):
    """P5.11: a frame over the configured maximum closes the connection with 1009."""
    proxy = await proxy_factory(max_frame_bytes=4096)
    with trio.fail_after(5):
        async with proxy.connect() as client:
            await client.next("Welcome")
            await client.send_audio(b"\0" * 4097)
            assert await client.wait_closed() == 1009
