"""The benchmark harness still runs (issue 6). No timing is asserted: only that
it reports a row through the proxy and a floor row, with every stamped frame
arriving in both directions and no error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_bench(tmp_path: Path, *args: str) -> tuple[list[dict], str]:
    """`python -m bench.run ARGS --json FILE`; its rows and what it printed."""
    out = tmp_path / "rows.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", *args, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=90
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()), result.stdout


def test_bench_smoke_reports_rows(tmp_path: Path) -> None:
    rows, stdout = run_bench(tmp_path, "--counts", "3", "--floor-counts", "3", "--duration", "2")
    assert [(row["label"], row["sessions"]) for row in rows] == [("ours", 3), ("floor", 3)]
    for row in rows:
        assert row["streaming"] == 3, row
        assert row["errors"] == {}, row
        assert row["frames_up"] == 3 * 100 and row["frames_down"] > 0, row  # 2 s of 20 ms frames each
        assert (row["up_lost"], row["down_lost"]) == (0, 0), row  # the stamp survived the proxy both ways
    assert rows[0]["cpu_per_session_minute"] is not None
    assert "| ours | 3 |" in stdout and "| floor | 3 |" in stdout


def test_bench_smoke_tls_rows(tmp_path: Path) -> None:
    """Issue 9: `--upstream-tls --client-tls` run the same rows over wss:// (a CA made for the run)."""
    rows, _ = run_bench(tmp_path, "--counts", "2", "--floor-counts", "2", "--duration", "1", "--upstream-tls", "--client-tls")
    assert [(row["label"], row["sessions"]) for row in rows] == [("ours wss up+client", 2), ("floor wss up", 2)]
    for row in rows:
        assert row["streaming"] == 2 and row["errors"] == {}, row
        assert row["frames_up"] == 2 * 50 and row["frames_down"] > 0, row
        assert (row["up_lost"], row["down_lost"]) == (0, 0), row
