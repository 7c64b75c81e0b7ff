"""The lab: one embedded Temporal server, both workers and the history, behind a notebook-friendly API."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from . import control, logs
from ._loop import LoopThread
from .dsl import jqpool
from .dsl.activities import EffectActivities, Registry
from .dsl.events import broadcast
from .dsl.parse import parse_workflow
from .errors import (
    ExecutionTimeoutError,
    InvalidInputError,
    LabStateError,
    StigmerError,
)
from .model import ExecutionRecord
from .runner.execute import ServiceContext
from .service import Service, Subscription
from .service.service import refuse_secrets_in
from .session import astart, current, forget, start
from .settings import Settings
from .store import HistoryStore
from .temporal.codec import SecretValues
from .temporal.connect import connect_client
from .temporal.converter import sealing_converter
from .temporal.creator import InvokeWorkflowCreator
from .temporal.names import invoke_workflow_id
from .temporal.recovery import reconcile
from .temporal.schedules import (
    ScheduleInfo,
    list_schedules,
    remove_schedule,
    start_schedule,
    trigger_schedule,
)
from .temporal.server import EmbeddedServer
from .temporal.workers import runner_side_workers, stigmer_side_workers

if TYPE_CHECKING:
    import pandas as pd  # imported by DuckDB when a DataFrame is asked for: keeps start-up fast

    from .batch import Batch
    from .graph import WorkflowGraph
    from .versions import VersionDiff

__all__ = ["Execution", "Lab", "astart", "connect_client", "current", "start"]

log = logging.getLogger(__name__)


def _warm_up() -> None:
    """Load what the first run would otherwise wait for: pyarrow and pandas (DuckDB imports pandas
    on its first Arrow write, ~0.3 s) and yaml. Done once the lab is ready, so the start does not
    wait for it and a run started meanwhile simply finds the imports under way."""
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401
    import yaml  # noqa: F401


def _json_columns(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Decode JSON text columns into Python values.

    Over a large history this decode is most of ``lab.tasks()``: orjson over a plain list is ~5x
    json.loads over the Arrow-backed column. json.loads takes what orjson refuses (integers past
    64 bits, NaN). A SQL NULL becomes None, as JSON null does (DuckDB hands a text column's NULL
    over as NaN, which is truthy: ``if task.error:`` would take it for an error).
    """
    import json

    import orjson

    for col in columns:
        if col in df.columns:
            values = df[col].tolist()
            try:
                df[col] = [orjson.loads(v) if isinstance(v, str) else None for v in values]
            except orjson.JSONDecodeError:
                df[col] = [json.loads(v) if isinstance(v, str) else None for v in values]
    return df


class Execution:
    """A handle on one execution: its phase, output, tasks; wait for it or cancel it."""

    def __init__(self, lab: Lab, execution_id: str) -> None:
        self._lab = lab
        self.id = execution_id

    def __repr__(self) -> str:
        try:
            record = self.record
            return f"<Execution {self.id} {record.workflow_name} {record.phase.name}>"
        except StigmerError:
            return f"<Execution {self.id}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # The live widget inside a kernel, and always the static HTML a saved notebook shows.
        from .widgets.execution import execution_mimebundle

        return execution_mimebundle(self)

    def _ipython_display_(self) -> None:
        # Displayed with a display id, so the final static HTML replaces the first one.
        from .widgets.execution import display_execution

        display_execution(self)

    @property
    def lab(self) -> Lab:
        """The lab that runs it."""
        return self._lab

    @property
    def record(self) -> ExecutionRecord:
        """The full merged state."""
        return self._lab.service.get_execution(self.id)

    @property
    def phase(self) -> str:
        """``EXECUTION_PENDING``, ``EXECUTION_IN_PROGRESS``, ``EXECUTION_COMPLETED``, … ."""
        return self.record.phase.name

    @property
    def done(self) -> bool:
        """True once COMPLETED, FAILED, CANCELLED or TERMINATED."""
        return self.record.phase.terminal

    @property
    def output(self) -> Any:
        """The workflow output (None until it completes)."""
        return self.record.output

    @property
    def error(self) -> dict[str, Any] | None:
        """The problem details when it failed, else None."""
        return self.record.error

    @property
    def input(self) -> Any:
        """The input it was started with."""
        return self.record.input

    @property
    def tasks(self) -> pd.DataFrame:
        """One row per task run (current state, durations), in start order."""
        return self._lab.tasks(self.id)

    @property
    def updates(self) -> pd.DataFrame:
        """Every task transition, in order (the append-only log)."""
        df = self._lab.store.query(
            "SELECT * FROM task_updates WHERE execution_id = ? ORDER BY seq", [self.id]
        )
        return _json_columns(df, ("input", "output", "error"))

    @property
    def events(self) -> pd.DataFrame:
        """Its lifecycle log (started, paused, resumed, retrying, approvals …), in order."""
        return self._lab.events(self.id)

    @property
    def document_hash(self) -> str | None:
        """The content hash of the document version it runs (``lab.versions(name)``)."""
        return self.record.document_hash

    @property
    def tags(self) -> list[str]:
        """The tags it was started with."""
        return list(self.record.tags)

    @property
    def checkpoint(self) -> dict[str, Any] | None:
        """Where ``recover()`` would start, once it failed: the failed top-level task, its input
        and ``$context``; None otherwise."""
        return self.record.checkpoint

    @property
    def rerun_of(self) -> Execution | None:
        """The execution this one re-runs, if it is a re-run."""
        record = self.record
        return Execution(self._lab, record.rerun_of_id) if record.rerun_of_id else None

    @property
    def recovered_from(self) -> Execution | None:
        """The failed execution this one recovers, if it is a recovery."""
        record = self.record
        return Execution(self._lab, record.recovered_from_id) if record.recovered_from_id else None

    def graph(self) -> WorkflowGraph:
        """Its document as a diagram, tasks coloured by their runs so far (``lab.graph``)."""
        return self._lab.graph(execution=self)

    def wait(self, timeout: float | None = None, *, until: str | None = None) -> Execution:
        """Block until it finishes; ``ExecutionTimeoutError`` after ``timeout`` seconds.

        ``until``: wait for a phase instead (``"paused"``, ``"in_progress"`` …), or with
        ``"approval"`` until it waits for a person's decision.
        """
        if until is not None:
            control.wait_until(self._lab, self.id, until, timeout)
            return self
        event = self._lab.service.wait_event(self.id)
        if not event.wait(timeout):
            raise ExecutionTimeoutError(self.id, timeout or 0, self.phase)
        return self

    async def await_done(self, timeout: float | None = None) -> Execution:
        """Async twin of ``wait`` (``await execution.await_done()`` in a cell)."""
        event = self._lab.service.wait_event(self.id)
        if not await asyncio.to_thread(event.wait, timeout):
            raise ExecutionTimeoutError(self.id, timeout or 0, self.phase)
        return self

    def cancel(self) -> Execution:
        """Ask Temporal to cancel it; it ends EXECUTION_CANCELLED with running tasks marked."""
        self._lab.cancel(self.id)
        return self

    def pause(self, reason: str = "") -> Execution:
        """Stop at the next task boundary (tasks and timers under way go on to their end); the
        phase becomes EXECUTION_PAUSED there. ``resume()`` lets it go on."""
        control.pause(self._lab, self.id, reason)
        return self

    def resume(self, reason: str = "") -> Execution:
        """Go on after ``pause()``."""
        control.resume(self._lab, self.id, reason)
        return self

    def terminate(self, reason: str = "") -> Execution:
        """Stop at once, without letting any task finish; it ends EXECUTION_TERMINATED."""
        control.terminate(self._lab, self.id, reason)
        return self

    def rerun(
        self,
        *,
        input: Any = control.SAME,
        document: str | Path | Mapping[str, Any] | None = None,
        name: str | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        tags: list[str] | None = None,
    ) -> Execution:
        """Run it again as a new execution (same document version and input unless given),
        linked to this one by ``rerun_of_id``."""
        return control.rerun(
            self._lab, self.id, input=input, document=document, name=name, runtime_env=runtime_env, tags=tags
        )

    def recover(
        self,
        *,
        document: str | Path | Mapping[str, Any] | None = None,
        name: str | None = None,
        runtime_env: Mapping[str, Any] | None = None,
    ) -> Execution:
        """Resume this FAILED execution from the top-level task it failed in, with the recorded
        input and ``$context`` of that task (what ran before it is not run again), optionally
        with a fixed ``document``; a new execution linked by ``recovered_from_id``."""
        return control.recover(self._lab, self.id, document=document, name=name, runtime_env=runtime_env)

    def approve(
        self, comment: str | None = None, *, by: str | None = None, task: str | None = None
    ) -> Execution:
        """Approve the approval task it waits on (``task`` names one when several wait)."""
        control.approve(self._lab, self.id, approved=True, comment=comment, by=by, task=task)
        return self

    def reject(
        self, comment: str | None = None, *, by: str | None = None, task: str | None = None
    ) -> Execution:
        """Reject the approval task it waits on (its output says ``approved: false``)."""
        control.approve(self._lab, self.id, approved=False, comment=comment, by=by, task=task)
        return self

    def send_event(self, event: Mapping[str, Any]) -> Execution:
        """Deliver a CloudEvent (``{"type": ..., "data": ...}``) to this execution only."""
        control.send_event(self._lab, self.id, event)
        return self

    def subscribe(self) -> Subscription:
        """Current state first, then each change; ends after the terminal state."""
        return self._lab.service.subscribe(self.id)


class Lab:
    """A running lab. Create it with ``stigmer_nb.start()``; stop it with ``lab.stop()``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = Registry()
        self._thread: LoopThread | None = None
        self._workers: list[Worker] = []
        self._worker_tasks: list[asyncio.Task[None]] = []
        self._effects: EffectActivities | None = None
        self._schedule_ids: set[str] = set()
        """Schedules started from this lab (listed at once, before the server's listing has them)."""
        self._warming: asyncio.Future[None] | None = None
        self.server: EmbeddedServer | None = None
        self._client: Client | None = None
        self._store: HistoryStore | None = None
        self._service: Service | None = None
        self.secret_values = SecretValues()
        self.active_runs: set[str] = set()
        """DSL workflow ids this lab's runner is executing right now."""
        self.recovered: dict[str, list[str]] = {"lost": [], "resumed": []}
        """What the start found in the history: runs resumed, and runs lost with their server."""
        self._stopped = False
        self._log: logs.LogHandle | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def create(cls, settings: Settings, *, server: EmbeddedServer | None = None) -> Lab:
        """Start a lab on its own thread and wait until both sides are ready.

        ``server``: the embedded server, already launched (``EmbeddedServer.launch``); the lab
        owns it from here on. Without it an embedded lab launches its own.
        """
        lab = cls(settings)
        lab.server = server
        try:
            # Worker logs (tracebacks of failed activity attempts) go to the home, never a cell.
            lab._log = logs.attach(settings.home, redact=lab.secret_values.redact)
            lab._thread = LoopThread()
            lab._thread.call(lab._start())
        except BaseException:
            lab._teardown_sync()
            raise
        return lab

    async def _start(self) -> None:
        settings = self.settings
        if settings.embedded and self.server is None:
            self.server = EmbeddedServer.launch(settings)
        # The history opens (and migrates) while the server finishes booting.
        opened, ready = await asyncio.gather(
            asyncio.to_thread(
                HistoryStore, settings.history_path, protected=(settings.home, settings.home / "codec.key")
            ),
            self.server.wait_ready() if self.server is not None else asyncio.sleep(0),
            return_exceptions=True,
        )
        if isinstance(opened, HistoryStore):
            self._store = opened
        for outcome in (opened, ready):
            if isinstance(outcome, BaseException):
                raise outcome
        self._service = Service(
            self._store,
            max_input_bytes=settings.max_input_bytes,
            secret_sink=self.secret_values.add,
            recording=settings.recording,
            time_skipping=settings.time_skipping,
        )
        converter = sealing_converter(settings, self.secret_values)
        if self.server is not None:
            target = self.server.target
        else:
            assert settings.temporal_host_port is not None
            target = settings.temporal_host_port
        self._client = await connect_client(target, settings, converter)
        self._service.starter = InvokeWorkflowCreator(self._client, settings)
        effects = EffectActivities(
            self.registry,
            client=self._client,
            workflows=self._find_workflow,
            events=self._deliver_event,
            allow_shell=settings.allow_shell,
        )
        self._workers = stigmer_side_workers(self._client, settings, self._service)
        if settings.local_runner:
            self._workers += runner_side_workers(
                self._client,
                settings,
                context=ServiceContext(self._service),
                effects=effects,
                active=self.active_runs,
            )
        self._effects = effects
        self._worker_tasks = [asyncio.create_task(w.run()) for w in self._workers]
        await self._reconcile()
        self._warming = asyncio.ensure_future(asyncio.to_thread(_warm_up))

    async def _reconcile(self) -> None:
        """Runs the history shows in flight: resume them, or mark them FAILED if their server is gone."""
        assert self._client is not None and self._service is not None
        self.recovered = await reconcile(self._client, self._service)

    def stop(self) -> None:
        """Drain the workers, stop the server, close the history. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        forget(self)
        self._teardown_sync()

    async def astop(self) -> None:
        """Async twin of ``stop``."""
        await asyncio.to_thread(self.stop)

    def _teardown_sync(self) -> None:
        thread = self._thread
        if thread is not None and thread.loop.is_running():
            try:
                thread.call(self._teardown(), timeout=60)
            except Exception as exc:  # stopping must always finish
                log.warning("lab shutdown: %s", exc)
            thread.stop()
        else:
            if self.server is not None:
                self.server.stop_blocking()
            if self._store is not None:
                self._store.close()
        # The jq evaluator processes (started again by the next evaluation, in any lab).
        jqpool.shutdown()
        if self._log is not None:
            logs.detach(self._log)

    async def _teardown(self) -> None:
        for worker in self._workers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.shutdown(), timeout=15)
        for task in self._worker_tasks:
            task.cancel()
        await asyncio.gather(*self._worker_tasks, return_exceptions=True)
        if self._effects is not None:
            await self._effects.close()
        if self._warming is not None:
            await asyncio.gather(self._warming, return_exceptions=True)
        # Blocking calls from here on: at interpreter exit the default executor is already gone.
        if self.server is not None:
            self.server.stop_blocking()
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Lab:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    def __repr__(self) -> str:
        where = self.server.target if self.server else self.settings.temporal_host_port
        state = "stopped" if self._stopped else "running"
        return f"<Lab {state} temporal={where} history={self.settings.history_path}>"

    # --- parts -------------------------------------------------------------------------------

    def _check(self) -> LoopThread:
        if self._stopped or self._thread is None:
            raise LabStateError("this lab is stopped; start a new one with stigmer_nb.start()")
        return self._thread

    @property
    def client(self) -> Client:
        """The temporalio client (for looking at the workflows behind an execution)."""
        self._check()
        assert self._client is not None
        return self._client

    @property
    def service(self) -> Service:
        """The Stigmer-side service (create/get/list, status, subscribers)."""
        if self._service is None:
            raise LabStateError("the lab has not started")
        return self._service

    @property
    def store(self) -> HistoryStore:
        """The history store."""
        if self._store is None:
            raise LabStateError("the lab has not started")
        return self._store

    @property
    def log_path(self) -> Path:
        """The workers' log (``<home>/workers.log``): failed activity attempts with their tracebacks."""
        return logs.log_path(self.settings.home)

    @property
    def running(self) -> bool:
        """True until ``stop()``."""
        return not self._stopped

    # --- running workflows -------------------------------------------------------------------

    def run(
        self,
        doc: str | Path | Mapping[str, Any],
        *,
        input: Any = None,
        name: str | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        tags: list[str] | None = None,
    ) -> Execution:
        """Validate and start ``doc`` (a path, YAML text or a dict); returns at once."""
        thread = self._check()
        # Validation runs here, on the caller's thread: it may wait on jq evaluators (compiling
        # what could run away), and on the lab's loop that wait would stall both workers.
        document, spec = self._prepared(doc, runtime_env)
        return thread.call(self._run(document, spec, input, name, runtime_env, tags))

    async def arun(
        self,
        doc: str | Path | Mapping[str, Any],
        *,
        input: Any = None,
        name: str | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        tags: list[str] | None = None,
    ) -> Execution:
        """Async twin of ``run``."""
        thread = self._check()
        document, spec = await asyncio.to_thread(self._prepared, doc, runtime_env)
        return await thread.run(self._run(document, spec, input, name, runtime_env, tags))

    def _prepared(
        self, doc: str | Path | Mapping[str, Any], runtime_env: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        document, spec = self.prepare(doc)
        refuse_secrets_in(document, runtime_env)
        return document, spec

    async def _run(
        self,
        document: dict[str, Any],
        spec: dict[str, Any] | None,
        input: Any,
        name: str | None,
        runtime_env: Mapping[str, Any] | None,
        tags: list[str] | None = None,
    ) -> Execution:
        wf = await self.service.apply_workflow(document, spec=spec)
        record = await self.service.create_execution(
            workflow=wf.id,
            name=name,
            input=input,
            runtime_env=runtime_env,
            tags=tags,
            document_hash=wf.document_hash,
        )
        return Execution(self, record.id)

    def map(
        self,
        doc: str | Path | Mapping[str, Any],
        inputs: Any,
        *,
        tags: list[str] | None = None,
        name: str | None = None,
        runtime_env: Mapping[str, Any] | None = None,
    ) -> Batch:
        """Start ``doc`` once per input (a list, any iterable, or a DataFrame's rows), all
        tagged ``tags`` and sharing a ``batch_id``; returns at once with a progress bar."""
        from .batch import start_batch

        return start_batch(self, doc, inputs, tags=tags, name=name, runtime_env=runtime_env)

    # --- steering -----------------------------------------------------------------------------

    def pause(self, execution_id: str, reason: str = "") -> None:
        """``execution.pause()`` by id."""
        control.pause(self, execution_id, reason)

    def resume(self, execution_id: str, reason: str = "") -> None:
        """``execution.resume()`` by id."""
        control.resume(self, execution_id, reason)

    def terminate(self, execution_id: str, reason: str = "") -> None:
        """``execution.terminate()`` by id."""
        control.terminate(self, execution_id, reason)

    def approve(
        self, execution_id: str, comment: str | None = None, *, by: str | None = None, task: str | None = None
    ) -> None:
        """``execution.approve()`` by id."""
        control.approve(self, execution_id, approved=True, comment=comment, by=by, task=task)

    def reject(
        self, execution_id: str, comment: str | None = None, *, by: str | None = None, task: str | None = None
    ) -> None:
        """``execution.reject()`` by id."""
        control.approve(self, execution_id, approved=False, comment=comment, by=by, task=task)

    def pending_approvals(self) -> pd.DataFrame:
        """Approval tasks waiting for a person's decision, oldest first (the ``pending_approvals`` view)."""
        df = self.store.query("SELECT * FROM pending_approvals ORDER BY requested_at, execution_id")
        return _json_columns(df, ("input",))

    def events(self, execution_id: str | None = None) -> pd.DataFrame:
        """The lifecycle log (``execution_events``) of one execution or all, in order."""
        sql = "SELECT * FROM execution_events"
        params: list[Any] = []
        if execution_id:
            sql += " WHERE execution_id = ?"
            params.append(execution_id)
        sql += " ORDER BY occurred_at, coalesce(seq, 2147483647), recorded_at"
        return _json_columns(self.store.query(sql, params), ("detail",))

    # --- diagrams -----------------------------------------------------------------------------

    def graph(
        self,
        doc: str | Path | Mapping[str, Any] | None = None,
        *,
        execution: Execution | str | None = None,
    ) -> WorkflowGraph:
        """A workflow document as a diagram (SVG in a notebook; ``.mermaid``, ``.dot``, ``.svg``).

        With ``execution`` (an ``Execution`` or its id) its tasks are coloured by their runs so
        far, on the document version that execution runs unless ``doc`` is given.
        """
        from . import graph

        if execution is None:
            if doc is None:
                raise InvalidInputError("lab.graph() needs a document, or execution=")
            return graph.for_document(doc)
        execution_id = execution if isinstance(execution, str) else execution.id
        snapshot = self.service.snapshot(execution_id)
        if doc is None:
            record = snapshot.record
            doc = (
                self.service.version_document(record.document_hash)
                if record.document_hash
                else self.service.get_workflow(record.workflow_id).document
            )
        return graph.for_execution(doc, snapshot.tasks)

    # --- versions -----------------------------------------------------------------------------

    def versions(self, workflow: str) -> pd.DataFrame:
        """``workflow``'s document versions by content hash, oldest first, with their outcomes."""
        from .versions import versions

        return versions(self, workflow)

    def diff(self, workflow: str, a: str | None = None, b: str | None = None) -> VersionDiff:
        """What changed between two versions of ``workflow`` (default: the previous and the current)."""
        from .versions import diff

        return diff(self, workflow, a, b)

    # --- schedules ----------------------------------------------------------------------------

    def schedule(self, doc: str | Path | Mapping[str, Any], *, input: Any = None) -> str:
        """Start ``doc``'s ``schedule`` (every, cron or after); returns the schedule's id.

        ``every`` and ``cron`` become Temporal Schedules (in a lab with time skipping, ``every``
        is a repeating workflow on a virtual clock); ``after`` is a repeating workflow that starts
        the next run that long after the previous one ended. Scheduling a workflow again replaces
        its schedule. Runs are ordinary executions (their ``trigger_message`` names the schedule).
        """
        thread = self._check()
        document, spec = self._prepared(doc, None)
        schedule = document.get("schedule")
        if not isinstance(schedule, Mapping):
            raise InvalidInputError(
                "the document has no `schedule`: add e.g. `schedule: {every: {hours: 1}}`"
            )
        return thread.call(self._schedule(document, spec, schedule, input))

    async def _schedule(
        self, document: dict[str, Any], spec: dict[str, Any] | None, schedule: Mapping[str, Any], input: Any
    ) -> str:
        wf = await self.service.apply_workflow(document, spec=spec)
        schedule_id = await start_schedule(
            self.client, self.settings, slug=wf.slug, workflow=wf.name, schedule=schedule, input=input
        )
        self._schedule_ids.add(schedule_id)
        return schedule_id

    def schedules(self) -> pd.DataFrame:
        """The lab's schedules that are on: id, workflow, kind, spec, mechanism, next run, runs so far."""
        import pandas as pd

        found = self._check().call(
            list_schedules(self.client, self.settings.stigmer_queue, self._schedule_ids)
        )
        frame = pd.DataFrame(
            [dataclasses.asdict(s) for s in found],
            columns=[f.name for f in dataclasses.fields(ScheduleInfo)],
        )
        counts = self.sql(
            "SELECT trigger_message, count(*) AS runs FROM workflow_executions "
            "WHERE trigger_message LIKE 'schedule %' GROUP BY trigger_message"
        )
        runs = {
            str(m).removeprefix("schedule "): int(n)
            for m, n in zip(counts["trigger_message"], counts["runs"], strict=True)
        }
        frame["runs"] = [runs.get(i, 0) for i in frame["schedule_id"]]
        return frame

    def unschedule(self, schedule_id: str) -> None:
        """Remove a schedule: no run starts after this; runs already started go on."""
        self._check().call(remove_schedule(self.client, schedule_id))
        self._schedule_ids.discard(schedule_id)

    def trigger_schedule(self, schedule_id: str) -> None:
        """Start one run of an ``every``/``cron`` schedule now, without waiting for its time."""
        self._check().call(trigger_schedule(self.client, schedule_id))

    def prepare(self, doc: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Parse and validate ``doc``; a Stigmer WorkflowSpec is converted. Returns (document, spec)."""
        return parse_workflow(doc)

    def execution(self, execution_id: str) -> Execution:
        """A handle on an existing execution (by id)."""
        self.service.get_execution(execution_id)
        return Execution(self, execution_id)

    def cancel(self, execution_id: str) -> None:
        """Cancel an execution through Temporal (nothing to do once it has ended)."""
        if self.service.get_execution(execution_id).phase.terminal:
            return
        try:
            self._check().call(self.client.get_workflow_handle(invoke_workflow_id(execution_id)).cancel())
        except RPCError as exc:
            # It may have ended between the look and the request.
            if (
                exc.status != RPCStatusCode.NOT_FOUND
                or not self.service.get_execution(execution_id).phase.terminal
            ):
                raise

    def register_function(self, name: str, fn: Callable[..., Any]) -> None:
        """Make ``fn`` callable from documents as ``call: <name>`` (arguments from ``with``)."""
        if not callable(fn):
            raise InvalidInputError(f"register_function({name!r}, ...) needs a callable")
        self.registry.functions[name] = fn

    def register_agent(self, slug: str, fn: Callable[..., Any]) -> None:
        """Make ``fn(message, ...)`` the agent ``slug`` for ``call: agent`` / AGENT_CALL tasks."""
        if not callable(fn):
            raise InvalidInputError(f"register_agent({slug!r}, ...) needs a callable")
        self.registry.agents[slug] = fn

    def send_event(self, event: Mapping[str, Any]) -> int:
        """Deliver a CloudEvent to listening executions; returns how many received it."""
        from .temporal.names import APPROVAL_EVENT
        from .temporal.steer import complete_event

        full = complete_event(dict(event))
        if full["type"] == APPROVAL_EVENT:
            raise InvalidInputError(
                "a decision goes to one execution: use execution.approve() / .reject() (or lab.approve(id))"
            )
        return self._check().call(self._deliver_event(full))

    async def _deliver_event(self, event: dict[str, Any], emitter: str | None = None) -> int:
        known = {*self.active_runs, *([emitter] if emitter else [])}
        return await broadcast(
            self.client,
            event,
            task_queue=self.settings.zigflow_queue,
            schedule_queue=self.settings.stigmer_queue,
            also=known,
        )

    async def _find_workflow(
        self, execution_id: str | None, namespace: str | None, name: str, version: str | None
    ) -> dict[str, Any]:
        from .dsl.activities import effect_error

        try:
            return self.service.find_document(namespace, name, version)
        except StigmerError as exc:
            raise effect_error("configuration", f"run.workflow: {exc}") from None

    # --- history -----------------------------------------------------------------------------

    def history(
        self,
        *,
        workflow: str | None = None,
        phase: Any = None,
        since: Any = None,
        limit: int | None = None,
        tag: str | None = None,
        batch: str | None = None,
    ) -> pd.DataFrame:
        """Executions, newest first; only ``workflow``'s (name, slug or id), in ``phase``
        (``"completed"``, ``"running"``, a list, …), created since ``since`` (``"1h"``, a datetime),
        tagged ``tag``, or started by ``lab.map`` batch ``batch`` (its id)."""
        where, params = self._history_filters(workflow, phase, since, "created_at", tag=tag, batch=batch)
        sql = f"SELECT * FROM workflow_executions{where} ORDER BY created_at DESC, id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return _json_columns(self.store.query(sql, params), ("input", "output", "error", "runtime_env"))

    def tasks(
        self,
        execution_id: str | None = None,
        *,
        workflow: str | None = None,
        phase: Any = None,
        status: str | None = None,
        since: Any = None,
        tag: str | None = None,
    ) -> pd.DataFrame:
        """Task runs (current state and durations) of one execution or all; filters as in
        ``history`` (``phase`` and ``tag`` are the execution's), ``status`` the task's
        (``"failed"``, …), and ``since`` when the task started."""
        where, params = self._history_filters(
            workflow, phase, since, "started_at", alias="t", join="e", tag=tag
        )
        clauses = [where.removeprefix(" WHERE ")] if where else []
        if execution_id:
            clauses.append("t.execution_id = ?")
            params.append(execution_id)
        if status:
            name = str(status).strip().upper()
            clauses.append("t.status = ?")
            params.append(name if name.startswith("WORKFLOW_TASK_") else f"WORKFLOW_TASK_{name}")
        sql = "SELECT t.* FROM task_states t"
        if workflow is not None or phase is not None or tag is not None:
            sql += " JOIN workflow_executions e ON e.id = t.execution_id"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY t.execution_id, t.first_seq"
        return _json_columns(self.store.query(sql, params), ("input", "output", "error"))

    def sql(self, query: str, params: Any = None, *, write: bool = False) -> pd.DataFrame | None:
        """SQL over the history as a DataFrame; read-only unless ``write=True``."""
        return self.store.sql(query, params, write=write)

    def temporal_ui(self, path: str | None = None, *, iframe: bool | None = None, height: int = 600) -> Any:
        """The Temporal Web UI of this lab's server: a link, and an inline frame when it is served
        through jupyter-server-proxy (``path``: a UI page, default this namespace's workflows)."""
        from .widgets.ui import temporal_ui

        return temporal_ui(self, path=path, iframe=iframe, height=height)

    def dashboard(
        self,
        *,
        workflow: str | None = None,
        phase: str | None = None,
        since: str | None = None,
        tag: str | None = None,
        follow: bool = True,
    ) -> Any:
        """The history dashboard: filters (workflow, phase, since, tag), a live executions table,
        charts, a task timeline."""
        from .widgets.dashboard import Dashboard

        self._check()
        return Dashboard(self, workflow=workflow, phase=phase, since=since, tag=tag, follow=follow)

    def _history_filters(
        self,
        workflow: str | None,
        phase: Any,
        since: Any,
        time_column: str,
        *,
        alias: str = "",
        join: str = "",
        tag: str | None = None,
        batch: str | None = None,
    ) -> tuple[str, list[Any]]:
        """``WHERE`` clause and parameters for the workflow / phase / since filters."""
        from .analytics import normalise_phases, parse_since

        owner = f"{join}." if join else (f"{alias}." if alias else "")
        timed = f"{alias}." if alias else ""
        clauses: list[str] = []
        params: list[Any] = []
        if workflow is not None:
            clauses.append(f"{owner}workflow_id = ?")
            params.append(self.service.get_workflow(workflow).id)
        phases = normalise_phases(phase)
        if phases is not None:
            clauses.append(f"{owner}phase IN ({', '.join('?' for _ in phases)})")
            params.extend(phases)
        start = parse_since(since)
        if start is not None:
            clauses.append(f"{timed}{time_column} >= ?")
            params.append(start)
        if tag is not None:
            clauses.append(f"list_contains({owner}tags, ?)")
            params.append(str(tag))
        if batch is not None:
            clauses.append(f"{owner}batch_id = ?")
            params.append(str(batch))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
