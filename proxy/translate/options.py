"""What a session is configured with: the P8 settings it uses, and fixed bounds."""

from __future__ import annotations

from typing import Any

import attrs

from .endpoint_policy import FunctionHosts


@attrs.frozen
class SessionOptions:
    # From the configuration (P8 names).
    max_held_frames: int = 256
    max_held_bytes: int = 4 * 1024 * 1024
    greeting: str = "text"  # P3.5: text | speak
    turn_detection: str = "server_vad"
    transcription_model: str = "gpt-4o-mini-transcribe"
    function_call_deadline_s: float = 20.0
    update_timeout_s: float = 10.0
    transcript_wait_s: float = 2.0
    # Session renewal (README "Session renewal").
    renewal: bool = True
    renew_after_s: float = 3300.0
    max_renewals: int = 3
    renewal_window_s: float = 600.0
    renewal_history_items: int = 200
    upstream_connect_timeout_s: float = 10.0
    # Server-side functions: the operator's host allowlist (empty: none).
    function_hosts: FunctionHosts = attrs.field(
        default=FunctionHosts(), converter=lambda v: v if isinstance(v, FunctionHosts) else FunctionHosts.parse(v)
    )
    custom_event_types: tuple[str, ...] = ()  # __customToThinkProvider; empty = every GA type
    forward_untranslated: bool = False  # __customFromThinkProvider
    # Secrets that must never reach a client (P1.5): the API key and the tokens.
    secrets: tuple[str, ...] = ()
    # Fixed bounds (README, protocol notes).
    item_ack_timeout_s: float = 2.0
    response_timeout_s: float = 10.0
    max_queued_responses: int = 32
    max_queued_updates: int = 32
    max_pending_messages: int = 64
    # Live captions (OPENAI_PROXY_CAPTIONS): listen Results for the user's words.
    captions: bool = True

    @classmethod
    def from_config(cls, config: Any) -> SessionOptions:
        """The configured values (fields the configuration has); the fixed bounds keep their defaults."""
        names = [f.name for f in attrs.fields(cls) if hasattr(config, f.name)]
        secrets = (config.api_key, *config.auth_tokens)
        return cls(**{name: getattr(config, name) for name in names if name != "secrets"}, secrets=tuple(secrets))
