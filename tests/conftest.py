"""Fixtures: the fake upstream and the proxy on loopback, with schema oracles on.

Every event the proxy sends upstream and every message it sends a client in
these fixtures is checked against the GA / Deepgram V1 schemas; a violation
fails the test at teardown, so no test can opt out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

from proxy.config import Config
from proxy.server import ProxyServer
from proxy.testing import AgentClient, FakeConnection, FakeRealtime, open_agent_client

from .oracles import validate_deepgram_server_message, validate_openai_client_event

TEST_KEY = "sk-test-" + "k" * 24


@pytest.fixture
async def fake(nursery: trio.Nursery) -> AsyncIterator[FakeRealtime]:
    upstream = FakeRealtime(api_key=TEST_KEY, validate=validate_openai_client_event)
    await nursery.start(upstream.serve)
    yield upstream
    errors = [error for connection in upstream.connections for error in connection.validation_errors]
    assert not errors, f"events sent upstream fail the GA schema: {errors}"


def make_config(fake: FakeRealtime, **overrides: Any) -> Config:
    # Any default here (upstream_url too) may be overridden by a test.
    return Config(**{"api_key": TEST_KEY, "port": 0, "upstream_url": fake.url, **overrides})


@attrs.define
class ProxyFixture:
    server: ProxyServer
    nursery: trio.Nursery
    clients: list[AgentClient] = attrs.Factory(list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}{self.server.config.path}"

    @asynccontextmanager
    async def connect(self, path: str | None = None, **kwargs: Any) -> AsyncIterator[AgentClient]:
        url = f"ws://127.0.0.1:{self.server.port}{path}" if path else self.url
        async with open_agent_client(url, validate=validate_deepgram_server_message, **kwargs) as client:
            self.clients.append(client)
            yield client

    @asynccontextmanager
    async def session(
        self, fake: FakeRealtime, settings: dict[str, Any] | None = None
    ) -> AsyncIterator[tuple[AgentClient, FakeConnection]]:
        """A client past SettingsApplied, and the upstream connection it got."""
        async with self.connect() as client:
            await client.settings(settings)
            await client.next("SettingsApplied")
            yield client, await fake.next_connection()


@pytest.fixture
def proxy_factory(fake: FakeRealtime, nursery: trio.Nursery) -> Callable[..., Any]:
    started: list[ProxyFixture] = []

    async def start(**overrides: Any) -> ProxyFixture:
        config = make_config(fake, **overrides)
        server = await nursery.start(ProxyServer(config).serve)
        fixture = ProxyFixture(server, nursery)
        started.append(fixture)
        return fixture

    yield start
    errors = [error for fixture in started for client in fixture.clients for error in client.validation_errors]
    assert not errors, f"messages sent to the client fail the Deepgram V1 schema: {errors}"


@pytest.fixture
async def proxy(proxy_factory: Callable[..., Any]) -> ProxyFixture:
    return await proxy_factory()
