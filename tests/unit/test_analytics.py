"""Analytics as pure pandas functions, and the DuckDB views that compute the same numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from stigmer_nb import analytics
from stigmer_nb.errors import InvalidInputError
from stigmer_nb.model import ExecutionPhase
from stigmer_nb.store import SCHEMA_VERSION, HistoryStore
from stigmer_nb.store import schema as schema_module

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def execution(
    eid: str, workflow: str, phase: str, start: float | None, end: float | None, created: float = 0.0
) -> dict:
    return {
        "id": eid,
        "name": f"run-{eid}",
        "slug": f"run-{eid}",
        "workflow_id": f"wfl-{workflow}",
        "workflow_instance_id": f"win-{workflow}",
        "workflow_name": workflow,
        "phase": phase,
        "input": None,
        "output": None,
        "error": None,
        "runtime_env": {},
        "trigger_message": "",
        "created_at": at(created),
        "started_at": at(start) if start is not None else None,
        "completed_at": at(end) if end is not None else None,
        "updated_at": at(end or start or created),
        "temporal_workflow_id": None,
        "runner_workflow_id": None,
    }


EXECUTIONS = [
    execution("wex-1", "alpha", "EXECUTION_COMPLETED", 0.1, 1.3),
    execution("wex-2", "alpha", "EXECUTION_COMPLETED", 0.2, 2.0, created=0.1),
    execution("wex-3", "alpha", "EXECUTION_FAILED", 0.5, 0.9, created=0.4),
    execution("wex-4", "beta", "EXECUTION_CANCELLED", 1.0, 4.0, created=0.9),
    execution("wex-5", "beta", "EXECUTION_IN_PROGRESS", 3.0, None, created=2.9),
    execution("wex-6", "beta", "EXECUTION_PENDING", None, None, created=5.0),
]

# (execution, task id, name, status per transition, attempt, start, end)
TASKS = [
    ("wex-1", "t1", "fetch", "WORKFLOW_TASK_COMPLETED", 1, 0.1, 0.6),
    ("wex-1", "t2", "store", "WORKFLOW_TASK_COMPLETED", 1, 0.6, 1.3),
    ("wex-2", "t1", "fetch", "WORKFLOW_TASK_COMPLETED", 2, 0.2, 1.5),
    ("wex-2", "t2", "store", "WORKFLOW_TASK_COMPLETED", 1, 1.5, 2.0),
    ("wex-3", "t1", "fetch", "WORKFLOW_TASK_FAILED", 3, 0.5, 0.9),
    ("wex-4", "t1", "wait", "WORKFLOW_TASK_COMPLETED", 1, 1.0, 4.0),
    ("wex-5", "t1", "wait", "WORKFLOW_TASK_IN_PROGRESS", 1, 3.0, None),
]


def task_update_rows() -> list[dict]:
    rows = []
    seq = 0
    for eid, tid, name, status, attempt, start, end in TASKS:
        ref = f"/do/{tid[1:]}/{name}"
        base = {"execution_id": eid, "task_id": tid, "parent_id": None, "reference": ref, "name": name}
        base |= {"kind": "set", "input": None, "output": None, "error": None}
        seq += 1
        rows.append(
            base | {"seq": seq, "status": "WORKFLOW_TASK_IN_PROGRESS", "attempt": 1, "occurred_at": at(start)}
        )
        if end is not None:
            seq += 1
            rows.append(base | {"seq": seq, "status": status, "attempt": attempt, "occurred_at": at(end)})
        elif attempt > 1:
            seq += 1
            rows.append(base | {"seq": seq, "status": status, "attempt": attempt, "occurred_at": at(start)})
    return rows


@pytest.fixture(scope="module")
def store() -> HistoryStore:
    s = HistoryStore(None)
    assert s.writer is not None
    for row in EXECUTIONS:
        s.writer.insert_execution(row)
    s.writer.insert_task_updates(task_update_rows())
    s.writer.flush()
    yield s
    s.close()


@pytest.fixture(scope="module")
def executions(store: HistoryStore) -> pd.DataFrame:
    return store.query("SELECT * FROM workflow_executions ORDER BY created_at DESC")


@pytest.fixture(scope="module")
def tasks(store: HistoryStore) -> pd.DataFrame:
    return store.query("SELECT * FROM task_states ORDER BY execution_id, first_seq")


def same(left: pd.DataFrame, right: pd.DataFrame, keys: list[str]) -> None:
    """Frames equal up to row order and integer/float widths."""
    columns = list(left.columns)
    assert set(columns) == set(right.columns), set(columns) ^ set(right.columns)
    a = left[columns].sort_values(keys).reset_index(drop=True)
    b = right[columns].sort_values(keys).reset_index(drop=True)
    for column in columns:
        if pd.api.types.is_numeric_dtype(a[column]) or pd.api.types.is_numeric_dtype(b[column]):
            pd.testing.assert_series_equal(
                a[column].astype(float), b[column].astype(float), check_names=False
            )
        else:
            assert list(a[column].astype(object)) == list(b[column].astype(object)), column


# --- pure functions --------------------------------------------------------------------------------


def test_execution_durations_count_milliseconds_like_duckdb(executions: pd.DataFrame) -> None:
    durations = analytics.execution_durations(executions).set_index("execution_id")
    assert durations.loc["wex-1", "duration_ms"] == 1200
    assert durations.loc["wex-4", "duration_ms"] == 3000
    assert durations.loc["wex-3", "queued_ms"] == 100
    assert pd.isna(durations.loc["wex-5", "duration_ms"]) and pd.isna(durations.loc["wex-6", "queued_ms"])


def test_phase_counts_follow_the_lifecycle(executions: pd.DataFrame) -> None:
    counts = analytics.phase_counts(executions)
    assert list(counts["phase"]) == [
        "EXECUTION_PENDING",
        "EXECUTION_IN_PROGRESS",
        "EXECUTION_COMPLETED",
        "EXECUTION_FAILED",
        "EXECUTION_CANCELLED",
    ]
    assert list(counts["executions"]) == [1, 1, 2, 1, 1]


def test_failure_rates_are_over_finished_executions(executions: pd.DataFrame) -> None:
    rates = analytics.failure_rates(executions).set_index("workflow_name")
    assert rates.loc["alpha", "failure_rate"] == pytest.approx(1 / 3)
    assert rates.loc["beta", "finished"] == 1 and rates.loc["beta", "cancel_rate"] == 1.0
    assert rates.loc["beta", "failure_rate"] == 0.0


def test_task_duration_percentiles_interpolate(tasks: pd.DataFrame, executions: pd.DataFrame) -> None:
    stats = analytics.task_duration_stats(tasks, executions).set_index(["workflow_name", "name"])
    fetch = stats.loc[("alpha", "fetch")]
    assert fetch["runs"] == 3 and fetch["finished"] == 3
    assert fetch["p50_ms"] == 500.0  # 400, 500, 1300
    assert fetch["p90_ms"] == pytest.approx(500 + 0.8 * 800)
    assert fetch["max_ms"] == 1300.0
    wait = stats.loc[("beta", "wait")]
    assert wait["runs"] == 2 and wait["finished"] == 1  # one still running
    assert list(stats.index[:1]) == [("beta", "wait")]  # slowest p90 first


def test_retry_rates_and_slowest_tasks(tasks: pd.DataFrame, executions: pd.DataFrame) -> None:
    retries = analytics.retry_rates(tasks, executions).set_index(["workflow_name", "name"])
    fetch = retries.loc[("alpha", "fetch")]
    assert fetch["retried"] == 2 and fetch["retry_rate"] == pytest.approx(2 / 3)
    assert fetch["mean_attempts"] == pytest.approx(2.0)
    assert fetch["failure_rate"] == pytest.approx(1 / 3)
    slowest = analytics.slowest_tasks(tasks, n=2, executions=executions)
    assert list(slowest["rank"]) == [1, 2]
    assert list(slowest["duration_ms"]) == [3000.0, 1300.0]
    assert slowest["workflow_name"].iloc[0] == "beta"


def test_workflow_summary(executions: pd.DataFrame, tasks: pd.DataFrame) -> None:
    summary = analytics.workflow_summary(executions, tasks).set_index("workflow_name")
    alpha = summary.loc["alpha"]
    assert (alpha["executions"], alpha["completed"], alpha["failed"], alpha["running"]) == (3, 2, 1, 0)
    assert alpha["p50_ms"] == 1200.0 and alpha["max_ms"] == 1800.0
    assert alpha["task_runs"] == 5 and alpha["task_retry_rate"] == pytest.approx(2 / 5)
    assert summary.loc["beta", "running"] == 2


def test_throughput_buckets_finished_executions(executions: pd.DataFrame) -> None:
    table = analytics.throughput(executions, "1s")
    assert table.to_dict("list") == {
        "EXECUTION_COMPLETED": [0, 1, 1, 0, 0],  # finished at 1.3 s and 2.0 s
        "EXECUTION_FAILED": [1, 0, 0, 0, 0],
        "EXECUTION_CANCELLED": [0, 0, 0, 0, 1],
    }
    assert analytics.throughput(executions.iloc[:0]).empty


def test_filters(executions: pd.DataFrame) -> None:
    now = at(10)
    assert len(analytics.filter_executions(executions, workflow="alpha")) == 3
    assert len(analytics.filter_executions(executions, workflow="wfl-beta", phase="running")) == 2
    assert len(analytics.filter_executions(executions, since="6s", now=now)) == 1
    assert analytics.parse_since("15min", now) == now - timedelta(minutes=15)
    assert analytics.parse_since(timedelta(hours=2), now) == now - timedelta(hours=2)
    assert analytics.parse_since("2026-01-01T12:00:00Z") == T0
    assert analytics.parse_since(datetime(2026, 1, 1, 12)) == T0
    assert analytics.normalise_phases(["completed", ExecutionPhase.EXECUTION_FAILED]) == [
        "EXECUTION_COMPLETED",
        "EXECUTION_FAILED",
    ]
    with pytest.raises(InvalidInputError, match="did you mean 'completed'"):
        analytics.normalise_phases("complted")
    with pytest.raises(InvalidInputError, match="15min"):
        analytics.parse_since("yesterday-ish")


# --- the DuckDB views compute the same numbers ----------------------------------------------------


def test_views_match_the_pandas_functions(
    store: HistoryStore, executions: pd.DataFrame, tasks: pd.DataFrame
) -> None:
    keys = ["workflow_name", "reference", "name", "kind"]
    same(
        store.query("SELECT * FROM task_duration_stats"),
        analytics.task_duration_stats(tasks, executions),
        keys,
    )
    same(store.query("SELECT * FROM task_retry_rates"), analytics.retry_rates(tasks, executions), keys)
    same(store.query("SELECT * FROM failure_rates"), analytics.failure_rates(executions), ["workflow_name"])
    summary = analytics.workflow_summary(executions)
    same(store.query("SELECT * FROM workflow_summaries"), summary, ["workflow_name"])
    slowest = store.query("SELECT * FROM slowest_tasks WHERE rank <= 3 ORDER BY rank")
    expected = analytics.slowest_tasks(tasks, n=3, executions=executions)
    assert list(slowest["task_id"]) == list(expected["task_id"])
    assert list(slowest["duration_ms"].astype(float)) == list(expected["duration_ms"])
    durations = store.query("SELECT * FROM task_durations")
    same(durations, analytics.task_durations(tasks, executions), ["execution_id", "task_id"])


def test_a_version_1_file_migrates_forward(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    for statement in schema_module._MIGRATIONS[1]:
        con.execute(statement)
    con.execute("INSERT INTO schema_info VALUES (1, now())")
    con.close()
    store = HistoryStore(path)
    try:
        assert store.rows("SELECT max(version) FROM schema_info")[0][0] == SCHEMA_VERSION
        views = set(store.query("SELECT table_name FROM information_schema.tables")["table_name"])
        assert {"task_durations", "task_duration_stats", "task_retry_rates", "slowest_tasks"} <= views
        assert {"failure_rates", "workflow_summaries"} <= views
        assert store.query("SELECT * FROM workflow_summaries").empty
        # v3: which clock each timestamp comes from, documented in the database itself.
        comments = dict(store.rows(
            "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'task_updates'"))  # fmt: skip
        assert "wall clock" in comments["recorded_at"] and "workflow clock" in comments["occurred_at"]
    finally:
        store.close()
