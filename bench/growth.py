"""Growth (issue 7 item 6): 1-task latency, 10-task throughput and the lab's memory as one history
file grows from 10 to 10,000 recorded executions. They must stay flat: nothing may scan the whole
history per update.

Run: ``python -m bench.growth`` (``BENCH_GROWTH_LEVELS``, default ``10,1000,10000``;
``BENCH_GROWTH_RUNS`` sequential 1-task runs per level, default 20; ``BENCH_GROWTH_CONCURRENT``
10-task runs at once, default 100; ``BENCH_GROWTH_ROUNDS`` throughput rounds, default 2).

Between levels the history is pre-filled through the lab's own Writer with synthetic executions of
the lab's real ``one-task`` and ``ten-tasks`` workflows (same workflow and instance ids, id, slug and
task-row shapes as real runs, ``bench.synthetic``), so every read the lab does (slug check, task
state loads, views) meets them. The raw two-queue baseline runs on the same server at every level:
the Temporal server's own state grows only with the real runs, so the lab/baseline ratio isolates
what the history's growth costs.
"""

from __future__ import annotations

import gc
import os
import shutil
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


def main() -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="bench-growth-"))
    lab = Lab.create(Settings.from_env({}, home=home, durable=False, ui=False))
    stack = AsyncExitStack()
    levels: list[dict[str, Any]] = []
    try:
        loop = lab._check()
        queues = loop.call(stack.enter_async_context(baseline_workers(lab.client)))
        # Warm-up with real runs: they create the two workflows the synthetic history belongs to.
        for i in range(5):
            lab.run(ONE_TASK, input={"n": i}).wait(60)
            lab.run(TEN_TASKS, input={"n": i}).wait(60)
            loop.call(run_baseline(lab.client, *queues, i))
        refs = {}
        for name in ("one-task", "ten-tasks"):
            wf = lab.service.get_workflow(name)
            assert wf.default_instance_id is not None
            refs[name] = WorkflowRef(name, wf.id, wf.default_instance_id, name)
        now = datetime.now(UTC)
        for k, level in enumerate(LEVELS):
            gc.collect()
            rss_before_fill = rss_mb(trim=True)
            have = _count(lab)
            filled: dict[str, Any] = {"executions": 0, "task_rows": 0, "s": 0.0}
            if have < level:
                t0 = time.perf_counter()
                # Each fill in its own past day, so synthetic slugs never meet (or meet real ones).
                counts = fill(lab.store, {refs["one-task"]: 0.5, refs["ten-tasks"]: 0.5},
                              executions=level - have, start=now - timedelta(days=k + 2),
                              end=now - timedelta(days=k + 1), seed=k)  # fmt: skip
                filled = {**counts, "s": time.perf_counter() - t0}
            at = _count(lab)
            task_rows = int(lab.store.rows("SELECT count(*) FROM task_updates")[0][0])
            duckdb_mb = _duckdb_mb(lab)
            figures = _measure(lab, queues)
            levels.append(
                {"level": level, "executions": at, "task_rows": task_rows, "prefilled": filled,
                 "rss_before_fill_mb": rss_before_fill, "duckdb_mb": duckdb_mb, **figures}
            )  # fmt: skip
            print(f"  {at:,} executions: 1-task {figures['latency_s']['median'] * 1000:.0f} ms "
                  f"(baseline {figures['baseline_latency_s']['median'] * 1000:.0f}), "
                  f"{figures['throughput_per_s']['median']:.1f} runs/s "
                  f"(baseline {figures['baseline_throughput_per_s']['median']:.1f}), "
                  f"RSS {figures['rss_mb']:.0f} MB", flush=True)  # fmt: skip
    finally:
        if not lab._stopped:
            lab._check().call(stack.aclose())
        lab.stop()
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

    fill_mb = sum(lv["rss_mb"] - lv["rss_before_fill_mb"] for lv in levels[1:])
    ratios = {
        "rss_from_fills_mb": fill_mb,
        "rss_from_runs_mb": last["rss_mb"] - first["rss_mb"] - fill_mb,
        "duckdb_buffers": last["duckdb_mb"] / first["duckdb_mb"] if first["duckdb_mb"] else float("nan"),
        "latency": rel("latency_s"),
        "latency_vs_baseline": rel("latency_s", "baseline_latency_s"),
        "throughput": rel("throughput_per_s"),
        "throughput_vs_baseline": rel("throughput_per_s", "baseline_throughput_per_s"),
        "rss": rel("rss_mb"),
        "rss_delta_mb": last["rss_mb"] - first["rss_mb"],
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
            "lab RSS MB": lv["rss_mb"],
            "of which the fill (MB)": lv["rss_mb"] - lv["rss_before_fill_mb"],
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
        {"largest / smallest": f"lab RSS (+{ratios['rss_delta_mb']:.0f} MB: {ratios['rss_from_fills_mb']:.0f} MB "
         f"over the fills, {ratios['rss_from_runs_mb']:.0f} MB over the measured real runs)",
         "ratio": ratios["rss"], "normalised by the baseline": "", "target": f"≤ {TOLERANCE}"},
        {"largest / smallest": "DuckDB buffer memory", "ratio": ratios["duckdb_buffers"],
         "normalised by the baseline": "", "target": ""},
    ]  # fmt: skip
    print()
    print(markdown_table(summary, ["largest / smallest", "ratio", "normalised by the baseline", "target"]))
    return {"levels": levels, "ratios": ratios}


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # temporalio's bridge may abort at interpreter shutdown (sdk-python#300)
