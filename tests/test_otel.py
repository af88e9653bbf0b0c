"""Optional OTLP export of the log records: a fake collector on loopback receives them."""

from __future__ import annotations

import signal

import pytest
import trio

from proxy.testing import open_agent_client

from .conftest import TEST_KEY
from .daemon import running_proxy

logs_service = pytest.importorskip(
    "opentelemetry.proto.collector.logs.v1.logs_service_pb2", reason="the otel extra is not installed"
)
pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="the otel extra is not installed")

TOKEN = "otel-client-token-" + "x" * 12


class FakeCollector:
    """Accepts OTLP/HTTP protobuf POSTs to /v1/logs; keeps every request body."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.port = 0
        self.received = trio.Event()

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        buffer = b""
        async with stream:
            while True:  # keep-alive: several requests per connection
                while b"\r\n\r\n" not in buffer:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                headers = dict(
                    line.split(":", 1) for line in head.decode("latin-1").lower().split("\r\n")[1:] if ":" in line
                )
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    buffer += await stream.receive_some(65536)
                body, buffer = buffer[:length], buffer[length:]
                if head.startswith(b"POST /v1/logs"):
                    self.bodies.append(body)
                    self.received.set()
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")

    def records(self) -> list[tuple[str, dict]]:
        out = []
        for body in self.bodies:
            request = logs_service.ExportLogsServiceRequest.FromString(body)
            for resource_logs in request.resource_logs:
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        attributes = {}
                        for kv in record.attributes:
                            field = kv.value.WhichOneof("value")
                            attributes[kv.key] = getattr(kv.value, field) if field else None
                        out.append((record.body.string_value, attributes))
        return out


async def test_records_are_exported_over_otlp(fake, nursery):
    collector = await nursery.start(FakeCollector().serve)
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": "proxy-under-test",
        "OPENAI_PROXY_AUTH_TOKENS": TOKEN,
    }
    with trio.fail_after(20):
        async with running_proxy(fake.url, env=env) as daemon:
            async with open_agent_client(f"{daemon.url}?traceId=otel-trace-1", subprotocols=["token", TOKEN]) as client:
                await client.settings()
                await client.next("SettingsApplied")
                await client.send_text("{broken")
                await client.next("Error")
            await daemon.wait_for_line("connection ended")
            await collector.received.wait()
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait() == 0  # exit flushes the batch
    raw = b"".join(collector.bodies)
    assert TEST_KEY.encode() not in raw and TOKEN.encode() not in raw
    assert b"proxy-under-test" in raw  # OTEL_SERVICE_NAME became the resource's service.name
    records = collector.records()
    bodies = [body for body, _ in records]
    assert "client connected" in bodies and "stopped" in bodies
    connected = next(attributes for body, attributes in records if body == "client connected")
    assert connected["trace_id"] == "otel-trace-1" and connected["connection_id"]
    assert connected["direction"] == "client"
    assert any(attributes.get("error.code") == "INVALID_MESSAGE" for _, attributes in records)
