"""A Deepgram Voice Agent protocol proxy in front of the OpenAI Realtime API.

The public names are re-exported lazily: `import proxy.translate` or
`import proxy.protocol` must not pull in Trio, sockets and the server just
because Python runs this file first (a pure package stays pure).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config, ConfigError, load_config
    from .server import ProxyServer

# Public name -> the submodule that defines it.
_EXPORTS = {
    "Config": "config",
    "ConfigError": "config",
    "load_config": "config",
    "ProxyServer": "server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
