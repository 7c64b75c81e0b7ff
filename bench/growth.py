"""Growth (issue 7 item 6): 1-task latency, 10-task throughput and the lab's memory as one history
file grows from 10 to 10,000 recorded executions. They must stay flat: nothing may scan the whole
history per update.

Run: ``python -m bench.growth`` (``BENCH_GROWTH_LEVELS``, default ``10,1000,10000``;
``BENCH_GROWTH_RUNS`` sequential 1-task runs per level, default 20; ``BENCH_GROWTH_CONCURRENT``
10-task runs at once, default 100; ``BENCH_GROWTH_ROUNDS`` throughput rounds, default 2).

Between levels the lab is stopped, the history is pre-filled in a separate process through a
Writer with synthetic executions of
the lab's real ``one-task`` and ``ten-tasks`` workflows (same workflow and instance ids, id, slug and
task-row shapes as real runs, ``bench.synthetic``), so every read the lab does (slug check, task
state loads, views) meets them, and a lab is started afresh on it (with a fresh in-memory server).
The raw two-queue baseline runs on the same server at every level, so the lab/baseline ratio
isolates what the history's growth costs. Memory is the lab process's RSS after the level's runs
(freed heap handed back first).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import env_int, markdown_table, rss_mb, span, stats, write_result
from bench.synthetic import WorkflowRef, fill
from bench.workloads import ONE_TASK, TEN_TASKS, baseline_workers, run_baseline, run_baseline_concurrent
from stigmer_nb.lab import Lab
from stigmer_nb.settings import Settings

LEVELS = [int(x) for x in (os.environ.get("BENCH_GROWTH_LEVELS") or "10,1000,10000").split(",")]
RUNS = env_int("BENCH_GROWTH_RUNS", 20)
CONCURRENT = env_int("BENCH_GROWTH_CONCURRENT", 100)
ROUNDS = env_int("BENCH_GROWTH_ROUNDS", 2)
TOLERANCE = 1.2
"""'Flat', on this noisy machine: largest-level figure within 20% of the smallest-level one."""


def _count(lab: Lab) -> int:
    return int(lab.store.rows("SELECT count(*) FROM workflow_executions")[0][0])


def _duckdb_mb(lab: Lab) -> float:
    """What DuckDB's buffer manager holds for the history (``duckdb_memory()``), in MiB."""
    return float(lab.store.rows("SELECT sum(memory_usage_bytes) FROM duckdb_memory()")[0][0] or 0) / 2**20


def _measure(lab: Lab, queues: tuple[str, str]) -> dict[str, Any]:
    loop = lab._check()
    wf_q, act_q = queues
    assert lab.server is not None
    gc.collect()
    rss_before, server_rss = rss_mb(trim=True), rss_mb(lab.server.pid)
    latency, baseline = [], []
    for i in range(RUNS):
        for kind in ("baseline", "lab") if i % 2 else ("lab", "baseline"):
            t0 = time.perf_counter()
            if kind == "lab":
                e = lab.run(ONE_TASK, input={"n": i}).wait(60)
                assert e.phase == "EXECUTION_COMPLETED", e.error
                latency.append(time.perf_counter() - t0)
            else:
                loop.call(run_baseline(lab.client, wf_q, act_q, i))
                baseline.append(time.perf_counter() - t0)
    rates, base_rates = [], []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            executions = list(pool.map(lambda i: lab.run(TEN_TASKS, input={"n": i}), range(CONCURRENT)))
        for e in executions:
            e.wait(600)
        rates.append(CONCURRENT / (time.perf_counter() - t0))
        assert all(e.phase == "EXECUTION_COMPLETED" for e in executions)
        base_rates.append(
            CONCURRENT / loop.call(run_baseline_concurrent(lab.client, wf_q, act_q, CONCURRENT))
        )
    gc.collect()
    return {
        "latency_s": stats(latency),
        "baseline_latency_s": stats(baseline),
        "throughput_per_s": stats(rates),
        "baseline_throughput_per_s": stats(base_rates),
        "rss_mb": rss_before,
        "rss_after_mb": rss_mb(trim=True),
        "server_rss_mb": server_rss,
    }


def _open(settings: Settings) -> tuple[Lab, AsyncExitStack, tuple[str, str]]:
    lab = Lab.create(settings)
    stack = AsyncExitStack()
    return lab, stack, lab._check().call(stack.enter_async_context(baseline_workers(lab.client)))


def _close(lab: Lab, stack: AsyncExitStack) -> None:
    if not lab._stopped:
        lab._check().call(stack.aclose())
    lab.stop()


def _fill_in_child(history: Path, refs: list[WorkflowRef], executions: int, k: int, now: datetime) -> dict:
    """Pre-fill in a separate process: the lab's process never holds the fill's allocations, so
    its memory is what a lab opened on a history of that size uses."""
    spec = {"history": str(history), "refs": [vars(r) for r in refs], "executions": executions,
            "start": (now - timedelta(days=k + 2)).isoformat(),  # each fill in its own past day,
            "end": (now - timedelta(days=k + 1)).isoformat(),    # so synthetic slugs never meet
            "seed": k}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "bench.growth", "--fill", json.dumps(spec)],
        cwd=Path(__file__).parent.parent, capture_output=True, text=True, check=True, timeout=1800,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fill_main(spec: dict[str, Any]) -> None:
    from stigmer_nb.store import HistoryStore

    store = HistoryStore(Path(spec["history"]))
    try:
        t0 = time.perf_counter()
        counts = fill(store, {WorkflowRef(**r): 0.5 for r in spec["refs"]}, executions=spec["executions"],
                      start=datetime.fromisoformat(spec["start"]), end=datetime.fromisoformat(spec["end"]),
                      seed=spec["seed"])  # fmt: skip
        print(json.dumps({**counts, "s": time.perf_counter() - t0}), flush=True)
    finally:
        store.close()


def main() -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="bench-growth-"))
    settings = Settings.from_env({}, home=home, durable=False, ui=False)
    levels: list[dict[str, Any]] = []
    try:
        # Warm-up with real runs: they create the two workflows the synthetic history belongs to.
        lab, stack, queues = _open(settings)
        for i in range(5):
            lab.run(ONE_TASK, input={"n": i}).wait(60)
            lab.run(TEN_TASKS, input={"n": i}).wait(60)
            lab._check().call(run_baseline(lab.client, *queues, i))
        refs = []
        for name in ("one-task", "ten-tasks"):
            wf = lab.service.get_workflow(name)
            assert wf.default_instance_id is not None
            refs.append(WorkflowRef(name, wf.id, wf.default_instance_id, name))
        now = datetime.now(UTC)
        for k, level in enumerate(LEVELS):
            # Every level: a lab freshly started on the history as it now is (its server too).
            have = _count(lab)
            _close(lab, stack)
            filled: dict[str, Any] = {"executions": 0, "task_rows": 0, "s": 0.0}
            if have < level:
                filled = _fill_in_child(settings.history_path, refs, level - have, k, now)
            lab, stack, queues = _open(settings)
            at = _count(lab)
            task_rows = int(lab.store.rows("SELECT count(*) FROM task_updates")[0][0])
            figures = _measure(lab, queues)
            duckdb_mb = _duckdb_mb(lab)
            levels.append(
                {"level": level, "executions": at, "task_rows": task_rows, "prefilled": filled,
                 "duckdb_mb": duckdb_mb, **figures}
            )  # fmt: skip
            print(f"  {at:,} executions: 1-task {figures['latency_s']['median'] * 1000:.0f} ms "
                  f"(baseline {figures['baseline_latency_s']['median'] * 1000:.0f}), "
                  f"{figures['throughput_per_s']['median']:.1f} runs/s "
                  f"(baseline {figures['baseline_throughput_per_s']['median']:.1f}), "
                  f"RSS {figures['rss_after_mb']:.0f} MB", flush=True)  # fmt: skip
        _close(lab, stack)
    finally:
        if not lab._stopped:
            _close(lab, stack)
        shutil.rmtree(home, ignore_errors=True)

    first, last = levels[0], levels[-1]

    def rel(key: str, base_key: str | None = None) -> float:
        value = (
            last[key]["median"] / first[key]["median"]
            if isinstance(last[key], dict)
            else last[key] / first[key]
        )
        if base_key:
            value /= last[base_key]["median"] / first[base_key]["median"]
        return value

    ratios = {
        "duckdb_buffers": last["duckdb_mb"] / first["duckdb_mb"] if first["duckdb_mb"] else float("nan"),
        "latency": rel("latency_s"),
        "latency_vs_baseline": rel("latency_s", "baseline_latency_s"),
        "throughput": rel("throughput_per_s"),
        "throughput_vs_baseline": rel("throughput_per_s", "baseline_throughput_per_s"),
        "rss": rel("rss_after_mb"),
        "rss_delta_mb": last["rss_after_mb"] - first["rss_after_mb"],
    }
    write_result("growth", {"levels": levels, "ratios": ratios,
                            "targets": {"latency_max": TOLERANCE, "throughput_min": 1 / TOLERANCE,
                                        "rss_max": TOLERANCE}})  # fmt: skip
    rows = [
        {
            "executions in history": f"{lv['executions']:,} ({lv['task_rows']:,} task rows)",
            "1-task ms, median (range)": span(lv["latency_s"], 1000),
            "baseline ms": lv["baseline_latency_s"]["median"] * 1000,
            f"10-task runs/s ({CONCURRENT} at once)": span(lv["throughput_per_s"]),
            "baseline runs/s": lv["baseline_throughput_per_s"]["median"],
            "lab RSS MB, started / after the runs": f"{lv['rss_mb']:.0f} / {lv['rss_after_mb']:.0f}",
            "DuckDB buffers MB": lv["duckdb_mb"],
            "server RSS MB": lv["server_rss_mb"],
        }
        for lv in levels
    ]
    print(
        f"\n{RUNS} sequential 1-task runs and {ROUNDS} rounds of {CONCURRENT} concurrent 10-task runs per level\n"
    )
    print(markdown_table(rows, list(rows[0])))
    summary = [
        {"largest / smallest": "1-task latency (median)", "ratio": ratios["latency"],
         "normalised by the baseline": ratios["latency_vs_baseline"], "target": f"≤ {TOLERANCE}"},
        {"largest / smallest": "10-task throughput", "ratio": ratios["throughput"],
         "normalised by the baseline": ratios["throughput_vs_baseline"], "target": f"≥ {1 / TOLERANCE:.2f}"},
        {"largest / smallest": f"lab RSS after the runs ({ratios['rss_delta_mb']:+.0f} MB)",
         "ratio": ratios["rss"], "normalised by the baseline": "", "target": f"≤ {TOLERANCE}"},
        {"largest / smallest": "DuckDB buffer memory", "ratio": ratios["duckdb_buffers"],
         "normalised by the baseline": "", "target": ""},
    ]  # fmt: skip
    print()
    print(markdown_table(summary, ["largest / smallest", "ratio", "normalised by the baseline", "target"]))
    return {"levels": levels, "ratios": ratios}


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--fill":
        _fill_main(json.loads(sys.argv[2]))
        sys.exit(0)
    main()
    sys.stdout.flush()
    os._exit(0)  # temporalio's bridge may abort at interpreter shutdown (sdk-python#300)
