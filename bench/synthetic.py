"""Synthetic history that looks like what real runs record, written through the history's Writer.

Rows have the shapes the status merge writes (``stigmer_nb/service/merge.py``): ids are
``wex-`` + a ULID of the creation time, task ids ``t1``, ``t2``, … per run, references are JSON
pointers, kinds as the interpreter names them (``set``, ``call:http``, ``try``, ``switch``), seq
from 2 (seq 1 is the run's IN_PROGRESS phase event), one IN_PROGRESS and one final row per task run,
a retry as a new task run with ``attempt`` 2, a skipped task as one SKIPPED row. ``ten-tasks`` and
``one-task`` are exactly what ``bench.workloads.TEN_TASKS`` / ``ONE_TASK`` record (every transition
at the activation's instant); ``etl-pipeline`` and ``order-flow`` add calls with durations,
failures, retries, skips and cancels.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from stigmer_nb.store import HistoryStore

__all__ = ["SHAPES", "Catalog", "WorkflowRef", "execution", "fill", "register_catalog", "ulid_at"]

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_ERRORS = "https://serverlessworkflow.io/spec/1.0.0/errors"
_COMPLETED, _FAILED = "WORKFLOW_TASK_COMPLETED", "WORKFLOW_TASK_FAILED"
_IN_PROGRESS, _SKIPPED = "WORKFLOW_TASK_IN_PROGRESS", "WORKFLOW_TASK_SKIPPED"


def ulid_at(at: datetime, rng: random.Random) -> str:
    """A lowercase ULID for time ``at`` (what ``stigmer_nb.model.new_ulid`` makes at that moment)."""
    value = (int(at.timestamp() * 1000) << 80) | rng.getrandbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in range(25, -1, -1))


@dataclass(frozen=True)
class WorkflowRef:
    """A workflow and its default instance, as the history's catalog has them."""

    shape: str
    id: str
    instance_id: str
    name: str


@dataclass
class Catalog:
    """The workflows synthetic executions belong to, by shape."""

    workflows: dict[str, WorkflowRef] = field(default_factory=dict)


def register_catalog(store: HistoryStore, shapes: list[str], rng: random.Random) -> Catalog:
    """Write ``workflows`` and ``workflow_instances`` rows for ``shapes`` (a fresh history file)."""
    assert store.writer is not None
    catalog = Catalog()
    now = datetime.now(UTC) - timedelta(days=30)
    for shape in shapes:
        wf_id, inst_id = f"wfl-{ulid_at(now, rng)}", f"win-{ulid_at(now, rng)}"
        document = {"document": {"dsl": "1.0.0", "namespace": "bench", "name": shape, "version": "1.0.0"},
                    "do": [{t["name"]: {"set": {}}} for t in _tasks_of(shape)]}  # fmt: skip
        store.writer.execute(
            "INSERT INTO workflows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [wf_id, shape, shape, "bench", "1.0.0", "", json.dumps(document), None, inst_id, now, now],
        )
        store.writer.execute(
            "INSERT INTO workflow_instances VALUES (?, ?, ?, ?, ?, ?, ?)",
            [inst_id, f"{shape}-default", f"{shape}-default", wf_id,
             "Default instance (auto-created, no custom configuration)", now, now],
        )  # fmt: skip
        catalog.workflows[shape] = WorkflowRef(shape, wf_id, inst_id, shape)
    store.writer.flush()
    return catalog


def _tasks_of(shape: str) -> list[dict[str, Any]]:
    return [{"name": name} for name in _NAMES[shape]]


_NAMES = {
    "one-task": ["only"],
    "ten-tasks": [f"step{i}" for i in range(10)],
    "etl-pipeline": ["extract", "parse", "enrich", "score", "route", "store", "index", "notify", "audit",
                     "publish"],
    "order-flow": ["validate", "reserve", "pack", "ship", "invoice", "email", "audit", "close"],
}  # fmt: skip
SHAPES = tuple(_NAMES)


class _Run:
    """Collects one execution's transitions in order, as the merge would write them."""

    def __init__(self, execution_id: str, at: datetime) -> None:
        self.execution_id = execution_id
        self.at = at
        self.seq = 1  # seq 1 is the phase IN_PROGRESS event: no task row
        self.count = 0
        self.rows: list[dict[str, Any]] = []

    def _row(self, task_id: str, ref: str, name: str, kind: str, status: str, attempt: int,
             parent: str | None, inp: Any = None, out: Any = None, err: Any = None) -> None:  # fmt: skip
        self.seq += 1
        self.rows.append({
            "execution_id": self.execution_id, "seq": self.seq, "task_id": task_id, "parent_id": parent,
            "reference": ref, "name": name, "kind": kind, "status": status, "attempt": attempt,
            "input": inp, "output": out, "error": err, "occurred_at": self.at,
        })  # fmt: skip

    def begin(self, ref: str, name: str, kind: str, data: Any, *, attempt: int = 1,
              parent: str | None = None) -> tuple[str, str, str, str, int, str | None]:  # fmt: skip
        self.count += 1
        task = (f"t{self.count}", ref, name, kind, attempt, parent)
        self._row(task[0], ref, name, kind, _IN_PROGRESS, attempt, parent, inp=data)
        return task  # type: ignore[return-value]

    def end(self, task: tuple[Any, ...], ms: float, *, out: Any = None, err: Any = None) -> None:
        self.at += timedelta(milliseconds=ms)
        task_id, ref, name, kind, attempt, parent = task
        self._row(task_id, ref, name, kind, _FAILED if err else _COMPLETED, attempt, parent, out=out, err=err)

    def task(self, ref: str, name: str, kind: str, data: Any, ms: float = 0.0, *, out: Any = None,
             err: Any = None, attempt: int = 1, parent: str | None = None) -> None:  # fmt: skip
        self.end(self.begin(ref, name, kind, data, attempt=attempt, parent=parent), ms, out=out, err=err)

    def skip(self, ref: str, name: str, kind: str, data: Any) -> None:
        self.count += 1
        self._row(f"t{self.count}", ref, name, kind, _SKIPPED, 1, None, inp=data, out=data)


def _problem(kind: str, status: int, title: str, instance: str) -> dict[str, Any]:
    return {"type": f"{_ERRORS}/{kind}", "status": status, "title": title, "instance": instance}


def _call_ms(rng: random.Random, median: float) -> float:
    return rng.lognormvariate(0, 0.6) * median


def _shape_steps(shape: str, run: _Run, n: int, rng: random.Random) -> tuple[str, Any, Any]:
    """Append the transitions of one run; returns (phase, output, error)."""
    if shape in ("one-task", "ten-tasks"):
        for i, name in enumerate(_NAMES[shape]):
            run.task(f"/do/{i}/{name}", name, "set", {"n": n + i}, out={"n": n + i + 1})
        return "EXECUTION_COMPLETED", {"n": n + len(_NAMES[shape])}, None
    if shape == "etl-pipeline":
        kinds = ["call:http", "set", "call:http", "call:score", "switch", "call:http", "call:http",
                 "call:http", "set", "call:http"]  # fmt: skip
        medians = [220, 0, 120, 25, 0, 80, 60, 45, 0, 90]
        data: dict[str, Any] = {"batch": n}
        for i, name in enumerate(_NAMES[shape]):
            ref = f"/do/{i}/{name}"
            ms = _call_ms(rng, medians[i]) if medians[i] else 0.0
            if name == "publish" and rng.random() < 0.04:
                err = _problem("communication", 503, "Service Unavailable", ref)
                run.task(ref, name, kinds[i], data, ms, err=err)
                return "EXECUTION_FAILED", None, err
            out = (
                {**data, name: True}
                if kinds[i] != "call:http"
                else {"status": 200, "rows": rng.randint(1, 500)}
            )
            run.task(ref, name, kinds[i], data, ms, out=out)
        return "EXECUTION_COMPLETED", {"batch": n, "published": True}, None
    assert shape == "order-flow"
    order = {"order": n, "items": rng.randint(1, 5)}
    run.task("/do/0/validate", "validate", "set", order, out=order)
    reserve = run.begin("/do/1/reserve", "reserve", "try", order)
    charge_ref = "/do/1/reserve/try/0/charge"
    if rng.random() < 0.2:  # first attempt fails, retried after a back-off
        run.task(charge_ref, "charge", "call:http", order, _call_ms(rng, 150), parent=reserve[0],
                 err=_problem("communication", 502, "Bad Gateway", charge_ref))  # fmt: skip
        run.at += timedelta(seconds=1)
        run.task(charge_ref, "charge", "call:http", order, _call_ms(rng, 150), attempt=2, parent=reserve[0],
                 out={"charged": True})  # fmt: skip
    else:
        run.task(charge_ref, "charge", "call:http", order, _call_ms(rng, 150), parent=reserve[0],
                 out={"charged": True})  # fmt: skip
    run.end(reserve, 1, out={**order, "charged": True})
    run.task("/do/2/pack", "pack", "set", order, out=order)
    if rng.random() < 0.02:  # cancelled while shipping: the running task is marked
        ship = run.begin("/do/3/ship", "ship", "call:http", order)
        err = _problem("runtime", 499, "Cancelled", "/do/3/ship")
        run.end(ship, _call_ms(rng, 300), err=err)
        return "EXECUTION_CANCELLED", None, {**err, "detail": "the execution was cancelled"}
    run.task("/do/3/ship", "ship", "call:http", order, _call_ms(rng, 300), out={"tracking": f"TRK{n}"})
    run.task("/do/4/invoice", "invoice", "call:http", order, _call_ms(rng, 90), out={"invoice": n})
    if rng.random() < 0.1:
        run.skip("/do/5/email", "email", "call:http", order)
    else:
        run.task("/do/5/email", "email", "call:http", order, _call_ms(rng, 40), out={"sent": True})
    run.task("/do/6/audit", "audit", "set", order, out=order)
    run.task("/do/7/close", "close", "set", order, out={**order, "closed": True})
    return "EXECUTION_COMPLETED", {**order, "closed": True}, None


def execution(wf: WorkflowRef, created: datetime, n: int, rng: random.Random,
              *, running: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    """One execution of ``wf`` created at ``created``: its row and its task-update rows.
    ``running`` leaves it IN_PROGRESS with its last transitions not yet reported."""
    eid = f"wex-{ulid_at(created, rng)}"
    started = created + timedelta(milliseconds=rng.uniform(20, 60))
    run = _Run(eid, started)
    phase, output, error = _shape_steps(wf.shape, run, n, rng)
    completed: datetime | None = run.at
    if running:
        del run.rows[max(1, len(run.rows) // 2) :]
        phase, output, error, completed = "EXECUTION_IN_PROGRESS", None, None, None
    name = f"execution-{int(created.timestamp() * 1_000_000)}"
    row = {
        "id": eid, "name": name, "slug": name, "workflow_id": wf.id, "workflow_instance_id": wf.instance_id,
        "workflow_name": wf.name, "phase": phase, "input": {"n": n}, "output": output, "error": error,
        "runtime_env": {}, "trigger_message": "", "created_at": created, "started_at": started,
        "completed_at": completed, "updated_at": (completed or started) + timedelta(milliseconds=15),
        "temporal_workflow_id": f"stigmer/workflow-execution/invoke/{eid}",
        "runner_workflow_id": f"workflow-exec-{eid}", "time_skipping": False,
    }  # fmt: skip
    return row, run.rows


def _times(count: int, start: datetime, end: datetime, rng: random.Random) -> Iterator[datetime]:
    """``count`` creation times from ``start`` to ``end``, increasing, at least 1 µs apart; then
    more, 10 ms apart, for as long as the caller asks."""
    span = (end - start).total_seconds()
    offsets = sorted(rng.uniform(0, span) for _ in range(count))
    last = start - timedelta(microseconds=1)
    for off in offsets:
        at = max(start + timedelta(seconds=off), last + timedelta(microseconds=1))
        last = at
        yield at
    while True:
        last += timedelta(milliseconds=10)
        yield last


def _mean_rows(mix: dict[WorkflowRef, float], seed: int) -> float:
    rng = random.Random(seed + 1)
    refs, weights = list(mix), list(mix.values())
    now = datetime.now(UTC)
    sizes = [len(execution(rng.choices(refs, weights)[0], now, i, rng)[1]) for i in range(2000)]
    return sum(sizes) / len(sizes)


def fill(
    store: HistoryStore,
    mix: dict[WorkflowRef, float],
    *,
    executions: int | None = None,
    task_rows: int | None = None,
    start: datetime,
    end: datetime,
    seed: int = 7,
    running_tail: int = 0,
    batch_rows: int = 5_000,
) -> dict[str, int]:
    """Write synthetic executions created from ``start`` to ``end`` through ``store.writer``:
    ``executions`` of them, or as many as make exactly ``task_rows`` task rows (the last one cut
    short and left IN_PROGRESS). The newest ``running_tail`` are left IN_PROGRESS. Returns counts."""
    assert store.writer is not None and (executions or task_rows)
    rng = random.Random(seed)
    refs, weights = list(mix), list(mix.values())
    count = executions or round(task_rows / _mean_rows(mix, seed))  # type: ignore[operator]
    writer = store.writer
    pending_rows: list[dict[str, Any]] = []
    futures = []
    written_rows = written_execs = 0
    for i, created in enumerate(_times(count, start, end, rng)):
        if task_rows is None and i >= count:
            break
        wf = rng.choices(refs, weights)[0]
        row, rows = execution(wf, created, i, rng, running=count - running_tail <= i < count)
        if task_rows is not None and written_rows + len(rows) > task_rows:  # cut short: still running
            rows = rows[: task_rows - written_rows]
            row.update(phase="EXECUTION_IN_PROGRESS", output=None, error=None, completed_at=None)
        futures.append(writer.insert_execution(row))
        pending_rows.extend(rows)
        written_rows += len(rows)
        written_execs += 1
        if len(pending_rows) >= batch_rows:
            futures.append(writer.insert_task_updates(pending_rows))
            pending_rows = []
            # Keep at most two batches in flight: a benchmark measuring memory must not be
            # measuring this generator's backlog.
            while len(futures) > 2 * (batch_rows // 10 + 1):
                futures.pop(0).result(600)
        if task_rows is not None and written_rows >= task_rows:
            break
    if pending_rows:
        futures.append(writer.insert_task_updates(pending_rows))
    for fut in futures:
        fut.result(600)
    return {"executions": written_execs, "task_rows": written_rows}


def _self_check() -> None:  # pragma: no cover - a quick look: python -m bench.synthetic
    rng = random.Random(1)
    now = datetime.now(UTC)
    for shape in SHAPES:
        wf = WorkflowRef(shape, "wfl-x", "win-x", shape)
        sizes = [len(execution(wf, now, i, rng)[1]) for i in range(2000)]
        print(
            shape, "rows per execution: mean", sum(sizes) / len(sizes), "min", min(sizes), "max", max(sizes)
        )
    print(json.dumps(execution(WorkflowRef("order-flow", "wfl-x", "win-x", "order-flow"), now, 1, rng)[1][:3],
                     default=str, indent=1))  # fmt: skip


if __name__ == "__main__":
    _self_check()
    os._exit(0)
