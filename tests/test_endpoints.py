"""Server-side functions: the host allowlist (pure) and the HTTP executor (local endpoint).

The proxy must not become a way into the operator's network: a host must be
listed, and loopback, link-local and private addresses are refused unless
the address itself is listed, checked on the address the host resolves to.
"""

from __future__ import annotations

import json
import ssl

import httpx
import pytest
import trio
import trustme

from proxy.endpoints import call_endpoint
from proxy.protocol.deepgram import FunctionEndpoint
from proxy.translate.endpoint_policy import EndpointRefused, FunctionHosts

from .endpoint_server import endpoint_server

# ------------------------------------------------------------------ policy


def test_empty_allowlist_refuses_every_endpoint():
    with pytest.raises(EndpointRefused, match="not on the function host allowlist"):
        FunctionHosts.parse(()).check_url("https://api.example.com/x")


def test_listed_names_addresses_and_networks():
    hosts = FunctionHosts.parse(["API.example.com", "127.0.0.1", "10.1.0.0/16"])
    assert hosts.check_url("https://api.example.com/x") == "api.example.com"
    assert hosts.check_url("http://127.0.0.1:9000/x") == "127.0.0.1"
    assert hosts.check_url("http://10.1.2.3/x") == "10.1.2.3"
    for url in ("https://other.example.com/", "http://10.2.0.1/", "http://127.0.0.2/"):
        with pytest.raises(EndpointRefused):
            hosts.check_url(url)


@pytest.mark.parametrize("url", ["ftp://api.example.com/", "file:///etc/passwd", "https://user:pw@api.example.com/", "http:///x"])
def test_only_http_urls_without_credentials(url):
    with pytest.raises(EndpointRefused):
        FunctionHosts.parse(["api.example.com"]).check_url(url)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.5", "192.168.1.1", "172.16.0.1", "169.254.169.254", "100.64.0.1", "::1", "fe80::1",
     "fd00::1", "::ffff:127.0.0.1", "0.0.0.0", "224.0.0.1"],
)
def test_a_listed_name_never_opens_non_public_addresses(address):
    """Checked on the resolved address: a listed name pointing inward is refused."""
    hosts = FunctionHosts.parse(["api.example.com"])
    with pytest.raises(EndpointRefused, match="non-public address"):
        hosts.check_address("api.example.com", address)


def test_listed_addresses_are_allowed_and_public_ones_need_the_name():
    hosts = FunctionHosts.parse(["api.example.com", "127.0.0.1"])
    hosts.check_address("api.example.com", "93.184.215.14")
    hosts.check_address("127.0.0.1", "127.0.0.1")
    hosts.check_address("api.example.com", "127.0.0.1")  # listed explicitly by address
    with pytest.raises(EndpointRefused):
        hosts.check_address("other.example.com", "93.184.215.14")
    with pytest.raises(EndpointRefused):
        FunctionHosts.parse(["10.0.0.0/8"]).check_address("8.8.8.8", "8.8.8.8")


@pytest.mark.parametrize("entry", ["not a host", "10.0.0.0/33", "exa_mple.com"])
def test_bad_allowlist_entries_are_named(entry):
    with pytest.raises(ValueError, match="is not"):
        FunctionHosts.parse([entry])


# ---------------------------------------------------------------- executor

LOCAL = FunctionHosts.parse(["127.0.0.1"])


async def run(endpoint: FunctionEndpoint, arguments: str = '{"city":"Oslo"}', hosts: FunctionHosts = LOCAL, **kw) -> str:
    options = {"timeout_s": 5.0, "max_response_bytes": 64 * 1024, **kw}
    with trio.fail_after(10):
        return await call_endpoint(endpoint, arguments, hosts=hosts, **options)


async def test_post_sends_the_arguments_as_json_with_the_given_headers():
    with endpoint_server() as server:
        output = await run(FunctionEndpoint(url=server.url("/weather"), method="post", headers={"X-Key": "k1"}))
    assert json.loads(output) == {"city": "Oslo", "forecast": "sunny"}
    [seen] = server.requests
    assert seen.method == "POST" and json.loads(seen.body) == {"city": "Oslo"}
    assert seen.headers["x-key"] == "k1" and seen.headers["content-type"] == "application/json"
    assert seen.headers["host"] == f"127.0.0.1:{server.port}"


async def test_get_sends_the_arguments_as_query_parameters():
    with endpoint_server() as server:
        output = await run(FunctionEndpoint(url=server.url("/weather"), method="GET"), '{"city":"Bergen","days":3}')
    assert json.loads(output)["city"] == "Bergen"
    assert server.requests[0].query == {"city": ["Bergen"], "days": ["3"]}


async def test_loopback_not_listed_is_refused_before_any_request():
    with endpoint_server() as server:
        output = await run(FunctionEndpoint(url=server.url("/weather", host="localhost")), hosts=FunctionHosts.parse(["localhost"]))
    assert "non-public address" in json.loads(output)["error"]
    assert server.requests == []


async def test_a_host_not_listed_is_refused():
    with endpoint_server() as server:
        output = await run(FunctionEndpoint(url=server.url("/weather")), hosts=FunctionHosts.parse(["api.example.com"]))
    assert "allowlist" in json.loads(output)["error"]
    assert server.requests == []


async def test_a_redirect_is_not_followed():
    with endpoint_server() as server:
        output = await run(FunctionEndpoint(url=server.url("/redirect"), method="GET"))
    assert json.loads(output)["error"] == "endpoint answered HTTP 302"
    assert len(server.requests) == 1


async def test_a_response_over_the_cap_is_not_passed_on():
    with endpoint_server() as server:
        output = await run(FunctionEndpoint(url=server.url("/huge"), method="GET"), max_response_bytes=4096)
    assert json.loads(output) == {"error": "endpoint response larger than 4096 bytes"}


async def test_an_endpoint_past_its_deadline_gives_an_error_output():
    with endpoint_server() as server:
        output = await run(FunctionEndpoint(url=server.url("/slow"), method="GET"), timeout_s=0.3)
    assert json.loads(output) == {"error": "endpoint gave no answer within 0.3 s"}


async def test_an_error_status_and_an_unreachable_port_are_outputs_not_exceptions():
    with endpoint_server() as server:
        output = await run(FunctionEndpoint(url=server.url("/broken")))
        port = server.port
    assert json.loads(output) == {"error": "endpoint answered HTTP 500", "body": "broken"}
    unreachable = await run(FunctionEndpoint(url=f"http://127.0.0.1:{port}/weather"))
    assert json.loads(unreachable)["error"].startswith("endpoint unreachable")


async def test_https_endpoint_is_verified_against_its_name_on_the_pinned_address():
    """TLS still checks the certificate for the URL's host while the request goes to the checked address."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    with endpoint_server(tls=server_context) as server:
        endpoint = FunctionEndpoint(url=server.url("/weather"))
        output = await run(endpoint, transport=httpx.AsyncHTTPTransport(verify=trusting))
        untrusted = await run(endpoint)  # the system store does not know this CA
    assert json.loads(output) == {"city": "Oslo", "forecast": "sunny"}
    assert json.loads(untrusted)["error"].startswith("endpoint unreachable")
    assert len(server.requests) == 1
