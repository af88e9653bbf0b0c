"""P8 names of the settings the SDK 7.17 messages added: server-side functions, custom events."""

from __future__ import annotations

import pytest

from proxy.config import ConfigError, load_config
from proxy.translate import SessionOptions

KEY = {"OPENAI_API_KEY": "sk-test-" + "k" * 24}


def load(environ: dict[str, str], argv: list[str] | None = None, cwd=None):
    return load_config(argv or [], {**KEY, **environ}, cwd=str(cwd))


def test_defaults_call_no_endpoint_and_pass_nothing_raw(tmp_path):
    config = load({}, cwd=tmp_path)
    assert config.function_hosts == ()  # empty: a Settings naming an endpoint is refused
    assert (config.function_timeout_s, config.function_max_response_bytes) == (10.0, 65536)
    assert config.custom_event_types == () and config.forward_untranslated is False


@pytest.mark.parametrize(
    "variable, flag, raw, field, value",
    [
        ("OPENAI_PROXY_FUNCTION_HOSTS", "--function-hosts", "api.example.com, 127.0.0.1,10.0.0.0/8", "function_hosts",
         ("api.example.com", "127.0.0.1", "10.0.0.0/8")),
        ("OPENAI_PROXY_FUNCTION_TIMEOUT_S", "--function-timeout-s", "2.5", "function_timeout_s", 2.5),
        ("OPENAI_PROXY_FUNCTION_MAX_RESPONSE_BYTES", "--function-max-response-bytes", "1000",
         "function_max_response_bytes", 1000),
        ("OPENAI_PROXY_CUSTOM_EVENT_TYPES", "--custom-event-types", "conversation.item.create,response.cancel",
         "custom_event_types", ("conversation.item.create", "response.cancel")),
        ("OPENAI_PROXY_FORWARD_UNTRANSLATED", "--forward-untranslated", "1", "forward_untranslated", True),
    ],
)
def test_p8_variables_and_flags(tmp_path, variable, flag, raw, field, value):
    assert getattr(load({variable: raw}, cwd=tmp_path), field) == value
    assert getattr(load({}, [flag, raw], cwd=tmp_path), field) == value


@pytest.mark.parametrize(
    "variable, raw",
    [
        ("OPENAI_PROXY_FUNCTION_HOSTS", "api.example.com, not a host"),
        ("OPENAI_PROXY_CUSTOM_EVENT_TYPES", "session.delete"),
        ("OPENAI_PROXY_FORWARD_UNTRANSLATED", "maybe"),
        ("OPENAI_PROXY_FUNCTION_MAX_RESPONSE_BYTES", "0"),
    ],
)
def test_bad_values_name_the_variable(tmp_path, variable, raw):
    with pytest.raises(ConfigError, match=variable):
        load({variable: raw}, cwd=tmp_path)


def test_the_session_gets_the_parsed_allowlist(tmp_path):
    options = SessionOptions.from_config(load({"OPENAI_PROXY_FUNCTION_HOSTS": "127.0.0.1"}, cwd=tmp_path))
    options.function_hosts.check_address("127.0.0.1", "127.0.0.1")
    assert options.custom_event_types == () and options.forward_untranslated is False
