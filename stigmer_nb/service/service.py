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
    ExecutionStateError,
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
from ..store.values import document_hash
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


_MAX_TAGS = 32
_MAX_TAG_LENGTH = 128


def normalise_tags(tags: Any) -> list[str]:
    """A list of distinct non-empty strings (order kept); one clear error otherwise."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list | tuple | set | frozenset):
        raise InvalidInputError(f"tags must be a list of strings, got {type(tags).__name__}")
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise InvalidInputError(f"every tag must be a non-empty string, got {tag!r}")
        if len(tag) > _MAX_TAG_LENGTH:
            raise InvalidInputError(f"tag {tag[:20]!r}… is longer than {_MAX_TAG_LENGTH} characters")
        if tag.strip() not in out:
            out.append(tag.strip())
    if len(out) > _MAX_TAGS:
        raise InvalidInputError(f"{len(out)} tags given; at most {_MAX_TAGS} are allowed")
    return out


def resume_point(failed: ExecutionRecord, document: Mapping[str, Any]) -> dict[str, Any]:
    """Where a recovery of ``failed`` starts in ``document``: its checkpoint, with the index of the
    failed task in this document's top-level list (the fixed document may have moved it)."""
    checkpoint = failed.checkpoint
    if failed.phase != ExecutionPhase.EXECUTION_FAILED or not checkpoint:
        reason = (
            f"it is {failed.phase.name}, not EXECUTION_FAILED"
            if failed.phase != ExecutionPhase.EXECUTION_FAILED
            else "it failed outside its tasks (its input, output or the document itself)"
        )
        raise ExecutionStateError(f"execution {failed.id} cannot be recovered: {reason}; re-run it instead")
    names = [next(iter(t)) for t in document.get("do") or [] if isinstance(t, Mapping) and t]
    task = checkpoint.get("task")
    if task not in names:
        raise InvalidInputError(
            f"execution {failed.id} failed in top-level task {task!r}, which this document does not "
            f"have (its tasks: {', '.join(map(repr, names)) or 'none'}); keep the task's name in the fix"
        )
    return {**checkpoint, "index": names.index(task)}


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
        self._versions: dict[str, dict[str, Any]] = {}
        """Documents by content hash, read once from ``workflow_versions``."""
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
            wf.document_hash = document_hash(wf.document)
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
        digest = document_hash(document)
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
                document_hash=digest,
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
                wf.document, wf.spec, wf.document_hash = document, spec, digest
                wf.namespace, wf.version = str(meta.get("namespace", "")), str(meta.get("version", ""))
                wf.updated_at = now
                await self._write(
                    "UPDATE workflows SET document = ?, spec = ?, namespace = ?, version = ?, "
                    "updated_at = ? WHERE id = ?",
                    [dumps(document), dumps(spec), wf.namespace, wf.version, now, wf.id],
                )
        await self._remember_version(wf, document, spec, now, digest)
        await self._default_instance(wf)
        return wf

    async def _remember_version(
        self,
        wf: WorkflowRecord,
        document: dict[str, Any],
        spec: dict[str, Any] | None,
        now: datetime,
        digest: str,
    ) -> None:
        """Record ``document`` (its hash ``digest``) in ``workflow_versions`` the first time it is seen."""
        if digest in self._versions:
            return
        if not self.store.rows("SELECT 1 FROM workflow_versions WHERE document_hash = ?", [digest]):
            meta = document.get("document") or {}
            await self._write(
                "INSERT INTO workflow_versions VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [digest, wf.id, wf.name, str(meta.get("version", "")), dumps(document), dumps(spec), now],
            )
        with self._lock:
            self._versions[digest] = document

    def version_document(self, digest: str) -> dict[str, Any]:
        """The document of version ``digest`` (a full hash)."""
        with self._lock:
            found = self._versions.get(digest)
        if found is not None:
            return found
        rows = self.store.rows("SELECT document FROM workflow_versions WHERE document_hash = ?", [digest])
        if not rows:
            raise NotFoundError("workflow version", digest, known=[])
        document = _loads(rows[0][0])
        with self._lock:
            self._versions[digest] = document
        return document

    def find_version(self, workflow: str, ref: str) -> str:
        """The full hash of ``workflow``'s version ``ref`` (a hash or a unique prefix of one)."""
        wf = self.get_workflow(workflow)
        hashes = [
            r[0]
            for r in self.store.rows(
                "SELECT document_hash FROM workflow_versions WHERE workflow_id = ? ORDER BY first_seen_at",
                [wf.id],
            )
        ]
        ref = str(ref).strip().lower()
        found = [h for h in hashes if h.startswith(ref)] if ref else []
        if len(found) == 1:
            return found[0]
        if not found:
            raise NotFoundError(f"version of {wf.name!r}", ref, known=[h[:12] for h in hashes])
        raise InvalidInputError(
            f"version {ref!r} of {wf.name!r} is ambiguous ({len(found)} match); give more of the hash"
        )

    async def record_event(self, execution_id: str, kind: str, detail: dict[str, Any]) -> None:
        """A lifecycle row the Stigmer side records itself (a re-run, a recovery …)."""
        row = {
            "execution_id": execution_id,
            "seq": None,
            "kind": kind,
            "detail": redact(detail, self.secret_values(execution_id)),
            "occurred_at": _now(),
        }
        await asyncio.wrap_future(self._writer().insert_events([row]))

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
        tags: list[str] | tuple[str, ...] | None = None,
        batch_id: str | None = None,
        rerun_of_id: str | None = None,
        recovered_from_id: str | None = None,
        document_hash: str | None = None,
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
        tag_list = normalise_tags(tags)
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
                # Pinned: the run reads this version, whatever the workflow becomes meanwhile.
                document_hash=document_hash or wf.document_hash,
                tags=tag_list,
                batch_id=batch_id,
                rerun_of_id=rerun_of_id,
                recovered_from_id=recovered_from_id,
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
            "document_hash": record.document_hash,
            "tags": list(record.tags),
            "batch_id": record.batch_id,
            "rerun_of_id": record.rerun_of_id,
            "recovered_from_id": record.recovered_from_id,
            "checkpoint": record.checkpoint,
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
        # Lifecycle notes and phase changes are progress too: their seqs count as merged.
        noted = self.store.rows(
            "SELECT max(seq) FROM execution_events WHERE execution_id = ?", [execution_id]
        )
        if noted and noted[0][0] is not None:
            record.last_seq = max(record.last_seq, int(noted[0][0]))
        return record, tasks

    def _read_record(self, execution_id: str) -> ExecutionRecord:
        rows = self.store.rows(
            "SELECT id, name, slug, workflow_id, workflow_instance_id, workflow_name, phase, input, output, "
            "error, runtime_env, trigger_message, created_at, started_at, completed_at, updated_at, "
            "temporal_workflow_id, runner_workflow_id, time_skipping, document_hash, tags, batch_id, "
            "rerun_of_id, recovered_from_id, checkpoint FROM workflow_executions WHERE id = ?",
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
            document_hash=r[19],
            tags=list(r[20] or []),
            batch_id=r[21],
            rerun_of_id=r[22],
            recovered_from_id=r[23],
            checkpoint=_loads(r[24]),
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
                "WHERE phase IN ('EXECUTION_PENDING', 'EXECUTION_IN_PROGRESS', 'EXECUTION_PAUSED')"
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
        document = self.version_document(record.document_hash) if record.document_hash else wf.document
        resume = None
        if record.recovered_from_id:
            resume = resume_point(self.get_execution(record.recovered_from_id), document)
        return ExecutionContext(
            execution_id=record.id,
            workflow_id=wf.id,
            workflow_instance_id=inst.id,
            workflow_name=wf.name,
            document=document,
            input=record.input,
            env=env,
            secrets=secrets,
            resume=resume,
        )

    def known_secrets(self, execution_id: str) -> dict[str, str]:
        """Secret runtime values of an execution still in this process's memory (while it runs)."""
        with self._lock:
            return dict(self._secrets.get(execution_id, {}))

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
        if not result.changed and not result.task_rows and not result.event_rows:
            return
        writer = self._writer()
        futures = []
        if not self.recording:
            # Benchmarks measure what recording costs: only the final state is written.
            result.task_rows.clear()
            row = row if result.became_terminal else None
        if not self.recording:
            result.event_rows.clear()
        if result.task_rows:
            futures.append(writer.insert_task_updates(result.task_rows))
        if result.event_rows:
            futures.append(writer.insert_events(result.event_rows))
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
