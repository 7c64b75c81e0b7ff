"""The history schema: public tables and views, a version, and forward migrations."""

from __future__ import annotations

import json
from collections.abc import Callable

import duckdb

__all__ = [
    "EVENT_COLUMNS",
    "EXECUTION_COLUMNS",
    "SCHEMA_VERSION",
    "TASK_UPDATE_COLUMNS",
    "VERSION_COLUMNS",
    "migrate",
]

SCHEMA_VERSION = 4
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

_V4_EXECUTION_COLUMNS: dict[str, str] = {
    "document_hash": "VARCHAR",
    "tags": "VARCHAR[]",
    "batch_id": "VARCHAR",
    "rerun_of_id": "VARCHAR",
    "recovered_from_id": "VARCHAR",
    "checkpoint": "JSON",
}

EXECUTION_COLUMNS: dict[str, str] = {
    **_V1_EXECUTION_COLUMNS,
    "time_skipping": "BOOLEAN",
    **_V4_EXECUTION_COLUMNS,
}
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


EVENT_COLUMNS: dict[str, str] = {
    "execution_id": "VARCHAR NOT NULL",
    "seq": "INTEGER",
    "kind": "VARCHAR NOT NULL",
    "detail": "JSON",
    "occurred_at": "TIMESTAMPTZ NOT NULL",
}
"""``execution_events``: the lifecycle log beside ``task_updates`` (paused, resumed, terminated,
retrying, event received, approval requested and given, re-run, recovered …). ``seq`` is the
progress sequence number for what the run reported, NULL for what the Stigmer side recorded."""

VERSION_COLUMNS: dict[str, str] = {
    "document_hash": "VARCHAR NOT NULL",
    "workflow_id": "VARCHAR NOT NULL",
    "workflow_name": "VARCHAR NOT NULL",
    "version": "VARCHAR",
    "document": "JSON NOT NULL",
    "spec": "JSON",
    "first_seen_at": "TIMESTAMPTZ NOT NULL",
}
"""``workflow_versions``: every distinct document a workflow has had, by content hash."""


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

_FINISHED_V4 = "('EXECUTION_COMPLETED', 'EXECUTION_FAILED', 'EXECUTION_CANCELLED', 'EXECUTION_TERMINATED')"
_STOPPED = "('EXECUTION_CANCELLED', 'EXECUTION_TERMINATED')"
_RUNNING = "('EXECUTION_PENDING', 'EXECUTION_IN_PROGRESS', 'EXECUTION_PAUSED')"

# Steering: pause and terminate are phases (terminated runs count as cancelled in the rates, both
# being stopped by a person), executions carry their document version, tags, batch and links, and
# the lifecycle has its own log.
_V4 = [
    *(f"ALTER TABLE workflow_executions ADD COLUMN {c} {k}" for c, k in _V4_EXECUTION_COLUMNS.items()),
    f"CREATE TABLE execution_events (\n    {_columns(EVENT_COLUMNS)},\n    recorded_at TIMESTAMPTZ\n)",
    f"CREATE TABLE workflow_versions (\n    {_columns(VERSION_COLUMNS)},\n    PRIMARY KEY (document_hash)\n)",
    "COMMENT ON COLUMN workflow_executions.document_hash IS "
    "'the document version it ran (workflow_versions.document_hash)'",
    "COMMENT ON COLUMN workflow_executions.checkpoint IS "
    "'where a failed run can be recovered from: the failed top-level task, its input and $context'",
    f"""CREATE OR REPLACE VIEW failure_rates AS
SELECT
    workflow_name,
    count(*) AS executions,
    count(*) FILTER (WHERE phase IN {_FINISHED_V4}) AS finished,
    count(*) FILTER (WHERE phase = 'EXECUTION_COMPLETED') AS completed,
    count(*) FILTER (WHERE phase = 'EXECUTION_FAILED') AS failed,
    count(*) FILTER (WHERE phase IN {_STOPPED}) AS cancelled,
    count(*) FILTER (WHERE phase = 'EXECUTION_FAILED')
        / nullif(count(*) FILTER (WHERE phase IN {_FINISHED_V4}), 0) AS failure_rate,
    count(*) FILTER (WHERE phase IN {_STOPPED})
        / nullif(count(*) FILTER (WHERE phase IN {_FINISHED_V4}), 0) AS cancel_rate
FROM workflow_executions
GROUP BY workflow_name""",
    f"""CREATE OR REPLACE VIEW workflow_summaries AS
SELECT
    workflow_name,
    count(*) AS executions,
    count(*) FILTER (WHERE phase IN {_RUNNING}) AS running,
    count(*) FILTER (WHERE phase = 'EXECUTION_COMPLETED') AS completed,
    count(*) FILTER (WHERE phase = 'EXECUTION_FAILED') AS failed,
    count(*) FILTER (WHERE phase IN {_STOPPED}) AS cancelled,
    count(*) FILTER (WHERE phase = 'EXECUTION_FAILED')
        / nullif(count(*) FILTER (WHERE phase IN {_FINISHED_V4}), 0) AS failure_rate,
    count(*) FILTER (WHERE phase IN {_STOPPED})
        / nullif(count(*) FILTER (WHERE phase IN {_FINISHED_V4}), 0) AS cancel_rate,
    avg(duration_ms) AS mean_ms,
    quantile_cont(duration_ms, 0.5) AS p50_ms,
    quantile_cont(duration_ms, 0.9) AS p90_ms,
    quantile_cont(duration_ms, 0.99) AS p99_ms,
    max(duration_ms)::DOUBLE AS max_ms,
    min(created_at) AS first_created_at,
    max(created_at) AS last_created_at
FROM execution_durations
GROUP BY workflow_name""",
    # Per document version: did the fix lower the failure rate?
    f"""CREATE VIEW version_failure_rates AS
SELECT
    v.workflow_name,
    v.document_hash,
    v.version,
    v.first_seen_at,
    count(e.id) AS executions,
    count(e.id) FILTER (WHERE e.phase IN {_FINISHED_V4}) AS finished,
    count(e.id) FILTER (WHERE e.phase = 'EXECUTION_COMPLETED') AS completed,
    count(e.id) FILTER (WHERE e.phase = 'EXECUTION_FAILED') AS failed,
    count(e.id) FILTER (WHERE e.phase = 'EXECUTION_FAILED')
        / nullif(count(e.id) FILTER (WHERE e.phase IN {_FINISHED_V4}), 0) AS failure_rate
FROM workflow_versions v
LEFT JOIN workflow_executions e ON e.document_hash = v.document_hash
GROUP BY v.workflow_name, v.document_hash, v.version, v.first_seen_at""",
    # Approval tasks waiting for a person (a listen for ai.stigmer.approval events, in progress).
    f"""CREATE VIEW pending_approvals AS
SELECT
    t.execution_id,
    e.workflow_name,
    e.phase,
    t.task_id,
    t.name AS task_name,
    t.reference,
    t.started_at AS requested_at,
    r.detail ->> 'prompt' AS prompt,
    t.input
FROM task_states t
JOIN workflow_executions e ON e.id = t.execution_id
LEFT JOIN execution_events r
    ON r.execution_id = t.execution_id AND r.kind = 'approval_requested'
    AND r.detail ->> 'task_id' = t.task_id
WHERE t.kind = 'listen:approval' AND t.status = 'WORKFLOW_TASK_IN_PROGRESS'
    AND e.phase IN {_RUNNING}""",
]


def _v4(con: duckdb.DuckDBPyConnection) -> None:
    for statement in _V4:
        con.execute(statement)
    # Workflows recorded before versions existed: their current document is their first version
    # (their executions' versions are unknown and stay NULL).
    from .values import document_hash

    for wf_id, name, version, document, spec, created in con.execute(
        "SELECT id, name, version, document, spec, created_at FROM workflows"
    ).fetchall():
        con.execute(
            "INSERT INTO workflow_versions VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [document_hash(json.loads(document)), wf_id, name, version, document, spec, created],
        )


_MIGRATIONS: dict[int, list[str] | Callable[[duckdb.DuckDBPyConnection], None]] = {
    1: _V1,
    2: _V2,
    3: _V3,
    4: _v4,
}
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
