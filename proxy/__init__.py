"""A Deepgram Voice Agent protocol proxy in front of the OpenAI Realtime API."""

from .config import Config, ConfigError, load_config
from .server import ProxyServer

__all__ = ["Config", "ConfigError", "ProxyServer", "load_config"]
