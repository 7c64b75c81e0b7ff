"""jq under limits: runaway expressions stop at their deadline or memory cap, off the GIL, and the
in-process fast path gives the same answers as the evaluator processes."""

from __future__ import annotations

import os
import threading
import time

import pytest

from stigmer_nb.dsl import jqpool
from stigmer_nb.dsl.expressions import (
    ExpressionError,
    ExpressionLimitError,
    JqLimits,
    _bounded,
    evaluate,
)
from stigmer_nb.dsl.jqpool import evaluate_remote

FAST = JqLimits(timeout=0.5, memory_bytes=256 * 1024 * 1024, max_bytes=1024 * 1024)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("[range(100000000)] | length", "ran longer than 0.5 s"),
        ("def f: f; f", "ran longer than 0.5 s"),
        ("last(range(1e12))", "ran longer than 0.5 s"),
        ('"0123456789" * 200000', "bytes of JSON"),
    ],
)
def test_runaway_expressions_stop(expression: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionLimitError, match=message):
        evaluate(expression, None, limits=FAST)
    assert time.monotonic() - started < 3


def test_memory_cap_stops_an_expression_that_allocates() -> None:
    limits = JqLimits(timeout=30, memory_bytes=200 * 1024 * 1024, max_bytes=1024)
    with pytest.raises(ExpressionLimitError, match="more than 200 MB"):
        evaluate("[range(1e9)] | length", None, limits=limits)
    assert evaluate(".a + 1", {"a": 1}) == 2  # the pool recovers


def test_an_evaluation_does_not_hold_the_gil() -> None:
    ticks = 0
    stop = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.01)

    thread = threading.Thread(target=tick)
    thread.start()
    try:
        with pytest.raises(ExpressionLimitError):
            evaluate("def f: f; f", None, limits=JqLimits(timeout=1.0))
    finally:
        stop.set()
        thread.join()
    assert ticks > 40, f"the other thread ran only {ticks} times in a second"


def test_a_timed_out_child_is_killed() -> None:
    jqpool.shutdown()
    with pytest.raises(ExpressionLimitError):
        evaluate("def f: f; f", None, limits=FAST)
    children = [p for p in os.listdir("/proc") if p.isdigit() and _parent(p) == os.getpid()]
    for pid in children:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert b"def f" not in f.read()
    busy = [pid for pid in children if _state(pid) == "R"]
    assert not busy, f"an evaluator still runs: {busy}"


def _parent(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _state(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


@pytest.mark.parametrize(
    "expression",
    [
        ". + {total: (.total + $item)}",
        ".a",
        "$input.x",
        "($context.attempts // 0) + 1",
        "if .a then 1 else 2 end",
        ".[0].text",
        "{a: .b}",
        ".a == 1",
        ".name | ascii_upcase",
        "keys",
        'has("a")',
        ".missing.deeper",
        '(.a | tostring) + "!"',
    ],
)
def test_fast_path_matches_the_evaluator_process(expression: str) -> None:
    assert _bounded(expression)
    data = {"a": 1, "b": [1, 2], "total": 2, "name": "ada", "x": None}
    variables = {"input": {"x": [1, {"y": 2}]}, "context": {}, "item": 3}
    names = tuple(sorted(n for n in variables if f"${n}" in expression))
    value = [data, {n: variables[n] for n in names}] if names else data
    try:
        local: object = evaluate(expression, data, variables)
    except ExpressionError as exc:
        local = exc.message
    try:
        remote = evaluate_remote(expression, names, value, JqLimits())
        expected: object = remote[0] if remote else None
    except jqpool.JqRuntimeError as exc:
        expected = str(exc)
    assert local == expected


@pytest.mark.parametrize(
    "expression",
    [
        ".n * 2",
        ".a - 1",
        "[.[] | .x]",
        "def f: f; f",
        "range(10)",
        ".a = 1",
        '"a\\(.x)"',
        "limit(1; .)",
        '.a | test("x")',
        "..",
        "reduce .[] as $x (0; . + $x)",
        "input",
        "env",
        "@base64",
        "." + " + ." * 200,
    ],
)
def test_fast_path_refuses_what_could_run_away(expression: str) -> None:
    assert not _bounded(expression)


def test_large_inputs_go_out_of_process_and_still_work() -> None:
    big = {"items": list(range(50_000))}
    assert evaluate(".items | length", big) == 50_000


def test_errors_read_the_same_on_both_paths() -> None:
    with pytest.raises(ExpressionError, match=r"Cannot index number"):
        evaluate(".a.b", {"a": 1})  # fast path
    with pytest.raises(ExpressionError, match=r"Cannot index number"):
        evaluate(".a.b * 1", {"a": 1})  # evaluator process
    with pytest.raises(ExpressionError, match="now is not available"):
        evaluate("now", None)


def test_many_short_lived_threads_share_a_few_evaluators() -> None:
    # A child must outlive the thread that started it (PR_SET_PDEATHSIG would kill it with the thread).
    results: list[object] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results.append(evaluate(".n * 2", {"n": i}))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(results) == [i * 2 for i in range(100)]  # type: ignore[type-var]
    assert len(jqpool._pool._idle) + len(jqpool._pool._busy) <= jqpool._MAX_CHILDREN


def test_an_orphaned_runaway_ends_on_its_own(tmp_path: object) -> None:
    import signal
    import subprocess
    import sys

    script = (
        "from stigmer_nb.dsl.expressions import evaluate, JqLimits\n"
        "evaluate('def f: f; f', None, limits=JqLimits(timeout=1.0))\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    child = None
    deadline = time.monotonic() + 10
    while child is None and time.monotonic() < deadline:
        found = [p for p in os.listdir("/proc") if p.isdigit() and _parent(p) == parent.pid]
        child = found[0] if found else None
        time.sleep(0.02)
    assert child is not None, "no evaluator started"
    os.kill(parent.pid, signal.SIGKILL)  # before its deadline: nobody will kill the child now
    parent.wait()
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and _state(child) not in ("?", "Z"):
        time.sleep(0.1)
    assert _state(child) in ("?", "Z"), "the orphaned evaluator is still running"


def test_validation_does_not_build_a_folded_constant_in_this_process() -> None:
    from pathlib import Path

    from stigmer_nb.dsl.parse import parse_workflow
    from stigmer_nb.errors import DSLValidationError

    doc = (
        "document: {dsl: '1.0.0', namespace: t, name: fold, version: '1.0.0'}\n"
        "do:\n  - a:\n      set: '${ \"0123456789\" * 200000000 }'\n"
    )
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here on
    started = time.monotonic()
    with pytest.raises(DSLValidationError, match="compiling it was stopped"):
        parse_workflow(doc)
    assert time.monotonic() - started < 10
    peak_kb = int(
        next(
            ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("VmHWM")
        ).split()[1]
    )
    rss_kb = int(
        next(
            ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("VmRSS")
        ).split()[1]
    )
    assert peak_kb - rss_kb < 200 * 1024, "jq folded the 2 GB string in this process"


def test_evaluators_work_under_an_inherited_hard_memory_limit() -> None:
    # A shell with `ulimit -v` (or a container) sets hard limits a child may not raise again.
    import subprocess
    import sys

    script = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))\n"
        "from stigmer_nb.dsl.expressions import evaluate\n"
        "print(evaluate('.n * 2', {'n': 21}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "42", proc.stderr


def test_an_evaluator_that_cannot_start_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from stigmer_nb.dsl.parse import parse_workflow
    from stigmer_nb.errors import DSLValidationError

    jqpool.shutdown()
    monkeypatch.setattr(jqpool.sys, "executable", "/nonexistent/python")
    with pytest.raises(ExpressionLimitError, match="no jq evaluator process could be started"):
        evaluate(".n * 2", {"n": 1})
    doc = "document: {dsl: '1.0.0', namespace: t, name: s, version: '1.0.0'}\ndo:\n  - a:\n      set: '${ .n * 2 }'\n"
    with pytest.raises(DSLValidationError, match="no jq evaluator process could be started"):
        parse_workflow(doc)
    monkeypatch.undo()
    assert evaluate(".n * 2", {"n": 1}) == 2


def test_a_shutdown_lets_an_evaluation_in_progress_finish() -> None:
    # lab.stop() shuts the pool down; another lab in the same process may be evaluating.
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(evaluate("[range(300000)] | length", None)))
    worker.start()
    time.sleep(0.1)
    jqpool.shutdown()
    worker.join(10)
    assert result == [300000]
    assert not jqpool._pool._idle  # the busy child was stopped when it came back
