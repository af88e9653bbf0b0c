"""The chat CLI (`python -m proxy.chat`) against the proxy and the fake upstream."""

from __future__ import annotations

import subprocess
import sys
import wave

import trio

from proxy.testing import DEFAULT_AUDIO, DEFAULT_REPLY


async def run_chat(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    with trio.fail_after(20):
        return await trio.run_process(
            [sys.executable, "-m", "proxy.chat", "--timeout", "10", *args],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


async def test_one_turn_prints_the_conversation_and_writes_wav(proxy, fake, tmp_path):
    wav_path = tmp_path / "reply.wav"
    result = await run_chat("--url", proxy.url, "--text", "Hello", "--wav", str(wav_path))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines() == ["user: Hello", f"assistant: {DEFAULT_REPLY}"]
    with wave.open(str(wav_path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        assert wav.readframes(wav.getnframes()) == DEFAULT_AUDIO
    upstream = await fake.next_connection()
    items = upstream.of_type("conversation.item.create")
    assert items[-1]["item"]["content"][0]["text"] == "Hello"


async def test_turns_from_stdin(proxy, fake):
    result = await run_chat("--url", proxy.url, stdin=b"First\n\nSecond\n")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines() == [
        "user: First", f"assistant: {DEFAULT_REPLY}", "user: Second", f"assistant: {DEFAULT_REPLY}",
    ]


async def test_function_call_request_is_one_line(proxy, fake):
    async def ask_for_weather(connection, create):
        await connection.play_function_calls([("get_weather", '{"city":"Paris"}')], create=create)

    fake.responder = ask_for_weather
    result = await run_chat("--url", proxy.url, "--text", "Weather?")
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "user: Weather?"
    assert lines[1].startswith('function call: get_weather({"city":"Paris"}) id=call_')


async def test_error_goes_to_stderr_with_nonzero_exit(proxy_factory, fake):
    """The upstream refuses: the proxy's Error reaches stderr, and the exit status says so."""
    fake.reject_status = 500
    proxy = await proxy_factory()
    result = await run_chat("--url", proxy.url, "--text", "Hello")
    assert result.returncode == 1
    assert "error: UPSTREAM_UNAVAILABLE" in result.stderr.decode()
    assert result.stdout.decode() == ""


async def test_token_and_rejection(proxy_factory, fake):
    proxy = await proxy_factory(auth_tokens=("chat-token",))
    refused = await run_chat("--url", proxy.url, "--text", "Hello")
    assert refused.returncode == 2 and "HTTP 401" in refused.stderr.decode()
    assert fake.handshakes == 0
    accepted = await run_chat("--url", proxy.url, "--token", "chat-token", "--text", "Hello")
    assert accepted.returncode == 0, accepted.stderr.decode()
    assert accepted.stdout.decode().splitlines()[-1] == f"assistant: {DEFAULT_REPLY}"


async def test_nothing_listening_is_a_connection_failure():
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        result = await run_chat("--url", f"ws://127.0.0.1:{port}/openai", "--text", "Hello")
    assert result.returncode == 2
    assert "cannot connect" in result.stderr.decode()
