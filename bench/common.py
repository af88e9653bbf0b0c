"""What the load generator and the fake upstream share: the stamp, the pacer, /proc readings.

Every audio frame starts with an 18-byte stamp: session number, sequence
number, `time.monotonic_ns()` when it was written, and flags. CLOCK_MONOTONIC
is one clock for every process on a Linux machine, so the receiving process
subtracts the stamp from its own reading and gets one-way latency.
18 bytes is a multiple of 3, so the stamp's base64 is a fixed 24-character
prefix and the rest of the frame's base64 can be computed once.
"""

from __future__ import annotations

import asyncio
import binascii
import os
import struct
import time
from collections.abc import Callable

STAMP = struct.Struct("<IIQH")
STAMP_SIZE = STAMP.size  # 18
STAMP_B64 = 24
LAST = 1  # flag: the sender's last frame of the run

FRAME_MS = 20
FRAME_BYTES = 960  # 20 ms of 24 kHz linear16 mono
FILLER = bytes(range(256)) * 4
FILLER = FILLER[: FRAME_BYTES - STAMP_SIZE]
FILLER_B64 = binascii.b2a_base64(FILLER, newline=False)
SLOTS = FRAME_MS  # one pacing slot per millisecond of the frame period

monotonic_ns = time.monotonic_ns
b2a = binascii.b2a_base64
a2b = binascii.a2b_base64


def frames_for(duration_s: float) -> int:
    return max(2, round(duration_s * 1000 / FRAME_MS))


def stamp(session: int, seq: int, flags: int = 0) -> bytes:
    return STAMP.pack(session, seq, monotonic_ns(), flags)


def stamp_b64(session: int, seq: int, flags: int = 0) -> bytes:
    return b2a(STAMP.pack(session, seq, monotonic_ns(), flags), newline=False)


class Pacer:
    """Calls `tick(slot)` once per millisecond, slot = 0..19, catching up if late.

    Senders are spread over the 20 slots so their frames are spaced out as
    independent live sessions would be, not sent in one burst every 20 ms.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: Callable[[int], None]) -> None:
        self.loop = loop
        self.tick = tick
        self.start_ns = 0
        self.count = 0
        self.running = False
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.running = True
        self.start_ns = monotonic_ns()
        self.count = 0
        self._step()

    def stop(self) -> None:
        self.running = False
        if self._handle is not None:
            self._handle.cancel()

    def _step(self) -> None:
        if not self.running:
            return
        now = monotonic_ns()
        due = (now - self.start_ns) // 1_000_000
        while self.count <= due and self.running:
            self.tick(self.count % SLOTS)
            self.count += 1
        next_ns = self.start_ns + self.count * 1_000_000
        self._handle = self.loop.call_at(self.loop.time() + max(0, next_ns - monotonic_ns()) / 1e9, self._step)


def pin(cpus: set[int] | None) -> None:
    if cpus:
        try:
            os.sched_setaffinity(0, cpus)
        except OSError:
            pass


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` from /proc (fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of `pid`, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":")
                out[name] = int(value.split()[0])
    return out


def machine_busy_seconds() -> float:
    """CPU time every process on the machine spent busy (all CPUs, from /proc/stat)."""
    with open("/proc/stat") as file:
        fields = [int(value) for value in file.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system
