"""Analytics (issue 7 item 5): what the dashboard and the analytics views query, over a history of
1,000,000 task-update rows, each against the same question asked of plain DuckDB tables holding
the same rows, in the same run; and the memory each takes.

Run: ``python -m bench.analytics`` (``BENCH_ANALYTICS_ROWS``, default 1,000,000;
``BENCH_ANALYTICS_REPEATS``, default 5).

The history is built through the lab's Writer from synthetic executions that look like real ones
(``bench.synthetic``: 10-task set runs, an ETL pipeline with call durations and failures, an order
flow with retries, skips and cancels; ~20 transitions each, over 7 days). The plain side is a second
DuckDB file with the same rows copied into ordinary tables (``CREATE TABLE … AS``: no views, no
constraints) and the question written directly against them. The package side is the real call:
``Lab.history`` / ``Lab.tasks`` / ``Service.snapshot`` / the dashboard's poll, or the view as a user
would select it. Both sides are warmed once, then timed interleaved; memory is the peak RSS above
the RSS before the call (``/proc`` VmHWM, reset before each call) and what the result holds.
"""

from __future__ import annotations

import gc
import os
import random
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from bench.common import (
    env_int,
    markdown_table,
    peak_rss_mb,
    reset_peak_rss,
    rss_mb,
    span,
    stats,
    write_result,
)
from bench.synthetic import fill, register_catalog
from stigmer_nb import analytics
from stigmer_nb.lab import Lab
from stigmer_nb.service import Service
from stigmer_nb.settings import Settings
from stigmer_nb.store import HistoryStore
from stigmer_nb.widgets.dashboard import Dashboard

ROWS = env_int("BENCH_ANALYTICS_ROWS", 1_000_000)
REPEATS = env_int("BENCH_ANALYTICS_REPEATS", 5)
PANDAS_REPEATS = env_int("BENCH_ANALYTICS_PANDAS_REPEATS", 2)
TARGET = 2.0
MIX = {"ten-tasks": 0.3, "etl-pipeline": 0.4, "order-flow": 0.3}

_T = "('WORKFLOW_TASK_COMPLETED', 'WORKFLOW_TASK_FAILED', 'WORKFLOW_TASK_SKIPPED')"
_F = "('EXECUTION_COMPLETED', 'EXECUTION_FAILED', 'EXECUTION_CANCELLED')"
# Per task run, without the JSON payload columns no analytics question needs.
_RUNS = f"""runs AS (
    SELECT execution_id, task_id, any_value(parent_id) AS parent_id, any_value(reference) AS reference,
           any_value(name) AS name, any_value(kind) AS kind, arg_max(status, seq) AS status,
           max(attempt) AS attempt, min(occurred_at) AS started_at,
           max(occurred_at) FILTER (WHERE status IN {_T}) AS completed_at
    FROM task_updates GROUP BY execution_id, task_id),
durations AS (
    SELECT r.execution_id, e.workflow_id, e.workflow_name, r.task_id, r.parent_id, r.reference, r.name,
           r.kind, r.status, r.attempt, r.started_at, r.completed_at,
           date_diff('millisecond', r.started_at, r.completed_at) AS duration_ms
    FROM runs r LEFT JOIN workflow_executions e ON e.id = r.execution_id)"""
_TASK_STATES_ONE = f"""SELECT task_id, any_value(reference), any_value(name), any_value(kind),
    arg_max(status, seq), any_value(parent_id), max(attempt), min(occurred_at),
    max(occurred_at) FILTER (WHERE status IN {_T}), arg_min(input, seq), arg_max(output, seq),
    arg_max(error, seq), min(seq) AS first_seq, max(seq)
FROM task_updates WHERE execution_id = ? GROUP BY task_id ORDER BY first_seq"""
_TASK_STATES_ALL = f"""SELECT execution_id, task_id, any_value(parent_id) AS parent_id,
    any_value(reference) AS reference, any_value(name) AS name, any_value(kind) AS kind,
    arg_max(status, seq) AS status, max(attempt) AS attempt, min(occurred_at) AS started_at,
    max(occurred_at) FILTER (WHERE status IN {_T}) AS completed_at,
    date_diff('millisecond', min(occurred_at), max(occurred_at) FILTER (WHERE status IN {_T})) AS duration_ms,
    arg_min(input, seq) AS input, arg_max(output, seq) AS output, arg_max(error, seq) AS error,
    min(seq) AS first_seq, max(seq) AS last_seq
FROM task_updates"""
_STATS = """count(*) AS runs, count(duration_ms) AS finished, avg(duration_ms) AS mean_ms,
    quantile_cont(duration_ms, 0.5) AS p50_ms, quantile_cont(duration_ms, 0.9) AS p90_ms,
    quantile_cont(duration_ms, 0.99) AS p99_ms, max(duration_ms)::DOUBLE AS max_ms"""
_EXEC_DURATIONS = """SELECT id AS execution_id, name, workflow_name, phase, created_at, started_at, completed_at,
    date_diff('millisecond', started_at, completed_at) AS duration_ms,
    date_diff('millisecond', created_at, started_at) AS queued_ms
FROM workflow_executions"""


def _build(root: Path) -> tuple[Path, dict[str, Any]]:
    path = root / "history.duckdb"
    store = HistoryStore(path)
    rng = random.Random(11)
    catalog = register_catalog(store, list(MIX), rng)
    mix = {catalog.workflows[shape]: weight for shape, weight in MIX.items()}
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    counts = fill(store, mix, task_rows=ROWS, start=now - timedelta(days=7), end=now - timedelta(minutes=1),
                  running_tail=5)  # fmt: skip
    elapsed = time.perf_counter() - t0
    store.close()
    return path, {**counts, "build_s": elapsed, "build_rows_per_s": counts["task_rows"] / elapsed}


def _plain_copy(history: Path, root: Path) -> duckdb.DuckDBPyConnection:
    """A second file with the same rows in ordinary tables (history closed meanwhile)."""
    path = root / "plain.duckdb"
    con = duckdb.connect(str(path))
    con.execute(f"ATTACH '{history}' AS h (READ_ONLY)")
    for table in ("task_updates", "workflow_executions", "workflows"):
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM h.{table}")
    con.execute("DETACH h")
    con.execute("CHECKPOINT")
    return con


def _shim_lab(store: HistoryStore, home: Path) -> Lab:
    """A Lab whose history calls work (history, tasks, service) without a server: reads only."""
    lab = Lab(Settings.from_env({}, home=home))
    lab._store = store
    lab._service = Service(store)
    return lab


def _nrows(result: Any) -> int:
    if isinstance(result, tuple) and not hasattr(result, "tasks"):
        return 1  # the dashboard's poll: one row
    if isinstance(result, pd.DataFrame):
        return len(result)
    if hasattr(result, "tasks"):
        return len(result.tasks)
    return len(result) if isinstance(result, list | tuple) else 1


def _result_mb(result: Any) -> float:
    if isinstance(result, pd.DataFrame):
        return float(result.memory_usage(deep=True).sum()) / 2**20
    return 0.0


def _memory(fn: Callable[[], Any]) -> dict[str, float]:
    gc.collect()
    before = rss_mb()
    reset_peak_rss()
    result = fn()
    peak = peak_rss_mb() - before
    held = _result_mb(result)
    del result
    gc.collect()
    return {"peak_rss_delta_mb": peak, "result_mb": held, "retained_rss_delta_mb": rss_mb() - before}


def main() -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    print(f"building a history of {ROWS:,} task-update rows through the Writer …", flush=True)
    history, built = _build(root)
    print(f"  {built['executions']:,} executions, {built['task_rows']:,} rows in {built['build_s']:.1f}s "
          f"({built['build_rows_per_s']:,.0f} rows/s)", flush=True)  # fmt: skip
    plain = _plain_copy(history, root)
    store = HistoryStore(history)
    lab = _shim_lab(store, root)
    sizes = {
        "history_mb": history.stat().st_size / 2**20,
        "plain_mb": (root / "plain.duckdb").stat().st_size / 2**20,
    }

    # Fixed inputs so both sides answer exactly the same question.
    eid = store.rows("SELECT id FROM workflow_executions ORDER BY created_at LIMIT 1 OFFSET ?",
                     [built["executions"] // 2])[0][0]  # fmt: skip
    since = datetime.now(UTC) - timedelta(hours=24)
    etl = lab.service.get_workflow("etl-pipeline").id
    poll_self = types.SimpleNamespace(lab=lab)

    def q(sql: str, params: Any = None) -> Callable[[], pd.DataFrame]:
        return lambda: plain.execute(sql, params).df()

    def view(name: str, where: str = "") -> Callable[[], pd.DataFrame]:
        return lambda: store.query(f"SELECT * FROM {name}{where}")

    cases: list[tuple[str, str, Callable[[], Any], Callable[[], Any]]] = [
        ("dashboard", "poll: count, max(updated_at) (Dashboard._history_signature)",
         lambda: Dashboard._history_signature(poll_self),  # type: ignore[arg-type]
         lambda: plain.execute("SELECT count(*), max(updated_at) FROM workflow_executions").fetchone()),
        ("dashboard", "table: newest 2,000 executions (lab.history(limit=2000))",
         lambda: lab.history(limit=2000),
         q("SELECT * FROM workflow_executions ORDER BY created_at DESC, id DESC LIMIT 2000")),
        ("dashboard", "filtered: workflow, failed, last 24h (lab.history(...))",
         lambda: lab.history(workflow="etl-pipeline", phase="failed", since=since, limit=2000),
         q("SELECT * FROM workflow_executions WHERE workflow_id = ? AND phase IN ('EXECUTION_FAILED') "
           "AND created_at >= ? ORDER BY created_at DESC, id DESC LIMIT 2000", [etl, since])),
        ("dashboard", "timeline: one execution (service.snapshot)",
         lambda: lab.service.snapshot(eid),
         lambda: (plain.execute("SELECT * FROM workflow_executions WHERE id = ?", [eid]).fetchall(),
                  plain.execute(_TASK_STATES_ONE, [eid]).fetchall())[1]),
        ("lab", "lab.tasks(execution_id)",
         lambda: lab.tasks(eid), q(_TASK_STATES_ONE, [eid])),
        ("lab", "lab.tasks(status='failed')",
         lambda: lab.tasks(status="failed"),
         q(f"{_TASK_STATES_ALL} GROUP BY execution_id, task_id "
           "HAVING arg_max(status, seq) = 'WORKFLOW_TASK_FAILED' ORDER BY execution_id, first_seq")),
        ("view", "task_states (all task runs)", view("task_states"), q(f"{_TASK_STATES_ALL} GROUP BY execution_id, task_id")),
        ("view", "task_durations (all task runs)", view("task_durations"), q(f"WITH {_RUNS} SELECT * FROM durations")),
        ("view", "task_duration_stats", view("task_duration_stats"),
         q(f"WITH {_RUNS} SELECT workflow_name, reference, name, kind, {_STATS} FROM durations "
           "GROUP BY workflow_name, reference, name, kind")),
        ("view", "task_retry_rates", view("task_retry_rates"),
         q(f"WITH {_RUNS} SELECT workflow_name, reference, name, kind, count(*) AS runs, "
           "count(*) FILTER (WHERE attempt > 1) AS retried, count(*) FILTER (WHERE attempt > 1) / count(*) AS retry_rate, "
           "avg(attempt) AS mean_attempts, count(*) FILTER (WHERE status = 'WORKFLOW_TASK_FAILED') AS failed, "
           "count(*) FILTER (WHERE status = 'WORKFLOW_TASK_FAILED') / "
           f"nullif(count(*) FILTER (WHERE status IN {_T}), 0) AS failure_rate "
           "FROM durations GROUP BY workflow_name, reference, name, kind")),
        ("view", "slowest_tasks WHERE rank <= 10", view("slowest_tasks", " WHERE rank <= 10 ORDER BY rank"),
         q(f"WITH {_RUNS} SELECT row_number() OVER (ORDER BY duration_ms DESC, execution_id, task_id) AS rank, * "
           "FROM (SELECT * FROM durations WHERE duration_ms IS NOT NULL "
           "ORDER BY duration_ms DESC, execution_id, task_id LIMIT 10) ORDER BY rank")),
        ("view", "failure_rates", view("failure_rates"),
         q("SELECT workflow_name, count(*) AS executions, "
           f"count(*) FILTER (WHERE phase IN {_F}) AS finished, "
           "count(*) FILTER (WHERE phase = 'EXECUTION_FAILED') AS failed FROM workflow_executions GROUP BY workflow_name")),
        ("view", "workflow_summaries", view("workflow_summaries"),
         q(f"SELECT workflow_name, count(*) AS executions, {_STATS.replace('count(*) AS runs, ', '')}, "
           f"min(created_at), max(created_at) FROM ({_EXEC_DURATIONS}) GROUP BY workflow_name")),
        ("view", "execution_durations (all executions)", view("execution_durations"), q(_EXEC_DURATIONS)),
        ("view", "phase_counts", view("phase_counts"),
         q("SELECT phase, count(*) AS executions FROM workflow_executions GROUP BY phase")),
    ]  # fmt: skip
    pandas_cases: list[tuple[str, str, Callable[[], Any], Callable[[], Any]]] = [
        ("pandas", "analytics.workflow_summary(lab.history())",
         lambda: analytics.workflow_summary(lab.history()),
         q(f"SELECT workflow_name, count(*) AS executions, {_STATS.replace('count(*) AS runs, ', '')} "
           f"FROM ({_EXEC_DURATIONS}) GROUP BY workflow_name")),
        ("pandas", "analytics.task_duration_stats(lab.tasks(), lab.history())",
         lambda: analytics.task_duration_stats(lab.tasks(), lab.history()),
         q(f"WITH {_RUNS} SELECT workflow_name, reference, name, kind, {_STATS} FROM durations "
           "GROUP BY workflow_name, reference, name, kind")),
    ]  # fmt: skip

    results: list[dict[str, Any]] = []
    for group, label, ours, theirs in cases + pandas_cases:
        repeats = PANDAS_REPEATS if group == "pandas" else REPEATS
        ours_rows, theirs_rows = _nrows(ours()), _nrows(theirs())  # warm both (and check the answer size)
        t_ours, t_theirs = [], []
        for _ in range(repeats):
            for fn, sink in ((ours, t_ours), (theirs, t_theirs)):
                t0 = time.perf_counter()
                fn()
                sink.append(time.perf_counter() - t0)
        # Alternate which side is measured first: the allocator keeps what the first one grew.
        if len(results) % 2:
            mem_theirs, mem_ours = _memory(theirs), _memory(ours)
        else:
            mem_ours, mem_theirs = _memory(ours), _memory(theirs)
        s_ours, s_theirs = stats(t_ours), stats(t_theirs)
        results.append({
            "group": group, "query": label, "ours_s": s_ours, "plain_s": s_theirs,
            "ratio": s_ours["median"] / s_theirs["median"], "rows": ours_rows, "plain_rows": theirs_rows,
            "memory_ours": mem_ours, "memory_plain": mem_theirs,
        })  # fmt: skip
        print(f"  {label}: {s_ours['median'] * 1000:.1f} ms vs {s_theirs['median'] * 1000:.1f} ms "
              f"({s_ours['median'] / s_theirs['median']:.2f}x)", flush=True)  # fmt: skip
    store.close()
    plain.close()
    shutil.rmtree(root, ignore_errors=True)

    write_result("analytics", {"rows": ROWS, "repeats": REPEATS, "history": built, "files": sizes,
                               "queries": results, "targets": {"ratio": TARGET}})  # fmt: skip
    table = [
        {
            "query": f"{r['group']}: {r['query']}",
            "ours ms, median (range)": span(r["ours_s"], 1000),
            "plain ms, median (range)": span(r["plain_s"], 1000),
            "ratio (≤ 2)": r["ratio"],
            "rows": r["rows"] if r["rows"] == r["plain_rows"] else f"{r['rows']} vs {r['plain_rows']}",
            "peak MB ours / plain": f"{r['memory_ours']['peak_rss_delta_mb']:.0f} / {r['memory_plain']['peak_rss_delta_mb']:.0f}",
            "result MB ours / plain": f"{r['memory_ours']['result_mb']:.1f} / {r['memory_plain']['result_mb']:.1f}",
        }
        for r in results
    ]  # fmt: skip
    print(f"\n{built['task_rows']:,} task-update rows, {built['executions']:,} executions; history file "
          f"{sizes['history_mb']:.0f} MB, plain copy {sizes['plain_mb']:.0f} MB; built through the Writer at "
          f"{built['build_rows_per_s']:,.0f} rows/s (with execution rows)\n")  # fmt: skip
    print(markdown_table(table, list(table[0])))
    return {"queries": results, "history": built}


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
