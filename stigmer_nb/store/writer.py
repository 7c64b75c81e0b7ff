"""The one writer of a history file: a thread that commits queued writes in batches.

A single-row commit costs about a millisecond here, a row inside a 1,000-row batch a few
microseconds, so every write goes through this queue and whatever has piled up while the
previous batch committed is committed together (group commit).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from .schema import EXECUTION_COLUMNS, TASK_UPDATE_COLUMNS
from .values import dumps

__all__ = ["Writer", "WriterStats"]

log = logging.getLogger(__name__)

_IMMUTABLE_EXECUTION_COLUMNS = {"id", "name", "slug", "created_at"}


def _json_struct(columns: dict[str, str]) -> str:
    """The ``from_json`` structure of a batch: every column travels as text."""
    return json.dumps({name: "VARCHAR" for name in columns})


def _select(columns: dict[str, str]) -> str:
    casts = []
    for name, kind in columns.items():
        base = kind.split()[0]
        casts.append(f"r.{name}::{base}" if base != "VARCHAR" else f"r.{name}")
    return ", ".join(casts)


def _unpacked(columns: dict[str, str]) -> str:
    return f"(SELECT unnest(from_json(?::JSON, '[{_json_struct(columns)}]')) AS r)"


# A batch crosses into DuckDB as one JSON string parameter and is unpacked in SQL: one Python →
# DuckDB conversion per statement, and as fast as registering an Arrow table at these sizes.
# Each statement costs milliseconds whatever its size, so batches are few and wide.
_EXECUTION_INSERT = (
    f"INSERT INTO workflow_executions ({', '.join(EXECUTION_COLUMNS)}) "
    f"SELECT {_select(EXECUTION_COLUMNS)} FROM {_unpacked(EXECUTION_COLUMNS)}"
)
_EXECUTION_UPDATE = (
    "UPDATE workflow_executions AS w SET "
    + ", ".join(f"{c} = b.{c}" for c in EXECUTION_COLUMNS if c not in _IMMUTABLE_EXECUTION_COLUMNS)
    + " FROM (SELECT "
    + ", ".join(
        f"{expr} AS {c}"
        for expr, c in zip(_select(EXECUTION_COLUMNS).split(", "), EXECUTION_COLUMNS, strict=True)
    )
    + f" FROM {_unpacked(EXECUTION_COLUMNS)}) AS b WHERE w.id = b.id"
)
_TASK_COLUMNS = {c: kind for c, kind in TASK_UPDATE_COLUMNS.items() if c != "recorded_at"}
# recorded_at is the committing transaction's start (wall clock): occurred_at → recorded_at is the lag.
_TASK_INSERT = (
    f"INSERT INTO task_updates ({', '.join(_TASK_COLUMNS)}, recorded_at) "
    f"SELECT {_select(_TASK_COLUMNS)}, now() FROM {_unpacked(_TASK_COLUMNS)}"
)
_EXECUTION_JSON = [c for c, kind in EXECUTION_COLUMNS.items() if kind.startswith("JSON")]
_TASK_JSON = [c for c, kind in TASK_UPDATE_COLUMNS.items() if kind.startswith("JSON")]


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _encode(row: dict[str, Any], json_columns: list[str]) -> dict[str, Any]:
    """The row as text: JSON columns as JSON text, timestamps as ISO 8601 (callers pass Python values)."""
    out = {k: _text(v) for k, v in row.items()}
    for col in json_columns:
        out[col] = dumps(row.get(col))
    return out


@dataclass
class WriterStats:
    """Counters for benchmarks and the lab's status line."""

    batches: int = 0
    statements: int = 0
    execution_rows: int = 0
    task_rows: int = 0
    commit_seconds: float = 0.0
    largest_batch: int = 0


@dataclass
class _Op:
    kind: str  # "sql" | "insert_execution" | "update_execution" | "tasks" | "barrier"
    future: Future[None]
    sql: str = ""
    params: Any = None
    row: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)


_STOP = object()


class Writer:
    """Owns the read-write connection's write path; every method returns a future of the commit."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, max_batch: int = 20_000) -> None:
        self._con = con
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._max_batch = max_batch
        self._thread = threading.Thread(target=self._loop, name="stigmer-nb-writer", daemon=True)
        self._closed = False
        self.stats = WriterStats()
        self._thread.start()

    # --- submitting -----------------------------------------------------------------------

    def execute(self, sql: str, params: Any = None) -> Future[None]:
        """Run one statement inside the next batch."""
        return self._submit(_Op("sql", Future(), sql=sql, params=params))

    def insert_execution(self, row: dict[str, Any]) -> Future[None]:
        """Write a new execution's row. JSON columns take Python values, encoded on the caller's thread."""
        return self._submit(_Op("insert_execution", Future(), row=_encode(row, _EXECUTION_JSON)))

    def update_execution(self, row: dict[str, Any]) -> Future[None]:
        """Write an execution's full current state (the latest row per id in a batch wins)."""
        return self._submit(_Op("update_execution", Future(), row=_encode(row, _EXECUTION_JSON)))

    def insert_task_updates(self, rows: list[dict[str, Any]]) -> Future[None]:
        """Append task transitions (the caller writes each (execution_id, seq) once)."""
        return self._submit(_Op("tasks", Future(), rows=[_encode(r, _TASK_JSON) for r in rows]))

    def barrier(self) -> Future[None]:
        """A future that resolves once everything submitted before it is committed."""
        return self._submit(_Op("barrier", Future()))

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything submitted so far is committed."""
        if not self._closed:
            self.barrier().result(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _submit(self, op: _Op) -> Future[None]:
        if self._closed:
            op.future.set_exception(RuntimeError("the history writer is closed (the lab was stopped)"))
            return op.future
        self._queue.put(op)
        return op.future

    # --- the thread -----------------------------------------------------------------------

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch: list[_Op] = [first]
            size = len(first.rows) or 1
            while size < self._max_batch:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is _STOP:
                    stopping = True
                    break
                batch.append(op)
                size += len(op.rows) or 1
            self._apply(batch)

    def _apply(self, batch: list[_Op]) -> None:
        started = time.perf_counter()
        try:
            self._commit(batch)
        except Exception as exc:  # one bad op must not sink the others: retry each alone
            self._rollback()
            if len(batch) == 1:
                log.warning("history write failed: %s", exc)
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            for op in batch:
                self._apply([op])
            return
        self.stats.commit_seconds += time.perf_counter() - started
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for op in batch:
            if not op.future.done():
                op.future.set_result(None)

    def _rollback(self) -> None:
        try:
            self._con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # no transaction was open

    def _commit(self, batch: list[_Op]) -> None:
        con = self._con
        inserts: dict[str, dict[str, Any]] = {}
        updates: dict[str, dict[str, Any]] = {}
        tasks: list[dict[str, Any]] = []
        statements = 0
        con.execute("BEGIN TRANSACTION")
        for op in batch:
            if op.kind == "sql":
                con.execute(op.sql, op.params)
                statements += 1
            elif op.kind == "insert_execution" and op.row is not None:
                inserts[op.row["id"]] = op.row
            elif op.kind == "update_execution" and op.row is not None:
                # Created in this same batch: insert the latest state instead of inserting twice.
                (inserts if op.row["id"] in inserts else updates)[op.row["id"]] = op.row
            elif op.kind == "tasks":
                tasks.extend(op.rows)
        if inserts:
            con.execute(_EXECUTION_INSERT, [json.dumps(list(inserts.values()))])
        if updates:
            con.execute(_EXECUTION_UPDATE, [json.dumps(list(updates.values()))])
        if tasks:
            con.execute(_TASK_INSERT, [json.dumps(tasks)])
        con.execute("COMMIT")
        self.stats.statements += statements
        self.stats.execution_rows += len(inserts) + len(updates)
        self.stats.task_rows += len(tasks)
