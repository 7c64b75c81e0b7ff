"""Steering (issue 17): pause → paused, resume → in progress, approve → the next task.

Run: ``python -m bench.steering``.

Each latency is timed from the call (``ex.pause()``, ``ex.resume()``, ``ex.approve()``) to the
moment the change is committed to the history, as ``lab.service.on_change`` sees it (what a view
shows): the phase EXECUTION_PAUSED, EXECUTION_IN_PROGRESS again, the task after the approval task
started.

- pause and resume: ``BENCH_STEERING_PAUSES`` cycles (default 30) over 3 executions of a loop of
  ``call`` tasks (a registered async function that takes ``BENCH_STEERING_TASK_MS``, default 50),
  each pause at a random moment, most often while a task runs: the run stops once it ends. Not a
  loop of short ``wait`` tasks: a 1-50 ms wait took 100-125 ms median (up to 350 ms) here, and a
  pause would mostly wait for that timer.
- approve: ``BENCH_STEERING_APPROVALS`` executions (default 30) one after another, each waiting on
  an approval task (``wait(until="approval")`` first), then a ``set`` task.
- under load: ``BENCH_STEERING_LOADED`` pause/resume cycles (default 20) on one such loop while
  ``BENCH_STEERING_LOAD`` other executions (default 50) loop over the same task and a
  ``BENCH_STEERING_LOAD_WAIT_MS`` wait (default 3000; 0 for no wait, which saturates this machine).

Baselines in the same lab and run (the machine is shared and noisy): a 1-task execution from
``lab.run`` to COMPLETED, idle and under the load (as in bench.cancel), and the commit lag of the
loops' own task transitions (their time in the run to their commit). The lifecycle log
(``ex.events``, ``ex.updates``) splits each latency into hops.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from bench.common import Stats, env_int, markdown_table, stats, write_result
from bench.workloads import ONE_TASK
from stigmer_nb.lab import Execution, Lab
from stigmer_nb.model import ExecutionPhase
from stigmer_nb.service.subscribers import ExecutionSnapshot
from stigmer_nb.settings import Settings

PAUSES = env_int("BENCH_STEERING_PAUSES", 30)
APPROVALS = env_int("BENCH_STEERING_APPROVALS", 30)
LOADED = env_int("BENCH_STEERING_LOADED", 20)
LOAD = env_int("BENCH_STEERING_LOAD", 50)
BASELINE = env_int("BENCH_STEERING_BASELINE", 20)
TASK_MS = env_int("BENCH_STEERING_TASK_MS", 50)
"""How long each loop task (a registered async function) takes."""
LOAD_WAIT_MS = env_int("BENCH_STEERING_LOAD_WAIT_MS", 3000)
"""Each load execution waits this long after each task (0: a task after another, saturating)."""
LOOPS = 3
"""Executions the idle pause/resume cycles are spread over (one at a time)."""
_CHUNKS = 5
"""Under load, cycles and baseline runs alternate in this many rounds."""

LOOP = """
document: {dsl: '1.0.0', namespace: bench, name: steer-loop, version: '1.0.0'}
do:
  - loop:
      for: {each: i, in: '${ [range(5000)] }'}
      do:
        - step:
            call: tick
"""
LOAD_LOOP = LOOP.replace("steer-loop", "steer-load") + (
    f"        - nap:\n            wait: {{milliseconds: {LOAD_WAIT_MS}}}\n" if LOAD_WAIT_MS else ""
)
APPROVE = """
document: {dsl: 1.0.0, namespace: bench, name: approve-bench, version: 1.0.0}
do:
  - ok:
      listen: {to: {one: {with: {type: ai.stigmer.approval}}}}
      output: {as: '${ .[0] }'}
  - next: {set: {done: true}}
"""
PAUSED, IN_PROGRESS = ExecutionPhase.EXECUTION_PAUSED, ExecutionPhase.EXECUTION_IN_PROGRESS
STARTED = ("WORKFLOW_TASK_IN_PROGRESS", "WORKFLOW_TASK_COMPLETED")


class Watch:
    """Every committed change of one execution, stamped on arrival (perf_counter and wall clock)."""

    def __init__(self, lab: Lab, execution_id: str) -> None:
        self._cond = threading.Condition()
        self._seen: list[tuple[float, float, ExecutionSnapshot]] = []
        self.close: Callable[[], None] = lab.service.on_change(execution_id, self._changed)

    def _changed(self, snapshot: ExecutionSnapshot) -> None:
        stamp = (time.perf_counter(), time.time(), snapshot)  # all the lab's thread does for us
        with self._cond:
            self._seen.append(stamp)
            self._cond.notify_all()

    def first(
        self, after: float, hit: Callable[[ExecutionSnapshot], bool], timeout: float = 60
    ) -> tuple[float, float]:
        """(perf_counter, wall clock) of the first change after ``after`` (perf_counter) that ``hit``s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                self._seen = [s for s in self._seen if s[0] >= after]  # keep memory flat
                for perf, wall, snapshot in self._seen:
                    if hit(snapshot):
                        return perf, wall
                if not self._cond.wait(deadline - time.monotonic()):
                    raise TimeoutError(f"no matching change within {timeout} s")


def _phase(phase: ExecutionPhase) -> Callable[[ExecutionSnapshot], bool]:
    return lambda s: s.record.phase == phase


def _next_started(s: ExecutionSnapshot) -> bool:
    return s.record.phase.terminal or any(t.name == "next" and t.status in STARTED for t in s.tasks)


def _wall(at: pd.Timestamp) -> float:
    return at.timestamp()


def _hops(t0: float, marks: list[tuple[str, float]]) -> dict[str, float]:
    """Seconds from ``t0`` to the first mark, then between consecutive marks (wall clock)."""
    out, last = {}, t0
    for label, at in marks:
        out[label], last = at - last, at
    return out


def _in_progress(executions: list[Execution]) -> None:
    for execution in executions:
        execution.wait(30, until="in_progress")


def _cycles(lab: Lab, execution: Execution, n: int, rng: random.Random) -> list[dict[str, Any]]:
    """``n`` pause → paused → resume → in progress cycles on a running loop, with their hops."""
    watch = Watch(lab, execution.id)
    samples = []
    try:
        for _ in range(n):
            time.sleep(rng.uniform(0.05, 0.15))  # lands at a random moment of a task
            sample: dict[str, Any] = {}
            for verb, phase in (("pause", PAUSED), ("resume", IN_PROGRESS)):
                t0, w0 = time.perf_counter(), time.time()
                getattr(execution, verb)()
                done, wall = watch.first(t0, _phase(phase))
                sample[verb] = {"seconds": done - t0, "t0": w0, "seen": wall}
            samples.append(sample)
    finally:
        watch.close()
    events = execution.events
    kinds = {
        k: events[events.kind == k] for k in ("pause_requested", "paused", "resume_requested", "resumed")
    }
    kinds = {k: v.iloc[len(v) - n :] for k, v in kinds.items()}  # the last n are this call's
    for i, sample in enumerate(samples):
        for verb, asked, reached in (
            ("pause", "pause_requested", "paused"),
            ("resume", "resume_requested", "resumed"),
        ):
            a, r, s = kinds[asked].iloc[i], kinds[reached].iloc[i], sample[verb]
            s["hops"] = _hops(
                s["t0"],
                [
                    ("signal in (call → run's task)", _wall(a.occurred_at)),
                    ("to the task boundary", _wall(r.occurred_at)),
                    ("reported and committed", _wall(r.recorded_at)),
                    ("commit ends, published to on_change", s["seen"]),
                ],
            )
    return samples


def _approve(lab: Lab) -> dict[str, Any]:
    """One approval: from ``approve()`` to the next task's start committed, with its hops."""
    execution = lab.run(APPROVE, input={})
    watch = Watch(lab, execution.id)
    try:
        execution.wait(10, until="approval")
        t0, w0 = time.perf_counter(), time.time()
        execution.approve("bench")
        called = time.time()
        done, wall = watch.first(t0, _next_started)
    finally:
        watch.close()
    execution.wait(30)
    assert execution.phase == "EXECUTION_COMPLETED", execution.phase
    events, updates = execution.events, execution.updates
    given = events[events.kind == "approval_given"].iloc[0]
    started = updates[updates.name == "next"].iloc[0]
    hops = _hops(
        w0,
        [
            ("query, signal in (call → run's task)", _wall(given.occurred_at)),
            ("to the next task's start", _wall(started.occurred_at)),
            ("reported and committed", _wall(started.recorded_at)),
            ("commit ends, published to on_change", wall),
        ],
    )
    hops["(approve() call: query, then signal)"] = called - w0
    return {"seconds": done - t0, "hops": hops}


async def _tick() -> None:
    """The loops' task: an activity that takes ``TASK_MS``."""
    await asyncio.sleep(TASK_MS / 1000)


def _one_task_seconds(lab: Lab) -> float:
    t0 = time.perf_counter()
    lab.run(ONE_TASK, input={"n": 1}).wait(60)
    return time.perf_counter() - t0


def _commit_lag(executions: list[Execution], since: float = 0.0, until: float = float("inf")) -> Stats:
    """occurred_at → recorded_at of the executions' task transitions (within a wall-clock window)."""
    lags = []
    for execution in executions:
        df = execution.updates
        occurred = df.occurred_at.map(_wall)
        keep = (occurred >= since) & (occurred <= until)
        lags += list((df.recorded_at - df.occurred_at)[keep].dt.total_seconds())
    return stats(lags)


def _stop(executions: list[Execution]) -> None:
    for execution in executions:
        execution.terminate()
    for execution in executions:
        execution.wait(60)


def _share(total: int, parts: int, i: int) -> range:
    """Part ``i`` of ``total`` split into ``parts`` nearly equal parts."""
    return range(total // parts + (i < total % parts))


def _hop_medians(hops: list[dict[str, float]]) -> dict[str, float]:
    return {hop: statistics.median(h[hop] for h in hops) for hop in hops[0]}


def main() -> dict[str, Any]:
    rng = random.Random(17)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab.create(Settings.from_env({}, home=Path(tmp) / "lab", durable=False, ui=False))
        lab.register_function("tick", _tick)
        try:
            for _ in range(5):  # warm-up
                _one_task_seconds(lab)
            # Idle: the baseline runs interleaved with the loops, one loop at a time.
            base: list[float] = []
            loops: list[Execution] = []
            cycles: list[dict[str, Any]] = []
            for i in range(LOOPS):
                base += [_one_task_seconds(lab) for _ in _share(BASELINE, LOOPS, i)]
                loops.append(lab.run(LOOP, input={}))
                _in_progress(loops[-1:])
                cycles += _cycles(lab, loops[-1], len(_share(PAUSES, LOOPS, i)), rng)
                _stop(loops[-1:])
            step_lag = _commit_lag(loops)
            approvals = [_approve(lab) for _ in range(APPROVALS)]
            baseline = stats(base)

            load = []
            started = time.perf_counter()
            for i in range(LOAD):  # spread over one wait, or they would all wake at once
                time.sleep(max(0.0, started + i * LOAD_WAIT_MS / 1000 / LOAD - time.perf_counter()))
                load.append(lab.run(LOAD_LOOP, input={}))
            target = lab.run(LOOP, input={})
            _in_progress([*load, target])
            time.sleep(3)  # steady state
            since = time.time()
            loaded_cycles: list[dict[str, Any]] = []
            loaded_base: list[float] = []
            for i in range(_CHUNKS):
                loaded_cycles += _cycles(lab, target, len(_share(LOADED, _CHUNKS, i)), rng)
                loaded_base += [_one_task_seconds(lab) for _ in _share(BASELINE // 2, _CHUNKS, i)]
            until = time.time()
            loaded_baseline = stats(loaded_base)
            _stop([*load, target])
            load_lag = _commit_lag(load, since, until)
            load_rate = load_lag["n"] / (until - since)
        finally:
            lab.stop()

    pause = stats([c["pause"]["seconds"] for c in cycles])
    resume = stats([c["resume"]["seconds"] for c in cycles])
    approve = stats([a["seconds"] for a in approvals])
    loaded_pause = stats([c["pause"]["seconds"] for c in loaded_cycles])
    loaded_resume = stats([c["resume"]["seconds"] for c in loaded_cycles])

    def row(label: str, s: Stats, base: Stats | None) -> dict[str, Any]:
        r: dict[str, Any] = {"measure": label, "n": int(s["n"]), "p50 ms": s["median"] * 1000,
                             "p95 ms": s["p95"] * 1000, "max ms": s["max"] * 1000}  # fmt: skip
        if base is not None:
            r["p50 / baseline p50"] = s["median"] / base["median"]
            r["p95 / baseline p95"] = s["p95"] / base["p95"]
        return r

    rows = [
        row("pause → paused committed", pause, baseline),
        row("resume → in progress committed", resume, baseline),
        row("approve → next task started committed", approve, baseline),
        row("baseline: 1-task run, lab.run to COMPLETED", baseline, None),
        row("a loop's task transition, in the run → committed", step_lag, None),
        row(f"under load ({LOAD} loops): pause → paused", loaded_pause, loaded_baseline),
        row(f"under load ({LOAD} loops): resume → in progress", loaded_resume, loaded_baseline),
        row("under load: baseline 1-task run", loaded_baseline, None),
        row("under load: the load's task transitions, in the run → committed", load_lag, None),
    ]
    hops = {
        "pause": _hop_medians([c["pause"]["hops"] for c in cycles]),
        "resume": _hop_medians([c["resume"]["hops"] for c in cycles]),
        "approve": _hop_medians([a["hops"] for a in approvals]),
        "pause under load": _hop_medians([c["pause"]["hops"] for c in loaded_cycles]),
    }
    write_result(
        "steering",
        {
            "samples": {"pauses": PAUSES, "approvals": APPROVALS, "loaded": LOADED, "load": LOAD},
            "load_wait_ms": LOAD_WAIT_MS,
            "task_ms": TASK_MS,
            "machine_loadavg_1_5_15min": {"before": load_before, "after": os.getloadavg()},
            "pause": pause,
            "resume": resume,
            "approve": approve,
            "baseline": baseline,
            "step_commit_lag": step_lag,
            "loaded_pause": loaded_pause,
            "loaded_resume": loaded_resume,
            "loaded_baseline": loaded_baseline,
            "load_commit_lag": load_lag,
            "load_transitions_per_s": load_rate,
            "hop_medians_ms": {k: {h: v * 1000 for h, v in d.items()} for k, d in hops.items()},
        },
    )
    print("Steering: from the call to the change committed (on_change), same lab and run\n")
    print(markdown_table(rows, list(rows[1])))
    pace = f"a task, then a {LOAD_WAIT_MS} ms wait" if LOAD_WAIT_MS else "one task after another"
    print(f"\nload: {LOAD} loop executions ({pace}), {load_rate:,.0f} task transitions/s committed")
    print(f"machine load average (1 min), before / after: {load_before[0]:.1f} / {os.getloadavg()[0]:.1f}\n")
    print("Where the time goes: median of each hop, ms (wall clock; the run's times are the server's)\n")
    hop_rows = [{"measure": k, "hop": h, "ms": v * 1000} for k, d in hops.items() for h, v in d.items()]
    print(markdown_table(hop_rows, ["measure", "hop", "ms"]))
    return {"pause": pause, "approve": approve, "baseline": baseline, "loaded_pause": loaded_pause}


if __name__ == "__main__":
    main()
