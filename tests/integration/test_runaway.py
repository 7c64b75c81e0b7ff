"""Runaway documents: each fails its execution with one "Limit exceeded" problem within seconds,
can be cancelled within 2 s, and leaves the lab able to run the next document."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from stigmer_nb.lab import Lab

pytestmark = pytest.mark.integration

HEAD = "document: {dsl: '1.0.0', namespace: hostile, name: runaway, version: '1.0.0'}\n"
GOOD = HEAD + "do:\n  - a:\n      set: {ok: true}\n"

RUNAWAYS = {
    # jq builds a 10^8-item array: in-process this held the GIL for minutes and took > 16 GB.
    "huge for.in with while true": (
        HEAD
        + "do:\n  - loop:\n      for: {each: i, in: '${ [range(100000000)] }'}\n"
        + "      while: '${ true }'\n      do:\n        - s:\n            set: {x: 1}\n",
        "ran longer than",
    ),
    "a task that jumps to itself": (
        HEAD + "do:\n  - a:\n      set: {x: 1}\n      then: a\n",
        "jumped to 'a'",
    ),
    "for over a million items": (
        HEAD + "do:\n  - loop:\n      for: {each: i, in: '${ 1000000 }'}\n      do:\n"
        "        - s:\n            set: {x: 1}\n",
        "1,000,000 items",
    ),
    "an expression that never returns": (
        HEAD + "do:\n  - a:\n      set: '${ def f: f; f }'\n",
        "ran longer than",
    ),
    "an expression with a huge result": (
        HEAD + "do:\n  - a:\n      set: '${ \"0123456789\" * 300000 }'\n",
        "bytes of JSON",
    ),
    "nested loops past the task-run budget": (
        HEAD
        + "do:\n  - outer:\n      for: {each: i, in: '${ 100 }'}\n      do:\n"
        + "        - inner:\n            for: {each: j, in: '${ 100 }'}\n            do:\n"
        + "              - s:\n                  set: {x: 1}\n",
        "task runs",
    ),
    "a workflow that runs itself": (
        HEAD
        + "do:\n  - again:\n      run:\n        workflow: {namespace: hostile, name: runaway, version: '1.0.0'}\n",
        "nests",
    ),
    "try cannot swallow a limit": (
        HEAD + "do:\n  - guard:\n      try:\n        - a:\n            set: {x: 1}\n            then: a\n"
        "      catch:\n        do:\n          - b:\n              set: {caught: true}\n",
        "jumped to 'a'",
    ),
}


@pytest.fixture
def small_lab(lab_factory: Callable[..., Lab]) -> Lab:
    # Smaller budgets than the defaults keep each case to a second or two.
    return lab_factory(max_task_runs=3_000, max_jumps=500)


@pytest.mark.parametrize("case", list(RUNAWAYS), ids=list(RUNAWAYS))
def test_runaway_fails_cleanly_and_the_lab_goes_on(small_lab: Lab, case: str) -> None:
    document, expected = RUNAWAYS[case]
    started = time.monotonic()
    run = small_lab.run(document).wait(timeout=60)
    took = time.monotonic() - started
    assert run.phase == "EXECUTION_FAILED", run.error
    error = run.error or {}
    assert error.get("title") == "Limit exceeded", error
    assert expected in str(error.get("detail")), error
    assert "caught" not in str(run.output)
    assert took < 30, f"{case} took {took:.1f}s to give up"
    # The lab is not stalled: the next document completes promptly.
    nxt = small_lab.run(GOOD).wait(timeout=20)
    assert nxt.phase == "EXECUTION_COMPLETED" and nxt.output == {"ok": True}


def test_an_endless_loop_is_cancelled_within_two_seconds(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(max_task_runs=10**9, max_jumps=10**9)
    loop = (
        HEAD
        + "do:\n  - a:\n      set: {n: '${ (.n // 0) + 1 }'}\n  - b:\n      set: '${ . }'\n      then: a\n"
    )
    run = lab.run(loop)
    # Wait until it is really looping: task rows keep arriving.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(run.updates) < 300:
        time.sleep(0.1)
    assert len(run.updates) >= 300, "the loop made no visible progress"
    asked = time.monotonic()
    run.cancel().wait(timeout=10)
    assert run.phase == "EXECUTION_CANCELLED"
    assert time.monotonic() - asked < 2.0
    assert lab.run(GOOD).wait(timeout=20).phase == "EXECUTION_COMPLETED"


def test_progress_is_visible_while_a_long_loop_runs(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory()
    doc = (
        HEAD
        + "do:\n  - loop:\n      for: {each: i, in: '${ 3000 }'}\n      do:\n        - s:\n            set: {x: '${ $i }'}\n"
    )
    run = lab.run(doc)
    seen = 0
    deadline = time.monotonic() + 60
    while not run.done and time.monotonic() < deadline:
        seen = max(seen, 0 if run.done else len(run.updates))
        time.sleep(0.05)
    run.wait(timeout=60)
    assert run.phase == "EXECUTION_COMPLETED"
    assert seen > 0, "no transition reached the history before the run ended"


def test_validation_runs_off_the_lab_loop(
    lab_factory: Callable[..., Lab], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Validating may wait on jq evaluators (a compile up to jq_timeout each): on the lab's loop
    # that wait would stall both workers.
    import asyncio
    import threading

    lab = lab_factory()
    seen: list[threading.Thread] = []
    prepare = Lab.prepare

    def spying(self: Lab, doc: object) -> object:
        seen.append(threading.current_thread())
        return prepare(self, doc)  # type: ignore[arg-type]

    monkeypatch.setattr(Lab, "prepare", spying)
    assert lab.run(GOOD).wait(20).phase == "EXECUTION_COMPLETED"
    assert asyncio.run(lab.arun(GOOD)).wait(20).phase == "EXECUTION_COMPLETED"
    loop_thread = lab._check().thread
    assert len(seen) == 2 and all(t is not loop_thread for t in seen)
