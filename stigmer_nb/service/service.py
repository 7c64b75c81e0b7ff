"""The Stigmer-side service: workflows, instances and executions, their create pipeline and status."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..dsl.document import MAX_DEPTH, check_nesting, too_deep
from ..errors import (
    AlreadyExistsError,
    ExecutionStartError,
    InputTooLargeError,
    InvalidInputError,
    NotFoundError,
)
from ..model import (
    ExecutionPhase,
    ExecutionRecord,
    InstanceRecord,
    WorkflowRecord,
    default_execution_name,
    new_id,
    slugify,
)
from ..store import HistoryStore, dumps
from ..temporal.names import dsl_workflow_id, invoke_workflow_id
from ..temporal.types import ExecutionContext, StatusUpdate
from .merge import REDACTED, TaskState, copy_tasks, merge_status, redact
from .subscribers import Callback, ExecutionSnapshot, SubscriberHub, Subscription

__all__ = ["Service", "Starter"]

Starter = Callable[[ExecutionRecord], Awaitable[None]]
"""Starts the Temporal side of a freshly persisted execution (the creator)."""

_DEFAULT_INSTANCE_DESCRIPTION = "Default instance (auto-created, no custom configuration)"
_INPUT_HINT = "flatten it, or pass a reference to it (a path or URL) instead"


def _now() -> datetime:
    return datetime.now(UTC)


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _normalise_env(runtime_env: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``{K: "v"}`` or ``{K: {"value": "v", "is_secret": bool}}`` → the latter, validated."""
    env: dict[str, dict[str, Any]] = {}
    for key, raw in (runtime_env or {}).items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"runtime_env keys must be non-empty strings, got {key!r}")
        if isinstance(raw, Mapping):
            unknown = set(raw) - {"value", "is_secret"}
            if unknown:
                raise InvalidInputError(
                    f"runtime_env[{key!r}] has unknown field(s) {sorted(unknown)}; use value and is_secret"
                )
            value, secret = raw.get("value"), bool(raw.get("is_secret", False))
        else:
            value, secret = raw, False
        if value is None or value == "":
            raise InvalidInputError(f"runtime_env[{key!r}] is empty; every value must be a non-empty string")
        env[key] = {"value": str(value), "is_secret": secret}
    return env


def refuse_secrets_in(document: Mapping[str, Any], runtime_env: Mapping[str, Any] | None) -> None:
    """Refuse a document that holds the value of one of its run's secrets: the history stores
    documents as written, so the value would sit there in clear (checked before anything is saved)."""
    secrets = {k: v["value"] for k, v in _normalise_env(runtime_env).items() if v["is_secret"]}
    if not secrets:
        return
    text = json.dumps(document)
    for key, value in secrets.items():
        # Shorter values ("1", "yes") turn up in any document by chance; they are redacted anyway.
        if len(value) >= 4 and json.dumps(value)[1:-1] in text:
            raise InvalidInputError(
                f"the document contains the value of secret {key!r}; documents are stored as "
                f"written: pass the value only in runtime_env and read it as $secrets.{key}"
            )


class _Live:
    """In-memory state of an execution that has not finished (or just did)."""

    __slots__ = ("record", "stale", "tasks", "terminal_event")

    def __init__(self, record: ExecutionRecord, tasks: dict[str, TaskState]) -> None:
        self.record = record
        self.tasks = tasks
        self.stale = False
        """Set when a write failed: the next update reloads from the history first."""
        self.terminal_event = threading.Event()
        if record.phase.terminal:
            self.terminal_event.set()


class Service:
    """Create/get/list resources following Stigmer's pipelines; merge status; notify subscribers.

    Mutations run on the lab's loop thread; reads may come from any thread.
    """

    def __init__(
        self,
        store: HistoryStore,
        *,
        max_input_bytes: int = 2 * 1024 * 1024,
        secret_sink: Callable[[list[str]], None] | None = None,
        recording: bool = True,
        time_skipping: bool = False,
    ) -> None:
        self.store = store
        self.time_skipping = time_skipping
        """New executions run with a virtual clock (recorded on each, so the history says so)."""
        self.recording = recording
        """False keeps task transitions out of the history (benchmarks only; the final state is kept)."""
        self.starter: Starter | None = None
        self.secret_sink = secret_sink
        """Told every secret value at create time (the payload codec seals payloads carrying them)."""
        self.hub = SubscriberHub()
        self.max_input_bytes = max_input_bytes
        self._lock = threading.RLock()
        self._live: dict[str, _Live] = {}
        self._secrets: dict[str, dict[str, str]] = {}
        self._workflows: dict[str, WorkflowRecord] = {}
        self._instances: dict[str, InstanceRecord] = {}
        self._reserved_slugs: set[str] = set()
        self._catalog_lock = asyncio.Lock()
        self._load_catalog()

    # --- workflows and instances --------------------------------------------------------------

    def _load_catalog(self) -> None:
        for row in self.store.rows(
            "SELECT id, name, slug, namespace, version, description, document, spec, "
            "default_instance_id, created_at, updated_at FROM workflows"
        ):
            wf = WorkflowRecord(
                id=row[0],
                name=row[1],
                slug=row[2],
                namespace=row[3],
                version=row[4],
                description=row[5] or "",
                document=_loads(row[6]),
                spec=_loads(row[7]),
                default_instance_id=row[8],
                created_at=row[9],
                updated_at=row[10],
            )
            self._workflows[wf.id] = wf
        for row in self.store.rows(
            "SELECT id, name, slug, workflow_id, description, created_at, updated_at FROM workflow_instances"
        ):
            inst = InstanceRecord(*row[:4], description=row[4] or "", created_at=row[5], updated_at=row[6])
            self._instances[inst.id] = inst

    def workflows(self) -> list[WorkflowRecord]:
        """Every workflow, oldest first."""
        with self._lock:
            return sorted(self._workflows.values(), key=lambda w: w.id)

    def get_workflow(self, ref: str) -> WorkflowRecord:
        """A workflow by id, slug or name; NotFoundError (with a suggestion) otherwise."""
        return self._find(self._workflows, ref, "workflow")

    def get_instance(self, ref: str) -> InstanceRecord:
        """An instance by id, slug or name."""
        return self._find(self._instances, ref, "workflow instance")

    def _find(self, catalog: dict[str, Any], ref: str, kind: str) -> Any:
        with self._lock:
            if ref in catalog:
                return catalog[ref]
            for item in catalog.values():
                if ref in (item.slug, item.name):
                    return item
            known = [item.slug for item in catalog.values()]
        raise NotFoundError(kind, ref, known=known)

    async def apply_workflow(
        self,
        document: dict[str, Any],
        *,
        spec: dict[str, Any] | None = None,
        description: str = "",
    ) -> WorkflowRecord:
        """Create the workflow named by ``document.name``, or update it; ensures its default instance."""
        # Two runs of a new document submitted together must not both create it.
        async with self._catalog_lock:
            return await self._apply_workflow(document, spec, description)

    async def _apply_workflow(
        self, document: dict[str, Any], spec: dict[str, Any] | None, description: str
    ) -> WorkflowRecord:
        meta = document.get("document") or {}
        name = str(meta.get("name") or "")
        slug = slugify(name)
        now = _now()
        with self._lock:
            existing = next((w for w in self._workflows.values() if w.slug == slug), None)
        if existing is None:
            wf = WorkflowRecord(
                id=new_id("workflow"),
                name=name,
                slug=slug,
                namespace=str(meta.get("namespace", "")),
                version=str(meta.get("version", "")),
                document=document,
                spec=spec,
                description=description or str(meta.get("summary") or meta.get("title") or ""),
                created_at=now,
                updated_at=now,
            )
            await self._write(
                "INSERT INTO workflows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    wf.id,
                    wf.name,
                    wf.slug,
                    wf.namespace,
                    wf.version,
                    wf.description,
                    dumps(wf.document),
                    dumps(wf.spec),
                    None,
                    now,
                    now,
                ],
            )
            with self._lock:
                self._workflows[wf.id] = wf
        else:
            wf = existing
            if wf.document != document or wf.spec != spec:
                wf.document, wf.spec = document, spec
                wf.namespace, wf.version = str(meta.get("namespace", "")), str(meta.get("version", ""))
                wf.updated_at = now
                await self._write(
                    "UPDATE workflows SET document = ?, spec = ?, namespace = ?, version = ?, "
                    "updated_at = ? WHERE id = ?",
                    [dumps(document), dumps(spec), wf.namespace, wf.version, now, wf.id],
                )
        await self._default_instance(wf)
        return wf

    async def _default_instance(self, wf: WorkflowRecord) -> InstanceRecord:
        """Stigmer's CreateDefaultInstanceIfNeeded: reuse, recover by slug, or create ``<name>-default``."""
        with self._lock:
            if wf.default_instance_id and wf.default_instance_id in self._instances:
                return self._instances[wf.default_instance_id]
            name = f"{wf.name}-default"
            slug = slugify(name)
            found = next(
                (i for i in self._instances.values() if i.slug == slug and i.workflow_id == wf.id), None
            )
        if found is None:
            now = _now()
            found = InstanceRecord(
                id=new_id("workflow_instance"),
                name=name,
                slug=slug,
                workflow_id=wf.id,
                description=_DEFAULT_INSTANCE_DESCRIPTION,
                created_at=now,
                updated_at=now,
            )
            await self._write(
                "INSERT INTO workflow_instances VALUES (?, ?, ?, ?, ?, ?, ?)",
                [found.id, found.name, found.slug, found.workflow_id, found.description, now, now],
            )
            with self._lock:
                self._instances[found.id] = found
        if wf.default_instance_id != found.id:
            wf.default_instance_id = found.id
            await self._write("UPDATE workflows SET default_instance_id = ? WHERE id = ?", [found.id, wf.id])
        return found

    # --- executions ------------------------------------------------------------------------------

    def find_document(self, namespace: str | None, name: str, version: str | None) -> dict[str, Any]:
        """The document ``run: workflow`` names: a workflow by name, checked against namespace and version."""
        wf = self.get_workflow(name)
        if namespace and wf.namespace != namespace:
            raise InvalidInputError(f"{name!r} is in namespace {wf.namespace!r}, not {namespace!r}")
        if version and version not in ("latest", wf.version):
            raise InvalidInputError(f"{name!r} is at version {wf.version}, not {version}")
        return dict(wf.document)

    async def create_execution(
        self,
        *,
        workflow: str | None = None,
        instance: str | None = None,
        name: str | None = None,
        input: Any = None,
        runtime_env: Mapping[str, Any] | None = None,
        trigger_message: str = "",
        start: bool = True,
    ) -> ExecutionRecord:
        """Stigmer's create pipeline: validate → slug → workflow-or-instance → default instance →
        duplicate check → PENDING → persist → start. A failed start is saved as FAILED and raised.

        ``start=False`` leaves the start to the caller (a schedule starts the invoke workflow itself)."""
        # validate (nothing is written before every check has passed)
        try:
            encoded_input = json.dumps(input, allow_nan=False, separators=(",", ":"))
        except RecursionError:
            encoded_input = ""  # nested past the stack: the walk below says how deep
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"input is not JSON: {exc}; pass dicts, lists, strings, numbers"
            ) from None
        if not encoded_input:
            check_nesting(input, "the input", max_nodes=self.max_input_bytes, hint=_INPUT_HINT)
            raise too_deep("the input", None, _INPUT_HINT)  # the stack was short already
        size = len(encoded_input.encode())
        if size > self.max_input_bytes:
            raise InputTooLargeError(size, self.max_input_bytes)
        # The interpreter and jq recurse per level too. Counting brackets (C speed) spares the walk
        # (Python speed) for the many inputs that cannot nest past the limit.
        if encoded_input.count("[") + encoded_input.count("{") > MAX_DEPTH:
            check_nesting(input, "the input", max_nodes=self.max_input_bytes, hint=_INPUT_HINT)
        env = _normalise_env(runtime_env)
        # slug
        name = name or default_execution_name()
        slug = slugify(name)
        # workflow or instance
        if not workflow and not instance:
            raise InvalidInputError("either a workflow or a workflow instance must be given")
        if instance:
            inst = self.get_instance(instance)
            wf = self.get_workflow(inst.workflow_id)
        else:
            assert workflow is not None
            wf = self.get_workflow(workflow)
            async with self._catalog_lock:
                inst = await self._default_instance(wf)
        # duplicate check
        with self._lock:
            if slug in self._reserved_slugs or self.store.rows(
                "SELECT id FROM workflow_executions WHERE slug = ?", [slug]
            ):
                raise AlreadyExistsError(
                    f"an execution named {name!r} (slug {slug!r}) already exists; pick another name"
                )
            self._reserved_slugs.add(slug)
        try:
            now = _now()
            record = ExecutionRecord(
                id=new_id("workflow_execution"),
                name=name,
                slug=slug,
                workflow_id=wf.id,
                workflow_instance_id=inst.id,
                workflow_name=wf.name,
                phase=ExecutionPhase.EXECUTION_PENDING,
                input=input,
                runtime_env=env,
                trigger_message=trigger_message,
                time_skipping=self.time_skipping,
                created_at=now,
                updated_at=now,
            )
            # Both ids follow from the execution id, so they are known before anything runs.
            record.temporal_workflow_id = invoke_workflow_id(record.id)
            record.runner_workflow_id = dsl_workflow_id(record.id)
            secrets = {k: v["value"] for k, v in env.items() if v["is_secret"]}
            if secrets and self.secret_sink is not None:
                self.secret_sink(list(secrets.values()))
            live = _Live(record, {})
            with self._lock:
                self._live[record.id] = live
                if secrets:
                    self._secrets[record.id] = secrets
            await asyncio.wrap_future(self._writer().insert_execution(self._row(record)))
        finally:
            with self._lock:
                self._reserved_slugs.discard(slug)
        # start
        if start and self.starter is not None:
            try:
                await self.starter(record)
            except Exception as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                await self.update_status(
                    StatusUpdate(
                        execution_id=record.id,
                        phase=ExecutionPhase.EXECUTION_FAILED.name,
                        error={
                            "type": "https://serverlessworkflow.io/spec/1.0.0/errors/runtime",
                            "status": 500,
                            "title": "Failed to start Temporal workflow",
                            "detail": f"Failed to start Temporal workflow: {reason}",
                        },
                    )
                )
                raise ExecutionStartError(record.id, reason) from exc
        return record

    def _row(self, record: ExecutionRecord) -> dict[str, Any]:
        secrets = tuple(self._secrets.get(record.id, {}).values())
        env = {
            k: {
                "value": REDACTED if v.get("is_secret") else v.get("value"),
                "is_secret": bool(v.get("is_secret")),
            }
            for k, v in record.runtime_env.items()
        }
        return {
            "id": record.id,
            "name": record.name,
            "slug": record.slug,
            "workflow_id": record.workflow_id,
            "workflow_instance_id": record.workflow_instance_id,
            "workflow_name": record.workflow_name,
            "phase": record.phase.name,
            "input": redact(record.input, secrets),
            "output": record.output,
            "error": record.error,
            "runtime_env": env,
            "trigger_message": record.trigger_message,
            "created_at": record.created_at,
            "started_at": record.started_at,
            "completed_at": record.completed_at,
            "updated_at": record.updated_at,
            "temporal_workflow_id": record.temporal_workflow_id,
            "runner_workflow_id": record.runner_workflow_id,
            "time_skipping": record.time_skipping,
        }

    def _writer(self):  # type: ignore[no-untyped-def]
        if self.store.writer is None:
            raise InvalidInputError("this history store is read-only")
        return self.store.writer

    async def _write(self, sql: str, params: Any) -> None:
        await asyncio.wrap_future(self._writer().execute(sql, params))

    def _reload(self, live: _Live) -> None:
        record, tasks = self._read_state(live.record.id)
        with self._lock:
            live.record, live.tasks, live.stale = record, tasks, False

    def _load_live(self, execution_id: str) -> _Live:
        """The in-memory state of an execution, loaded from the history when needed."""
        with self._lock:
            live = self._live.get(execution_id)
        if live is not None:
            return live
        record, tasks = self._read_state(execution_id)
        live = _Live(record, tasks)
        if record.phase.terminal:
            return live  # finished: nothing will change it, so it is not kept in memory
        with self._lock:
            return self._live.setdefault(execution_id, live)

    def _read_state(self, execution_id: str) -> tuple[ExecutionRecord, dict[str, TaskState]]:
        record = self._read_record(execution_id)
        tasks: dict[str, TaskState] = {}
        for row in self.store.rows(
            "SELECT task_id, reference, name, kind, status, parent_id, attempt, started_at, completed_at, "
            "input, output, error, first_seq, last_seq FROM task_states WHERE execution_id = ? ORDER BY first_seq",
            [execution_id],
        ):
            state = TaskState(
                task_id=row[0],
                reference=row[1],
                name=row[2],
                kind=row[3],
                status=row[4],
                parent_id=row[5],
                attempt=row[6],
                started_at=row[7],
                completed_at=row[8],
                input=_loads(row[9]),
                output=_loads(row[10]),
                error=_loads(row[11]),
                first_seq=row[12],
            )
            # Replayed reports are skipped up to the highest transition already recorded.
            record.last_seq = max(record.last_seq, row[13])
            parent = tasks.get(state.parent_id) if state.parent_id else None
            state.depth = parent.depth + 1 if parent else 0
            tasks[state.task_id] = state
        return record, tasks

    def _read_record(self, execution_id: str) -> ExecutionRecord:
        rows = self.store.rows(
            "SELECT id, name, slug, workflow_id, workflow_instance_id, workflow_name, phase, input, output, "
            "error, runtime_env, trigger_message, created_at, started_at, completed_at, updated_at, "
            "temporal_workflow_id, runner_workflow_id, time_skipping FROM workflow_executions WHERE id = ?",
            [execution_id],
        )
        if not rows:
            known = [
                r[0]
                for r in self.store.rows(
                    "SELECT id FROM workflow_executions ORDER BY created_at DESC LIMIT 200"
                )
            ]
            raise NotFoundError("execution", execution_id, known=known)
        r = rows[0]
        return ExecutionRecord(
            id=r[0],
            name=r[1],
            slug=r[2],
            workflow_id=r[3],
            workflow_instance_id=r[4],
            workflow_name=r[5],
            phase=ExecutionPhase[r[6]],
            input=_loads(r[7]),
            output=_loads(r[8]),
            error=_loads(r[9]),
            runtime_env=_loads(r[10]) or {},
            trigger_message=r[11] or "",
            created_at=r[12],
            started_at=r[13],
            completed_at=r[14],
            updated_at=r[15],
            temporal_workflow_id=r[16],
            runner_workflow_id=r[17],
            time_skipping=bool(r[18]),
        )

    def get_execution(self, execution_id: str) -> ExecutionRecord:
        """The execution's current merged state (live if running, else from the history)."""
        with self._lock:
            live = self._live.get(execution_id)
            if live is not None:
                return live.record
        return self._read_record(execution_id)

    def snapshot(self, execution_id: str) -> ExecutionSnapshot:
        """Record and task states of one execution, as subscribers see them."""
        live = self._load_live(execution_id)
        with self._lock:
            return ExecutionSnapshot(_copy_record(live.record), copy_tasks(live.tasks))

    def running_execution_ids(self) -> list[str]:
        """Executions the history shows as PENDING or IN_PROGRESS."""
        return [
            r[0]
            for r in self.store.rows(
                "SELECT id FROM workflow_executions "
                "WHERE phase IN ('EXECUTION_PENDING', 'EXECUTION_IN_PROGRESS')"
            )
        ]

    def wait_event(self, execution_id: str) -> threading.Event:
        """An event set once the execution reaches a terminal phase."""
        with self._lock:
            live = self._live.get(execution_id)
        if live is None and self._read_record(execution_id).phase.terminal:
            done = threading.Event()  # finished: one key lookup, no task states to load
            done.set()
            return done
        return self._load_live(execution_id).terminal_event

    def load_context(self, execution_id: str) -> ExecutionContext:
        """Execution → instance → workflow, as a runner needs it (the agent-runner pattern)."""
        record = self.get_execution(execution_id)
        inst = self.get_instance(record.workflow_instance_id)
        wf = self.get_workflow(inst.workflow_id)
        with self._lock:
            secrets = dict(self._secrets.get(execution_id, {}))
        env = {k: str(v["value"]) for k, v in record.runtime_env.items() if not v.get("is_secret")}
        return ExecutionContext(
            execution_id=record.id,
            workflow_id=wf.id,
            workflow_instance_id=inst.id,
            workflow_name=wf.name,
            document=wf.document,
            input=record.input,
            env=env,
            secrets=secrets,
        )

    def secret_values(self, execution_id: str) -> tuple[str, ...]:
        """Secret values of an execution known to this process (for redaction)."""
        with self._lock:
            return tuple(self._secrets.get(execution_id, {}).values())

    # --- status ----------------------------------------------------------------------------------

    async def update_status(self, update: StatusUpdate) -> None:
        """Merge ``update``, commit it, then tell subscribers. Replayed events are skipped."""
        live = self._load_live(update.execution_id)
        if live.stale:
            self._reload(live)
        secrets = self.secret_values(update.execution_id)
        with self._lock:
            result = merge_status(live.record, live.tasks, update, secrets=secrets)
            row = self._row(live.record) if result.changed else None
        if not result.changed and not result.task_rows:
            return
        writer = self._writer()
        futures = []
        if not self.recording:
            # Benchmarks measure what recording costs: only the final state is written.
            result.task_rows.clear()
            row = row if result.became_terminal else None
        if result.task_rows:
            futures.append(writer.insert_task_updates(result.task_rows))
        if row is not None:
            futures.append(writer.update_execution(row))
        try:
            for fut in futures:
                await asyncio.wrap_future(fut)
        except Exception:
            # The history did not take it: the retry reloads from the history and merges again.
            live.stale = True
            raise
        self._publish(live, result.became_terminal)

    def _publish(self, live: _Live, became_terminal: bool) -> None:
        eid = live.record.id
        with self._lock:
            if self.hub.wants(eid):
                self.hub.publish(ExecutionSnapshot(_copy_record(live.record), copy_tasks(live.tasks)))
            if became_terminal:
                live.terminal_event.set()
                # Keep finished executions out of memory; the history has them.
                self._live.pop(eid, None)
                self._secrets.pop(eid, None)

    def subscribe(self, execution_id: str) -> Subscription:
        """Current state first, then each update; ends after a terminal phase."""
        live = self._load_live(execution_id)
        with self._lock:
            current = ExecutionSnapshot(_copy_record(live.record), copy_tasks(live.tasks))
            return self.hub.subscribe(execution_id, current)

    def on_change(self, execution_id: str, callback: Callback) -> Callable[[], None]:
        """Call ``callback(snapshot)`` after each committed change (on the lab's thread)."""
        return self.hub.add_callback(execution_id, callback)


def _copy_record(record: ExecutionRecord) -> ExecutionRecord:
    return dataclasses.replace(record)
