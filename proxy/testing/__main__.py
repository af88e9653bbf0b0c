"""`python -m proxy.testing --port 9100`: the fake OpenAI Realtime upstream on its own.

For manual tests of an application through a real proxy with no OpenAI
account: run this, then the proxy with the printed `OPENAI_REALTIME_URL`
(and the same key as `--api-key`, if given). Every user turn, typed or
spoken, gets the offline agent's short spoken reply (proxy/testing/offline.py).
"""

from __future__ import annotations

import argparse
import sys

import trio

from .fake_upstream import FakeRealtime
from .offline import offline_reply


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m proxy.testing",
        description="A fake OpenAI Realtime upstream on loopback that answers every turn (no key, no network).",
    )
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--api-key", default=None, help="accept only this key (Authorization: Bearer); default: accept any"
    )
    parser.add_argument(
        "--no-vad", action="store_true", help="no server VAD: spoken audio is collected but never answered"
    )
    return parser


async def serve(args: argparse.Namespace) -> None:
    fake = FakeRealtime(
        api_key=args.api_key,
        responder=offline_reply,
        server_vad=not args.no_vad,
        host=args.host,
        port=args.port,
        history=False,  # runs for hours: keep no events or audio
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        # stdout carries the one line a script needs; the rest goes to stderr.
        print(f"OPENAI_REALTIME_URL={fake.url}", flush=True)
        print("fake OpenAI Realtime upstream (offline agent) ready; Ctrl-C stops it", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"python -m proxy.testing: --port must be 0-65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        trio.run(serve, args)
    except KeyboardInterrupt:
        return 0
    except (OSError, BaseExceptionGroup) as error:
        cause = _os_error_in(error)
        if cause is None:
            raise
        print(f"python -m proxy.testing: cannot listen on {args.host}:{args.port}: {cause.strerror or cause}",
              file=sys.stderr)
        return 1
    return 0


def _os_error_in(error: BaseException) -> OSError | None:
    """The OSError that `error` is or holds (Trio wraps a failed bind in groups)."""
    if isinstance(error, OSError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if (found := _os_error_in(inner)) is not None:
                return found
    return None


if __name__ == "__main__":
    sys.exit(main())
