"""End to end: `python -m proxy` as a real process against the in-process fake upstream."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import trio

from proxy.testing import DEFAULT_AUDIO, DEFAULT_REPLY, FakeRealtime, open_agent_client

from .conftest import TEST_KEY
from .oracles import validate_deepgram_server_message, validate_openai_client_event

LISTENING = re.compile(r"listening on (ws://[0-9.]+:(\d+)(/[^\"\s]*))")


class Daemon:
    """A running `python -m proxy`; its stderr is drained continuously into `stderr`."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.stderr = ""
        self._changed = trio.Event()

    async def drain(self) -> None:
        assert self.process.stderr is not None
        async for chunk in self.process.stderr:
            self.stderr += chunk.decode(errors="replace")
            self._changed.set()
            self._changed = trio.Event()
        self._changed.set()

    async def listening(self) -> re.Match:
        while (match := LISTENING.search(self.stderr)) is None:
            assert self.process.returncode is None, f"the proxy exited early:\n{self.stderr}"
            await self._changed.wait()
        return match

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await self.process.wait()


async def start_daemon(nursery: trio.Nursery, args: list[str], environ: dict[str, str], cwd) -> Daemon:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "LOG_LEVEL"))}
    env.update(environ)
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "proxy", *args], env=env, cwd=str(cwd), stderr=subprocess.PIPE
    )
    daemon = Daemon(process)
    nursery.start_soon(daemon.drain)
    return daemon


async def text_turn(url: str) -> list[str]:
    async with open_agent_client(url, validate=validate_deepgram_server_message) as client:
        await client.next("Welcome")
        await client.settings()
        await client.next("SettingsApplied")
        await client.send({"type": "InjectUserMessage", "content": "Is anyone there?"})
        await client.next("LatencyReport")  # the last message of a turn
        assert client.messages("ConversationText")[-1]["content"] == DEFAULT_REPLY
        assert client.audio == DEFAULT_AUDIO
        assert client.validation_errors == []
        return client.types()


async def run_turn_against(nursery, fake, args, environ, cwd) -> tuple[Daemon, re.Match]:
    daemon = await start_daemon(nursery, args, environ, cwd)
    try:
        with trio.fail_after(10):
            match = await daemon.listening()
            types = await text_turn(f"ws://127.0.0.1:{match.group(2)}{match.group(3)}")
            assert types[-2:] == ["AgentAudioDone", "LatencyReport"]
            upstream = await fake.next_connection()
            assert upstream.headers["authorization"] == f"Bearer {TEST_KEY}"  # P1.5
            assert upstream.validation_errors == []
            assert await upstream.wait_closed() == 1000  # P2.5
            assert await daemon.stop() == 0  # P2.6: a clean exit
    finally:
        if daemon.process.returncode is None:
            daemon.process.kill()
            with trio.move_on_after(5):
                await daemon.process.wait()
    assert TEST_KEY not in daemon.stderr  # P1.5: never in a log line
    return daemon, match


async def test_daemon_serves_a_text_turn(nursery, tmp_path):
    fake = FakeRealtime(api_key=TEST_KEY, validate=validate_openai_client_event)
    await nursery.start(fake.serve)
    _, match = await run_turn_against(
        nursery,
        fake,
        ["--port", "0"],
        {"OPENAI_API_KEY": TEST_KEY, "OPENAI_REALTIME_URL": fake.url, "OPENAI_PROXY_SHUTDOWN_GRACE_S": "1"},
        tmp_path,
    )
    assert match.group(1).startswith("ws://127.0.0.1:") and match.group(3) == "/openai"
    assert int(match.group(2)) > 0  # the bound port, not 0


async def test_daemon_flags_beat_environment_and_env_file_is_read(nursery, tmp_path):
    fake = FakeRealtime(api_key=TEST_KEY, validate=validate_openai_client_event)
    await nursery.start(fake.serve)
    # The key comes only from ./.env; the environment names a dead upstream and
    # another path, both overridden by flags.
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={TEST_KEY}\nOPENAI_PROXY_PATH=/from-file\n")
    _, match = await run_turn_against(
        nursery,
        fake,
        ["--host", "127.0.0.1", "--port", "0", "--path", "/voice", "--upstream-url", fake.url],
        {"OPENAI_REALTIME_URL": "ws://127.0.0.1:9/dead", "OPENAI_PROXY_PATH": "/from-env",
         "OPENAI_PROXY_SHUTDOWN_GRACE_S": "1"},
        tmp_path,
    )
    assert match.group(3) == "/voice"
