"""A text chat with the agent behind a proxy, for quick checks without a browser.

    python -m proxy.chat --url ws://127.0.0.1:8080/openai --text "Hello"
    printf 'Hello\\nAnd goodbye\\n' | python -m proxy.chat --wav reply.wav

Each turn is an `InjectUserMessage`; the turn ends at `AgentAudioDone`.
`ConversationText` prints as `user: ...` / `assistant: ...`, a
`FunctionCallRequest` as one `function call: ...` line (nobody answers it
here), warnings and errors go to stderr. Exit status: 0 when every turn
completed, 1 after an `Error` message, 2 when the connection failed or
closed early, 3 when a turn timed out.
"""

from __future__ import annotations

import argparse
import copy
import json
import ssl
import sys
import wave
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from .testing.client import DEFAULT_SETTINGS

EXIT_OK, EXIT_ERROR, EXIT_CONNECTION, EXIT_TIMEOUT = 0, 1, 2, 3


class ChatFailed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Chat:
    """One connection: Settings, then turns; prints what a person wants to see."""

    def __init__(self, socket: WebSocketConnection, out: TextIO, err: TextIO) -> None:
        self.socket = socket
        self.out = out
        self.err = err
        self.audio = bytearray()
        self.errors = 0

    async def receive(self) -> dict[str, Any]:
        """The next JSON message; agent audio is collected on the way. Raises ChatFailed on close."""
        while True:
            try:
                frame = await self.socket.get_message()
            except ConnectionClosed as closed:
                reason = closed.reason
                detail = f"{reason.code} {reason.reason or ''}".strip() if reason else "no close frame"
                raise ChatFailed(EXIT_CONNECTION, f"connection closed ({detail})") from None
            if isinstance(frame, bytes):
                self.audio += frame
                continue
            message = json.loads(frame)
            self.show(message)
            return message

    def show(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ConversationText":
            print(f"{message.get('role')}: {message.get('content')}", file=self.out, flush=True)
        elif kind == "FunctionCallRequest":
            for call in message.get("functions", []):
                print(
                    f"function call: {call.get('name')}({call.get('arguments')}) id={call.get('id')}",
                    file=self.out,
                    flush=True,
                )
        elif kind == "Error":
            self.errors += 1
            print(f"error: {message.get('code')}: {message.get('description')}", file=self.err, flush=True)
        elif kind == "Warning":
            print(f"warning: {message.get('code')}: {message.get('description')}", file=self.err, flush=True)

    async def send(self, message: dict[str, Any]) -> None:
        try:
            await self.socket.send_message(json.dumps(message))
        except ConnectionClosed:
            # Show what the proxy said before it closed (an Error, usually);
            # receive() raises ChatFailed once the queue is empty.
            while True:
                await self.receive()

    async def wait_for(self, *kinds: str) -> dict[str, Any]:
        while True:
            message = await self.receive()
            if message.get("type") in kinds:
                return message

    async def start(self, settings: dict[str, Any]) -> None:
        await self.wait_for("Welcome")
        await self.send(settings)
        if (await self.wait_for("SettingsApplied", "Error"))["type"] == "Error":
            raise ChatFailed(EXIT_ERROR, "")  # the Error line above says why

    async def turn(self, text: str) -> None:
        await self.send({"type": "InjectUserMessage", "content": text})
        if (await self.wait_for("AgentAudioDone", "Error"))["type"] == "Error":
            raise ChatFailed(EXIT_ERROR, "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m proxy.chat", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/openai", help="proxy URL (ws:// or wss://)")
    parser.add_argument("--text", action="append", help="a user turn; repeatable (default: lines from stdin)")
    parser.add_argument("--ca-file", help="trust this CA (PEM) for a wss:// proxy with its own certificate")
    parser.add_argument("--token", help="client token (OPENAI_PROXY_AUTH_TOKENS), sent as the `token` subprotocol")
    parser.add_argument("--prompt", help="the agent's prompt (Settings agent.think.prompt)")
    parser.add_argument("--settings", help="a JSON file with the whole Settings message to send instead")
    parser.add_argument("--wav", help="write the agent audio received to this WAV file")
    parser.add_argument("--sample-rate", type=int, default=24000, help="agent audio rate (linear16), default 24000")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per step (default 60)")
    return parser


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    if args.settings:
        with open(args.settings, encoding="utf-8") as file:
            settings = json.load(file)
        if not isinstance(settings, dict) or settings.get("type") != "Settings":
            raise ValueError('expected an object with "type": "Settings"')
        return settings
    settings = copy.deepcopy(DEFAULT_SETTINGS)
    settings["audio"]["output"]["sample_rate"] = args.sample_rate
    if args.prompt:
        settings["agent"]["think"]["prompt"] = args.prompt
    return settings


def write_wav(path: str, audio: bytes, sample_rate: int) -> None:
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)  # linear16
        out.setframerate(sample_rate)
        out.writeframes(audio[: len(audio) // 2 * 2])


async def check_tls(url: str, context: ssl.SSLContext, timeout: float, ca_file: str | None) -> None:
    """Shake hands once before the WebSocket does, so a certificate problem is named at once.

    trio-websocket reports a failed TLS handshake only when its connect
    timeout expires, and then with an empty reason.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    with trio.fail_after(timeout):
        tcp = await trio.open_tcp_stream(host, port)
        stream = trio.SSLStream(tcp, context, server_hostname=host)
        try:
            await stream.do_handshake()
        except trio.BrokenResourceError as broken:
            error = broken.__cause__
            if isinstance(error, ssl.SSLCertVerificationError):
                hint = f" (with --ca-file {ca_file})" if ca_file else "; give --ca-file for a private CA"
                raise ChatFailed(
                    EXIT_CONNECTION, f"TLS handshake with {host}:{port} failed: {error.verify_message}{hint}"
                ) from None
            raise ChatFailed(EXIT_CONNECTION, f"TLS handshake with {host}:{port} failed: {error or broken}") from None
        finally:
            await trio.aclose_forcefully(stream)


async def chat(args: argparse.Namespace, texts: Sequence[str], out: TextIO, err: TextIO) -> int:
    subprotocols = ["token", args.token] if args.token else None
    settings = settings_from(args)
    output = settings.get("audio", {}).get("output", {})
    session: Chat | None = None
    status = EXIT_OK
    try:
        context = ssl.create_default_context(cafile=args.ca_file) if args.url.startswith("wss://") else None
        if context is not None:
            await check_tls(args.url, context, args.timeout, args.ca_file)
        async with open_websocket_url(
            args.url,
            subprotocols=subprotocols,
            ssl_context=context,
            max_message_size=64 * 1024 * 1024,
            connect_timeout=args.timeout,
            disconnect_timeout=2,
        ) as socket:
            session = Chat(socket, out, err)
            with trio.fail_after(args.timeout):
                await session.start(settings)
            for text in texts:
                print(f"> {text}", file=err, flush=True)
                with trio.fail_after(args.timeout):
                    await session.turn(text)
    except ChatFailed as failed:
        # After an Error line the close that follows adds nothing: say the real cause only.
        if str(failed) and not (session is not None and session.errors):
            print(f"chat: {failed}", file=err)
        status = failed.status
    except ConnectionRejected as rejected:
        body = (rejected.body or b"").decode(errors="replace")
        print(f"chat: handshake rejected: HTTP {rejected.status_code} {body}".rstrip(), file=err)
        status = EXIT_CONNECTION
    except (HandshakeError, OSError) as error:
        cause = error.__cause__ or error
        print(f"chat: cannot connect to {args.url}: {cause}", file=err)
        status = EXIT_CONNECTION
    except trio.TooSlowError:
        print(f"chat: no answer within {args.timeout:g} s", file=err)
        status = EXIT_TIMEOUT
    if session is not None and args.wav:
        write_wav(args.wav, bytes(session.audio), int(output.get("sample_rate", args.sample_rate)))
        print(f"chat: wrote {len(session.audio)} bytes of agent audio to {args.wav}", file=err)
    if session is not None and session.errors and status in (EXIT_OK, EXIT_CONNECTION):
        status = EXIT_ERROR  # the Error says more than the close that followed it
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings_from(args)
    except OSError as error:
        print(f"chat: --settings {args.settings}: {error.strerror or error}", file=sys.stderr)
        return EXIT_CONNECTION
    except ValueError as error:
        print(f"chat: --settings {args.settings} is not valid JSON: {error}", file=sys.stderr)
        return EXIT_CONNECTION
    texts = args.text if args.text else [line.strip() for line in sys.stdin if line.strip()]
    if not texts:
        print("chat: nothing to say (give --text or lines on stdin)", file=sys.stderr)
        return EXIT_CONNECTION
    return trio.run(chat, args, texts, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
