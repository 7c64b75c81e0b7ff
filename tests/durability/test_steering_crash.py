"""A lab SIGKILLed while a run is paused and another awaits approval: both are steered after restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import stigmer_nb

pytestmark = pytest.mark.integration


def test_paused_and_awaiting_runs_survive_a_sigkill(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.durability.lab_steer_child", str(home)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(proc.stderr.read() if proc.stderr else "child died")
        ids = json.loads(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    lab = stigmer_nb.start(home=home, ui=False)
    try:
        assert set(lab.recovered["resumed"]) == {ids["paused"], ids["waiting"]}
        paused, waiting = lab.execution(ids["paused"]), lab.execution(ids["waiting"])
        assert paused.phase == "EXECUTION_PAUSED"
        pending = lab.pending_approvals()
        assert list(pending["execution_id"]) == [waiting.id]
        assert pending["prompt"][0] == "Carry on after the crash?"
        waiting.approve("yes, after the crash")
        paused.resume()
        assert paused.wait(60).phase == "EXECUTION_COMPLETED", paused.error
        assert paused.output == {"step": 2}
        assert waiting.wait(60).output == {"approved": True, "comment": "yes, after the crash"}
        for execution in (paused, waiting):
            updates = execution.updates
            assert updates.groupby(["task_id", "status"]).size().max() == 1
            seqs = list(execution.events["seq"].dropna()) + list(updates["seq"])
            assert len(seqs) == len(set(seqs)), execution.events  # one row per progress event
        assert list(paused.events["kind"]) == [
            "started", "pause_requested", "paused", "resume_requested", "resumed", "completed",
        ]  # fmt: skip
    finally:
        lab.stop()
