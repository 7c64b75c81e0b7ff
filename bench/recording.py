"""Recording (issue 7 item 4): task-update rows per second through the history's Writer, and the lag
from a task transition to its row being committed under the throughput load.

Run: ``python -m bench.recording``.

(a) Writer: submitting threads hand ``Writer.insert_task_updates`` batches of realistic rows (what
the status merge produces: 2 rows for one task, 20 for a 10-task run) and large batches, on a fresh
history file each time; timed from the first submission until every future has resolved (committed),
so the callers' encoding counts. The baseline, same rows in the same run: plain DuckDB taking them
as one Arrow table in one INSERT on a fresh file with the same columns (JSON columns encoded too).
``BENCH_RECORDING_ROWS`` (rows per scenario, default 200,000), ``BENCH_RECORDING_REPEATS`` (3).

(b) Lag: N concurrent 10-task executions through a lab (``BENCH_RECORDING_CONCURRENT``, default
``200,1000``, submitted from 8 threads as ``bench.throughput`` does), then ``recorded_at - occurred_at``
over their rows. ``occurred_at`` is workflow time: in normal mode the wall time the runner's workflow
activation started, so the lag covers the progress signal's trip through Temporal, the invoke
workflow's activation, the status merge and the commit. ``recorded_at`` is the committing
transaction's start, so the commit itself (reported separately) comes on top. The baseline is the
same measure for sequential runs on the idle lab (``BENCH_RECORDING_IDLE``, default 20). To say
where the lag goes, ``Service.update_status`` is wrapped while the load runs (a timer, nothing else):
earliest transition in the update → merge entered is the trip through Temporal; merge entered →
committed is the recording itself. The CPU split is this process (both workers, the merge, the
writer) against the embedded server.

The second baseline is what Temporal itself gives under the same load: while the load runs, raw
temporalio workflows on the same server make the bare trip a progress report makes (one workflow
signals another from its first task; sender task started → receiver task started), one at a time.
Both ways our progress travels (a signal, or the run's result through ExecuteWorkflow) cover at
least this trip, plus the recording: it is the floor under ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from bench.baseline import SignalReceiverWorkflow, SignalSenderWorkflow
from bench.common import env_int, markdown_table, percentile, span, stats, write_result
from bench.synthetic import WorkflowRef, execution
from bench.workloads import TEN_TASKS, cpu_seconds
from stigmer_nb.lab import Lab
from stigmer_nb.service import Service
from stigmer_nb.service.merge import parse_time
from stigmer_nb.settings import Settings
from stigmer_nb.store import HistoryStore, dumps
from stigmer_nb.store.schema import TASK_UPDATE_COLUMNS

ROWS = env_int("BENCH_RECORDING_ROWS", 200_000)
REPEATS = env_int("BENCH_RECORDING_REPEATS", 3)
CONCURRENT = [int(x) for x in (os.environ.get("BENCH_RECORDING_CONCURRENT") or "200,1000").split(",")]
IDLE = env_int("BENCH_RECORDING_IDLE", 20)
IDLE_TRIPS_S = 3.0
"""How long the bare signal trip is timed on the idle lab."""
TARGET_ROWS_PER_S = 50_000
TARGET_LAG_P95_MS = 250

SCENARIOS: list[tuple[str, int, int]] = [
    ("8 threads x 2-row batches (one task's transitions)", 8, 2),
    ("8 threads x 20-row batches (one 10-task run)", 8, 20),
    ("8 threads x 5,000-row batches", 8, 5_000),
    ("1 thread x 100,000-row batches", 1, 100_000),
]
"""Label, submitting threads, rows per batch."""

_MIX = [WorkflowRef(s, "wfl-01bench", "win-01bench", s) for s in ("ten-tasks", "etl-pipeline", "order-flow")]


def _rows(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` realistic task-update rows, whole executions in order (the last one cut short)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    at = datetime.now(UTC) - timedelta(hours=1)
    i = 0
    while len(out) < count:
        at += timedelta(milliseconds=rng.uniform(1, 20))
        out.extend(execution(rng.choice(_MIX), at, i, rng)[1])
        i += 1
    return out[:count]


def _chunks(rows: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def _writer_rate(path: Path, rows: list[dict[str, Any]], threads: int, batch: int) -> dict[str, float]:
    batches = _chunks(rows, batch)
    per_thread = [batches[i::threads] for i in range(threads)]
    store = HistoryStore(path)
    writer = store.writer
    assert writer is not None
    start = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def submit(mine: list[list[dict[str, Any]]]) -> None:
        start.wait()
        try:
            futures = [writer.insert_task_updates(b) for b in mine]
            for fut in futures:
                fut.result(600)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=submit, args=(mine,)) for mine in per_thread]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    assert not errors, errors[:1]
    count = store.rows("SELECT count(*) FROM task_updates")[0][0]
    assert count == len(rows), (count, len(rows))
    result = {
        "rows_per_s": len(rows) / elapsed,
        "elapsed_s": elapsed,
        "commits": writer.stats.batches,
        "largest_commit_ops": writer.stats.largest_batch,
        "commit_s": writer.stats.commit_seconds,
    }
    store.close()
    return result


def _plain_rate(path: Path, rows: list[dict[str, Any]]) -> float:
    """Plain DuckDB: the same rows as one Arrow table, one INSERT, one commit."""
    con = duckdb.connect(str(path))
    columns = ", ".join(
        f"{name} {kind.replace(' NOT NULL', '')}" for name, kind in TASK_UPDATE_COLUMNS.items()
    )
    con.execute(f"CREATE TABLE task_updates ({columns})")
    json_columns = [c for c, kind in TASK_UPDATE_COLUMNS.items() if kind.startswith("JSON")]
    t0 = time.perf_counter()
    encoded = [{**r, **{c: dumps(r[c]) for c in json_columns}} for r in rows]
    arrow_rows = pa.Table.from_pylist(encoded)
    names = [c for c in TASK_UPDATE_COLUMNS if c != "recorded_at"]
    con.execute(f"INSERT INTO task_updates SELECT {', '.join(names)}, now() FROM arrow_rows")
    elapsed = time.perf_counter() - t0
    del arrow_rows
    assert con.execute("SELECT count(*) FROM task_updates").fetchone()[0] == len(rows)  # type: ignore[index]
    con.close()
    return len(rows) / elapsed


def writer_throughput(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s, (label, threads, batch) in enumerate(SCENARIOS):
        rows = _rows(ROWS, seed=s)
        runs, plain = [], []
        for r in range(REPEATS):
            plain.append(_plain_rate(root / f"plain-{s}-{r}.duckdb", rows))
            runs.append(_writer_rate(root / f"writer-{s}-{r}.duckdb", rows, threads, batch))
            for leftover in root.glob("*.duckdb*"):
                leftover.unlink()
        rate = stats([x["rows_per_s"] for x in runs])
        plain_rate = stats(plain)
        out[label] = {
            "threads": threads,
            "batch_rows": batch,
            "rows": len(rows),
            "writer_rows_per_s": rate,
            "plain_duckdb_rows_per_s": plain_rate,
            "ratio": rate["median"] / plain_rate["median"],
            "runs": runs,
        }
        print(f"  {label}: {rate['median']:,.0f} rows/s (plain {plain_rate['median']:,.0f})", flush=True)
        del rows
    return out


def _lags_ms(lab: Lab, ids: list[str]) -> list[float]:
    rows = lab.store.rows(
        "SELECT date_diff('microsecond', occurred_at, recorded_at) / 1000.0 FROM task_updates "
        "WHERE execution_id IN (SELECT unnest(?::VARCHAR[]))",
        [ids],
    )
    return [float(r[0]) for r in rows]


def _lag_summary(lags: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(lags, 50),
        "p95_ms": percentile(lags, 95),
        "max_ms": max(lags),
        "rows": len(lags),
    }


@contextlib.contextmanager
def _status_timing(records: list[tuple[float, float]]) -> Iterator[None]:
    """Time each status merge on its way in: (earliest task transition → merge entered,
    merge entered → committed), in ms. Wraps ``Service.update_status`` for the duration only."""
    original = Service.update_status

    async def timed(self: Service, update: Any) -> None:
        entered = datetime.now(UTC)
        await original(self, update)
        done = datetime.now(UTC)
        ats = [parse_time(e.at) for e in update.events if e.task is not None]
        if ats:
            first = min(a for a in ats if a is not None)
            records.append(
                ((entered - first).total_seconds() * 1000, (done - entered).total_seconds() * 1000)
            )

    Service.update_status = timed  # type: ignore[method-assign]
    try:
        yield
    finally:
        Service.update_status = original  # type: ignore[method-assign]


async def _events(lab: Lab, workflow_id: str) -> list[tuple[int, float]]:
    """A workflow's history as (event type, server time in epoch seconds)."""
    handle = lab.client.get_workflow_handle(workflow_id)
    return [
        (e.event_type, e.event_time.ToDatetime(tzinfo=UTC).timestamp())
        async for e in handle.fetch_history_events()
    ]


_TRIP_GAP_S = 0.2
"""Pause between two signal trips: one trip at a time, a few a second, so the probe adds little load."""


async def _trip_ms(lab: Lab, sender_id: str, receiver_id: str) -> float:
    """Sender's first task started → receiver's task started after the signal, in ms (server times)."""
    from temporalio.api.enums.v1 import EventType

    sent = next(
        t for kind, t in await _events(lab, sender_id) if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    )
    received = await _events(lab, receiver_id)
    signalled = next(t for kind, t in received if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    picked = next(
        t for kind, t in received if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and t >= signalled
    )
    return (picked - sent) * 1000


@contextlib.contextmanager
def _signal_trips(lab: Lab) -> Iterator[list[float]]:
    """The bare Temporal trip a progress report makes, timed while the body runs.

    Raw temporalio, no stigmer_nb code: a workflow signals another from its first task, timed from
    that task's start to the receiver's task start. Ours is timed from the DSL activation to the
    commit, so it covers this trip plus the recording. One trip at a time, with their own workers
    and queues on the lab's server and loop; the list is filled on exit.
    """
    from temporalio.worker import UnsandboxedWorkflowRunner, Worker

    loop = lab._check()
    sender_queue, receiver_queue = f"bench-send-{uuid.uuid4()}", f"bench-receive-{uuid.uuid4()}"
    stop = threading.Event()
    pairs: list[tuple[str, str]] = []

    async def probe() -> None:
        workers = [
            Worker(lab.client, task_queue=queue, workflows=[wf], workflow_runner=UnsandboxedWorkflowRunner())
            for queue, wf in ((sender_queue, SignalSenderWorkflow), (receiver_queue, SignalReceiverWorkflow))
        ]
        running = [asyncio.ensure_future(w.run()) for w in workers]
        try:
            while not stop.is_set():
                receiver_id, sender_id = f"bench-receiver-{uuid.uuid4()}", f"bench-sender-{uuid.uuid4()}"
                receiver = await lab.client.start_workflow(
                    SignalReceiverWorkflow.run, id=receiver_id, task_queue=receiver_queue
                )
                await asyncio.sleep(_TRIP_GAP_S / 2)  # the receiver is waiting before the trip starts
                await lab.client.execute_workflow(
                    SignalSenderWorkflow.run, receiver_id, id=sender_id, task_queue=sender_queue
                )
                await receiver.result()
                pairs.append((sender_id, receiver_id))
                await asyncio.sleep(_TRIP_GAP_S / 2)
        finally:
            for w in workers:
                await w.shutdown()
            await asyncio.gather(*running, return_exceptions=True)

    async def measure() -> list[float]:
        return [await _trip_ms(lab, s, r) for s, r in pairs]

    trips: list[float] = []
    running = loop.submit(probe())
    try:
        yield trips
    finally:
        stop.set()
        running.result(120)
        trips.extend(loop.call(measure()))


def _load(lab: Lab, n: int) -> dict[str, Any]:
    """``n`` concurrent 10-task executions; their lag, where it goes, and the CPU split."""
    writer = lab.store.writer
    assert writer is not None and lab.server is not None
    batches0, commit0 = writer.stats.batches, writer.stats.commit_seconds
    cpu_python, cpu_server = cpu_seconds(), cpu_seconds(lab.server.pid)
    split: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    with _status_timing(split), _signal_trips(lab) as trips, ThreadPoolExecutor(8) as pool:
        executions = list(pool.map(lambda i: lab.run(TEN_TASKS, input={"n": i}), range(n)))
        for e in executions:
            e.wait(1800)
    wall = time.perf_counter() - t0
    bad = [e.id for e in executions if e.phase != "EXECUTION_COMPLETED"]
    assert not bad, bad[:3]
    lags = _lags_ms(lab, [e.id for e in executions])
    commits = writer.stats.batches - batches0
    transit, record = [r[0] for r in split], [r[1] for r in split]
    return {
        **_lag_summary(lags),
        "executions": n,
        "wall_s": wall,
        "executions_per_s": n / wall,
        "cpu_python_s": cpu_seconds() - cpu_python,
        "cpu_server_s": cpu_seconds(lab.server.pid) - cpu_server,
        "commits": commits,
        "mean_commit_ms": (writer.stats.commit_seconds - commit0) / max(commits, 1) * 1000,
        "transit_ms": _lag_summary(transit) if transit else {},
        "merge_and_commit_ms": _lag_summary(record) if record else {},
        "signal_trip_ms": _lag_summary(trips) if trips else {},
        "lags_ms_sample": sorted(lags)[:: max(1, len(lags) // 200)],
        "hops_ms": _hops(lab, [e.id for e in executions]),
    }


HOPS = {
    "DSL workflow task (the transitions) → DSL run closed": "dsl_task",
    "→ ExecuteWorkflow's result reaches the invoke workflow": "result",
    "→ the invoke workflow's next task starts": "pickup",
    "→ merged and committed (local activity)": "record",
}
"""The hops of a set-only run's transitions, timed from the server's own event times."""


def _hops(lab: Lab, ids: list[str], sample: int = 100) -> dict[str, dict[str, float]]:
    """Where the lag goes, hop by hop, for a sample of the runs (their Temporal histories)."""
    from temporalio.api.enums.v1 import EventType

    from stigmer_nb.temporal.names import dsl_workflow_id, invoke_workflow_id

    recorded = {
        r[0]: r[1].timestamp()
        for r in lab.store.rows(
            "SELECT execution_id, max(recorded_at) FROM task_updates "
            "WHERE execution_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1",
            [ids],
        )
    }
    hops: dict[str, list[float]] = {key: [] for key in HOPS.values()}
    loop = lab._check()
    for eid in ids[:: max(1, len(ids) // sample)]:
        dsl = loop.call(_events(lab, dsl_workflow_id(eid)))
        invoke = loop.call(_events(lab, invoke_workflow_id(eid)))
        task = next(t for kind, t in dsl if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)
        closed = next(t for kind, t in dsl if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)
        result = next(t for kind, t in invoke if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
        pickup = next(
            t for kind, t in invoke if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and t >= result
        )
        for key, (a, b) in zip(
            HOPS.values(),
            ((task, closed), (closed, result), (result, pickup), (pickup, recorded[eid])),
            strict=True,
        ):
            hops[key].append((b - a) * 1000)
    return {key: _lag_summary(values) for key, values in hops.items()}


def lag_under_load(root: Path) -> dict[str, Any]:
    lab = Lab.create(Settings.from_env({}, home=root / "lab", durable=False, ui=False))
    try:
        for execution_ in [lab.run(TEN_TASKS, input={"n": i}) for i in range(20)]:
            execution_.wait(120)  # warm-up
        idle_ids = [lab.run(TEN_TASKS, input={"n": i}).wait(60).id for i in range(IDLE)]
        idle = _lag_summary(_lags_ms(lab, idle_ids))
        with _signal_trips(lab) as idle_trips:
            time.sleep(IDLE_TRIPS_S)
        loaded = {}
        for n in CONCURRENT:
            loaded[n] = _load(lab, n)
            print(f"  lag at {n} concurrent: p95 {loaded[n]['p95_ms']:.0f} ms", flush=True)
    finally:
        lab.stop()
    return {"idle": idle, "idle_signal_trip_ms": _lag_summary(idle_trips), "loaded": loaded}


def main() -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-recording-"))
    try:
        writer = writer_throughput(root)
        lag = lag_under_load(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    write_result(
        "recording",
        {
            "rows_per_scenario": ROWS,
            "repeats": REPEATS,
            "writer": writer,
            "lag": lag,
            "targets": {"writer_rows_per_s": TARGET_ROWS_PER_S, "lag_p95_ms": TARGET_LAG_P95_MS},
        },
    )
    rows = [
        {
            "measure": f"Writer, {label} (rows/s)",
            "value": span(w["writer_rows_per_s"]),
            "baseline": f"{w['plain_duckdb_rows_per_s']['median']:,.0f} (plain DuckDB, one Arrow INSERT)",
            "ratio": w["ratio"],
            "target": f"≥ {TARGET_ROWS_PER_S:,}/s",
        }
        for label, w in writer.items()
    ]
    print(f"\n(a) {ROWS:,} rows per scenario, median (range) of {REPEATS}, a fresh history file each\n")
    print(markdown_table(rows, ["measure", "value", "baseline", "ratio", "target"]))
    idle = lag["idle"]
    rows = []
    for n, loaded in lag["loaded"].items():
        trip = loaded["signal_trip_ms"]
        for key, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("max_ms", "max")):
            rows.append({
                "load": f"{n} concurrent", "lag": label, "ms": loaded[key],
                "idle baseline ms": idle[key], "ratio": loaded[key] / idle[key] if idle[key] else float("nan"),
                "of which Temporal transit ms": loaded["transit_ms"].get(key, float("nan")),
                "of which merge + commit ms": loaded["merge_and_commit_ms"].get(key, float("nan")),
                "bare signal trip, same load ms": trip.get(key, float("nan")),
                "ratio to the trip": loaded[key] / trip[key] if trip.get(key) else float("nan"),
                "target": f"≤ {TARGET_LAG_P95_MS}" if key == "p95_ms" else "",
            })  # fmt: skip
    print(
        f"\n(b) occurred_at → recorded_at over every row of the loaded runs; idle: {IDLE} sequential runs\n"
    )
    print(markdown_table(rows, list(rows[0])))
    trips = [
        {
            "load": load,
            "p50 ms": t["p50_ms"],
            "p95 ms": t["p95_ms"],
            "max ms": t["max_ms"],
            "trips": t["rows"],
        }
        for load, t in [
            ("idle", lag["idle_signal_trip_ms"]),
            *((f"{n} concurrent", r["signal_trip_ms"]) for n, r in lag["loaded"].items()),
        ]
    ]
    print(
        "\nThe bare Temporal trip under the same load, same server, same run: raw temporalio, a workflow"
        " signalling another from its first task (sender task started → receiver task started), one"
        f" trip at a time every ~{_TRIP_GAP_S:.1f} s while the load runs\n"
    )
    print(markdown_table(trips, list(trips[0])))
    context = [
        {"load": f"{n} concurrent", "executions/s": r["executions_per_s"], "CPU python (s)": r["cpu_python_s"],
         "CPU server (s)": r["cpu_server_s"], "wall (s)": r["wall_s"], "commits": r["commits"],
         "mean commit (ms)": r["mean_commit_ms"]}
        for n, r in lag["loaded"].items()
    ]  # fmt: skip
    print()
    print(markdown_table(context, list(context[0])))
    hops = [
        {"hop": label, **{f"{n} concurrent p50 / p95 ms": f"{r['hops_ms'][key]['p50_ms']:.0f} / "
                          f"{r['hops_ms'][key]['p95_ms']:.0f}" for n, r in lag["loaded"].items()}}
        for label, key in HOPS.items()
    ]  # fmt: skip
    print(
        "\n(c) where the lag goes: hop by hop from the server's event times, a sample of 100 runs per load\n"
    )
    print(markdown_table(hops, list(hops[0])))
    return {"writer": writer, "lag": lag}


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # temporalio's bridge may abort at interpreter shutdown (sdk-python#300)
