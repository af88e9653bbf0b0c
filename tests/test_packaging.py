"""Packaging (issue 13): the console script, --version, licence metadata, and
what `make proxy` installs (runtime dependencies only) versus `make test`."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_dry_run(target: str, tmp_path: Path) -> str:
    """The commands `make TARGET` would run on a machine with no venv yet (nothing is run)."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", target, f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
    )
    return result.stdout


def test_console_script_and_version():
    script = Path(sys.executable).parent / "openai-realtime-proxy"
    assert script.exists(), "the console script is not installed"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"openai-realtime-proxy {metadata.version('openai-realtime-proxy')}"
    module = subprocess.run([sys.executable, "-m", "proxy", "--version"], capture_output=True, text=True, timeout=20)
    assert module.stdout == result.stdout


def test_licence_file_and_metadata():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    meta = metadata.metadata("openai-realtime-proxy")
    assert meta["License-Expression"] == "MIT"
    assert "LICENSE" in (meta.get_all("License-File") or [])
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {metadata.version('openai-realtime-proxy')}" in changelog


def test_make_proxy_installs_runtime_dependencies_only(tmp_path):
    """`make proxy` on a fresh machine: a venv and `pip install -e .`, no dev (test) extras."""
    commands = make_dry_run("proxy", tmp_path)
    installs = [line for line in commands.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs and all("[dev]" not in line for line in installs), commands
    assert re.search(r"pip install --quiet -e \.$", installs[0], re.M), installs
    assert "-m venv" in commands and "-m proxy" in commands


def test_make_test_installs_the_dev_extras(tmp_path):
    commands = make_dry_run("test", tmp_path)
    assert "-m venv" in commands
    assert "pip install --quiet -e '.[dev]'" in commands
    assert "-m pytest" in commands


def test_help_cites_no_rule_the_user_cannot_look_up():
    """--help may name rule numbers only together with where they are written down (docs/protocol.md)."""
    help_text = subprocess.run(
        [sys.executable, "-m", "proxy", "--help"], capture_output=True, text=True, timeout=20
    ).stdout
    assert re.search(r"\bP\d\.\d+", help_text)  # the numbers stay, so the code comments mean something
    assert "docs/protocol.md" in help_text
    protocol = (ROOT / "docs" / "protocol.md").read_text()
    cited = set(re.findall(r"\bP\d\.\d+\b", help_text + (ROOT / "README.md").read_text()))
    missing = sorted(rule for rule in cited if not re.search(rf"^- \*\*{re.escape(rule)}\b", protocol, re.M))
    assert not missing, f"cited but not in docs/protocol.md: {missing}"
