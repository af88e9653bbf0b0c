"""An in-process stand-in for the OpenAI Realtime API (GA events), on loopback.

Start it in a nursery, point the proxy's upstream URL at `fake.url`, and
script the conversation from the test:

    fake = FakeRealtime(api_key="sk-test", responder=None)  # None: the test answers
    await nursery.start(fake.serve)
    ...
    upstream = await fake.next_connection()
    create = await upstream.next("response.create")
    await upstream.play_response(transcript="Hi there", audio=b"\\0" * 1920, create=create)

By default it behaves like the real service where a test rarely cares:
`session.update` is answered by `session.updated`, a created item is
acknowledged (`conversation.item.added`, then `.done`), a `response.create`
is answered by `responder` (a spoken reply; set it to None to answer by hand),
and a second concurrent `response.create` gets the real service's
`conversation_already_has_active_response` error. Leave `responder` on and
also play a response by hand, and the proxy gets two responses to one request.

With `server_vad=True` it also plays the service's server VAD on the audio it
is sent (proxy/testing/server_vad.py), when the session asks for turn detection:
`speech_started`, `speech_stopped`, the commit, the user item and a
placeholder transcript, then a response from `responder`; speech during a
response cancels it, as `interrupt_response` does.
"""

from __future__ import annotations

import base64
import collections
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from .server_vad import ServerVad, UserTurn

# Called with the `response.create` event, or None for a response the
# server VAD created by itself (`create_response`).
Responder = Callable[["FakeConnection", "dict[str, Any] | None"], Awaitable[None]]

DEFAULT_REPLY = "Hello from the fake upstream."
# What the live API says when a session reaches its maximum duration.
EXPIRED_REASON = "Your session hit the maximum duration of 60 minutes."
# The responders only ever look at the last user turn; a few more help a test.
MAX_USER_TURNS = 64
# 60 ms of quiet PCM16 at 24 kHz, in three 20 ms deltas.
DEFAULT_AUDIO = b"\x01\x00" * 1440


async def speak_reply(connection: FakeConnection, create: dict[str, Any] | None) -> None:
    """The default responder: a spoken reply with `DEFAULT_REPLY` as transcript."""
    await connection.play_response(transcript=DEFAULT_REPLY, audio=DEFAULT_AUDIO, create=create)


class FakeRealtime:
    """A fake OpenAI Realtime server. Every connection is a `FakeConnection`."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        reject_status: int | None = None,
        accept_delay: float = 0.0,
        responder: Responder | None = speak_reply,
        validate: Callable[[dict[str, Any]], None] | None = None,
        host: str = "127.0.0.1",
        max_duration_s: float | None = None,
        port: int = 0,
        server_vad: bool = False,
        history: bool = True,
    ) -> None:
        self.api_key = api_key
        self.reject_status = reject_status
        self.accept_delay = accept_delay
        self.responder = responder
        self.validate = validate
        self.host = host
        # Like the live API's 60-minute limit, shortened for tests: each
        # connection ends with `expire()` once it is this old.
        self.max_duration_s = max_duration_s
        self.server_vad = server_vad
        # A test reads back every event and all the audio; a long run (the
        # demo, python -m proxy.testing) keeps none of it, so memory stays flat.
        self.history = history
        self._bind_port = port  # 0: any free port
        self.port: int | None = None
        self.connections: list[FakeConnection] = []
        self.handshakes = 0
        self._new_connection = trio.Event()

    @property
    def url(self) -> str:
        assert self.port is not None, "start the fake with nursery.start(fake.serve) first"
        return f"ws://{self.host}:{self.port}/v1/realtime?model=gpt-realtime"

    async def serve(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on the port given (default: an ephemeral one) on loopback; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                lambda task_status: serve_websocket(
                    self._handle, self.host, self._bind_port, None, max_message_size=64 * 1024 * 1024, task_status=task_status
                )
            )
            self.port = server.port
            task_status.started(self)

    async def next_connection(self, index: int | None = None) -> FakeConnection:
        """Wait for the connection number `index` (default: the next one not yet returned)."""
        if index is None:
            index = self._returned = getattr(self, "_returned", -1) + 1
        while len(self.connections) <= index:
            await self._new_connection.wait()
        return self.connections[index]

    async def _handle(self, request: WebSocketRequest) -> None:
        self.handshakes += 1
        headers = {key.decode().lower(): value.decode() for key, value in request.headers}
        if self.accept_delay:
            await trio.sleep(self.accept_delay)
        if self.reject_status is not None:
            await request.reject(self.reject_status, body=b"rejected by the fake upstream")
            return
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            await request.reject(401, body=b"invalid api key")
            return
        socket = await request.accept()
        connection = FakeConnection(self, socket, headers, request.path)
        self.connections.append(connection)
        event, self._new_connection = self._new_connection, trio.Event()
        event.set()
        try:
            await connection.run()
        finally:
            if not self.history:
                self.connections.remove(connection)


class FakeConnection:
    """One proxy connection as the fake upstream sees it."""

    def __init__(self, server: FakeRealtime, socket: WebSocketConnection, headers: dict[str, str], path: str):
        self.server = server
        self.socket = socket
        self.headers = headers
        self.path = path
        self.received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []  # every server event, in order (raw frames excepted)
        self.audio = bytearray()  # every input_audio_buffer.append, decoded, in order
        self.session: dict[str, Any] = {"type": "realtime", "instructions": "", "tools": []}
        self.reject_updates = False  # answer session.update with an error instead
        self.ignore_updates = False  # answer session.update with nothing at all
        self.acknowledge_items = True
        self.active_response: str | None = None
        self.closed: int | None = None  # the close code the proxy sent, once closed
        self.validation_errors: list[str] = []
        self._consumed: dict[str, int] = {}
        self._changed = trio.Event()
        self._ids = itertools.count(1)
        self._nursery: trio.Nursery | None = None
        self._cancelled: set[str] = set()
        self.user_turns: collections.deque[UserTurn] = collections.deque(maxlen=MAX_USER_TURNS)
        self._server_vad = ServerVad(self) if server.server_vad else None

    # ------------------------------------------------------------ test side

    async def next(self, event_type: str) -> dict[str, Any]:
        """The next event of `event_type` from the proxy not yet returned; waits for it."""
        while True:
            seen = self._consumed.get(event_type, 0)
            matching = [event for event in self.received if event.get("type") == event_type]
            if len(matching) > seen:
                self._consumed[event_type] = seen + 1
                return matching[seen]
            await self._wait_change()

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in self.received if event.get("type") == event_type]

    async def wait_closed(self) -> int:
        while self.closed is None:
            await self._wait_change()
        return self.closed

    async def wait_audio(self, size: int) -> bytes:
        while len(self.audio) < size:
            await self._wait_change()
        return bytes(self.audio)

    async def send(self, event: dict[str, Any]) -> None:
        """Send one server event; an `event_id` is added when missing."""
        event = {"event_id": f"event_{next(self._ids)}", **event}
        if self.server.history:
            self.sent.append(event)
        await self.socket.send_message(json.dumps(event))

    async def send_raw(self, frame: str | bytes) -> None:
        await self.socket.send_message(frame)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.socket.aclose(code, reason)

    async def expire(self, *, error: bool = True) -> None:
        """End the session as the live API does at its time limit.

        An `error` with code `session_expired` and `event_id: null`, then a
        close with 1001 and the service's reason; `error=False`: the close only
        (the live API sometimes sends no error first).
        """
        if error:
            await self.send({"type": "error", "error": {
                "type": "invalid_request_error", "code": "session_expired",
                "message": EXPIRED_REASON, "param": None, "event_id": None}})
        await self.close(1001, EXPIRED_REASON)

    async def fail(self) -> None:
        """A mid-call server failure as the live API reports it: `server_error`, then an abnormal close."""
        await self.send({"type": "error", "error": {
            "type": "server_error", "code": None, "param": None, "event_id": None,
            "message": "The server had an error while processing your request. Sorry about that!"}})
        await self.close(1011, "internal error")

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    def last_user_turn(self) -> UserTurn | None:
        return self.user_turns[-1] if self.user_turns else None

    async def play_response(
        self,
        *,
        transcript: str = DEFAULT_REPLY,
        audio: bytes | None = DEFAULT_AUDIO,
        chunk: int = 960,
        create: dict[str, Any] | None = None,
        text: bool = False,
        status: str = "completed",
        error: dict[str, Any] | None = None,
        interval: float = 0.0,
    ) -> str:
        """Play a whole response in the real service's event order; returns its id.

        With `audio`, it is an audio response whose transcript is `transcript`;
        with `text=True`, a text response. `interval` paces the audio deltas.
        The response stops early, as `cancelled`, if the proxy cancels it.
        """
        response_id = await self.begin_response(create)
        item_id = self.new_id("item")
        base = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        await self.send({"type": "response.output_item.added", "response_id": response_id, "output_index": 0,
                         "item": {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress", "content": []}})
        # The GA events name the part "text"/"audio" (the item's content says output_*).
        part: dict[str, Any] = {"type": "text", "text": ""} if text else {"type": "audio", "transcript": ""}
        await self.send({"type": "response.content_part.added", **base, "part": part})
        if text:
            await self.send({"type": "response.output_text.delta", **base, "delta": transcript})
            await self.send({"type": "response.output_text.done", **base, "text": transcript})
        else:
            for start in range(0, len(audio or b""), chunk):
                if response_id in self._cancelled:
                    status = "cancelled"
                    break
                delta = base64.b64encode((audio or b"")[start : start + chunk]).decode()
                await self.send({"type": "response.output_audio.delta", **base, "delta": delta})
                await (trio.sleep(interval) if interval else trio.lowlevel.checkpoint())
            await self.send({"type": "response.output_audio.done", **base})
            await self.send({"type": "response.output_audio_transcript.done", **base, "transcript": transcript})
        part = {"type": "text", "text": transcript} if text else {"type": "audio", "transcript": transcript}
        content = {"type": "output_text", "text": transcript} if text else {"type": "output_audio", "transcript": transcript}
        await self.send({"type": "response.content_part.done", **base, "part": part})
        await self.send({"type": "response.output_item.done", "response_id": response_id, "output_index": 0,
                         "item": {"id": item_id, "type": "message", "role": "assistant", "status": "completed",
                                  "content": [content]}})
        await self.end_response(response_id, status=status, error=error)
        return response_id

    async def begin_response(self, create: dict[str, Any] | None = None) -> str:
        response_id = self.new_id("resp")
        self.active_response = response_id
        metadata = ((create or {}).get("response") or {}).get("metadata")
        await self.send({"type": "response.created", "response": {
            "id": response_id, "object": "realtime.response", "status": "in_progress", "metadata": metadata}})
        return response_id

    async def end_response(self, response_id: str, *, status: str = "completed", error: dict[str, Any] | None = None) -> None:
        if self.active_response == response_id:
            self.active_response = None
            self._notify()  # a VAD turn may be waiting for the slot
        details: dict[str, Any] | None = None
        if status != "completed":
            details = {"type": status}
            if error is not None:
                details["error"] = error
        await self.send({"type": "response.done", "response": {
            "id": response_id, "object": "realtime.response", "status": status, "status_details": details}})

    async def play_function_calls(self, calls: list[tuple[str, str]], create: dict[str, Any] | None = None) -> list[str]:
        """A response that asks for `calls` [(name, arguments)], in order; returns the call ids."""
        response_id = await self.begin_response(create)
        call_ids = []
        for index, (name, arguments) in enumerate(calls):
            call_id, item_id = self.new_id("call"), self.new_id("item")
            call_ids.append(call_id)
            await self.send({"type": "response.output_item.added", "response_id": response_id, "output_index": index,
                             "item": {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": ""}})
            await self.send({"type": "response.function_call_arguments.delta", "response_id": response_id,
                             "item_id": item_id, "output_index": index, "call_id": call_id, "delta": arguments})
            await self.send({"type": "response.function_call_arguments.done", "response_id": response_id,
                             "item_id": item_id, "output_index": index, "call_id": call_id, "name": name, "arguments": arguments})
        await self.end_response(response_id)
        return call_ids

    async def user_turn(self, transcript: str, *, audio_start_ms: int = 0, audio_end_ms: int = 1200) -> str:
        """What server VAD sends for one spoken user turn; returns the user item id."""
        item_id = self.new_id("item")
        await self.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": audio_start_ms, "item_id": item_id})
        await self.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": audio_end_ms, "item_id": item_id})
        await self.send({"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": None})
        await self.send({"type": "conversation.item.added", "item": {"id": item_id, "type": "message", "role": "user", "content": []}})
        await self.send({"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
                         "content_index": 0, "transcript": transcript, "usage": {"type": "duration", "seconds": 1.2}})
        self.user_turns.append(UserTurn(item_id, transcript))
        return item_id

    # ------------------------------------------------------- service side

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.server.max_duration_s is not None:
                nursery.start_soon(self._expire_after, self.server.max_duration_s)
            try:
                # Inside the try: the proxy may already be gone (its client left mid-connect).
                await self.send({"type": "session.created", "session": dict(self.session)})
                while True:
                    frame = await self.socket.get_message()
                    await self._on_frame(frame)
            except ConnectionClosed as closed:
                self.closed = closed.reason.code if closed.reason else 1006
            finally:
                self._notify()
                nursery.cancel_scope.cancel()

    async def _expire_after(self, seconds: float) -> None:
        await trio.sleep(seconds)
        try:
            await self.expire()
        except ConnectionClosed:
            pass

    async def _on_frame(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            self.validation_errors.append("binary frame sent upstream (P1.3: only JSON text frames)")
            self._notify()
            return
        event = json.loads(frame)
        if self.server.validate is not None:
            try:
                self.server.validate(event)
            except Exception as error:  # recorded for the test to assert on
                self.validation_errors.append(f"{event.get('type')}: {error}")
        if self.server.history:
            self.received.append(event)
        self._notify()
        try:
            await self._respond(event)
        except ConnectionClosed:
            pass

    async def _respond(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "input_audio_buffer.append":
            pcm = base64.b64decode(event["audio"])
            if self.server.history:
                self.audio += pcm
            self._notify()
            if self._server_vad is not None:
                await self._server_vad.feed(pcm)
        elif kind == "session.update":
            if self.ignore_updates:
                return
            if self.reject_updates:
                await self.send({"type": "error", "error": {
                    "type": "invalid_request_error", "code": "invalid_value",
                    "message": "the fake upstream rejects this session.update", "event_id": event.get("event_id")}})
                return
            _merge(self.session, event.get("session", {}))
            await self.send({"type": "session.updated", "session": dict(self.session)})
        elif kind == "conversation.item.create" and self.acknowledge_items:
            item = dict(event.get("item", {}))
            item.setdefault("id", self.new_id("item"))
            if item.get("role") == "user":
                typed = [part.get("text") for part in item.get("content", []) if part.get("type") == "input_text"]
                self.user_turns.append(UserTurn(item["id"], " ".join(t for t in typed if t)))
            await self.send({"type": "conversation.item.added", "item": item})
            await self.send({"type": "conversation.item.done", "item": item})
        elif kind == "conversation.item.truncate":
            await self.send({"type": "conversation.item.truncated", "item_id": event.get("item_id"),
                             "content_index": event.get("content_index"), "audio_end_ms": event.get("audio_end_ms")})
        elif kind == "response.cancel":
            if self.active_response is not None:
                self._cancelled.add(self.active_response)
        elif kind == "response.create":
            if self.active_response is not None:
                await self.send({"type": "error", "error": {
                    "type": "invalid_request_error", "code": "conversation_already_has_active_response",
                    "message": "Conversation already has an active response", "event_id": event.get("event_id")}})
                return
            if self.server.responder is not None:
                # Claim the slot now so a second response.create sees it taken.
                self.active_response = "pending"
                assert self._nursery is not None
                self._nursery.start_soon(self._run_responder, event)

    # ------------------------------------------- for the server VAD (server_vad.py)

    def interrupt(self) -> None:
        """Cancel the response being played, if any, as `interrupt_response` does."""
        if self.active_response not in (None, "pending"):
            self._cancelled.add(self.active_response)

    def respond_when_idle(self) -> None:
        """A response from `responder`, as soon as no other one is active (`create_response`)."""
        if self.server.responder is not None:
            assert self._nursery is not None
            self._nursery.start_soon(self._respond_when_idle)

    async def _respond_when_idle(self) -> None:
        # One response at a time: an interrupted one ends (cancelled) first.
        while self.active_response is not None:
            await self._wait_change()
        self.active_response = "pending"
        await self._run_responder(None)

    async def _run_responder(self, create: dict[str, Any] | None) -> None:
        assert self.server.responder is not None
        try:
            await self.server.responder(self, create)
        except ConnectionClosed:
            pass  # the proxy went away mid-reply; the connection's run() ends it

    def _notify(self) -> None:
        event, self._changed = self._changed, trio.Event()
        event.set()

    async def _wait_change(self) -> None:
        await self._changed.wait()


def _merge(target: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
