"""One frozen configuration object, built from flags, environment and `.env`.

Precedence (P8): a flag beats the environment, the environment beats `.env`.
Every variable of PROTOCOL.md P8 is here under its exact name; each
`OPENAI_PROXY_*` addition is also a flag named after the variable without its
prefix, in kebab case (`OPENAI_PROXY_MAX_HELD_FRAMES` -> `--max-held-frames`).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import ssl
from importlib import metadata
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

# A client token shorter than this is refused at start: it is guessable,
# and a short secret cannot be masked in logs without masking ordinary text
# (logfields.Redactor masks short secrets only as whole words).
MIN_TOKEN_LENGTH = 16


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
    transcript_wait_s: float = 2.0
    tls_cert_path: str | None = None
    tls_key_path: str | None = None
    upstream_ca_file: str | None = None
    admin_port: int | None = None
    admin_host: str = "127.0.0.1"
    workers: int = 1
    # Issue 13: the offline demo (an embedded fake upstream, no key, no
    # network) and the browser playground at `/`.
    demo: bool = False
    playground: bool = False
    allow_insecure_upstream: bool = False
    # Peers whose X-Forwarded-For is believed (a reverse proxy on the same host or network).
    trusted_proxies: tuple[str, ...] = ()
    # Session renewal (README "Session renewal").
    renewal: bool = True
    renew_after_s: float = 3300.0
    max_renewals: int = 3
    renewal_window_s: float = 600.0
    renewal_history_items: int = 200
    captions: bool = True  # live captions: listen Results beside ConversationText (P6 extra)
    # Server-side functions (README "Deepgram V1 coverage"): hosts the proxy
    # may call for a function with an `endpoint`; empty = none at all.
    function_hosts: tuple[str, ...] = ()
    function_timeout_s: float = 10.0
    function_max_response_bytes: int = 64 * 1024
    # __customToThinkProvider: the client event types a client may send
    # upstream itself (empty = every GA client event type).
    custom_event_types: tuple[str, ...] = ()
    # __customFromThinkProvider: pass upstream events the proxy does not translate.
    forward_untranslated: bool = False
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


def _positive_seconds(name: str) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = _seconds(name)(raw)
        if value == 0:
            # A zero deadline fails every session before it could start.
            raise ConfigError(f"{name} must be more than 0 seconds, got {raw!r}")
        return value

    return parse


def _networks(name: str) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        out = []
        for part in _csv(raw):
            try:
                out.append(str(ipaddress.ip_network(part, strict=False)))
            except ValueError:
                raise ConfigError(f"{name} must be comma-separated IP addresses or CIDRs, got {part!r}") from None
        return tuple(out)

    return parse


def _choice(name: str, choices: Sequence[str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {raw!r}")
        return value

    return parse


def _function_hosts(name: str) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        from .translate.endpoint_policy import FunctionHosts

        entries = _csv(raw)
        try:
            FunctionHosts.parse(entries)
        except ValueError as error:
            raise ConfigError(f"{name}: {error}") from None
        return entries

    return parse


def _client_event_types(name: str) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        from .protocol.openai import CLIENT_EVENT_TYPES

        entries = _csv(raw)
        unknown = [entry for entry in entries if entry not in CLIENT_EVENT_TYPES]
        if unknown:
            raise ConfigError(f"{name}: not OpenAI Realtime client event types: {', '.join(unknown)}")
        return entries

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


def _switch(name: str) -> Callable[[str], bool]:
    def parse(raw: str) -> bool:
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be 1/true/yes/on or 0/false/no/off, got {raw!r}")

    return parse


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
    switch: bool = False  # a bare flag (`--demo`) means 1


def _setting(field: str, variable: str, parse_factory: Any, help: str, flag: str | None = None) -> _Setting:
    if flag is None:
        flag = "--" + variable.removeprefix("OPENAI_PROXY_").lower().replace("_", "-")
    parse = parse_factory(variable) if parse_factory not in (_csv, _text) else parse_factory
    return _Setting(field, variable, flag, parse, help, switch=parse_factory is _switch)


SETTINGS: tuple[_Setting, ...] = (
    _setting("host", "OPENAI_PROXY_HOST", _text, "listen address"),
    _setting("port", "OPENAI_PROXY_PORT", _port, "listen port"),
    _setting("path", "OPENAI_PROXY_PATH", _path, "WebSocket path"),
    _setting("upstream_url", "OPENAI_REALTIME_URL", _upstream_url, "OpenAI Realtime URL", flag="--upstream-url"),
    _setting("max_held_frames", "OPENAI_PROXY_MAX_HELD_FRAMES", _int, "P2.2 hold bound, frames"),
    _setting("max_held_bytes", "OPENAI_PROXY_MAX_HELD_BYTES", _int, "P2.2 hold bound, bytes"),
    _setting("max_frame_bytes", "OPENAI_PROXY_MAX_FRAME_BYTES", lambda n: _int(n, 1), "P5.11 largest client frame"),
    _setting(
        "upstream_connect_timeout_s",
        "OPENAI_PROXY_UPSTREAM_CONNECT_TIMEOUT_S",
        _positive_seconds,
        "P2.3 connect deadline (more than 0)",
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
    _setting(
        "transcript_wait_s",
        "OPENAI_PROXY_TRANSCRIPT_WAIT_S",
        _seconds,
        "longest an assistant ConversationText waits for its turn's user transcript",
    ),
    _setting("tls_cert_path", "OPENAI_PROXY_TLS_CERT_PATH", _text, "TLS certificate (PEM) to serve wss://"),
    _setting("tls_key_path", "OPENAI_PROXY_TLS_KEY_PATH", _text, "TLS private key (PEM)"),
    _setting(
        "upstream_ca_file",
        "OPENAI_PROXY_UPSTREAM_CA_FILE",
        _text,
        "CA certificates (PEM) to trust for the wss:// upstream instead of the system's (SSL_CERT_FILE)",
    ),
    _setting("admin_port", "OPENAI_PROXY_ADMIN_PORT", _port, "health and metrics port (unset = off)"),
    _setting("admin_host", "OPENAI_PROXY_ADMIN_HOST", _text, "health and metrics address"),
    _setting("workers", "OPENAI_PROXY_WORKERS", _workers, "processes sharing the port (0 = one per core)"),
    _setting("log_format", "OPENAI_PROXY_LOG_FORMAT", lambda n: _choice(n, LOG_FORMATS), "json|text"),
    _setting("demo", "OPENAI_PROXY_DEMO", _switch, "offline demo: a built-in fake upstream, no key, no network"),
    _setting("playground", "OPENAI_PROXY_PLAYGROUND", _switch, "serve the browser playground at / (on in the demo)"),
    _setting(
        "allow_insecure_upstream",
        "OPENAI_PROXY_ALLOW_INSECURE_UPSTREAM",
        _switch,
        "allow a ws:// OPENAI_REALTIME_URL to a host other than loopback (the key travels in clear)",
    ),
    _setting(
        "trusted_proxies", "OPENAI_PROXY_TRUSTED_PROXIES", _networks, "peers whose X-Forwarded-For is logged (IPs/CIDRs)"
    ),
    _setting("renewal", "OPENAI_PROXY_RENEWAL", _switch, "renew an upstream session that ends mid-call (on|off)"),
    _setting("renew_after_s", "OPENAI_PROXY_RENEW_AFTER_S", _seconds, "renew at this session age, when idle (0 = never)"),
    _setting("max_renewals", "OPENAI_PROXY_MAX_RENEWALS", _int, "renewals allowed per window; past it the call ends"),
    _setting("renewal_window_s", "OPENAI_PROXY_RENEWAL_WINDOW_S", _seconds, "the window for OPENAI_PROXY_MAX_RENEWALS"),
    _setting(
        "renewal_history_items",
        "OPENAI_PROXY_RENEWAL_HISTORY_ITEMS",
        _int,
        "conversation entries kept for replay at a renewal (oldest dropped first)",
    ),
    _setting("captions", "OPENAI_PROXY_CAPTIONS", _switch, "1|0: live captions as listen Results (default 1)"),
    _setting(
        "function_hosts",
        "OPENAI_PROXY_FUNCTION_HOSTS",
        _function_hosts,
        "hosts, addresses or networks server-side functions may call, comma-separated (empty = none)",
    ),
    _setting("function_timeout_s", "OPENAI_PROXY_FUNCTION_TIMEOUT_S", _seconds, "deadline of one server-side function call"),
    _setting(
        "function_max_response_bytes",
        "OPENAI_PROXY_FUNCTION_MAX_RESPONSE_BYTES",
        lambda n: _int(n, 1),
        "largest server-side function response body",
    ),
    _setting(
        "custom_event_types",
        "OPENAI_PROXY_CUSTOM_EVENT_TYPES",
        _client_event_types,
        "__customToThinkProvider: allowed client event types, comma-separated (empty = all)",
    ),
    _setting(
        "forward_untranslated",
        "OPENAI_PROXY_FORWARD_UNTRANSLATED",
        _switch,
        "__customFromThinkProvider: pass untranslated upstream events to clients (0/1)",
    ),
    _setting(
        "client_ping_interval_s", "OPENAI_PROXY_CLIENT_PING_INTERVAL_S", _seconds, "ping a client silent this long (0 = off)"
    ),
    _setting("client_ping_timeout_s", "OPENAI_PROXY_CLIENT_PING_TIMEOUT_S", _seconds, "close if no pong within this"),
    _setting(
        "client_idle_timeout_s", "OPENAI_PROXY_CLIENT_IDLE_TIMEOUT_S", _seconds, "close a client sending nothing (0 = off)"
    ),
    _setting("max_handshakes", "OPENAI_PROXY_MAX_HANDSHAKES", lambda n: _int(n, 1), "opening handshakes at once"),
)


def version() -> str:
    try:
        return metadata.version("openai-realtime-proxy")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openai-realtime-proxy",
        description="Deepgram Voice Agent protocol in front of the OpenAI Realtime API.",
        epilog="Rule numbers (P2.2, P5.7, ...) refer to docs/protocol.md in the source repository.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--env-file", default=None, help="read variables from this file (default: ./.env if present)")
    parser.add_argument("--log-level", default=None, help="debug|info|warning|error (LOG_LEVEL)")
    for setting in SETTINGS:
        extra: dict[str, Any] = {"nargs": "?", "const": "1"} if setting.switch else {}
        parser.add_argument(
            setting.flag, dest=setting.field, default=None, help=f"{setting.help} ({setting.variable})", **extra
        )
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
    # An empty value is no value, wherever it comes from: `OPENAI_PROXY_PORT=`
    # in the environment falls back to `.env`, then to the default.
    file_values = {k: v for k, v in (dotenv_values(env_file) if env_file else {}).items() if v}
    merged: dict[str, str] = {**file_values, **{k: v for k, v in environ.items() if v}}

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
    if values.get("demo"):
        # The demo never reaches OpenAI: a real key is not needed, and not
        # used even when set; this throwaway one only opens the embedded fake.
        api_key = "sk-offline-demo-" + secrets.token_hex(16)
        values.setdefault("playground", True)
        if values.get("workers", 1) > 1:
            raise ConfigError("OPENAI_PROXY_DEMO runs one process; unset OPENAI_PROXY_WORKERS (or set it to 1)")
    if not api_key:
        raise ConfigError("OPENAI_API_KEY is not set (environment or .env); the proxy cannot reach OpenAI without it")
    if any(ch.isspace() for ch in api_key):
        raise ConfigError("OPENAI_API_KEY contains white space; check the value")

    if bool(values.get("tls_cert_path")) != bool(values.get("tls_key_path")):
        raise ConfigError("OPENAI_PROXY_TLS_CERT_PATH and OPENAI_PROXY_TLS_KEY_PATH must be set together")
    if values.get("tls_cert_path"):
        _check_tls_files(values["tls_cert_path"], values["tls_key_path"])
    ca_file = values.get("upstream_ca_file")
    if ca_file:
        if not os.path.isfile(ca_file):
            raise ConfigError(f"OPENAI_PROXY_UPSTREAM_CA_FILE file {ca_file!r} does not exist")
        try:  # a bad file fails here, once, not at every upstream connect
            ssl.create_default_context(cafile=ca_file)
        except (ssl.SSLError, ValueError) as error:
            raise ConfigError(f"OPENAI_PROXY_UPSTREAM_CA_FILE file {ca_file!r} holds no usable CA certificate: {error}") from None
    config = Config(api_key=api_key, **values)
    _check_exposure(config)
    return config


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1); a name is not resolved."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _insecure_upstream_host(config: Config) -> str | None:
    """The host of a ws:// upstream URL that is not loopback, else None."""
    parts = urlsplit(config.upstream_url)
    if parts.scheme == "ws" and parts.hostname and not is_loopback(parts.hostname):
        return parts.hostname
    return None


def _check_exposure(config: Config) -> None:
    """Refuse settings that would expose a secret (P1.5, P2.7)."""
    short = [token for token in config.auth_tokens if len(token) < MIN_TOKEN_LENGTH]
    if short:
        lengths = ", ".join(str(len(token)) for token in short)
        raise ConfigError(
            f"OPENAI_PROXY_AUTH_TOKENS: each token must be at least {MIN_TOKEN_LENGTH} characters "
            f"(a shorter one is easy to guess); got tokens of length {lengths}"
        )
    host = _insecure_upstream_host(config)
    if host is not None and not config.allow_insecure_upstream:
        raise ConfigError(
            f"OPENAI_REALTIME_URL is ws:// to {host}, not loopback: the API key would travel in clear; "
            "use wss://, or set OPENAI_PROXY_ALLOW_INSECURE_UPSTREAM=1 if the network is trusted"
        )


def startup_warnings(config: Config) -> list[str]:
    """What is allowed but risky about `config`, one sentence each, for the log at start."""
    warnings = []
    if not config.auth_tokens and not is_loopback(config.host):
        warnings.append(
            f"listening on {config.host or 'every address'} without client tokens (OPENAI_PROXY_AUTH_TOKENS): "
            "anyone who can reach it can use the OpenAI key"
        )
    host = _insecure_upstream_host(config)
    if host is not None:
        warnings.append(
            f"OPENAI_REALTIME_URL is ws:// to {host}: the API key travels in clear "
            "(allowed by OPENAI_PROXY_ALLOW_INSECURE_UPSTREAM)"
        )
    return warnings


def _check_tls_files(cert_path: str, key_path: str) -> None:
    """Load the pair once now, so a bad file is a ConfigError naming it, not an OpenSSL trace later."""
    for variable, path, marker in (
        ("OPENAI_PROXY_TLS_CERT_PATH", cert_path, "CERTIFICATE-----"),
        ("OPENAI_PROXY_TLS_KEY_PATH", key_path, "PRIVATE KEY-----"),
    ):
        try:
            with open(path, "rb") as file:
                text = file.read()
        except FileNotFoundError:
            raise ConfigError(f"{variable} file {path!r} does not exist") from None
        except OSError as error:
            raise ConfigError(f"{variable} file {path!r} cannot be read: {error.strerror or error}") from None
        if marker.encode() not in text:
            raise ConfigError(f"{variable} file {path!r} holds no PEM {marker.rstrip('-').lower()}")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_path, key_path)
    except (ssl.SSLError, OSError) as error:
        reason = getattr(error, "reason", None) or str(error)
        raise ConfigError(
            f"OPENAI_PROXY_TLS_CERT_PATH {cert_path!r} and OPENAI_PROXY_TLS_KEY_PATH {key_path!r}"
            f" are not a usable certificate and key ({reason})"
        ) from None
