"""Running under systemd: the unit file verifies, and the notify protocol is spoken.

The notify tests play the service manager: they bind the datagram socket that
`$NOTIFY_SOCKET` names and read what the proxy sends.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from proxy.notify import Notifier

from .daemon import running_proxy

ROOT = Path(__file__).resolve().parent.parent


def render_unit(out: Path) -> str:
    """Render the unit through the Makefile target that `make install-service` uses."""
    subprocess.run(
        ["make", "--no-print-directory", "-s", "render-service", f"SERVICE_OUT={out}",
         f"SERVICE_PYTHON={sys.executable}", f"ENV_FILE={out.parent / 'proxy.env'}"],
        cwd=ROOT, check=True, timeout=30,
    )
    return out.read_text()


def test_rendered_unit_has_real_paths_and_the_promised_settings(tmp_path):
    unit = render_unit(tmp_path / "openai-proxy.service")
    assert not re.search(r"@[A-Z_]+@", unit), "a template placeholder was left"
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
    )
    assert settings["Type"] == "notify"
    assert settings["NotifyAccess"] == "main"  # with workers the parent notifies for the set (issue 13)
    assert settings["ExecStart"] == f"{sys.executable} -m proxy"
    assert settings["EnvironmentFile"] == str(tmp_path / "proxy.env")
    assert settings["Restart"] == "on-failure"
    assert settings["RestartPreventExitStatus"] == "2"  # issue 13: a configuration error is not restarted
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["ProtectHome"] in ("yes", "read-only", "tmpfs")
    assert settings["PrivateTmp"] == "yes"
    assert settings["DynamicUser"] == "yes" or settings.get("User")
    assert settings["WatchdogSec"]
    # The stop timeout must leave room for the default drain grace (P2.6).
    assert float(settings["TimeoutStopSec"]) > 10


def test_render_service_without_service_out_writes_to_stdout_only(tmp_path):
    """Issue 13: "no install, no root": without SERVICE_OUT nothing is written under SERVICE_DIR."""
    target_dir = tmp_path / "systemd"
    target_dir.mkdir()
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", "render-service", f"SERVICE_DIR={target_dir}",
         f"SERVICE_PYTHON={sys.executable}"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# systemd unit for the proxy")
    assert f"ExecStart={sys.executable} -m proxy" in result.stdout
    assert list(target_dir.iterdir()) == []


def test_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (Debian package: systemd); unit not verified")
    (tmp_path / "proxy.env").write_text("OPENAI_API_KEY=sk-test\n")
    unit = tmp_path / "openai-proxy.service"
    render_unit(unit)
    result = subprocess.run(
        [tool, "verify", str(unit)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    # verify exits 0 on mere warnings; any line about our unit is a defect.
    ours = [line for line in (result.stdout + result.stderr).splitlines() if unit.name in line]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


async def receive(sock: trio.socket.SocketType) -> dict[str, str]:
    data = await sock.recv(4096)
    return dict(line.split("=", 1) for line in data.decode().splitlines())


async def test_ready_then_stopping_over_notify_socket(fake, tmp_path):
    """READY=1 once the listener is bound (connectable then), STOPPING=1 at SIGTERM, exit 0."""
    path = tmp_path / "notify.sock"
    with trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        await sock.bind(str(path))
        with trio.fail_after(15):
            async with running_proxy(fake.url, env={"NOTIFY_SOCKET": str(path)}, wait_ready=False) as daemon:
                ready = await receive(sock)
                assert ready["READY"] == "1"
                assert "listening on ws://127.0.0.1:" in ready["STATUS"]
                # Ready means bound: a client connects right away.
                port = int(ready["STATUS"].rsplit(":", 1)[1].split("/")[0])
                with socket.create_connection(("127.0.0.1", port), timeout=5):
                    pass
                daemon.signal(signal.SIGTERM)
                stopping = await receive(sock)
                assert stopping["STOPPING"] == "1"
                assert await daemon.wait() == 0


async def test_watchdog_pings(fake, tmp_path):
    """With WATCHDOG_USEC set, WATCHDOG=1 arrives at about half that interval."""
    path = tmp_path / "notify.sock"
    with trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        await sock.bind(str(path))
        with trio.fail_after(15):
            env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"}
            async with running_proxy(fake.url, env=env, wait_ready=False) as daemon:
                messages = [await receive(sock) for _ in range(4)]
                assert messages[0].get("READY") == "1"
                assert sum(message.get("WATCHDOG") == "1" for message in messages) >= 3
                daemon.signal(signal.SIGTERM)
                assert await daemon.wait() == 0


async def test_notifier_abstract_socket_and_unset():
    """`@name` is the abstract namespace; without NOTIFY_SOCKET nothing is sent and nothing fails."""
    assert Notifier({}).notify("READY=1") is False
    name = f"proxy-test-{os.getpid()}"
    with trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        await sock.bind("\0" + name)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).notify("READY=1", "STATUS=x")
        with trio.fail_after(5):
            assert await receive(sock) == {"READY": "1", "STATUS": "x"}
    # The manager went away: no exception.
    assert Notifier({"NOTIFY_SOCKET": "@" + name}).notify("READY=1") is False


def test_watchdog_interval_is_half_and_for_this_process_only():
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000"}).watchdog_interval_s == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_interval_s == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_interval_s is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval_s is None
    assert Notifier({}).watchdog_interval_s is None


def test_make_install_service(tmp_path):
    """`make install-service` writes the rendered unit where asked and reloads systemd."""
    env_file = tmp_path / "proxy.env"
    reloads = tmp_path / "reloads"
    fake_systemctl = tmp_path / "systemctl"
    fake_systemctl.write_text(f'#!/bin/sh\necho "$@" >> {reloads}\n')
    fake_systemctl.chmod(0o755)
    command = ["make", "--no-print-directory", "-s", "install-service", f"SERVICE_DIR={tmp_path}",
               f"ENV_FILE={env_file}", f"SYSTEMCTL={fake_systemctl}", f"SERVICE_PYTHON={sys.executable}"]
    missing = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "is missing" in missing.stdout + missing.stderr
    env_file.write_text("OPENAI_API_KEY=sk-test\n")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    unit = (tmp_path / "openai-proxy.service").read_text()
    assert f"ExecStart={sys.executable} -m proxy" in unit
    assert f"EnvironmentFile={env_file}" in unit
    assert f"BindReadOnlyPaths={ROOT}" in unit
    assert reloads.read_text().split() == ["daemon-reload"]
    assert "systemctl enable --now openai-proxy" in result.stdout


def test_systemd_analyze_security_exposure(tmp_path):
    """The hardening holds up in systemd's own scoring (0 = locked down, 10 = exposed)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (Debian package: systemd); hardening not scored")
    unit = tmp_path / "openai-proxy.service"
    render_unit(unit)
    result = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(unit)], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0 and "offline" in result.stderr:
        pytest.skip(f"this systemd-analyze cannot score a unit file offline: {result.stderr.strip()}")
    last = result.stdout.strip().splitlines()[-1]
    assert "Overall exposure level" in last, result.stdout + result.stderr
    exposure = float(last.split(":")[1].split()[0])
    assert exposure <= 2.0, last
