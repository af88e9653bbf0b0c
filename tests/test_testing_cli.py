"""The fake upstream as users meet it: the README's snippet as written, and `python -m proxy.testing`."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import trio

from proxy.config import Config
from proxy.server import ProxyServer
from proxy.testing import open_agent_client

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_fake_snippet() -> str:
    """The README's Python block that uses FakeRealtime, dedented as a user would paste it."""
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```", README.read_text(), flags=re.S | re.M)
    matching = [textwrap.dedent(body) for _, body in blocks if "FakeRealtime(" in body]
    assert len(matching) == 1, "README.md should hold exactly one FakeRealtime example"
    return matching[0]


async def test_readme_snippet_runs_as_written_and_gets_one_response():
    """Issue 13: the snippet answered by hand must not also get the default responder's reply."""
    with trio.fail_after(30):
        result = await trio.run_process(
            [sys.executable, "-c", readme_fake_snippet()], capture_stdout=True, capture_stderr=True, check=False
        )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip().splitlines()[-1] == "['Hello', 'Hi!']"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_python_m_proxy_testing_serves_on_the_given_port(nursery):
    port = free_port()
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "proxy.testing", "--port", str(port), "--api-key", "sk-manual-test"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        with trio.fail_after(20):
            line = b""
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(1)
                assert chunk, "python -m proxy.testing exited before printing its URL"
                line += chunk
            name, _, url = line.decode().strip().partition("=")
            assert name == "OPENAI_REALTIME_URL"
            assert url == f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
            config = Config(api_key="sk-manual-test", port=0, upstream_url=url)
            server = await nursery.start(ProxyServer(config).serve)
            async with open_agent_client(f"ws://127.0.0.1:{server.port}/openai") as client:
                await client.settings()
                await client.next("SettingsApplied")
                await client.send({"type": "InjectUserMessage", "content": "ping"})
                await client.next("AgentAudioDone")
                reply = client.messages("ConversationText")[-1]
                assert reply["role"] == "assistant" and reply["content"].startswith('You said: "ping".')
                assert client.audio
            # A wrong key is refused, as the real service does: the proxy's client hears why.
            wrong = Config(api_key="sk-wrong", port=0, upstream_url=url)
            other = await nursery.start(ProxyServer(wrong).serve)
            async with open_agent_client(f"ws://127.0.0.1:{other.port}/openai") as client:
                error = await client.next("Error")
                assert error["code"] == "UPSTREAM_UNAUTHORIZED"
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
