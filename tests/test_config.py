"""P8: configuration names, defaults and precedence (flag > environment > .env)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from proxy.config import DEFAULT_UPSTREAM_URL, SETTINGS, ConfigError, build_parser, load_config

KEY = {"OPENAI_API_KEY": "sk-config-test"}


def load(argv=(), environ=None, cwd=None):
    return load_config(list(argv), {**KEY, **(environ or {})}, cwd=str(cwd) if cwd else None)


@pytest.fixture
def empty_dir(tmp_path):
    """A working directory with no .env in it."""
    return tmp_path


def test_defaults(empty_dir):
    config = load(cwd=empty_dir)
    assert (config.host, config.port, config.path) == ("127.0.0.1", 8080, "/openai")
    assert config.upstream_url == DEFAULT_UPSTREAM_URL == "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    assert config.log_level == "info"
    assert (config.max_held_frames, config.max_held_bytes, config.max_frame_bytes) == (256, 4194304, 1048576)
    assert config.upstream_connect_timeout_s == 10 and config.shutdown_grace_s == 10
    assert config.auth_tokens == () and config.allowed_origins == () and config.max_connections == 0
    assert (config.greeting, config.turn_detection) == ("text", "server_vad")
    assert config.transcription_model == "gpt-4o-mini-transcribe"
    assert (config.function_call_deadline_s, config.update_timeout_s) == (20, 10)
    assert config.tls_cert_path is None and config.admin_port is None
    assert config.listen_url == "ws://127.0.0.1:8080/openai"


# Every P8 variable: (variable, raw value, Config field, parsed value).
P8_TABLE = [
    ("OPENAI_PROXY_PORT", "9001", "port", 9001),
    ("OPENAI_PROXY_HOST", "0.0.0.0", "host", "0.0.0.0"),
    ("OPENAI_PROXY_PATH", "/agent", "path", "/agent"),
    ("OPENAI_REALTIME_URL", "ws://127.0.0.1:9/v1/realtime", "upstream_url", "ws://127.0.0.1:9/v1/realtime"),
    ("OPENAI_PROXY_MAX_HELD_FRAMES", "12", "max_held_frames", 12),
    ("OPENAI_PROXY_MAX_HELD_BYTES", "1000", "max_held_bytes", 1000),
    ("OPENAI_PROXY_MAX_FRAME_BYTES", "2048", "max_frame_bytes", 2048),
    ("OPENAI_PROXY_UPSTREAM_CONNECT_TIMEOUT_S", "2.5", "upstream_connect_timeout_s", 2.5),
    ("OPENAI_PROXY_SHUTDOWN_GRACE_S", "3", "shutdown_grace_s", 3.0),
    ("OPENAI_PROXY_AUTH_TOKENS", "a, b,,c", "auth_tokens", ("a", "b", "c")),
    ("OPENAI_PROXY_ALLOWED_ORIGINS", "https://x.example", "allowed_origins", ("https://x.example",)),
    ("OPENAI_PROXY_MAX_CONNECTIONS", "50", "max_connections", 50),
    ("OPENAI_PROXY_GREETING", "speak", "greeting", "speak"),
    ("OPENAI_PROXY_TURN_DETECTION", "semantic_vad", "turn_detection", "semantic_vad"),
    ("OPENAI_PROXY_TURN_DETECTION", "none", "turn_detection", "none"),
    ("OPENAI_PROXY_TRANSCRIPTION_MODEL", "whisper-1", "transcription_model", "whisper-1"),
    ("OPENAI_PROXY_FUNCTION_CALL_DEADLINE_S", "5", "function_call_deadline_s", 5.0),
    ("OPENAI_PROXY_UPDATE_TIMEOUT_S", "7", "update_timeout_s", 7.0),
    ("OPENAI_PROXY_TRANSCRIPT_WAIT_S", "0.5", "transcript_wait_s", 0.5),
    ("OPENAI_PROXY_ADMIN_PORT", "9090", "admin_port", 9090),
]


@pytest.mark.parametrize("variable, raw, field, value", P8_TABLE)
def test_p8_variable_names_are_exact(empty_dir, variable, raw, field, value):
    assert getattr(load(environ={variable: raw}, cwd=empty_dir), field) == value


@pytest.mark.parametrize("variable, raw, field, value", P8_TABLE)
def test_p8_every_addition_is_a_kebab_case_flag(empty_dir, variable, raw, field, value):
    if variable == "OPENAI_REALTIME_URL":
        flag = "--upstream-url"
    else:
        flag = "--" + variable.removeprefix("OPENAI_PROXY_").lower().replace("_", "-")
    assert getattr(load([flag, raw], cwd=empty_dir), field) == value


def test_p8_interface_flags_exist():
    options = {option for action in build_parser()._actions for option in action.option_strings}
    for flag in ("--host", "--port", "--path", "--upstream-url", "--env-file", "--max-held-frames", "--log-level"):
        assert flag in options
    assert {setting.variable for setting in SETTINGS} >= {variable for variable, *_ in P8_TABLE}


@pytest.mark.parametrize(
    "field, flag, variable, values",
    [
        ("port", "--port", "OPENAI_PROXY_PORT", ("1111", "2222", "3333")),
        ("host", "--host", "OPENAI_PROXY_HOST", ("10.0.0.1", "10.0.0.2", "10.0.0.3")),
        ("path", "--path", "OPENAI_PROXY_PATH", ("/a", "/b", "/c")),
        ("upstream_url", "--upstream-url", "OPENAI_REALTIME_URL", ("ws://a:1/x", "ws://b:2/x", "ws://c:3/x")),
    ],
)
def test_p8_flag_beats_environment_beats_env_file(tmp_path, field, flag, variable, values):
    from_file, from_env, from_flag = values
    (tmp_path / ".env").write_text(f"{variable}={from_file}\n")
    assert str(getattr(load(cwd=tmp_path), field)) == from_file
    assert str(getattr(load(environ={variable: from_env}, cwd=tmp_path), field)) == from_env
    assert str(getattr(load([flag, from_flag], environ={variable: from_env}, cwd=tmp_path), field)) == from_flag


def test_env_file_supplies_the_key_and_an_explicit_env_file_is_read(tmp_path, empty_dir):
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-from-file\nOPENAI_PROXY_PORT=4444\n")
    assert load_config([], {}, cwd=str(tmp_path)).api_key == "sk-from-file"
    other = tmp_path / "other.env"
    other.write_text("OPENAI_API_KEY=sk-other\nOPENAI_PROXY_PORT=5555\n")
    config = load_config(["--env-file", str(other)], {}, cwd=str(empty_dir))
    assert (config.api_key, config.port) == ("sk-other", 5555)
    # An explicit --env-file replaces ./.env.
    assert load_config(["--env-file", str(other)], {}, cwd=str(tmp_path)).port == 5555


def test_missing_env_file_is_an_error(empty_dir):
    with pytest.raises(ConfigError, match="does not exist"):
        load(["--env-file", str(empty_dir / "absent.env")], cwd=empty_dir)


def test_api_key_is_never_in_the_repr(empty_dir):
    assert "sk-config-test" not in repr(load(cwd=empty_dir))


@pytest.mark.parametrize(
    "environ, argv, level",
    [
        ({}, [], "info"),
        ({"LOG_LEVEL": "warning"}, [], "warning"),
        ({"LOG_LEVEL": "ERROR"}, [], "error"),
        ({"OPENAI_PROXY_DEBUG": "1"}, [], "debug"),
        ({"OPENAI_PROXY_DEBUG": "1", "LOG_LEVEL": "warning"}, [], "debug"),
        ({"OPENAI_PROXY_DEBUG": "0"}, [], "info"),
        ({"OPENAI_PROXY_DEBUG": "1"}, ["--log-level", "error"], "error"),
    ],
)
def test_p8_log_level_and_the_debug_alias(empty_dir, environ, argv, level):
    assert load(argv, environ, cwd=empty_dir).log_level == level


@pytest.mark.parametrize(
    "environ, argv, named",
    [
        ({"OPENAI_PROXY_PORT": "eighty"}, [], "OPENAI_PROXY_PORT"),
        ({"OPENAI_PROXY_PORT": "70000"}, [], "OPENAI_PROXY_PORT"),
        ({}, ["--port", "-1"], "OPENAI_PROXY_PORT"),
        ({"OPENAI_PROXY_PATH": "openai"}, [], "OPENAI_PROXY_PATH"),
        ({"OPENAI_REALTIME_URL": "https://api.openai.com/v1/realtime"}, [], "OPENAI_REALTIME_URL"),
        ({"OPENAI_PROXY_TURN_DETECTION": "sometimes"}, [], "OPENAI_PROXY_TURN_DETECTION"),
        ({"OPENAI_PROXY_GREETING": "sing"}, [], "OPENAI_PROXY_GREETING"),
        ({"OPENAI_PROXY_UPSTREAM_CONNECT_TIMEOUT_S": "soon"}, [], "OPENAI_PROXY_UPSTREAM_CONNECT_TIMEOUT_S"),
        ({"OPENAI_PROXY_SHUTDOWN_GRACE_S": "-1"}, [], "OPENAI_PROXY_SHUTDOWN_GRACE_S"),
        ({"OPENAI_PROXY_MAX_FRAME_BYTES": "0"}, [], "OPENAI_PROXY_MAX_FRAME_BYTES"),
        ({"LOG_LEVEL": "loud"}, [], "LOG_LEVEL"),
        ({"OPENAI_API_KEY": ""}, [], "OPENAI_API_KEY"),
        ({"OPENAI_API_KEY": "sk with space"}, [], "OPENAI_API_KEY"),
    ],
)
def test_bad_values_raise_one_error_naming_the_variable(empty_dir, environ, argv, named):
    with pytest.raises(ConfigError) as raised:
        load(argv, environ, cwd=empty_dir)
    message = str(raised.value)
    assert named in message and "\n" not in message


# ------------------------------------------------- `python -m proxy` exit 2


def run_proxy(args: list[str], environ: dict[str, str], cwd) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "LOG_LEVEL"))}
    env.update(environ)
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=20
    )


def assert_config_exit(result: subprocess.CompletedProcess, named: str) -> None:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert "listening on" not in result.stderr  # it never bound
    assert result.stdout == ""


def test_missing_api_key_exits_2_with_one_line_before_binding(empty_dir):
    assert_config_exit(run_proxy(["--port", "0"], {}, empty_dir), "OPENAI_API_KEY")


def test_bad_port_exits_2(empty_dir):
    assert_config_exit(run_proxy([], {**KEY, "OPENAI_PROXY_PORT": "http"}, empty_dir), "OPENAI_PROXY_PORT")
    assert_config_exit(run_proxy(["--port", "99999"], KEY, empty_dir), "OPENAI_PROXY_PORT")
