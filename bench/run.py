"""The benchmark: a sweep of session counts through the proxy, and the floor without it.

    python -m bench.run                 # short sweep (under 2 minutes)
    python -m bench.run --long          # long sweep
    python -m bench.run --counts 100 --duration 20 --workers 2
    python -m bench.run --upstream-tls [--client-tls]   # wss:// as deployed

For each session count it starts a fresh fake upstream (`bench.upstream`) and
a fresh proxy (`python -m proxy`, a subprocess like in production), then runs
the load generator (`bench.loadgen`) against it; the floor row runs the same
load straight against the fake upstream. On a machine with two or more CPUs
the proxy is pinned to CPU 0 and the apparatus to CPU 1.

`--upstream-tls` makes the fake upstream serve wss:// (as OpenAI does) with a
certificate made for the run by a throwaway CA, which the proxy is told to
trust (OPENAI_PROXY_UPSTREAM_CA_FILE); `--client-tls` makes the proxy serve
wss:// (OPENAI_PROXY_TLS_CERT_PATH/KEY_PATH) and the load generator connect
with TLS. The floor row uses TLS wherever the proxy row does.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

import attrs

from .common import frames_for, machine_busy_seconds, memory_kib

ROOT = Path(__file__).resolve().parent.parent
SHORT_COUNTS = (1, 10, 50, 100, 150, 200)
SHORT_FLOOR = (1, 100, 200)
LONG_COUNTS = (1, 10, 50, 100, 150, 200, 300)
LONG_FLOOR = (1, 100, 200, 300)


@attrs.define
class Row:
    label: str
    sessions: int
    streaming: int = 0
    up_p50: float = 0.0
    up_p99: float = 0.0
    down_p50: float = 0.0
    down_p99: float = 0.0
    frames_up: int = 0  # audio frames the load generator sent
    frames_down: int = 0  # audio deltas the fake upstream sent
    up_lost: int = 0
    down_lost: int = 0
    errors: dict[str, int] = attrs.Factory(dict)
    cpu_per_session_minute: float | None = None
    proxy_cpu_percent: float | None = None
    idle_rss_mb: float | None = None
    rss_per_session_mb: float | None = None
    apparatus_cpu_percent: float = 0.0
    other_cpu_percent: float = 0.0  # everything else on the machine: noise if high
    load: float = 0.0  # 1-minute load average when the row began (uptime)
    setup_s: float = 0.0


def cpu_plan(workers: int) -> tuple[str, str]:
    """(proxy CPUs, apparatus CPUs) as taskset-style lists; empty = no pinning."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "", ""
    if workers <= 1:
        return str(cpus[0]), str(cpus[1])
    # More than one worker needs every core; the apparatus shares the last one.
    return ",".join(map(str, cpus)), str(cpus[-1])


def percentile(sorted_values: array, fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index] / 1e6  # ns -> ms


def read_latencies(path: str) -> array:
    values = array("q")
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        values.fromfile(file, size // values.itemsize)
    return array("q", sorted(values))


def python_module(module: str, *args: str, cpus: str) -> list[str]:
    command = [sys.executable, "-m", module, *args]
    return pinned(command, cpus)


# `--nice N`: run every process of a row at this scheduling priority (nice(1)).
NICE: int | None = None


def set_group_priority(nice: int) -> int | None:
    """With the kernel's autogroup scheduling, nice only ranks processes of one
    session against each other; other sessions' work (say, test runs in other
    terminals) gets its share whatever our nice. The session's own priority
    is /proc/self/autogroup: set it, and return the old one (None: no autogroup)."""
    try:
        with open("/proc/self/autogroup") as file:
            before = int(file.read().split("nice")[1])
        with open("/proc/self/autogroup", "w") as file:
            file.write(str(nice))
    except (OSError, ValueError, IndexError):
        return None
    return before


def pinned(command: list[str], cpus: str) -> list[str]:
    """`command` run on `cpus` (taskset when there is one; else unpinned), at NICE if set."""
    if cpus and shutil.which("taskset"):
        command = ["taskset", "-c", cpus, *command]
    if NICE is not None:
        command = ["nice", "-n", str(NICE), *command]
    return command


def python_module_tool(tool: str, *args: str, cpus: str) -> list[str]:
    path = Path(sys.executable).with_name(tool)
    return pinned([str(path) if path.exists() else tool, *args], cpus)


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            pids += process_tree(int(child))
    return pids


@attrs.frozen
class Tls:
    """Where TLS is used, and the files of the run's throwaway CA and certificate."""

    upstream: bool = False
    client: bool = False
    ca: str = ""
    cert: str = ""
    key: str = ""

    def suffix(self, floor: bool) -> str:
        """How a row is labelled: which legs are wss:// (the floor has only the upstream one)."""
        legs = [name for name, on in (("up", self.upstream), ("client", self.client and not floor)) if on]
        return f" wss {'+'.join(legs)}" if legs else ""


def make_tls(workdir: str, upstream: bool, client: bool) -> Tls:
    """A CA made for this run and one certificate for 127.0.0.1 (fake upstream and proxy share it)."""
    if not (upstream or client):
        return Tls()
    import trustme  # a dev dependency, like the rest of the bench

    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    ca, cert, key = (os.path.join(workdir, name) for name in ("ca.pem", "cert.pem", "key.pem"))
    authority.cert_pem.write_to_path(ca)
    issued.private_key_pem.write_to_path(key)
    with open(cert, "wb") as out:
        for blob in issued.cert_chain_pems:
            out.write(blob.bytes())
    return Tls(upstream, client, ca, cert, key)


def start_upstream(workdir: str, tag: str, cpus: str, frames: int, tls: Tls) -> tuple[subprocess.Popen, int, str]:
    out = os.path.join(workdir, f"upstream-{tag}.json")
    certificate = ["--cert", tls.cert, "--key", tls.key] if tls.upstream else []
    process = subprocess.Popen(
        python_module("bench.upstream", "--out", out, "--cpus", cpus, "--frames", str(frames), *certificate, cpus=""),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    if not line:
        raise RuntimeError("the fake upstream did not start")
    return process, json.loads(line)["port"], out


PROXY_DIR = ROOT


def start_proxy(
    upstream_port: int, workdir: str, tag: str, cpus: str, workers: int, extra_env: dict[str, str], tls: Tls
) -> tuple[subprocess.Popen, int, str]:
    log_path = os.path.join(workdir, f"proxy-{tag}.log")
    scheme = "wss" if tls.upstream else "ws"
    env = {
        **os.environ,
        "OPENAI_API_KEY": "bench",
        "OPENAI_REALTIME_URL": f"{scheme}://127.0.0.1:{upstream_port}/v1/realtime?model=gpt-realtime",
        "OPENAI_PROXY_PORT": "0",
        "OPENAI_PROXY_WORKERS": str(workers),
    }
    if tls.upstream:
        env["OPENAI_PROXY_UPSTREAM_CA_FILE"] = tls.ca
        # What a checkout from before that setting reads instead (--proxy-dir A/B runs).
        env["SSL_CERT_FILE"] = tls.ca
    if tls.client:
        env["OPENAI_PROXY_TLS_CERT_PATH"] = tls.cert
        env["OPENAI_PROXY_TLS_KEY_PATH"] = tls.key
    env.update(extra_env)
    log_file = open(log_path, "w")
    process = subprocess.Popen(python_module("proxy", cpus=cpus), cwd=PROXY_DIR, env=env, stderr=log_file, stdout=log_file)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = Path(log_path).read_text()
        listening = [line for line in text.splitlines() if "listening on" in line]
        if len(listening) >= max(1, workers):
            port = int(listening[0].split("listening on ")[1].split(":")[2].split("/")[0])
            return process, port, log_path
        if process.poll() is not None:
            raise RuntimeError(f"the proxy exited with {process.returncode}:\n{text[-2000:]}")
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("the proxy did not start listening within 20 s")


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_row(
    sessions: int,
    duration: float,
    *,
    floor: bool,
    workers: int,
    workdir: str,
    extra_env: dict[str, str],
    profile: str | None = None,
    tls: Tls = Tls(),
) -> Row:
    load_average = os.getloadavg()[0]
    proxy_cpus, apparatus_cpus = cpu_plan(workers)
    tag = f"{'floor' if floor else 'proxy'}-{sessions}"
    upstream, upstream_port, upstream_out = start_upstream(workdir, tag, apparatus_cpus, frames_for(duration), tls)
    proxy = None
    try:
        load_out = os.path.join(workdir, f"load-{tag}.json")
        args = ["--sessions", str(sessions), "--duration", str(duration), "--out", load_out, "--cpus", apparatus_cpus,
                "--upstream-pid", str(upstream.pid)]
        idle_kib = 0
        if tls.ca:
            args += ["--ca", tls.ca]
        if floor:
            scheme = "wss" if tls.upstream else "ws"
            args += ["--direct", "--url", f"{scheme}://127.0.0.1:{upstream_port}/v1/realtime"]
        else:
            proxy, port, _log = start_proxy(upstream_port, workdir, tag, proxy_cpus, workers, extra_env, tls)
            time.sleep(0.3)  # let the workers settle before the idle reading
            pids = process_tree(proxy.pid)
            idle_kib = sum(memory_kib(pid)["VmRSS"] for pid in pids)
            scheme = "wss" if tls.client else "ws"
            args += ["--url", f"{scheme}://127.0.0.1:{port}/openai", "--proxy-pids", ",".join(map(str, pids))]
        profiler = None
        if profile and proxy is not None:
            # py-spy samples from outside the proxy (its cost lands on the apparatus CPU).
            profiler = subprocess.Popen(
                python_module_tool("py-spy", "record", "--pid", str(proxy.pid), "--format", "raw", "--rate", "200",
                                   "--output", f"{profile}-{sessions}.txt", cpus=apparatus_cpus),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        subprocess.run(python_module("bench.loadgen", *args, cpus=""), cwd=ROOT, check=True, timeout=duration + 120)
        if profiler is not None:
            stop(profiler, signal.SIGINT)
        peak_kib = 0
        if proxy is not None:
            peak_kib = sum(memory_kib(pid)["VmHWM"] for pid in process_tree(proxy.pid))
    finally:
        if proxy is not None:
            stop(proxy)
        upstream.stdin.close()
        upstream.wait(15)
    load = json.loads(Path(load_out).read_text())
    up = json.loads(Path(upstream_out).read_text())
    up_latency = read_latencies(upstream_out + ".lat")
    down_latency = read_latencies(load_out + ".lat")
    window = load["window_s"] or 1.0
    streaming = load["streaming"]
    row = Row(
        label=("floor" if floor else ("ours" if workers <= 1 else f"ours x{workers}")) + tls.suffix(floor),
        sessions=sessions,
        streaming=streaming,
        up_p50=percentile(up_latency, 0.50),
        up_p99=percentile(up_latency, 0.99),
        down_p50=percentile(down_latency, 0.50),
        down_p99=percentile(down_latency, 0.99),
        frames_up=load["sent"],
        frames_down=up["sent"],
        up_lost=load["sent"] - up["received"],
        down_lost=up["sent"] - load["received"],
        errors=load["errors"] | ({"upstream binary": up["errors"]} if up["errors"] else {}),
        apparatus_cpu_percent=100 * (load["loadgen_cpu_s"] + load["upstream_cpu_s"]) / window,
        setup_s=load["setup_s"],
        load=load_average,
    )
    ours = load["loadgen_cpu_s"] + load["upstream_cpu_s"] + load["proxy_cpu_s"]
    row.other_cpu_percent = max(0.0, 100 * (load["machine_busy_s"] - ours) / window)
    if not floor and streaming:
        row.cpu_per_session_minute = load["proxy_cpu_s"] / (streaming * window / 60)
        row.proxy_cpu_percent = 100 * load["proxy_cpu_s"] / window
        row.idle_rss_mb = idle_kib / 1024
        row.rss_per_session_mb = (peak_kib - idle_kib) / 1024 / sessions
    return row


def wait_for_quiet(limit_percent: float, max_wait_s: float) -> float:
    """Wait (up to `max_wait_s`) until the rest of the machine uses under `limit_percent` of a CPU.

    Other work on a two-core machine skews every figure; returns the last reading.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        before = machine_busy_seconds()
        time.sleep(0.5)
        busy = 100 * (machine_busy_seconds() - before) / 0.5
        if busy < limit_percent or time.monotonic() >= deadline:
            return busy
        time.sleep(0.5)


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[Row]) -> str:
    header = (
        "| run | sessions | up p50 ms | up p99 ms | down p50 ms | down p99 ms | lost up/down | errors "
        "| proxy CPU % | CPU-s per session-min | idle RSS MB | RSS MB per session | apparatus CPU % | other CPU % "
        "| load |"
    )
    lines = [header, "|" + "|".join(["---"] * 15) + "|"]
    for row in rows:
        errors = sum(row.errors.values())
        lines.append(
            f"| {row.label} | {row.sessions} | {fmt(row.up_p50)} | {fmt(row.up_p99)} | {fmt(row.down_p50)} "
            f"| {fmt(row.down_p99)} | {row.up_lost}/{row.down_lost} | {errors} | {fmt(row.proxy_cpu_percent, 0)} "
            f"| {fmt(row.cpu_per_session_minute, 3)} | {fmt(row.idle_rss_mb, 1)} | {fmt(row.rss_per_session_mb, 3)} "
            f"| {fmt(row.apparatus_cpu_percent, 0)} | {fmt(row.other_cpu_percent, 0)} | {fmt(row.load)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the proxy under live-paced voice sessions.")
    parser.add_argument("--long", action="store_true", help="the long sweep (more counts, 30 s each)")
    parser.add_argument("--counts", default=None, help="session counts, comma-separated")
    parser.add_argument("--floor-counts", default=None, help="session counts for the floor (no proxy); 'none' to skip")
    parser.add_argument("--duration", type=float, default=None, help="seconds of audio per session")
    parser.add_argument("--workers", type=int, default=1, help="proxy worker processes (OPENAI_PROXY_WORKERS)")
    parser.add_argument("--env", action="append", default=[], help="extra NAME=VALUE for the proxy")
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    parser.add_argument("--profile", default=None, help="py-spy the proxy; writes PREFIX-<sessions>.txt (raw)")
    parser.add_argument("--quiet-wait", type=float, default=0.0,
                        help="before each row wait up to this many seconds for the machine to be idle")
    parser.add_argument("--proxy-dir", default=None, help="run the proxy from this checkout (A/B comparisons)")
    parser.add_argument("--upstream-tls", action="store_true", help="the fake upstream serves wss:// (as OpenAI does)")
    parser.add_argument("--client-tls", action="store_true", help="the proxy serves wss:// to the load generator")
    parser.add_argument("--nice", type=int, default=None,
                        help="run the proxy and the apparatus at this priority (negative needs root): on a "
                             "machine shared with other work they then get their CPU first")
    args = parser.parse_args(argv)
    if args.nice is not None:
        global NICE
        NICE = args.nice
        group_priority_before = set_group_priority(args.nice)
        if group_priority_before is not None:
            atexit.register(set_group_priority, group_priority_before)  # the shell's session gets it back
    if args.proxy_dir:
        global PROXY_DIR
        PROXY_DIR = Path(args.proxy_dir).resolve()
    counts = [int(c) for c in args.counts.split(",")] if args.counts else list(LONG_COUNTS if args.long else SHORT_COUNTS)
    if args.floor_counts == "none":
        floor_counts: list[int] = []
    elif args.floor_counts:
        floor_counts = [int(c) for c in args.floor_counts.split(",")]
    else:
        floor_counts = [c for c in (LONG_FLOOR if args.long else SHORT_FLOOR) if args.counts is None or c in counts]
    duration = args.duration or (30.0 if args.long else 5.0)
    extra_env = dict(item.split("=", 1) for item in args.env)
    proxy_cpus, apparatus_cpus = cpu_plan(args.workers)
    print(
        f"# {duration:g} s of audio per session; proxy CPUs [{proxy_cpus or 'any'}], apparatus CPUs "
        f"[{apparatus_cpus or 'any'}], workers {args.workers}; TLS: upstream {'on' if args.upstream_tls else 'off'}, "
        f"client {'on' if args.client_tls else 'off'}; nice {args.nice}; load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as workdir:
        tls = make_tls(workdir, args.upstream_tls, args.client_tls)
        plan = [(count, False) for count in counts] + [(count, True) for count in floor_counts]
        for count, floor in plan:
            if args.quiet_wait:
                wait_for_quiet(15.0, args.quiet_wait)
            row = run_row(count, duration, floor=floor, workers=args.workers, workdir=workdir, extra_env=extra_env,
                          profile=None if floor else args.profile, tls=tls)
            rows.append(row)
            errors = f" errors {row.errors}" if row.errors else ""
            print(
                f"{row.label:>8} {count:>4} sessions: up p99 {fmt(row.up_p99)} ms, down p99 {fmt(row.down_p99)} ms, "
                f"lost {row.up_lost}/{row.down_lost}, CPU-s/session-min {fmt(row.cpu_per_session_minute, 3)}, "
                f"apparatus CPU {fmt(row.apparatus_cpu_percent, 0)}%, other {fmt(row.other_cpu_percent, 0)}%, "
                f"load {fmt(row.load)}{errors}",
                flush=True,
            )
    print()
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps([attrs.asdict(row) for row in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
