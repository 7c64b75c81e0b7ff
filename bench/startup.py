"""Start-up (issue 7 item 1): ``stigmer_nb.start()`` to both sides ready, cold and warm, against a
bare ``WorkflowEnvironment.start_local`` plus three plain workers.

Run: ``python -m bench.startup``. Every sample runs in a fresh child process so imports and
first-time costs count: the child times from before its first heavy import to ready (cold), then
stops and starts again in the same process on the same home (warm). Variants are interleaved
round by round so each sees the same machine. ``BENCH_STARTUP_REPEATS`` (child processes per
variant, default 5) and ``BENCH_STARTUP_WARM`` (warm starts per child, default 3) scale it.
"""

# Only the standard library at module level: the child's clock starts before the heavy imports.
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPEATS = int(os.environ.get("BENCH_STARTUP_REPEATS") or 5)
GAP = 1.0
"""Seconds between the cold start and the first run: a notebook's next cell."""
WARM = int(os.environ.get("BENCH_STARTUP_WARM") or 3)
CHILD_TIMEOUT = 240.0

VARIANTS: dict[str, dict[str, Any]] = {
    "stigmer_nb default": {},
    "stigmer_nb ui=False": {"ui": False},
    "stigmer_nb ui=False durable=False": {"ui": False, "durable": False},
}
"""Our starts, by label: the options passed to ``stigmer_nb.start``."""
BASELINE = "bare WorkflowEnvironment + 3 workers"
TARGET = 1.3


# --- the child process --------------------------------------------------------------------------


def _child_lab(t0: float, home: Path, options: dict[str, Any], warm: int) -> dict[str, Any]:
    import stigmer_nb  # lazy: start() launches the server, then imports the rest while it boots

    imports = time.perf_counter() - t0
    lab = stigmer_nb.start(home=home, **options)
    cold = time.perf_counter() - t0
    time.sleep(GAP)
    t = time.perf_counter()
    lab.run("document: {dsl: '1.0.0', namespace: bench, name: first, version: '1.0.0'}\n"
            "do:\n  - only:\n      set: {n: 1}\n").wait(60)  # fmt: skip
    first = time.perf_counter() - t
    lab.stop()
    warms = []
    for _ in range(warm):
        t = time.perf_counter()
        lab = stigmer_nb.start(home=home, **options)
        warms.append(time.perf_counter() - t)
        lab.stop()
    return {"imports_s": imports, "cold_s": cold, "warm_s": warms, "first_run_s": first}


def _child_baseline(t0: float, warm: int) -> dict[str, Any]:
    import asyncio
    from contextlib import AsyncExitStack

    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import UnsandboxedWorkflowRunner, Worker

    from bench.baseline import BaselineWorkflow, baseline_activity

    imports = time.perf_counter() - t0
    binary = str(Path(sys.executable).parent / "temporal")

    async def start() -> tuple[WorkflowEnvironment, AsyncExitStack]:
        env = await WorkflowEnvironment.start_local(dev_server_existing_path=binary)
        stack = AsyncExitStack()
        runner = UnsandboxedWorkflowRunner()
        # The lab's three: a workflow worker, an activity worker, a workflow + activities worker.
        for worker in (
            Worker(env.client, task_queue="bl-wf", workflows=[BaselineWorkflow], workflow_runner=runner),
            Worker(env.client, task_queue="bl-act", activities=[baseline_activity]),
            Worker(env.client, task_queue="bl-both", workflows=[BaselineWorkflow],
                   activities=[baseline_activity], workflow_runner=runner),
        ):  # fmt: skip
            await stack.enter_async_context(worker)
        return env, stack

    async def stop(env: WorkflowEnvironment, stack: AsyncExitStack) -> None:
        await stack.aclose()
        await env.shutdown()

    async def main() -> dict[str, Any]:
        env, stack = await start()
        cold = time.perf_counter() - t0
        await asyncio.sleep(GAP)
        t = time.perf_counter()
        await env.client.execute_workflow(BaselineWorkflow.run, ["bl-act", 0], id="first", task_queue="bl-wf")
        first = time.perf_counter() - t
        await stop(env, stack)
        warms = []
        for _ in range(warm):
            t = time.perf_counter()
            env, stack = await start()
            warms.append(time.perf_counter() - t)
            await stop(env, stack)
        return {"imports_s": imports, "cold_s": cold, "warm_s": warms, "first_run_s": first}

    return asyncio.run(main())


def _child(variant: str, home: Path, warm: int) -> None:
    t0 = time.perf_counter()
    if variant == BASELINE:
        result = _child_baseline(t0, warm)
    else:
        result = _child_lab(t0, home, VARIANTS[variant], warm)
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)  # temporalio's bridge may abort at interpreter shutdown (sdk-python#300)


# --- the parent ---------------------------------------------------------------------------------


BYTECODE = os.environ.get("BENCH_STARTUP_BYTECODE", "1") != "0"
"""Children use cached bytecode, as an installed package does. This environment sets
PYTHONDONTWRITEBYTECODE, under which every import of the (editable) package compiles its source;
``BENCH_STARTUP_BYTECODE=0`` measures that instead."""


def _clean_env(pycache: Path) -> dict[str, str]:
    """This environment without settings that would point the lab elsewhere; bytecode cached under
    ``pycache`` (not in the source tree) unless BENCH_STARTUP_BYTECODE=0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "STIGMER_NB_"))}
    if BYTECODE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _prime(env: dict[str, str]) -> None:
    """One untimed import of everything the children import, so the bytecode cache is filled."""
    code = (
        "import stigmer_nb.lab, stigmer_nb.widgets.ui, temporalio.testing, temporalio.worker, bench.baseline\n"
        "from temporalio.worker._worker import load_default_build_id; load_default_build_id()"
    )
    subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).parent.parent, env=env, check=True, timeout=300
    )


def _kill_leftovers(proc: subprocess.Popen[str], home: Path) -> None:
    """After a child timed out: its process group, and a lab server it started in its own session."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)
    pid_file = home / "temporal.pid"
    try:
        pid = int(json.loads(pid_file.read_text())["pid"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        if "start-dev" in cmdline:
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, KeyError):
        pass


def _run_child(variant: str, home: Path, env: dict[str, str]) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.startup", "--child", variant, str(home), str(WARM)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args,
        cwd=Path(__file__).parent.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # one group to kill if it hangs
    )
    try:
        out, err = proc.communicate(timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_leftovers(proc, home)
        raise RuntimeError(f"{variant}: no result within {CHILD_TIMEOUT:g}s") from None
    wall = time.perf_counter() - t0
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"{variant}: child exited {proc.returncode} without a result: {err[-2000:]}")
    return {**json.loads(lines[-1].removeprefix("RESULT ")), "process_wall_s": wall}


def main() -> dict[str, Any]:
    from bench.common import markdown_table, span, stats, write_result

    root = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    env = _clean_env(root / "pycache")
    if BYTECODE:
        _prime(env)
    labels = [*VARIANTS, BASELINE]
    cold: dict[str, list[float]] = {v: [] for v in labels}
    warm: dict[str, list[float]] = {v: [] for v in labels}
    imports: dict[str, list[float]] = {v: [] for v in labels}
    first: dict[str, list[float]] = {v: [] for v in labels}
    for r in range(REPEATS):
        order = labels[r % len(labels) :] + labels[: r % len(labels)]  # rotate who goes first
        for variant in order:
            sample = _run_child(variant, root / f"r{r}-v{labels.index(variant)}", env)
            cold[variant].append(sample["cold_s"])
            warm[variant].extend(sample["warm_s"])
            imports[variant].append(sample["imports_s"])
            first[variant].append(sample["first_run_s"])
            print(f"  round {r + 1}/{REPEATS} {variant}: cold {sample['cold_s']:.2f}s, "
                  f"warm {', '.join(f'{w:.2f}' for w in sample['warm_s'])}s", flush=True)  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)
    figures = {
        v: {
            "cold_s": stats(cold[v]),
            "warm_s": stats(warm[v]),
            "cold_imports_s": stats(imports[v]),
            "first_run_s": stats(first[v]),
        }
        for v in labels
    }
    base = figures[BASELINE]
    ratios = {
        v: {
            "cold": figures[v]["cold_s"]["median"] / base["cold_s"]["median"],
            "warm": figures[v]["warm_s"]["median"] / base["warm_s"]["median"],
        }
        for v in VARIANTS
    }
    rows = []
    for v in labels:
        row: dict[str, Any] = {
            "start": v,
            "cold (s), median (range)": span(figures[v]["cold_s"]),
            "imports before start() (s)": figures[v]["cold_imports_s"]["median"],
            "warm (s), median (range)": span(figures[v]["warm_s"]),
            "first run 1 s later (ms)": span(figures[v]["first_run_s"], 1000),
        }
        if v in ratios:
            row["cold ratio (≤ 1.3)"] = ratios[v]["cold"]
            row["warm ratio (≤ 1.3)"] = ratios[v]["warm"]
        rows.append(row)
    write_result(
        "startup",
        {
            "repeats": REPEATS,
            "bytecode_cached": BYTECODE,
            "warm_per_process": WARM,
            "figures": figures,
            "ratios": ratios,
            "samples": {"cold_s": cold, "warm_s": warm, "cold_imports_s": imports, "first_run_s": first},
            "targets": {"ratio": TARGET},
            "notes": [
                "cold: one sample per fresh process, timed from before the first heavy import to ready",
                "warm: later starts in the same process after stop(), on the same home",
                f"first run: a 1-task run (ours) or the baseline workflow, {GAP:g} s after the cold start",
                "the baseline server keeps state in memory and serves no UI; "
                "stigmer_nb default keeps state in <home>/temporal.db and serves the UI",
            ],
        },
    )
    columns = ["start", "cold (s), median (range)", "imports before start() (s)", "warm (s), median (range)",
               "cold ratio (≤ 1.3)", "warm ratio (≤ 1.3)", "first run 1 s later (ms)"]  # fmt: skip
    cache = "cached bytecode" if BYTECODE else "no bytecode cache (PYTHONDONTWRITEBYTECODE)"
    print(f"\n{REPEATS} fresh processes per start, {WARM} warm starts in each, {cache}\n")
    print(markdown_table(rows, columns))
    return {"figures": figures, "ratios": ratios}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
    main()
    sys.stdout.flush()
    os._exit(0)
