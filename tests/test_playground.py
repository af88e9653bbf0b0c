"""The playground page on the proxy's listener, and the demo's configuration (issue 13).

The page is answered only when it is on, only for its own files, and never
in the way of a WebSocket handshake (P2.10's 404 and every rejection stay).
"""

from __future__ import annotations

import json

import pytest
import trio

from proxy.config import ConfigError, load_config
from proxy.playground.site import FILES, Site, answer

SITE = Site(path="/openai", demo=True, token_required=False)


def request(target: str = "/", method: str = "GET", headers: str = "") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()


def split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status, headers, body


@pytest.mark.parametrize("path", sorted(FILES))
def test_each_file_is_served_with_its_type_and_a_strict_policy(path):
    status, headers, body = split(answer(request(path), SITE))
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"] == FILES[path][1]
    assert int(headers["content-length"]) == len(body) > 0
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


def test_head_has_the_headers_and_no_body():
    status, headers, body = split(answer(request("/", "HEAD"), SITE))
    assert status == "HTTP/1.1 200 OK" and int(headers["content-length"]) > 0 and body == b""


def test_other_methods_get_405():
    status, headers, _ = split(answer(request("/", "POST", "Content-Length: 0\r\n"), SITE))
    assert status.startswith("HTTP/1.1 405") and headers["allow"] == "GET, HEAD"


def test_the_page_is_told_the_mode_and_whether_a_token_is_needed_and_nothing_else():
    _, headers, body = split(answer(request("/playground.json?x=1"), Site("/agent", False, True)))
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"path": "/agent", "demo": False, "token_required": True}


@pytest.mark.parametrize(
    "head",
    [
        request("/nope"),
        request("/openai"),
        # A (malformed) upgrade attempt keeps the WebSocket layer's own answer.
        request("/", headers="Connection: Upgrade\r\nUpgrade: websocket\r\n"),
        b"not http at all\r\n\r\n",
        b"GET / HTTP/1.1\r\n",  # incomplete
    ],
)
def test_anything_else_is_not_the_playground_s(head):
    assert answer(head, SITE) is None


async def http_get(port: int, target: str = "/") -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request(target))
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data


async def test_the_listener_serves_the_page_when_the_playground_is_on(proxy_factory):
    proxy = await proxy_factory(playground=True)
    with trio.fail_after(10):
        status, headers, body = split(await http_get(proxy.server.port))
        assert status == "HTTP/1.1 200 OK" and b"playground.js" in body
        assert (await http_get(proxy.server.port, "/nope")).startswith(b"HTTP/1.1 400")  # as before
        async with proxy.connect() as client:  # the WebSocket path is untouched
            await client.next("Welcome")
        assert (await http_get(proxy.server.port, "/playground.css")).startswith(b"HTTP/1.1 200")


async def test_the_listener_does_not_serve_it_when_off(proxy_factory):
    proxy = await proxy_factory()
    with trio.fail_after(10):
        assert (await http_get(proxy.server.port)).startswith(b"HTTP/1.1 400")


# ------------------------------------------------------------ configuration


def test_demo_needs_no_key_and_uses_none_it_is_given(tmp_path):
    config = load_config(["--demo"], {}, cwd=str(tmp_path))
    assert config.demo and config.playground
    assert config.api_key.startswith("sk-offline-demo-")
    real = load_config([], {"OPENAI_PROXY_DEMO": "1", "OPENAI_API_KEY": "sk-real-key"}, cwd=str(tmp_path))
    assert real.demo and real.api_key != "sk-real-key"


def test_playground_is_a_switch_off_by_default_and_on_in_the_demo(tmp_path):
    key = {"OPENAI_API_KEY": "sk-x"}
    assert load_config([], key, cwd=str(tmp_path)).playground is False
    assert load_config(["--playground"], key, cwd=str(tmp_path)).playground is True
    assert load_config([], {**key, "OPENAI_PROXY_PLAYGROUND": "1"}, cwd=str(tmp_path)).playground is True
    assert load_config(["--demo", "--playground", "0"], {}, cwd=str(tmp_path)).playground is False


@pytest.mark.parametrize(
    ("argv", "environ", "named"),
    [
        (["--playground", "maybe"], {"OPENAI_API_KEY": "sk-x"}, "OPENAI_PROXY_PLAYGROUND"),
        ([], {"OPENAI_PROXY_DEMO": "2"}, "OPENAI_PROXY_DEMO"),
        (["--demo", "--workers", "2"], {}, "OPENAI_PROXY_WORKERS"),
    ],
)
def test_bad_switches_name_the_variable(tmp_path, argv, environ, named):
    with pytest.raises(ConfigError, match=named):
        load_config(argv, environ, cwd=str(tmp_path))
