"""`python -m proxy`: parse the configuration, configure logging, serve."""

from __future__ import annotations

import logging
import sys

from .config import ConfigError, load_config, startup_warnings


def main(argv: list[str] | None = None) -> int:
    try:
        config = load_config(argv)
    except ConfigError as error:
        print(f"proxy: configuration error: {error}", file=sys.stderr)
        return 2

    from . import logs
    from .app import run

    # P1.5, P2.7: the key and the client tokens are masked in every log line.
    logs.configure(config.log_level, config.log_format, secrets=(config.api_key, *config.auth_tokens))
    for warning in startup_warnings(config):
        logging.getLogger("proxy").warning(warning)
    if config.demo:  # the offline demo: one process, an embedded upstream (proxy/demo.py)
        from .demo import run_demo

        return run_demo(config)
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
