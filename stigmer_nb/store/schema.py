"""The history schema: public tables and views, a version, and forward migrations."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

__all__ = ["EXECUTION_COLUMNS", "SCHEMA_VERSION", "TASK_UPDATE_COLUMNS", "migrate"]

SCHEMA_VERSION = 3
"""Bump when the schema changes, and add a step to ``_MIGRATIONS``."""

_V1_EXECUTION_COLUMNS: dict[str, str] = {
    "id": "VARCHAR PRIMARY KEY",
    "name": "VARCHAR NOT NULL",
    "slug": "VARCHAR NOT NULL UNIQUE",
    "workflow_id": "VARCHAR NOT NULL",
    "workflow_instance_id": "VARCHAR NOT NULL",
    "workflow_name": "VARCHAR NOT NULL",
    "phase": "VARCHAR NOT NULL",
    "input": "JSON",
    "output": "JSON",
    "error": "JSON",
    "runtime_env": "JSON",
    "trigger_message": "VARCHAR",
    "created_at": "TIMESTAMPTZ NOT NULL",
    "started_at": "TIMESTAMPTZ",
    "completed_at": "TIMESTAMPTZ",
    "updated_at": "TIMESTAMPTZ NOT NULL",
    "temporal_workflow_id": "VARCHAR",
    "runner_workflow_id": "VARCHAR",
}

EXECUTION_COLUMNS: dict[str, str] = {**_V1_EXECUTION_COLUMNS, "time_skipping": "BOOLEAN"}
"""``workflow_executions``: one row per execution, its current merged state."""

_V1_TASK_UPDATE_COLUMNS: dict[str, str] = {
    "execution_id": "VARCHAR NOT NULL",
    "seq": "INTEGER NOT NULL",
    "task_id": "VARCHAR NOT NULL",
    "parent_id": "VARCHAR",
    "reference": "VARCHAR NOT NULL",
    "name": "VARCHAR NOT NULL",
    "kind": "VARCHAR NOT NULL",
    "status": "VARCHAR NOT NULL",
    "attempt": "INTEGER NOT NULL",
    "input": "JSON",
    "output": "JSON",
    "error": "JSON",
    "occurred_at": "TIMESTAMPTZ NOT NULL",
}

TASK_UPDATE_COLUMNS: dict[str, str] = {**_V1_TASK_UPDATE_COLUMNS, "recorded_at": "TIMESTAMPTZ"}
"""``task_updates``: append-only, one row per task transition; (execution_id, seq) is the natural key.

No index enforces it (an index check doubled the cost of every write): the status merge writes
a transition only when its seq is above the highest one already recorded for the execution."""


def _columns(spec: dict[str, str]) -> str:
    return ",\n    ".join(f"{name} {kind}" for name, kind in spec.items())


_V1 = [
    "CREATE TABLE schema_info (version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
    """CREATE TABLE workflows (
    id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    slug VARCHAR NOT NULL UNIQUE,
    namespace VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    description VARCHAR,
    document JSON NOT NULL,
    spec JSON,
    default_instance_id VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
)""",
    """CREATE TABLE workflow_instances (
    id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    slug VARCHAR NOT NULL,
    workflow_id VARCHAR NOT NULL,
    description VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
)""",
    f"CREATE TABLE workflow_executions (\n    {_columns(_V1_EXECUTION_COLUMNS)}\n)",
    f"CREATE TABLE task_updates (\n    {_columns(_V1_TASK_UPDATE_COLUMNS)}\n)",
    # Per task run: its latest state, when it started and ended, and how long it took.
    """CREATE VIEW task_states AS
SELECT
    execution_id,
    task_id,
    any_value(parent_id) AS parent_id,
    any_value(reference) AS reference,
    any_value(name) AS name,
    any_value(kind) AS kind,
    arg_max(status, seq) AS status,
    max(attempt) AS attempt,
    min(occurred_at) AS started_at,
    max(occurred_at) FILTER (WHERE status IN
        ('WORKFLOW_TASK_COMPLETED', 'WORKFLOW_TASK_FAILED', 'WORKFLOW_TASK_SKIPPED')) AS completed_at,
    date_diff('millisecond', min(occurred_at), max(occurred_at) FILTER (WHERE status IN
        ('WORKFLOW_TASK_COMPLETED', 'WORKFLOW_TASK_FAILED', 'WORKFLOW_TASK_SKIPPED'))) AS duration_ms,
    arg_min(input, seq) AS input,
    arg_max(output, seq) AS output,
    arg_max(error, seq) AS error,
    min(seq) AS first_seq,
    max(seq) AS last_seq
FROM task_updates
GROUP BY execution_id, task_id""",
    """CREATE VIEW execution_durations AS
SELECT
    id AS execution_id,
    name,
    workflow_name,
    phase,
    created_at,
    started_at,
    completed_at,
    date_diff('millisecond', started_at, completed_at) AS duration_ms,
    date_diff('millisecond', created_at, started_at) AS queued_ms
FROM workflow_executions""",
    """CREATE VIEW phase_counts AS
SELECT phase, count(*) AS executions
FROM workflow_executions
GROUP BY phase""",
]

_TERMINAL_TASKS = "('WORKFLOW_TASK_COMPLETED', 'WORKFLOW_TASK_FAILED', 'WORKFLOW_TASK_SKIPPED')"
_FINISHED = "('EXECUTION_COMPLETED', 'EXECUTION_FAILED', 'EXECUTION_CANCELLED')"

# Analytics views; stigmer_nb.analytics computes the same numbers in pandas (tests hold them equal).
_V2 = [
    # Per task run, with the workflow it belongs to.
    """CREATE VIEW task_durations AS
SELECT
    t.execution_id,
    e.workflow_id,
    e.workflow_name,
    t.task_id,
    t.parent_id,
    t.reference,
    t.name,
    t.kind,
    t.status,
    t.attempt,
    t.started_at,
    t.completed_at,
    t.duration_ms
FROM task_states t
LEFT JOIN workflow_executions e ON e.id = t.execution_id""",
    # Per task of a workflow: how long its runs take (mean, percentiles, max).
    """CREATE VIEW task_duration_stats AS
SELECT
    workflow_name,
    reference,
    name,
    kind,
    count(*) AS runs,
    count(duration_ms) AS finished,
    avg(duration_ms) AS mean_ms,
    quantile_cont(duration_ms, 0.5) AS p50_ms,
    quantile_cont(duration_ms, 0.9) AS p90_ms,
    quantile_cont(duration_ms, 0.99) AS p99_ms,
    max(duration_ms)::DOUBLE AS max_ms
FROM task_durations
GROUP BY workflow_name, reference, name, kind""",
    # Per task of a workflow: how often its runs needed a retry or failed.
    f"""CREATE VIEW task_retry_rates AS
SELECT
    workflow_name,
    reference,
    name,
    kind,
    count(*) AS runs,
    count(*) FILTER (WHERE attempt > 1) AS retried,
    count(*) FILTER (WHERE attempt > 1) / count(*) AS retry_rate,
    avg(attempt) AS mean_attempts,
    count(*) FILTER (WHERE status = 'WORKFLOW_TASK_FAILED') AS failed,
    count(*) FILTER (WHERE status = 'WORKFLOW_TASK_FAILED')
        / nullif(count(*) FILTER (WHERE status IN {_TERMINAL_TASKS}), 0) AS failure_rate
FROM task_durations
GROUP BY workflow_name, reference, name, kind""",
    # Finished task runs, longest first (filter on rank for a top N).
    """CREATE VIEW slowest_tasks AS
SELECT row_number() OVER (ORDER BY duration_ms DESC, execution_id, task_id) AS rank, *
FROM task_durations
WHERE duration_ms IS NOT NULL""",
    # Per workflow: outcomes over finished executions.
    f"""CREATE VIEW failure_rates AS
SELECT
    workflow_name,
    count(*) AS executions,
    count(*) FILTER (WHERE phase IN {_FINISHED}) AS finished,
    count(*) FILTER (WHERE phase = 'EXECUTION_COMPLETED') AS completed,
    count(*) FILTER (WHERE phase = 'EXECUTION_FAILED') AS failed,
    count(*) FILTER (WHERE phase = 'EXECUTION_CANCELLED') AS cancelled,
    count(*) FILTER (WHERE phase = 'EXECUTION_FAILED')
        / nullif(count(*) FILTER (WHERE phase IN {_FINISHED}), 0) AS failure_rate,
    count(*) FILTER (WHERE phase = 'EXECUTION_CANCELLED')
        / nullif(count(*) FILTER (WHERE phase IN {_FINISHED}), 0) AS cancel_rate
FROM workflow_executions
GROUP BY workflow_name""",
    # Per workflow: counts, rates, durations and when it last ran.
    f"""CREATE VIEW workflow_summaries AS
SELECT
    workflow_name,
    count(*) AS executions,
    count(*) FILTER (WHERE phase IN ('EXECUTION_PENDING', 'EXECUTION_IN_PROGRESS')) AS running,
    count(*) FILTER (WHERE phase = 'EXECUTION_COMPLETED') AS completed,
    count(*) FILTER (WHERE phase = 'EXECUTION_FAILED') AS failed,
    count(*) FILTER (WHERE phase = 'EXECUTION_CANCELLED') AS cancelled,
    count(*) FILTER (WHERE phase = 'EXECUTION_FAILED')
        / nullif(count(*) FILTER (WHERE phase IN {_FINISHED}), 0) AS failure_rate,
    count(*) FILTER (WHERE phase = 'EXECUTION_CANCELLED')
        / nullif(count(*) FILTER (WHERE phase IN {_FINISHED}), 0) AS cancel_rate,
    avg(duration_ms) AS mean_ms,
    quantile_cont(duration_ms, 0.5) AS p50_ms,
    quantile_cont(duration_ms, 0.9) AS p90_ms,
    quantile_cont(duration_ms, 0.99) AS p99_ms,
    max(duration_ms)::DOUBLE AS max_ms,
    min(created_at) AS first_created_at,
    max(created_at) AS last_created_at
FROM execution_durations
GROUP BY workflow_name""",
]

# Which clock each timestamp comes from: with time skipping a run's workflow clock jumps ahead of
# the wall, so the history says so instead of showing an hour-long wait that took a second.
_V3 = [
    "ALTER TABLE workflow_executions ADD COLUMN time_skipping BOOLEAN DEFAULT false",
    "ALTER TABLE task_updates ADD COLUMN recorded_at TIMESTAMPTZ",
    "COMMENT ON COLUMN workflow_executions.created_at IS 'wall clock: when the execution was created'",
    "COMMENT ON COLUMN workflow_executions.started_at IS "
    "'workflow clock: when the run started (jumps ahead of the wall when time_skipping)'",
    "COMMENT ON COLUMN workflow_executions.completed_at IS "
    "'workflow clock: when the run ended (jumps ahead of the wall when time_skipping)'",
    "COMMENT ON COLUMN workflow_executions.time_skipping IS "
    "'true when the run had a virtual clock: started_at, completed_at and its task times are workflow time'",
    "COMMENT ON COLUMN task_updates.occurred_at IS 'workflow clock: when the transition happened in the run'",
    "COMMENT ON COLUMN task_updates.recorded_at IS 'wall clock: when the row was committed to the history'",
]

_MIGRATIONS: dict[int, list[str] | Callable[[duckdb.DuckDBPyConnection], None]] = {1: _V1, 2: _V2, 3: _V3}
"""Version N's steps take a file from version N-1 to N."""


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """The file's schema version; 0 for an empty file."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_info'"
    ).fetchone()
    if not found or not found[0]:
        return 0
    row = con.execute("SELECT max(version) FROM schema_info").fetchone()
    return int(row[0] or 0) if row else 0


def migrate(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Bring the file up to ``SCHEMA_VERSION``; returns (found, now). Refuses newer files."""
    found = current_version(con)
    if found >= SCHEMA_VERSION:
        return found, found
    # One transaction for every step: a fresh file is written (and synced) once, and a failed
    # step leaves the file as it was.
    con.execute("BEGIN TRANSACTION")
    try:
        for version in range(found + 1, SCHEMA_VERSION + 1):
            step = _MIGRATIONS[version]
            if callable(step):
                step(con)
            else:
                for statement in step:
                    con.execute(statement)
            con.execute("INSERT INTO schema_info VALUES (?, now())", [version])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return found, SCHEMA_VERSION
