"""Hostile input: how long the lab takes to give up on each runaway document, and the memory it took.

Run: ``python -m bench.hostile``.

Each case runs in one lab with the default limits (``Settings``): the time from ``lab.run`` until
the execution is recorded FAILED, the lab process's peak RSS during the case (``VmHWM``, reset
before each case), and the peak RSS of the jq evaluator processes (sampled every 10 ms). Then the
same lab runs a 1-task document, to show it was not left stalled. The baseline, in the same lab
and run: that 1-task document alone (time to COMPLETED, peak RSS). Also timed: cancelling an
endless backward-jump loop (limits raised so only the cancel can stop it), and bad documents and
SQL refused before anything runs.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import markdown_table, peak_rss_mb, reset_peak_rss, rss_mb, write_result
from bench.workloads import ONE_TASK
from stigmer_nb.errors import StigmerError
from stigmer_nb.lab import Lab
from stigmer_nb.settings import Settings

HEAD = "document: {dsl: '1.0.0', namespace: bench, name: hostile, version: '1.0.0'}\n"

RUNAWAYS = {
    "for.in [range(1e8)], while true": HEAD
    + "do:\n  - l:\n      for: {each: i, in: '${ [range(100000000)] }'}\n      while: '${ true }'\n"
    "      do:\n        - s:\n            set: {x: 1}\n",
    "then: jumps to itself": HEAD + "do:\n  - a:\n      set: {x: 1}\n      then: a\n",
    "for over [range(1e6)]": HEAD
    + "do:\n  - l:\n      for: {each: i, in: '${ [range(1000000)] }'}\n      do:\n        - s:\n            set: {x: 1}\n",
    "for over 1e6 (a count)": HEAD
    + "do:\n  - l:\n      for: {each: i, in: '${ 1000000 }'}\n      do:\n        - s:\n            set: {x: 1}\n",
    "jq def f: f; f": HEAD + "do:\n  - a:\n      set: '${ def f: f; f }'\n",
    "jq 3 MB result": HEAD + "do:\n  - a:\n      set: '${ \"0123456789\" * 300000 }'\n",
    "nested for 1000 x 1000": HEAD
    + "do:\n  - o:\n      for: {each: i, in: '${ 1000 }'}\n      do:\n        - n:\n            for: {each: j, in: '${ 1000 }'}\n"
    "            do:\n              - s:\n                  set: {x: 1}\n",
    "run: workflow runs itself": HEAD
    + "do:\n  - again:\n      run:\n        workflow: {namespace: bench, name: hostile, version: '1.0.0'}\n",
}


def _deep(levels: int) -> str:
    task = "{s: {set: {x: 1}}}"
    for _ in range(levels):
        task = "{a: {do: [" + task + "]}}"
    return HEAD + "do: [" + task + "]\n"


DEEP = _deep(2000)
REFUSED = {
    "2,000-deep do": lambda lab: lab.run(DEEP),
    "YAML alias bomb": lambda lab: lab.run(
        HEAD
        + "do:\n  - a:\n      set:\n        "
        + "\n        ".join(
            f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "x"] * 9) + "]" for i in range(9)
        )
        + "\n"
    ),
    'jq "x" * 2e8 (folded to 2 GB while compiling)': lambda lab: lab.run(
        HEAD + "do:\n  - a:\n      set: '${ \"0123456789\" * 200000000 }'\n"
    ),
    "DELETE inside WITH": lambda lab: lab.sql(
        "WITH d AS (DELETE FROM task_updates RETURNING *) SELECT * FROM d"
    ),
    "read_blob of codec.key": lambda lab: lab.sql(
        f"SELECT * FROM read_blob('{Path(lab.settings.home).resolve() / 'codec.key'}')"
    ),
}


def _children_rss_mb() -> float:
    """RSS of this process's jq evaluators."""
    total = 0.0
    me = str(os.getpid())
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[1] == me and b"jqpool" in cmdline:
            total += rss_mb(int(pid))
    return total


class _Sampler:
    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _children_rss_mb())
            self._stop.wait(0.01)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _one(lab: Lab, document: str, *, expect: str) -> dict[str, Any]:
    reset_peak_rss()
    with _Sampler() as sampler:
        t0 = time.perf_counter()
        run = lab.run(document).wait(600)
        took = time.perf_counter() - t0
    assert run.phase == expect, (run.phase, run.error)
    return {
        "seconds": took,
        "lab_peak_mb": peak_rss_mb(),
        "jq_peak_mb": sampler.peak,
        "detail": ((run.error or {}).get("detail") or "")[:90],
    }


def main() -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    lab = Lab.create(Settings.from_env({}, home=home, ui=False, durable=False))
    rows: list[dict[str, Any]] = []
    try:
        lab.run(ONE_TASK).wait(60)  # warm
        base = _one(lab, ONE_TASK, expect="EXECUTION_COMPLETED")
        rows.append({"case": "baseline: 1-task run", **base, "next run": "-"})
        for name, document in RUNAWAYS.items():
            row = _one(lab, document, expect="EXECUTION_FAILED")
            after = time.perf_counter()
            nxt = lab.run(ONE_TASK).wait(60)
            row["next run"] = (
                f"{nxt.phase.removeprefix('EXECUTION_').lower()} in {time.perf_counter() - after:.2f} s"
            )
            row["x baseline time"] = row["seconds"] / base["seconds"]
            row["x baseline peak"] = row["lab_peak_mb"] / base["lab_peak_mb"]
            rows.append({"case": name, **row})
            print(
                f"{name}: {row['seconds']:.2f} s, lab {row['lab_peak_mb']:.0f} MB, jq {row['jq_peak_mb']:.0f} MB",
                flush=True,
            )
        # An endless loop that no limit stops (limits raised): only the cancel does.
        loop_lab = Lab.create(
            Settings.from_env(
                {}, home=home / "loop", ui=False, durable=False, max_jumps=10**9, max_task_runs=10**9
            )
        )
        try:
            run = loop_lab.run(
                HEAD + "do:\n  - a:\n      set: {x: 1}\n  - b:\n      set: {y: 2}\n      then: a\n"
            )
            while len(run.updates) < 500:
                time.sleep(0.05)
            t0 = time.perf_counter()
            run.cancel().wait(30)
            rows.append(
                {
                    "case": "cancel an endless jump loop",
                    "seconds": time.perf_counter() - t0,
                    "detail": run.phase,
                }
            )
        finally:
            loop_lab.stop()
        for name, attempt in REFUSED.items():
            reset_peak_rss()
            t0 = time.perf_counter()
            try:
                attempt(lab)
                outcome = "accepted!"
            except StigmerError as exc:
                outcome = f"{type(exc).__name__}: {str(exc)[:70]}"
            rows.append(
                {
                    "case": name,
                    "seconds": time.perf_counter() - t0,
                    "lab_peak_mb": peak_rss_mb(),
                    "detail": outcome,
                }
            )
    finally:
        lab.stop()
    columns = [
        "case",
        "seconds",
        "x baseline time",
        "lab_peak_mb",
        "x baseline peak",
        "jq_peak_mb",
        "next run",
        "detail",
    ]
    print(markdown_table(rows, columns))
    result = {"rows": rows}
    write_result("hostile", result)
    return result


if __name__ == "__main__":
    main()
