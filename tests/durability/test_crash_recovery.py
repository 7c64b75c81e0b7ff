"""Temporal's promise, end to end into DuckDB: a killed lab's runs resume on the next start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import stigmer_nb
from stigmer_nb.errors import HomeInUseError
from stigmer_nb.temporal.server import pid_alive

pytestmark = pytest.mark.integration


def start_child(home: Path, runs: int, mode: str = "durable") -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.durability.lab_child", str(home), str(runs), mode],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(proc.stderr.read() if proc.stderr else "child died")
    return proc, json.loads(line)


def test_sigkilled_lab_resumes_in_flight_runs_exactly_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, info = start_child(home, runs=3)
    # While that lab lives, a second one on its home is refused and leaves its server alone.
    with pytest.raises(HomeInUseError, match=rf"{home.resolve()} .*\(PID {proc.pid}\)"):
        stigmer_nb.start(home=home, ui=False)
    assert pid_alive(info["server_pid"])
    assert json.loads((home / "temporal.pid").read_text())["pid"] == info["server_pid"]
    os.kill(proc.pid, signal.SIGKILL)  # mid-run: every execution is between its tasks
    proc.wait(10)
    stale = info["server_pid"]
    assert pid_alive(stale)  # a SIGKILLed parent leaves the dev server running
    started = time.monotonic()
    lab = stigmer_nb.start(home=home, ui=False)
    try:
        assert not pid_alive(stale), "the stale server must be stopped, never attached to"
        for eid in info["ids"]:
            execution = lab.execution(eid).wait(60)
            assert execution.phase == "EXECUTION_COMPLETED", execution.error
            assert execution.output["step"] == 3
        recovery = time.monotonic() - started
        # Exactly one row per transition: 5 tasks x (IN_PROGRESS, COMPLETED), no gaps, no duplicates.
        for eid in info["ids"]:
            updates = lab.execution(eid).updates
            assert len(updates) == 10, updates[["seq", "name", "status"]]
            assert updates.groupby(["task_id", "status"]).size().max() == 1
            seqs = list(updates["seq"])
            assert seqs == list(range(seqs[0], seqs[0] + 10))
        print(f"recovery after SIGKILL: {recovery:.1f}s for {len(info['ids'])} runs")
        assert recovery < 30
    finally:
        lab.stop()


def test_in_memory_server_runs_left_behind_are_marked_failed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, info = start_child(home, runs=2, mode="memory")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    lab = stigmer_nb.start(home=home, durable=False, ui=False)
    try:
        for eid in info["ids"]:
            execution = lab.execution(eid)
            assert execution.phase == "EXECUTION_FAILED"
            assert "durable=False" in execution.error["detail"]
    finally:
        lab.stop()
