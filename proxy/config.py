"""One frozen configuration object, built from flags, environment and `.env`.

Precedence (P8): a flag beats the environment, the environment beats `.env`.
Every variable of PROTOCOL.md P8 is here under its exact name; each
`OPENAI_PROXY_*` addition is also a flag named after the variable without its
prefix, in kebab case (`OPENAI_PROXY_MAX_HELD_FRAMES` -> `--max-held-frames`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
from dotenv import dotenv_values

DEFAULT_UPSTREAM_URL = "wss://api.openai.com/v1/realtime?model=gpt-realtime"

GREETING_MODES = ("text", "speak")
TURN_DETECTION_MODES = ("server_vad", "semantic_vad", "none")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "text")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names it."""


@attrs.frozen
class Config:
    api_key: str = attrs.field(repr=False)
    host: str = "127.0.0.1"
    port: int = 8080
    path: str = "/openai"
    upstream_url: str = DEFAULT_UPSTREAM_URL
    log_level: str = "info"
    log_format: str = "json"
    max_held_frames: int = 256
    max_held_bytes: int = 4 * 1024 * 1024
    max_frame_bytes: int = 1024 * 1024
    upstream_connect_timeout_s: float = 10.0
    shutdown_grace_s: float = 10.0
    auth_tokens: tuple[str, ...] = attrs.field(default=(), repr=False)
    allowed_origins: tuple[str, ...] = ()
    max_connections: int = 0
    greeting: str = "text"
    turn_detection: str = "server_vad"
    transcription_model: str = "gpt-4o-mini-transcribe"
    function_call_deadline_s: float = 20.0
    update_timeout_s: float = 10.0
    tls_cert_path: str | None = None
    tls_key_path: str | None = None
    admin_port: int | None = None
    admin_host: str = "127.0.0.1"
    workers: int = 1
    # Dead peers and strangers: a client silent for the interval is pinged and
    # closed (1011) if its pong does not come within the timeout; one that
    # sends no message at all for the idle timeout is closed (1000). 0 = off.
    # 20 s / 20 s is what Python websockets clients use themselves.
    client_ping_interval_s: float = 20.0
    client_ping_timeout_s: float = 20.0
    client_idle_timeout_s: float = 600.0
    # Connections in their opening handshake (TLS included) at once; more are closed.
    max_handshakes: int = 256

    @property
    def listen_url(self) -> str:
        scheme = "wss" if self.tls_cert_path else "ws"
        return f"{scheme}://{self.host}:{self.port}{self.path}"


# --- parsing helpers: each returns the value or raises ConfigError naming the source


def _int(name: str, minimum: int = 0) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    return parse


def _port(name: str) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = _int(name)(raw)
        if value > 65535:
            raise ConfigError(f"{name} must be a TCP port (0-65535), got {value}")
        return value

    return parse


def _seconds(name: str) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
        if not value >= 0 or value == float("inf"):
            raise ConfigError(f"{name} must be a finite number of seconds >= 0, got {raw!r}")
        return value

    return parse


def _choice(name: str, choices: Sequence[str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {raw!r}")
        return value

    return parse


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _path(name: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not raw.startswith("/"):
            raise ConfigError(f"{name} must start with '/', got {raw!r}")
        return raw

    return parse


def _upstream_url(name: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ConfigError(f"{name} must be a ws:// or wss:// URL, got {raw!r}")
        return raw

    return parse


def _text(raw: str) -> str:
    return raw


def _workers(name: str) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = _int(name)(raw)
        # P8 (issue 6): 0 means one worker per core.
        return value or (os.cpu_count() or 1)

    return parse


@attrs.frozen
class _Setting:
    field: str
    variable: str
    flag: str
    parse: Callable[[str], Any]
    help: str


def _setting(field: str, variable: str, parse_factory: Any, help: str, flag: str | None = None) -> _Setting:
    if flag is None:
        flag = "--" + variable.removeprefix("OPENAI_PROXY_").lower().replace("_", "-")
    parse = parse_factory(variable) if parse_factory not in (_csv, _text) else parse_factory
    return _Setting(field, variable, flag, parse, help)


SETTINGS: tuple[_Setting, ...] = (
    _setting("host", "OPENAI_PROXY_HOST", _text, "listen address"),
    _setting("port", "OPENAI_PROXY_PORT", _port, "listen port"),
    _setting("path", "OPENAI_PROXY_PATH", _path, "WebSocket path"),
    _setting("upstream_url", "OPENAI_REALTIME_URL", _upstream_url, "OpenAI Realtime URL", flag="--upstream-url"),
    _setting("max_held_frames", "OPENAI_PROXY_MAX_HELD_FRAMES", _int, "P2.2 hold bound, frames"),
    _setting("max_held_bytes", "OPENAI_PROXY_MAX_HELD_BYTES", _int, "P2.2 hold bound, bytes"),
    _setting("max_frame_bytes", "OPENAI_PROXY_MAX_FRAME_BYTES", lambda n: _int(n, 1), "P5.11 largest client frame"),
    _setting(
        "upstream_connect_timeout_s", "OPENAI_PROXY_UPSTREAM_CONNECT_TIMEOUT_S", _seconds, "P2.3 connect deadline"
    ),
    _setting("shutdown_grace_s", "OPENAI_PROXY_SHUTDOWN_GRACE_S", _seconds, "P2.6 grace for open sessions"),
    _setting("auth_tokens", "OPENAI_PROXY_AUTH_TOKENS", _csv, "P2.7 client tokens, comma-separated"),
    _setting("allowed_origins", "OPENAI_PROXY_ALLOWED_ORIGINS", _csv, "P2.7 Origin allowlist, comma-separated"),
    _setting("max_connections", "OPENAI_PROXY_MAX_CONNECTIONS", _int, "0 = unlimited; over it HTTP 503"),
    _setting("greeting", "OPENAI_PROXY_GREETING", lambda n: _choice(n, GREETING_MODES), "P3.5 text|speak"),
    _setting(
        "turn_detection",
        "OPENAI_PROXY_TURN_DETECTION",
        lambda n: _choice(n, TURN_DETECTION_MODES),
        "P4 server_vad|semantic_vad|none",
    ),
    _setting("transcription_model", "OPENAI_PROXY_TRANSCRIPTION_MODEL", _text, "P4 input transcription model"),
    _setting("function_call_deadline_s", "OPENAI_PROXY_FUNCTION_CALL_DEADLINE_S", _seconds, "P5.2 deadline"),
    _setting("update_timeout_s", "OPENAI_PROXY_UPDATE_TIMEOUT_S", _seconds, "P5.7 deadline"),
    _setting("tls_cert_path", "OPENAI_PROXY_TLS_CERT_PATH", _text, "TLS certificate (PEM) to serve wss://"),
    _setting("tls_key_path", "OPENAI_PROXY_TLS_KEY_PATH", _text, "TLS private key (PEM)"),
    _setting("admin_port", "OPENAI_PROXY_ADMIN_PORT", _port, "health and metrics port (unset = off)"),
    _setting("admin_host", "OPENAI_PROXY_ADMIN_HOST", _text, "health and metrics address"),
    _setting("workers", "OPENAI_PROXY_WORKERS", _workers, "processes sharing the port (0 = one per core)"),
    _setting("log_format", "OPENAI_PROXY_LOG_FORMAT", lambda n: _choice(n, LOG_FORMATS), "json|text"),
    _setting(
        "client_ping_interval_s", "OPENAI_PROXY_CLIENT_PING_INTERVAL_S", _seconds, "ping a client silent this long (0 = off)"
    ),
    _setting("client_ping_timeout_s", "OPENAI_PROXY_CLIENT_PING_TIMEOUT_S", _seconds, "close if no pong within this"),
    _setting(
        "client_idle_timeout_s", "OPENAI_PROXY_CLIENT_IDLE_TIMEOUT_S", _seconds, "close a client sending nothing (0 = off)"
    ),
    _setting("max_handshakes", "OPENAI_PROXY_MAX_HANDSHAKES", lambda n: _int(n, 1), "opening handshakes at once"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m proxy",
        description="Deepgram Voice Agent protocol in front of the OpenAI Realtime API.",
    )
    parser.add_argument("--env-file", default=None, help="read variables from this file (default: ./.env if present)")
    parser.add_argument("--log-level", default=None, help="debug|info|warning|error (LOG_LEVEL)")
    for setting in SETTINGS:
        parser.add_argument(setting.flag, dest=setting.field, default=None, help=f"{setting.help} ({setting.variable})")
    return parser


def load_config(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Config:
    """Build the Config; raises ConfigError with one line naming what is wrong."""
    args = build_parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    env_file = args.env_file
    if env_file is None:
        candidate = os.path.join(cwd or os.getcwd(), ".env")
        env_file = candidate if os.path.isfile(candidate) else None
    elif not os.path.isfile(env_file):
        raise ConfigError(f"--env-file {env_file!r} does not exist")
    file_values = {k: v for k, v in (dotenv_values(env_file) if env_file else {}).items() if v is not None}
    merged: dict[str, str] = {**file_values, **environ}

    values: dict[str, Any] = {}
    for setting in SETTINGS:
        flag_value = getattr(args, setting.field)
        if flag_value is not None:
            values[setting.field] = setting.parse(flag_value) if setting.parse is not _text else flag_value
            continue
        raw = merged.get(setting.variable)
        if raw is not None and raw != "":
            values[setting.field] = setting.parse(raw)

    log_level = args.log_level or merged.get("LOG_LEVEL") or "info"
    if merged.get("OPENAI_PROXY_DEBUG", "").strip() in ("1", "true", "yes") and not args.log_level:
        log_level = "debug"  # P8: OPENAI_PROXY_DEBUG=1 is an alias for LOG_LEVEL=debug
    values["log_level"] = _choice("LOG_LEVEL", LOG_LEVELS)(log_level)

    api_key = merged.get("OPENAI_API_KEY", "").strip()
    if not api_key:
        raise ConfigError("OPENAI_API_KEY is not set (environment or .env); the proxy cannot reach OpenAI without it")
    if any(ch.isspace() for ch in api_key):
        raise ConfigError("OPENAI_API_KEY contains white space; check the value")

    if bool(values.get("tls_cert_path")) != bool(values.get("tls_key_path")):
        raise ConfigError("OPENAI_PROXY_TLS_CERT_PATH and OPENAI_PROXY_TLS_KEY_PATH must be set together")
    for field in ("tls_cert_path", "tls_key_path"):
        path = values.get(field)
        if path and not os.path.isfile(path):
            raise ConfigError(f"{field.upper()} file {path!r} does not exist")
    return Config(api_key=api_key, **values)
