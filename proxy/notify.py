"""systemd's service notification protocol (sd_notify), for `Type=notify` units.

The protocol is one datagram of newline-separated `KEY=value` assignments to
the Unix socket named by `$NOTIFY_SOCKET` (a leading `@` means the abstract
namespace). Outside systemd the variable is unset and every call is a no-op,
so the proxy runs the same under a terminal, a container or a unit.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import trio


class Notifier:
    """Tells the service manager about readiness, shutdown and liveness."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        # Only Unix sockets: an absolute path or an abstract name.
        self.address: str | None = address if address[:1] in ("/", "\0") else None
        self.watchdog_interval_s = _watchdog_interval(environ)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send one datagram, e.g. `notify("READY=1", "STATUS=serving")`; False if not sent.

        Never raises: a service manager that went away must not take the
        proxy down with it.
        """
        if self.address is None:
            return False
        payload = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, self.address)
        except OSError:
            return False
        return True

    async def watchdog(self) -> None:
        """Send `WATCHDOG=1` at half the manager's `WatchdogSec=` until cancelled.

        The pings come from the event loop itself, so a stuck loop stops them
        and systemd restarts the service, which is the point.
        """
        if self.watchdog_interval_s is None or self.address is None:
            return
        while True:
            self.notify("WATCHDOG=1")
            await trio.sleep(self.watchdog_interval_s)


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of `$WATCHDOG_USEC` (as sd_watchdog_enabled advises), if it is meant for this process."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    return usec / 2_000_000
