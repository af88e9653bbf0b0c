"""The parent of `--workers N`: it owns systemd's notify protocol and keeps N workers alive.

systemd accepts `WATCHDOG=1` only from the process named by `$WATCHDOG_PID`,
the main process, which with N workers is this parent. So the parent speaks
for the whole set:

- `READY=1` once every worker has said it listens (all of its listeners,
  admin included, are bound);
- `WATCHDOG=1` at half of `WatchdogSec=` only while every worker's event
  loop answers: each worker writes a heartbeat byte to its own pipe from a
  Trio task, so a worker whose loop hangs goes quiet, the parent stops
  pinging, and systemd restarts the service;
- `STOPPING=1` when SIGTERM/SIGINT arrives, forwarded to every worker, which
  then drains (P2.6).

A worker that dies after it was ready is started again in its slot (the
first slot keeps the admin listener). One that dies before it was ready
(a port already taken) cannot be helped by a restart: the others are
stopped and the parent exits with its status, as do too many restarts in a
short time.

The parent runs no event loop of its own: `select` on the heartbeat pipes and
a signal wake-up pipe, with plain `os.fork`, because forking a process that
runs Trio would leave the child inside the parent's run.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from collections.abc import Callable

import attrs

from .notify import Notifier

log = logging.getLogger("proxy")

READY, BEAT = b"R", b"H"
# Restarts allowed within RESTART_WINDOW_S before the parent gives up (a crash
# loop is better handled by the supervisor above, with its back-off).
MAX_RESTARTS, RESTART_WINDOW_S = 5, 60.0
# Without a watchdog the heartbeats still run (they carry readiness); this often.
DEFAULT_BEAT_S = 1.0


def beat_interval(watchdog_interval_s: float | None) -> float:
    """How often a worker beats: four beats per watchdog ping, at most one a second."""
    if watchdog_interval_s is None:
        return DEFAULT_BEAT_S
    return min(DEFAULT_BEAT_S, watchdog_interval_s / 4)


@attrs.define
class Slot:
    index: int
    pid: int
    beats: int  # read end of this worker's heartbeat pipe (-1 once closed)
    started: float
    ready: bool = False
    last_beat: float = 0.0


@attrs.define
class Supervisor:
    """Forks `count` workers with `start(index, beat_fd)` and supervises them until they all end."""

    count: int
    start: Callable[[int, int], int]  # in the child: serve, return the exit status
    notifier: Notifier
    status_text: str = ""  # what STATUS= says once ready
    slots: dict[int, Slot] = attrs.Factory(dict)  # pid -> slot
    stopping: bool = False
    restarts: list[float] = attrs.Factory(list)
    exit_status: int = 0
    _announced: bool = False
    _wake_read: int = -1
    _wake_write: int = -1

    def run(self) -> int:
        self._wake_read, self._wake_write = os.pipe()
        for fd in (self._wake_read, self._wake_write):
            os.set_blocking(fd, False)
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        old_wakeup = signal.set_wakeup_fd(self._wake_write)
        try:
            for index in range(self.count):
                self._fork(index)
            self._loop()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for slot in self.slots.values():
                _close(slot.beats)
            os.close(self._wake_read)
            os.close(self._wake_write)
        return self.exit_status

    # ------------------------------------------------------------ the loop

    def _loop(self) -> None:
        interval = self.notifier.watchdog_interval_s
        next_ping = time.monotonic()
        while self.slots:
            now = time.monotonic()
            timeout = max(0.0, next_ping - now) if interval is not None and self._announced else 1.0
            fds = [self._wake_read, *(slot.beats for slot in self.slots.values() if slot.beats >= 0)]
            readable, _, _ = select.select(fds, [], [], timeout)
            now = time.monotonic()
            for fd in readable:
                if fd == self._wake_read:
                    self._drain_wakeups()
                else:
                    self._read_beats(fd, now)
            self._reap(now)
            if not self._announced and not self.stopping and self.slots and all(s.ready for s in self.slots.values()):
                self._announced = True
                log.info(f"started {self.count} workers", extra={"workers": self.count})
                self.notifier.notify("READY=1", f"STATUS={self.status_text}")
            if interval is not None and self._announced and now >= next_ping:
                next_ping = now + interval
                quiet = [s.index for s in self.slots.values() if now - s.last_beat > interval]
                if not quiet and not self.stopping:
                    self.notifier.notify("WATCHDOG=1")
                elif quiet and not self.stopping:
                    log.warning("a worker stopped answering; not feeding the watchdog", extra={"worker": quiet[0]})

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGCHLD:
            return  # the wake-up byte is what matters; _reap runs each turn
        if not self.stopping:
            self.stopping = True
            name = signal.Signals(signum).name
            log.info("shutting down workers", extra={"reason": name, "workers": len(self.slots)})
            self.notifier.notify("STOPPING=1", f"STATUS=draining after {name}")
        self._terminate_all()

    def _terminate_all(self) -> None:
        for pid in list(self.slots):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_read, 512):
                pass
        except BlockingIOError:
            pass

    def _read_beats(self, fd: int, now: float) -> None:
        slot = next((s for s in self.slots.values() if s.beats == fd), None)
        if slot is None:
            return
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        if not data:  # the worker closed its end: it is exiting; _reap will see it
            _close(fd)
            slot.beats = -1
            return
        slot.last_beat = now
        if READY in data and not slot.ready:
            slot.ready = True

    def _reap(self, now: float) -> None:
        while self.slots:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.slots.pop(pid, None)
            if slot is None:
                continue
            _close(slot.beats)
            code = os.waitstatus_to_exitcode(wait_status)
            if self.stopping:
                if code != 0:
                    self.exit_status = self.exit_status or (code if code > 0 else 1)
                continue
            self._lost(slot, code, now)

    def _lost(self, slot: Slot, code: int, now: float) -> None:
        """A worker ended while nobody asked it to."""
        extra = {"worker": slot.index, "status": code}
        self.restarts = [at for at in self.restarts if now - at < RESTART_WINDOW_S]
        if not slot.ready or len(self.restarts) >= MAX_RESTARTS:
            why = "before it was ready" if not slot.ready else f"{MAX_RESTARTS} restarts within {RESTART_WINDOW_S:g} s"
            log.error(f"worker exited {why}; stopping the others", extra=extra)
            self.exit_status = code if code > 0 else 1
            self.stopping = True
            self._terminate_all()
            return
        log.error("worker exited; starting it again", extra=extra)
        self.restarts.append(now)
        self._fork(slot.index)

    def _fork(self, index: int) -> None:
        beats_read, beats_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                os.close(beats_read)
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                for fd in (self._wake_read, self._wake_write, *(s.beats for s in self.slots.values())):
                    _close(fd)
                os.set_blocking(beats_write, False)
                status = self.start(index, beats_write)
            except BaseException:
                log.exception("worker failed", extra={"worker": index})
            finally:
                logging.shutdown()
                os._exit(status)
        os.close(beats_write)
        os.set_blocking(beats_read, False)
        now = time.monotonic()
        self.slots[pid] = Slot(index, pid, beats_read, started=now, last_beat=now)
        if self.stopping:  # a signal came while forking: this one was not in the slots to be told
            os.kill(pid, signal.SIGTERM)


def _close(fd: int) -> None:
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass
