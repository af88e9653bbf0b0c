"""`python -m proxy --demo` (`make demo`): the proxy with an offline upstream inside.

The upstream is the package's fake (proxy/testing/) on a loopback port of
its own, with its server VAD on and the offline agent answering every turn
(proxy/testing/offline.py). No key is needed and nothing leaves the machine;
the log and the playground page both say that this is the offline demo.
"""

from __future__ import annotations

import logging

import attrs
import trio

from .app import serve
from .config import Config
from .notify import Notifier
from .testing.fake_upstream import FakeRealtime
from .testing.offline import offline_reply

log = logging.getLogger("proxy")

DEMO_NOTICE = (
    "offline demo: answers come from the built-in fake upstream (an echo and generated tones), "
    "not from OpenAI; no key is used and nothing leaves this machine"
)


async def serve_demo(config: Config, notifier: Notifier | None = None) -> int:
    """Serve the proxy in front of an embedded fake upstream until SIGTERM/SIGINT; the exit status."""
    fake = FakeRealtime(api_key=config.api_key, responder=offline_reply, server_vad=True, history=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        log.warning(DEMO_NOTICE, extra={"reason": "demo"})
        status = await serve(attrs.evolve(config, upstream_url=fake.url), notifier)
        nursery.cancel_scope.cancel()  # the fake ends with the proxy
    return status


def run_demo(config: Config) -> int:
    return trio.run(serve_demo, config)
