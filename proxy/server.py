"""The Trio layer: sockets, tasks, channels and deadlines. No protocol logic.

Each client connection is one nursery of tasks joined by bounded memory
channels:

    client reader --\\                     /--> client writer
                     >-- translator --<
    upstream reader -/    (Session)       \\--> upstream writer

The translator is the single task that owns the `Session`; readers only feed
it, writers only drain what it produced, so data flows one way per direction.
When any task ends the nursery is cancelled, the upstream is closed with 1000
and the client with the code the session chose (P2.4, P2.5). No task outlives
its connection.
"""

from __future__ import annotations

import logging
import math
import ssl
import uuid
from functools import partial
from time import perf_counter_ns
from typing import Any

import attrs
import trio

from .clientaddr import client_address
from .config import Config
from .handshake import decide
from .counters import TRANSLATION_SAMPLE_EVERY, Metrics
from .tls import server_context, upstream_context
from .protocol.deepgram import Error as ErrorMessage
from .protocol.wire import encode_client, encode_upstream
from .endpoints import call_endpoint
from .translate import (
    CallEndpoint,
    CancelTimer,
    ClientAudio,
    ClientText,
    CloseClient,
    FunctionResult,
    GoingAway,
    Opened,
    RenewUpstream,
    Session,
    SessionOptions,
    StartTimer,
    TimerFired,
    ToClient,
    ToClientAudio,
    ToUpstream,
    UpstreamClosed,
    UpstreamFailed,
    UpstreamText,
)
from .translate.events import ClientClosed
from .listeners import open_shared_listeners
from .upstream import connect_failure, error_chain, open_upstream
from .ws.opening import ConnectionRejected, HandshakeError, UpgradeRequest, listener_port, serve
from .ws.socket import ConnectionClosed, WebSocket

log = logging.getLogger("proxy")

# Frames waiting between tasks. Small: memory channels are hand-offs, not
# buffers; the only buffering the protocol allows is the session's hold (P2.2).
CHANNEL_SIZE = 64
# P2.5: the upstream is closed within one second of the client leaving.
CLOSE_TIMEOUT_S = 1.0
# A peer that stops reading would otherwise hold its writer, and with it the
# whole connection (and a paid upstream session), forever: one frame may wait
# this long for a socket, then the connection ends. A client is closed with
# 1008 (CLIENT_STALLED), a stalled upstream is 1011 for the client
# (UPSTREAM_STALLED). Generous: a live peer drains 20 ms frames long before.
STALLED_PEER_TIMEOUT_S = 10.0
# When the client leaves, what the session still sends upstream (the input
# resampler's tail, P5.9) may take this long to go out before the connection
# is torn down; well inside P2.5's one second.
CLIENT_GONE_DRAIN_S = 0.25
# A client must finish its opening handshake (TLS included) within this; a
# stranger that connects and stalls, or speaks plain HTTP to a TLS port, holds
# a socket that long, not trio-websocket's default of 60 s.
HANDSHAKE_TIMEOUT_S = 10.0
# Server-side function calls running at once per connection; more wait their turn.
MAX_CONCURRENT_FUNCTION_CALLS = 4



# Queued for a writer when a direct write left part of a frame in the socket:
# "send that tail" (WebSocket.flush). Any other write sends it first anyway.
_FLUSH = object()


class ConnectionLog(logging.LoggerAdapter):
    """Attaches the connection id and trace id (P2.1, P2.8) to every record."""

    def process(self, msg: str, kwargs: Any) -> tuple[str, Any]:
        kwargs["extra"] = {**self.extra, **kwargs.get("extra", {})}
        return msg, kwargs


@attrs.define(eq=False)
class Connection:
    """One accepted client and, once connected, its upstream."""

    config: Config
    client: WebSocket
    connection_id: str
    log: ConnectionLog
    upstream: WebSocket | None = None
    # Issue 9: the process's one TLS context for a wss:// upstream.
    upstream_ssl: ssl.SSLContext | None = None
    # Plain integer counters, shared by the server's connections (read at scrape time).
    metrics: Metrics = attrs.Factory(Metrics)
    _inbound: Any = None  # send side of the translator's channel
    # Issue 6: frames go straight to a socket when nothing is queued for it;
    # these count what is queued (or being sent) by each writer, so a direct
    # write never overtakes a queued one.
    _client_frames: Any = None
    _upstream_frames: Any = None
    _client_queued: int = 0
    _upstream_queued: int = 0
    _upstream_idle: trio.Event | None = None  # set when the upstream queue empties, while someone waits
    _frame_debug: bool = False  # frame-level log records only at debug
    _timers: dict[str, trio.CancelScope] = attrs.Factory(dict)
    # Session renewal (README "Session renewal"): each upstream the connection
    # opens is one generation; events still in flight from an older one are
    # dropped by the translator, so the session only hears the current one.
    _generation: int = 0
    _reader_scope: trio.CancelScope | None = None
    _function_calls: trio.CapacityLimiter = attrs.Factory(lambda: trio.CapacityLimiter(MAX_CONCURRENT_FUNCTION_CALLS))
    _function_hosts: Any = None  # the allowlist the session checked Settings against
    # How the client is closed if the connection is torn down without the
    # session having chosen (cancellation, a crash): 1011, or 1001 once the
    # server is going away (P2.6).
    _teardown_close: tuple[int, str] = (1011, "proxy error")

    async def run(self) -> None:
        """Serve the connection until either side ends; returns when all is closed."""
        session = Session(self.connection_id, SessionOptions.from_config(self.config), self.log)
        self._function_hosts = session.options.function_hosts
        # What the readers and timers tell the translator: `proxy.translate.events`.
        inbound_send, inbound_recv = trio.open_memory_channel[Any](CHANNEL_SIZE)
        client_send, client_recv = trio.open_memory_channel[Any](CHANNEL_SIZE)
        upstream_send, upstream_recv = trio.open_memory_channel[str](CHANNEL_SIZE)
        self._inbound = inbound_send
        self._client_frames, self._upstream_frames = client_send, upstream_send
        try:
            async with trio.open_nursery() as nursery:
                tasks = (
                    (self._client_reader, inbound_send),
                    (self._translator, session, inbound_recv, client_send, upstream_send, nursery),
                    (self._client_writer, client_recv),
                    (self._upstream, nursery, inbound_send, upstream_recv),
                    (self._client_keepalive,),
                )
                for task, *args in tasks:
                    nursery.start_soon(self._until_done, nursery, task, *args)
            await self._close_upstream()  # P2.5: with 1000, within CLOSE_TIMEOUT_S
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
                await self._close_upstream()
                await self.client.aclose(*self._teardown_close)  # no-op if already closed

    def going_away(self) -> None:
        """P2.6: ask the translator to close the client with 1001.

        If the translator's channel is full the request cannot be queued; the
        server then cancels the connection, and the teardown closes the
        client with 1001 all the same, never with 1011.
        """
        self._teardown_close = (1001, "server shutting down")
        try:
            self._inbound.send_nowait(GoingAway())
        except (trio.WouldBlock, trio.ClosedResourceError, AttributeError):
            pass

    async def _until_done(self, nursery: trio.Nursery, task: Any, *args: Any) -> None:
        try:
            await task(*args)
        finally:
            nursery.cancel_scope.cancel()

    async def _close_upstream(self) -> None:
        if self.upstream is not None and self.upstream.closed is None:
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                await self.upstream.aclose(1000, "client gone")

    # ----------------------------------------------------------------- tasks

    async def _client_reader(self, inbound: trio.MemorySendChannel) -> None:
        client = self.client
        metrics = self.metrics
        while True:
            try:
                message = await client.get_message()
            except ConnectionClosed as closed:
                reason = closed.reason
                self.log.info(
                    "client closed",
                    extra={"client_close_code": reason.code if reason else None, "direction": "client"},
                )
                # The translator ends the connection once it has sent what it
                # held; bounded in case it cannot.
                with trio.move_on_after(CLIENT_GONE_DRAIN_S):
                    await inbound.send(ClientClosed())
                    await trio.sleep_forever()
                return
            metrics.frames_client_to_proxy += 1
            metrics.bytes_client_to_proxy += len(message)
            item = ClientAudio(message) if type(message) is bytes else ClientText(message)
            # Hot path: hand over without a scheduling round-trip when there is room.
            try:
                inbound.send_nowait(item)
            except trio.WouldBlock:
                await inbound.send(item)

    async def _client_keepalive(self) -> None:
        """Dead peers: a client whose TCP vanished without a FIN (NAT timeout, a phone
        asleep) would keep its paid upstream session open until the upstream's
        own limit. One that sends nothing for the ping interval is pinged and
        closed with 1011 if the pong does not come within the ping timeout; one
        that sends no message for the idle timeout is closed with 1000. A
        client that answers pings may stay silent up to the idle timeout.
        """
        config = self.config
        client = self.client
        interval, idle = config.client_ping_interval_s, config.client_idle_timeout_s
        if not interval and not idle:
            await trio.sleep_forever()
        seen = client.messages_received
        alive_at = message_at = trio.current_time()
        while True:
            await trio.sleep_until(
                min(alive_at + (interval or math.inf), message_at + (idle or math.inf))
            )
            now = trio.current_time()
            if client.messages_received != seen:
                seen = client.messages_received
                alive_at = message_at = now
                continue
            if idle and now >= message_at + idle:
                self.log.info(
                    "client sent nothing; closing the connection",
                    extra={"error_code": "CLIENT_IDLE", "direction": "client"},
                )
                self._teardown_close = (1000, f"no message for {idle:g} s")
                return
            try:
                await client.ping(b"proxy")
            except ConnectionClosed:
                await trio.sleep_forever()  # the client reader reports the close
            with trio.move_on_after(config.client_ping_timeout_s):
                await client.wait_pong()
                alive_at = trio.current_time()
                continue
            self.log.warning(
                "client did not answer a ping; closing the connection",
                extra={"error_code": "CLIENT_PING_TIMEOUT", "direction": "client"},
            )
            self._teardown_close = (1011, "keepalive ping timeout")
            return

    async def _translator(
        self,
        session: Session,
        inbound: trio.MemoryReceiveChannel,
        to_client: trio.MemorySendChannel,
        to_upstream: trio.MemorySendChannel,
        nursery: trio.Nursery,
    ) -> None:
        self._frame_debug = self.log.isEnabledFor(logging.DEBUG)
        handle = session.handle
        await self._act(handle(Opened(), trio.current_time()), to_client, to_upstream, nursery)
        metrics = self.metrics
        countdown = 0
        receive_nowait = inbound.receive_nowait
        while True:
            # Drain what is ready before parking: each `await receive()` of a
            # ready item costs a trip through the scheduler. The channel's
            # capacity bounds how long this runs without a checkpoint.
            try:
                item = receive_nowait()
            except trio.WouldBlock:
                try:
                    item = await inbound.receive()
                except trio.EndOfChannel:
                    return
            except trio.EndOfChannel:
                return
            if type(item) is tuple:  # (generation, event) from an upstream
                generation, item = item
                if generation != self._generation:
                    continue  # from an upstream the session has already replaced
            now = trio.current_time()
            # Metrics: time one event in TRANSLATION_SAMPLE_EVERY through the session.
            countdown -= 1
            started = 0
            if countdown < 0:
                countdown = TRANSLATION_SAMPLE_EVERY - 1
                started = perf_counter_ns()
            actions = handle(item, now)
            if started:
                metrics.translated(item.NAME, perf_counter_ns() - started)
            await self._act(actions, to_client, to_upstream, nursery)
            if type(item) is ClientClosed:
                if actions:
                    await self._upstream_drained()
                return

    async def _act(
        self,
        actions: list,
        to_client: trio.MemorySendChannel,
        to_upstream: trio.MemorySendChannel,
        nursery: trio.Nursery,
    ) -> None:
        for action in actions:
            kind = type(action)
            if kind is ToClientAudio:
                # Hot path: straight to the socket, else to the writer without
                # a scheduler round-trip when it has room.
                frame = action.data
                if not self._write_client_now(frame):
                    self._client_queued += 1
                    try:
                        to_client.send_nowait(frame)
                    except trio.WouldBlock:
                        await to_client.send(frame)
            elif kind is ToUpstream:
                if self._frame_debug:
                    self.log.debug("to upstream", extra={"direction": "upstream", "message_type": action.event.TYPE})
                frame = encode_upstream(action.event)
                if not self._write_upstream_now(frame):
                    self._upstream_queued += 1
                    try:
                        to_upstream.send_nowait(frame)
                    except trio.WouldBlock:
                        await to_upstream.send(frame)
            elif kind is ToClient:
                message = action.message
                if type(message) is ErrorMessage:
                    self.metrics.errors[message.code] += 1
                if self._frame_debug:
                    self.log.debug("to client", extra={"direction": "client", "message_type": message.TYPE})
                frame = encode_client(message)
                if not self._write_client_now(frame):
                    self._client_queued += 1
                    await to_client.send(frame)
            elif kind is CloseClient:
                self._client_queued += 1
                await to_client.send(action)
            elif kind is StartTimer:
                self._cancel_timer(action.name)
                scope = trio.CancelScope(deadline=action.deadline)
                self._timers[action.name] = scope
                nursery.start_soon(self._timer, action.name, action.token, scope)
            elif kind is CancelTimer:
                self._cancel_timer(action.name)
            elif kind is RenewUpstream:
                # Everything the session sends from now on is for the new
                # upstream: it queues behind this marker, which the upstream
                # task turns into close-old-then-open-new.
                self._generation += 1
                self.metrics.upstream_renewals[action.cause] += 1
                self._upstream_queued += 1
                await to_upstream.send(action)
            elif kind is CallEndpoint:
                nursery.start_soon(self._call_endpoint, action)

    async def _upstream_drained(self) -> None:
        """Wait until the upstream writer has sent everything queued (the client reader bounds the wait)."""
        if self._upstream_queued and self.upstream is not None:
            self._upstream_idle = trio.Event()
            await self._upstream_idle.wait()

    def _write_client_now(self, frame: str | bytes) -> bool:
        """Write to the client now if nothing is queued for it; False: queue it."""
        if self._client_queued:
            return False
        client = self.client
        if not client.write_now(frame):
            return False
        metrics = self.metrics
        metrics.frames_proxy_to_client += 1
        metrics.bytes_proxy_to_client += len(frame)
        if client.tail_pending:  # the kernel took part of it: the socket keeps the rest
            self._client_queued += 1
            self._client_frames.send_nowait(_FLUSH)  # nothing is queued: there is room
        return True

    def _write_upstream_now(self, frame: str) -> bool:
        """Write upstream now if connected and nothing is queued; False: queue it."""
        upstream = self.upstream
        if upstream is None or self._upstream_queued:
            return False
        if not upstream.write_now(frame):
            return False
        metrics = self.metrics
        metrics.frames_proxy_to_upstream += 1
        metrics.bytes_proxy_to_upstream += len(frame)
        if upstream.tail_pending:
            self._upstream_queued += 1
            self._upstream_frames.send_nowait(_FLUSH)
        return True

    def _cancel_timer(self, name: str) -> None:
        scope = self._timers.pop(name, None)
        if scope is not None:
            scope.cancel()

    async def _timer(self, name: str, token: int, scope: trio.CancelScope) -> None:
        # The deadline is the scope's: it "fires" by the scope expiring, and a
        # CancelTimer cancels it outright, which then sends nothing.
        with scope:
            await trio.sleep_forever()
        if scope.cancelled_caught and self._timers.get(name) is scope and trio.current_time() >= scope.deadline:
            del self._timers[name]
            await self._inbound.send(TimerFired(name, token))

    async def _call_endpoint(self, action: CallEndpoint) -> None:
        """Run a server-side function; its output goes back to the translator as an event."""
        async with self._function_calls:
            output = await call_endpoint(
                action.endpoint,
                action.arguments,
                hosts=self._function_hosts,
                timeout_s=self.config.function_timeout_s,
                max_response_bytes=self.config.function_max_response_bytes,
            )
        await self._inbound.send(FunctionResult(action.call_id, output))

    async def _client_writer(self, frames: trio.MemoryReceiveChannel) -> None:
        client = self.client
        metrics = self.metrics
        async for frame in frames:
            if type(frame) is CloseClient:
                self.log.info("closing client", extra={"client_close_code": frame.code, "reason": frame.reason})
                await client.aclose(frame.code, frame.reason)
                return
            try:
                with trio.move_on_after(STALLED_PEER_TIMEOUT_S) as stall:
                    if frame is _FLUSH:
                        await client.flush()
                    else:
                        metrics.frames_proxy_to_client += 1
                        metrics.bytes_proxy_to_client += len(frame)
                        await client.send_message(frame)
            except ConnectionClosed:
                return
            if stall.cancelled_caught:
                self.log.warning(
                    "client stopped reading; closing the connection",
                    extra={"error_code": "CLIENT_STALLED", "direction": "client"},
                )
                self._teardown_close = (1008, "client stopped reading")
                return
            self._client_queued -= 1

    async def _upstream(
        self,
        nursery: trio.Nursery,
        inbound: trio.MemorySendChannel,
        frames: trio.MemoryReceiveChannel,
    ) -> None:
        """Connect (P2.3), then write frames until done; a `RenewUpstream` marker
        in the frames closes the current upstream and opens the next."""
        connected = await self._connect_upstream(nursery, inbound, self._generation)
        metrics = self.metrics
        async for frame in frames:
            if type(frame) is RenewUpstream:
                self._drop_upstream(nursery)
                # The marker's generation is the translator's at the time it
                # was queued; a later marker already counted supersedes it.
                connected = await self._connect_upstream(nursery, inbound, self._generation)
                self._upstream_sent()
                continue
            upstream = self.upstream
            if not connected or upstream is None:
                self._upstream_sent()  # no upstream to take it: the session knows (UPSTREAM_FAILED/CLOSED)
                continue
            try:
                with trio.move_on_after(STALLED_PEER_TIMEOUT_S) as stall:
                    if frame is _FLUSH:
                        await upstream.flush()
                    else:
                        metrics.frames_proxy_to_upstream += 1
                        metrics.bytes_proxy_to_upstream += len(frame)
                        await upstream.send_message(frame)
            except ConnectionClosed:
                # The reader reports the close; what is queued for this
                # upstream until the session replaces it is dropped.
                connected = False
            if stall.cancelled_caught:
                self.log.error(
                    "upstream stopped reading; closing the connection",
                    extra={"error_code": "UPSTREAM_STALLED", "direction": "upstream"},
                )
                self._teardown_close = (1011, "upstream stalled")
                return
            self._upstream_sent()

    def _upstream_sent(self) -> None:
        """One queued frame (or marker) is off the upstream queue; wake a drain waiting for empty."""
        self._upstream_queued -= 1
        if not self._upstream_queued and self._upstream_idle is not None:
            self._upstream_idle.set()

    async def _connect_upstream(self, nursery: trio.Nursery, inbound: trio.MemorySendChannel, generation: int) -> bool:
        """Open an upstream and start its reader; False (and UPSTREAM_FAILED told) if it cannot be had."""
        config = self.config
        failure: tuple[int | None, str] | None = None  # (HTTP status, what the client is told)
        log_detail: str | None = None  # the full story, for the log only
        started = trio.current_time()
        try:
            with trio.fail_after(config.upstream_connect_timeout_s):
                upstream = await open_upstream(config.upstream_url, config.api_key, ssl_context=self.upstream_ssl)
        except ConnectionRejected as rejected:
            failure = (rejected.status_code, f"HTTP {rejected.status_code}")
        except trio.TooSlowError:
            failure = (None, f"no answer within {config.upstream_connect_timeout_s:g} s")
        except (HandshakeError, OSError, trio.BrokenResourceError) as error:
            failure = (None, connect_failure(error))
            # The exception text names the upstream host: the log may say it, the client may not.
            log_detail = error_chain(error)
        if failure is not None:
            self.metrics.upstream_connect_failures += 1
            self.log.error("upstream connect failed", extra={"status": failure[0], "detail": log_detail or failure[1]})
            await inbound.send((generation, UpstreamFailed(*failure)))
            return False
        self.upstream = upstream
        self.metrics.upstream_connect.observe(trio.current_time() - started)
        self.log.info("upstream connected", extra={"direction": "upstream"})
        self._reader_scope = trio.CancelScope()
        nursery.start_soon(self._upstream_reader, upstream, inbound, generation, self._reader_scope)
        return True

    def _drop_upstream(self, nursery: trio.Nursery) -> None:
        """Renewal: stop hearing the current upstream and close it with 1000.

        The close handshake runs beside the new connect (bounded by
        CLOSE_TIMEOUT_S, inside the connection's nursery), so the renewal
        does not wait for the old peer's answer.
        """
        if self._reader_scope is not None:
            self._reader_scope.cancel()
            self._reader_scope = None
        upstream, self.upstream = self.upstream, None
        if upstream is not None and upstream.closed is None:
            nursery.start_soon(self._close_replaced, upstream)

    async def _close_replaced(self, upstream: WebSocket) -> None:
        with trio.move_on_after(CLOSE_TIMEOUT_S):
            await upstream.aclose(1000, "session renewed")

    async def _upstream_reader(
        self, upstream: WebSocket, inbound: trio.MemorySendChannel, generation: int, scope: trio.CancelScope
    ) -> None:
        # Cancelled by its scope when the session renews the upstream; any
        # other end (an exception) ends the connection through the nursery.
        with scope:
            metrics = self.metrics
            while True:
                try:
                    message = await upstream.get_message()
                except ConnectionClosed as closed:
                    reason = closed.reason
                    code = reason.code if reason else None
                    detail = reason.reason if reason else None
                    self.log.info(
                        "upstream closed",
                        extra={"upstream_close_code": code, "reason": detail, "direction": "upstream"},
                    )
                    await inbound.send((generation, UpstreamClosed(code, detail)))
                    await trio.sleep_forever()  # the session closes the client or renews, which ends us
                metrics.frames_upstream_to_proxy += 1
                metrics.bytes_upstream_to_proxy += len(message)
                if type(message) is str:
                    item = (generation, UpstreamText(message))
                    try:
                        inbound.send_nowait(item)
                    except trio.WouldBlock:
                        await inbound.send(item)
                else:
                    self.log.warning("dropped binary frame from upstream", extra={"direction": "upstream"})  # P6.3


def _playground(config: Config) -> Any:
    """Issue 13: plain GETs of the playground page are answered on the listener when it is on."""
    if not config.playground:
        return None
    from .playground import responder

    return responder(config)


@attrs.define
class ProxyServer:
    """The listener: decides handshakes and runs one `Connection` per client."""

    config: Config
    connections: set[Connection] = attrs.Factory(set)
    metrics: Metrics = attrs.Factory(Metrics)
    port: int | None = None
    upstream_ssl: ssl.SSLContext | None = None
    accepting: bool = True
    # Clients admitted and not yet gone, counted before the first await of
    # the handshake's answer, so concurrent handshakes cannot all pass the
    # OPENAI_PROXY_MAX_CONNECTIONS check at once.
    _admitted: int = 0
    _listener_scope: trio.CancelScope | None = None
    _handlers: trio.Nursery | None = None
    _all_closed: trio.Event = attrs.Factory(trio.Event)

    async def serve(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until `shutdown`; `task_status.started(self)` once bound."""
        config = self.config
        ssl_context = None
        if config.tls_cert_path:
            ssl_context = server_context(config.tls_cert_path, config.tls_key_path)
        if config.upstream_url.startswith("wss:"):
            # Issue 9: built once, here, not per connect (~25 ms of CPU each).
            self.upstream_ssl = upstream_context(config.upstream_ca_file)
        # Connections live in their own nursery so the listener can stop
        # (P2.6) while open sessions carry on.
        async with trio.open_nursery() as handlers:
            self._handlers = handlers
            async with trio.open_nursery() as listener:
                self._listener_scope = listener.cancel_scope
                if config.workers > 1:
                    # Issue 6: each worker process binds the port with SO_REUSEPORT.
                    listeners: list[Any] = await open_shared_listeners(config.host, config.port)
                else:
                    listeners = await trio.open_tcp_listeners(config.port, host=config.host)
                await listener.start(
                    partial(
                        serve,  # the lean data path (proxy/ws/)
                        self._handle,
                        listeners,
                        handler_nursery=handlers,
                        max_message_size=config.max_frame_bytes,  # P5.11: bigger closes with 1009
                        handshake_timeout=HANDSHAKE_TIMEOUT_S,
                        max_handshakes=config.max_handshakes,
                        plain_http=_playground(config),
                        ssl_context=ssl_context,  # issue 9: TLS in C (proxy/tls.py)
                    )
                )
                self.port = listener_port(listeners[0])
                task_status.started(self)  # "listening on" is logged once the admin port is bound too

    def not_ready_reason(self) -> str | None:
        """Why a new client would be refused now, or None; what /readyz and openai_proxy_accepting say."""
        if not self.accepting or self.port is None:
            return "not accepting connections"
        limit = self.config.max_connections
        if limit and len(self.connections) >= limit:
            return "at max connections"
        return None

    async def shutdown(self) -> None:
        """P2.6: stop accepting, give sessions the grace, then close them with 1001."""
        self.accepting = False
        if self._listener_scope is not None:
            self._listener_scope.cancel()
        with trio.move_on_after(self.config.shutdown_grace_s):
            await self._wait_all_closed()
        for connection in list(self.connections):
            connection.going_away()
        with trio.move_on_after(2 * CLOSE_TIMEOUT_S):
            await self._wait_all_closed()
        if self._handlers is not None:
            self._handlers.cancel_scope.cancel()

    async def _wait_all_closed(self) -> None:
        if self.connections:
            await self._all_closed.wait()

    async def _handle(self, request: UpgradeRequest) -> None:
        # An exception here would take the whole listener down: contain it.
        try:
            await self._handle_request(request)
        except Exception:
            log.exception("connection failed")

    async def _handle_request(self, request: UpgradeRequest) -> None:
        config = self.config
        decision = decide(
            request.path,
            request.headers,
            request.proposed_subprotocols,
            path=config.path,
            auth_tokens=config.auth_tokens,
            allowed_origins=config.allowed_origins,
        )
        if decision.status is None and not self.accepting:
            decision = attrs.evolve(decision, status=503, reason="shutting down")
        if decision.status is None and config.max_connections and self._admitted >= config.max_connections:
            decision = attrs.evolve(decision, status=503, reason="too many connections")
        address = client_address(request.peer, request.headers, config.trusted_proxies)
        if decision.status is not None:
            log.info(
                "handshake rejected", extra={"status": decision.status, "reason": decision.reason, "client_address": address}
            )
            self.metrics.connection_ended("rejected", decision.status)
            await request.reject(decision.status, body=decision.reason.encode())
            return
        self._admitted += 1  # no await since the check above
        try:
            await self._serve_admitted(request, decision, address)
        finally:
            self._admitted -= 1

    async def _serve_admitted(self, request: UpgradeRequest, decision: Any, address: str | None) -> None:
        config = self.config
        client = await request.accept(subprotocol=decision.subprotocol)
        connection_id = str(uuid.uuid4())
        connection_log = ConnectionLog(
            log,
            {"connection_id": connection_id, "trace_id": decision.trace_id or connection_id, "client_address": address},
        )
        connection = Connection(
            config, client, connection_id, connection_log, upstream_ssl=self.upstream_ssl, metrics=self.metrics
        )
        if not self.connections:
            self._all_closed = trio.Event()
        self.connections.add(connection)
        connection_log.info("client connected", extra={"direction": "client"})
        if decision.trace_id_refused:  # P2.8: say why the records carry the connection id instead
            connection_log.warning("client traceId not used", extra={"reason": decision.trace_id_refused})
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
            if not self.connections:
                self._all_closed.set()
            closed = client.closed
            self.metrics.connection_ended("closed", closed.code if closed is not None else None)
            connection_log.info("connection ended", extra={"client_close_code": closed.code if closed else None})
