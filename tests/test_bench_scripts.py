"""The benchmark scripts still run against today's publisher, on tiny inputs. Their figures are not
looked at here (speed is measured by running them by hand, never by tests): a script that stops
at a refusal the product learned since (bench/digest.py once did, for digest.postal_address)
would otherwise be found only when someone wants a figure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

CASES = {
    "build": (["--sizes", "20", "--runs", "1", "--folder", "{tmp}/build"], "cold build"),
    "digest": (["--subscribers", "20", "--runs", "1"], "median:"),
    "serve": (
        ["--client", "python", "--requests", "200", "--repeat", "1", "--duration", "0.5"],
        "304 vs 200",
    ),
    "daemon": (
        ["--articles", "20", "--drops", "2", "--stamina", "3", "--idle", "0.5", "--dir", "{tmp}/daemon"],
        "exit status after SIGTERM: 0",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_bench_script_runs_to_its_summary(name: str, tmp_path: Path) -> None:
    args, summary = CASES[name]
    command = [sys.executable, str(BENCH / f"{name}.py"), *(a.format(tmp=tmp_path) for a in args)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary in done.stdout, done.stdout + done.stderr
