"""Pure tests of the handshake decisions (P2.7-P2.10), no sockets."""

from __future__ import annotations

import pytest

from proxy.handshake import DEEPGRAM_AGENT_PATH, decide, presented_tokens, token_matches


def accept(target: str = "/openai", headers=(), subprotocols=(), **kwargs):
    return decide(target, list(headers), list(subprotocols), path=kwargs.pop("path", "/openai"), **kwargs)


# ----------------------------------------------------------------- P2.10


@pytest.mark.parametrize("target", ["/openai", "/openai?traceId=x", DEEPGRAM_AGENT_PATH, "/v1/agent/converse?a=b"])
def test_p2_10_configured_and_deepgram_paths_are_accepted(target):
    assert accept(target).status is None


@pytest.mark.parametrize("target", ["/", "/openai/", "/openai/x", "/OpenAI", "/v1/agent", "/v1/agent/converse/", "/x/openai"])
def test_p2_10_any_other_path_is_404(target):
    decision = accept(target)
    assert decision.status == 404


def test_p2_10_configured_path_replaces_the_default():
    assert accept("/agent", path="/agent").status is None
    assert accept("/openai", path="/agent").status == 404
    assert accept(DEEPGRAM_AGENT_PATH, path="/agent").status is None


def test_p2_10_404_comes_before_auth():
    assert accept("/nowhere", auth_tokens=["t"]).status == 404


# ------------------------------------------------------------------ P2.9


@pytest.mark.parametrize(
    "offered, selected",
    [([], None), (["token", "abc"], "token"), (["bearer", "abc"], "bearer"), (["json"], "json"), (["a", "b", "c"], "a")],
)
def test_p2_9_first_offered_subprotocol_is_selected_without_auth(offered, selected):
    assert accept(subprotocols=offered).subprotocol == selected


def test_p2_9_first_offered_subprotocol_is_selected_with_auth():
    decision = accept(subprotocols=["token", "secret"], auth_tokens=["secret"])
    assert decision.status is None and decision.subprotocol == "token"


# ------------------------------------------------------------------ P2.8


def test_p2_8_trace_id_from_the_query():
    assert accept("/openai?traceId=trace-1&other=2").trace_id == "trace-1"
    assert accept("/openai").trace_id is None


# ------------------------------------------------------------------ P2.7


@pytest.mark.parametrize(
    "target, headers, subprotocols",
    [
        ("/openai?token=secret", [], []),
        ("/openai", [(b"Authorization", b"Bearer secret")], []),
        ("/openai", [(b"authorization", b"Token secret")], []),
        ("/openai", [], ["token", "secret"]),
        ("/openai", [], ["bearer", "secret"]),
        ("/openai", [], ["Token", "secret"]),
    ],
    ids=["query", "bearer-header", "token-header", "token-subprotocol", "bearer-subprotocol", "scheme-case"],
)
def test_p2_7_every_carrier_is_accepted(target, headers, subprotocols):
    assert accept(target, headers, subprotocols, auth_tokens=["other", "secret"]).status is None


@pytest.mark.parametrize(
    "target, headers, subprotocols",
    [
        ("/openai", [], []),
        ("/openai?token=wrong", [], []),
        ("/openai", [(b"authorization", b"Bearer wrong")], []),
        ("/openai", [(b"authorization", b"Basic secret")], []),
        ("/openai", [], ["secret"]),  # a bare value is not a token pair
        ("/openai", [], ["token"]),  # a scheme with no token after it
        ("/openai", [], ["json", "secret"]),
    ],
)
def test_p2_7_missing_or_wrong_token_is_401(target, headers, subprotocols):
    assert accept(target, headers, subprotocols, auth_tokens=["secret"]).status == 401


def test_p2_7_no_tokens_configured_means_no_auth():
    assert accept("/openai?token=anything").status is None


def test_p2_7_origin_allowlist():
    allowed = ["https://app.example"]
    assert accept(headers=[(b"Origin", b"https://app.example")], allowed_origins=allowed).status is None
    assert accept(headers=[(b"Origin", b"https://evil.example")], allowed_origins=allowed).status == 403
    assert accept(headers=[], allowed_origins=allowed).status is None  # no Origin: not a browser
    assert accept(headers=[(b"Origin", b"https://evil.example")]).status is None  # no allowlist


def test_p2_7_origin_is_checked_before_the_token():
    decision = accept(headers=[(b"origin", b"https://evil.example")], allowed_origins=["https://ok"], auth_tokens=["t"])
    assert decision.status == 403


def test_presented_tokens_collects_every_carrier():
    tokens = presented_tokens(
        {"token": ["q"]}, [(b"Authorization", b"Bearer h")], ["token", "s1", "bearer", "s2"]
    )
    assert sorted(tokens) == ["h", "q", "s1", "s2"]


def test_token_matches():
    assert token_matches(["a", "b"], ["b"])
    assert not token_matches(["a"], ["b", "c"])
    assert not token_matches([], ["b"])
    assert not token_matches(["b"], [])


# ---------------------------------------------- P2.8 (issue 10, "Edges")


@pytest.mark.parametrize(
    "trace_id",
    ["trace-abc-123", "4bf92f3577b34da6a3ce929d0e0e4736", "00-4bf92f35-00f067aa-01", "a.b:c_d", "x" * 128],
)
def test_p2_8_a_plain_trace_id_is_used(trace_id):
    decision = accept(f"/openai?traceId={trace_id}")
    assert decision.trace_id == trace_id and decision.trace_id_refused is None


@pytest.mark.parametrize(
    "query, why",
    [
        ("traceId=" + "x" * 129, "longer than 128"),
        ("traceId=" + "x" * 5000, "longer than 128"),
        ("traceId=abc%0A12:00:00.000%20ERROR%20forged", "characters outside"),
        ("traceId=abc%0D", "characters outside"),
        ("traceId=%1B%5B2J", "characters outside"),
        ("traceId=with%20space", "characters outside"),
        ("traceId=caf%C3%A9", "characters outside"),
    ],
)
def test_p2_8_a_long_or_unsafe_trace_id_falls_back_to_the_connection_id(query, why):
    decision = accept(f"/openai?{query}")
    assert decision.status is None  # the client is still served
    assert decision.trace_id is None  # the server then uses the connection id
    assert why in decision.trace_id_refused
    assert "\n" not in decision.trace_id_refused and "forged" not in decision.trace_id_refused


def test_p2_8_no_trace_id_is_no_refusal():
    for target in ("/openai", "/openai?traceId="):
        decision = accept(target)
        assert decision.trace_id is None and decision.trace_id_refused is None
