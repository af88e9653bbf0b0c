"""The playground in a real browser (issue 13, "Talk to it in a browser").

Debian's chromium with a fake microphone playing a WAV made here, driven by
selenium through Debian's chromedriver (nothing is downloaded). Against
`python -m proxy --demo` with tokens on: the page asks for the token and
sends it as Deepgram's browser clients do (P2.7, P2.9), a spoken turn and a
typed turn complete, the agent's audio is played to the last sample, and
the console stays free of errors.
"""

from __future__ import annotations

import shutil
import tempfile
import wave
from pathlib import Path

import numpy as np
import pytest
import trio

from proxy.testing.offline import synthesize

from .daemon import running_proxy

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them with apt-get)",
)

TOKEN = "playground-test-token-0123456789abcdef"
MIC_RATE = 48000


def fake_microphone(path: Path) -> Path:
    """A second of quiet, about 1.5 s of 'speech' (the offline agent's own voice), then quiet.

    The file starts when the page opens the microphone, and the page sends
    nothing before SettingsApplied: the lead keeps the speech after that.
    """
    speech = np.frombuffer(synthesize("hello there this is a spoken turn", rate=MIC_RATE), dtype="<i2")
    quiet = np.zeros(MIC_RATE // 2, dtype="<i2")
    lead = np.zeros(MIC_RATE, dtype="<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(MIC_RATE)
        out.writeframes(np.concatenate([lead, speech, quiet, quiet, quiet, quiet]).tobytes())
    return path


def open_browser(profile: str, wav: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop",
        "--autoplay-policy=no-user-gesture-required", "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _explained(until, state):
    def wrapped(condition, message):
        from selenium.common.exceptions import TimeoutException

        try:
            return until(condition)
        except TimeoutException:
            raise AssertionError(f"{message}; the page's state: {state()}") from None

    return wrapped


STATE = """const p = window.playground; return {
  ready: p.ready, done: p.agentAudioDone, sent: p.sentFrames, received: p.receivedSamples,
  played: p.playedSamples, conversation: p.conversation, errors: p.errors, latencies: p.latencies,
  protocol: p.ws && p.ws.protocol, mode: document.getElementById('mode').textContent};"""


def converse(url: str, wav: Path, screenshot: Path) -> tuple[dict, list[dict]]:
    """Drive one spoken and one typed turn; returns the page's state and the console log."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory(prefix="playground-chromium-") as profile:
        driver = open_browser(profile, wav)
        try:
            state = lambda: driver.execute_script(STATE)  # noqa: E731
            wait = WebDriverWait(driver, 25, poll_frequency=0.1)
            driver.get(url)
            # A failed wait says where it stopped, with what the page saw so far.
            wait.until = _explained(wait.until, state)
            wait.until(lambda _: driver.find_element(By.ID, "token").is_displayed(), "the page never asked for a token")
            driver.find_element(By.ID, "token").send_keys(TOKEN)
            driver.find_element(By.ID, "start").click()
            wait.until(lambda _: state()["done"] >= 1, "the spoken turn got no reply")
            driver.find_element(By.ID, "text").send_keys("Hello from the browser")
            driver.find_element(By.ID, "send").click()
            wait.until(lambda _: state()["done"] >= 2, "the typed turn got no reply")
            # Audio plays in real time after it arrived: wait for its last sample.
            wait.until(
                lambda _: state()["received"] and state()["played"] == state()["received"],
                "the agent's audio was not played to its last sample",
            )
            driver.save_screenshot(str(screenshot))
            return state(), driver.get_log("browser")
        finally:
            driver.quit()


async def test_spoken_and_typed_turns_in_chromium(tmp_path):
    wav = fake_microphone(tmp_path / "mic.wav")
    screenshot = tmp_path / "playground.png"
    with trio.fail_after(60):
        async with running_proxy(
            "ws://127.0.0.1:9/unused", "--demo", env={"OPENAI_PROXY_AUTH_TOKENS": TOKEN}
        ) as daemon:
            page = daemon.url.replace("ws://", "http://").rsplit("/", 1)[0] + "/"
            state, console = await trio.to_thread.run_sync(converse, page, wav, screenshot)
            assert "offline demo" in daemon.stderr
    print(f"playground screenshot: {screenshot}")
    assert state["mode"].startswith("Offline demo")
    assert state["protocol"] == "token"  # P2.9: the first offered subprotocol is selected
    conversation = [(turn["role"], turn["content"]) for turn in state["conversation"]]
    assert len(conversation) == 4, conversation
    (user_1, spoken), (agent_1, reply_1), (user_2, typed), (agent_2, reply_2) = conversation
    assert (user_1, agent_1, user_2, agent_2) == ("user", "assistant", "user", "assistant")
    assert spoken.startswith("(spoken turn of ") and reply_1.startswith("I heard you speak for ")
    assert typed == "Hello from the browser" and reply_2.startswith('You said: "Hello from the browser".')
    assert state["errors"] == []
    assert state["sent"] > 50  # the microphone streamed (20 ms frames)
    assert state["played"] == state["received"] > MIC_RATE // 2
    assert len(state["latencies"]) == 2 and all(entry["total"] is not None for entry in state["latencies"])
    problems = [entry for entry in console if entry["level"] in ("SEVERE", "WARNING")]
    assert problems == [], problems
