"""The DSL interpreter: walks a Serverless Workflow 1.0 document as deterministic workflow code.

Control flow (do, set, switch, for, fork, try/catch/retry, raise, wait, listen, flow directives,
timeouts, input/output/export) runs here, inside the Temporal workflow; effects (calls, runs,
emit) are activities scheduled by name. Every task run reports its transitions through the
``Reporter``, which the workflow ships to the Stigmer side.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

from ..temporal.names import PROGRESS_SIGNAL
from ..temporal.types import DSLInput, ProgressBatch, ProgressEvent, TaskTransition
from . import effects
from .document import pointer_join, task_type
from .durations import DurationError, parse_duration
from .expressions import (
    ExpressionError,
    ExpressionLimitError,
    evaluate_field,
    evaluate_value,
    is_expression,
    truthy,
)
from .jqpool import dumps
from .limits import LimitExceeded, Pace
from .problems import WorkflowProblem, error_kind, matches_filter, problem
from .taint import Taint

__all__ = ["EndWorkflow", "Engine", "Reporter", "TaskRun"]

_MAX_REPORTED_BYTES = 64 * 1024
_MAX_RUN_DEPTH = 16
"""``run: workflow`` nesting (a workflow that runs itself would otherwise recurse until Python stops it)."""
_MAX_EVENTS_PER_SIGNAL = 200
_RUNTIME = {"name": "stigmer_nb", "version": "0.1.0", "metadata": {"engine": "temporal"}}

_STATUS_IN_PROGRESS = "WORKFLOW_TASK_IN_PROGRESS"
_STATUS_COMPLETED = "WORKFLOW_TASK_COMPLETED"
_STATUS_FAILED = "WORKFLOW_TASK_FAILED"
_STATUS_SKIPPED = "WORKFLOW_TASK_SKIPPED"


class EndWorkflow(Exception):
    """``then: end``: unwinds every level and completes the workflow with ``output``."""

    def __init__(self, output: Any) -> None:
        super().__init__("end")
        self.output = output


def _timestamp(at: datetime) -> dict[str, Any]:
    epoch_ms = int(at.timestamp() * 1000)
    return {"iso8601": at.isoformat(), "epoch": {"seconds": epoch_ms // 1000, "milliseconds": epoch_ms}}


def _cancelled(detail: str) -> dict[str, Any]:
    return problem("runtime", detail, title="Cancelled")


@dataclass
class TaskRun:
    """One run of one task (iterations, retries and re-runs each get their own)."""

    task_id: str
    reference: str
    name: str
    kind: str
    parent_id: str | None
    attempt: int
    started: datetime


class Reporter:
    """Collects transitions in order and ships them to the invoke workflow as signals."""

    def __init__(self, execution_id: str | None, target: str | None, taint: Taint) -> None:
        self.execution_id = execution_id or ""
        self.target = target
        self.taint = taint
        self.seq = 0
        self._buffer: list[ProgressEvent] = []
        self._unconfirmed: dict[int, ProgressEvent] = {}
        """Shipped by a signal the server has not acknowledged yet."""
        self._counter = 0
        self._closed = False

    @property
    def enabled(self) -> bool:
        """False when nobody listens (the engine was started directly)."""
        return bool(self.target)

    def next_task_id(self) -> str:
        """A task-run id, unique and deterministic within the execution."""
        self._counter += 1
        return f"t{self._counter}"

    def _clean(self, value: Any) -> Any:
        if value is None:
            return None
        text = json.dumps(value, separators=(",", ":"), default=str)
        redacted = self.taint.redact_text(text)
        if redacted is not text:
            text, value = redacted, json.loads(redacted)
        if len(text) > _MAX_REPORTED_BYTES:
            return {"$truncated": True, "bytes": len(text), "preview": text[:1024]}
        return value

    def _push(self, event_kw: dict[str, Any]) -> None:
        self.seq += 1
        if self.enabled:
            self._buffer.append(ProgressEvent(seq=self.seq, at=workflow.now().isoformat(), **event_kw))

    def phase(self, phase: str) -> None:
        """An execution-level phase change."""
        self._push({"phase": phase})

    def task(
        self,
        run: TaskRun,
        status: str,
        *,
        input: Any = None,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        """A task run changing status."""
        if not self.enabled:
            self._push({})  # numbered all the same, so sequence numbers never depend on who listens
            return
        transition = TaskTransition(
            task_id=run.task_id,
            reference=run.reference,
            name=run.name,
            kind=run.kind,
            status=status,
            parent_id=run.parent_id,
            attempt=run.attempt,
            input=self._clean(input),
            output=self._clean(output),
            error=self._clean(error),
        )
        self._push({"task": transition})

    def take(self) -> list[ProgressEvent]:
        """Everything the receiver may not have yet, carried by the workflow's result instead.

        A signal scheduled in the last activation may never be sent once the workflow returns,
        so unacknowledged events travel again here; the receiver keeps one of each seq.
        """
        pending = {e.seq: e for e in self._buffer}
        pending.update(self._unconfirmed)
        self._buffer = []
        return [pending[seq] for seq in sorted(pending)]

    def _send(self) -> list[asyncio.Task[None]]:
        tasks = []
        while self._buffer:
            chunk = self._buffer[:_MAX_EVENTS_PER_SIGNAL]
            self._buffer = self._buffer[_MAX_EVENTS_PER_SIGNAL:]
            # Unacknowledged from this moment: the task may not even start before the run returns.
            for event in chunk:
                self._unconfirmed[event.seq] = event
            tasks.append(asyncio.create_task(self._signal(chunk)))
        return tasks

    async def _signal(self, events: list[ProgressEvent]) -> None:
        assert self.target is not None
        handle = workflow.get_external_workflow_handle(self.target)
        try:
            await handle.signal(PROGRESS_SIGNAL, ProgressBatch(self.execution_id, events))
        except Exception as exc:  # the receiver is gone (terminated); the run goes on
            workflow.logger.warning("progress for %s not delivered: %s", self.execution_id, exc)
        else:
            for event in events:
                self._unconfirmed.pop(event.seq, None)

    async def run(self) -> None:
        """Ship batches as transitions pile up (one signal per workflow activation at most)."""
        if not self.enabled:
            return
        while not self._closed:
            await workflow.wait_condition(lambda: bool(self._buffer) or self._closed)
            if self._closed:
                return
            self._send()

    async def flush(self) -> None:
        """Ship what is buffered and wait until the server has it."""
        if self.enabled:
            tasks = self._send()
            if tasks:
                await asyncio.gather(*tasks)

    def close(self) -> None:
        """Stop the background shipper (what remains is taken or flushed by the caller)."""
        self._closed = True


class Engine:
    """Runs one document. ``Engine.run`` is called from the workflow's run method."""

    def __init__(
        self,
        inp: DSLInput,
        *,
        reporter: Reporter,
        events: EventInbox | None = None,
        parent: TaskRun | None = None,
        reference_prefix: str = "",
        pace: Pace | None = None,
        depth: int = 0,
    ) -> None:
        self.inp = inp
        self.pace = pace if pace is not None else Pace(inp.limits)
        self.depth = depth
        self.doc = inp.document
        self.use = self.doc.get("use") or {}
        self.reporter = reporter
        self.events = events
        self.parent = parent
        self.prefix = reference_prefix
        self.context: Any = {}
        self.secrets = dict(inp.secrets)
        self.taint = reporter.taint
        self.background: list[asyncio.Task[None]] = []
        """``run`` tasks started with ``await: false``; the top-level run waits for them at the end."""
        info = workflow.info()
        self.started = workflow.now()
        self.workflow_arg = {
            "id": info.workflow_id,
            "definition": self.doc,
            "input": inp.input,
            "startedAt": _timestamp(self.started),
        }

    # --- arguments --------------------------------------------------------------------------

    def _args(self, scope: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        args = {
            "context": self.context,
            "secrets": self.secrets,
            "workflow": self.workflow_arg,
            "runtime": _RUNTIME,
        }
        args.update(scope)
        args.update(extra)
        return args

    def _eval_field(self, value: Any, data: Any, args: Mapping[str, Any], ref: str) -> Any:
        return self._evaluate(evaluate_field, value, data, args, ref)

    def _eval_value(self, value: Any, data: Any, args: Mapping[str, Any], ref: str) -> Any:
        if not isinstance(value, str | dict | list):
            return value
        return self._evaluate(evaluate_value, value, data, args, ref)

    def _evaluate(
        self, how: Callable[..., Any], value: Any, data: Any, args: Mapping[str, Any], ref: str
    ) -> Any:
        """``how`` (evaluate_field or evaluate_value) under this run's limits, learning secret taint."""
        try:
            limits = self.pace.jq_limits(ref)
            result = how(value, data, args, limits)
            if self.taint.active:
                self.taint.derive(lambda d, a: how(value, d, a, limits), value, data, args, result)
            return result
        except ExpressionLimitError as exc:
            raise LimitExceeded.of(
                f"{exc}; see the jq_timeout, jq_memory_mb and max_value_bytes settings", instance=ref
            ) from None
        except ExpressionError as exc:
            raise WorkflowProblem.of("expression", str(exc), instance=ref) from None

    def _schema(self, section: Any, value: Any, ref: str, what: str) -> None:
        schema = section.get("schema") if isinstance(section, Mapping) else None
        if not schema:
            return
        document = schema.get("document", schema) if isinstance(schema, Mapping) else schema
        import jsonschema  # passthrough module: a real import, outside the sandbox

        try:
            jsonschema.validate(value, document)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            raise WorkflowProblem.of(
                "validation", f"{what} does not match its schema at /{where}: {exc.message}", instance=ref
            ) from None
        except jsonschema.SchemaError as exc:
            raise WorkflowProblem.of(
                "configuration", f"{what} schema is invalid: {exc.message}", instance=ref
            ) from None

    def _duration(
        self, value: Any, ref: str, data: Any = None, args: Mapping[str, Any] | None = None
    ) -> timedelta:
        if isinstance(value, str) and is_expression(value):
            value = self._eval_value(value, data, args or self._args({}), ref)
        try:
            return parse_duration(value)
        except DurationError as exc:
            raise WorkflowProblem.of("configuration", str(exc), instance=ref) from None

    def _timeout(self, spec: Any, ref: str) -> timedelta | None:
        if spec is None:
            return None
        if isinstance(spec, str) and not is_expression(spec):
            named = (self.use.get("timeouts") or {}).get(spec)
            if named is None:
                raise WorkflowProblem.of(
                    "configuration", f"no timeout {spec!r} in use.timeouts", instance=ref
                )
            spec = named
        after = spec.get("after") if isinstance(spec, Mapping) else spec
        return self._duration(after, ref)

    # --- running ----------------------------------------------------------------------------

    async def run(self) -> Any:
        """The whole document: workflow input → tasks → workflow output."""
        raw = self.inp.input if self.inp.input is not None else {}
        ref = self.prefix or "/"
        wf_args = {"secrets": self.secrets, "workflow": self.workflow_arg, "runtime": _RUNTIME}
        spec_in = self.doc.get("input")
        self._schema(spec_in, raw, ref, "workflow input")
        data = raw
        if isinstance(spec_in, Mapping) and "from" in spec_in:
            data = self._eval_field(spec_in["from"], raw, wf_args, ref)
        limit = self._timeout(self.doc.get("timeout"), ref)
        try:
            if limit is not None:
                try:
                    output = await asyncio.wait_for(self._top(data), limit.total_seconds())
                except TimeoutError:
                    raise WorkflowProblem.of(
                        "timeout", f"the workflow did not finish within {limit}", instance=ref
                    ) from None
            else:
                output = await self._top(data)
        except EndWorkflow as end:
            output = end.output
        spec_out = self.doc.get("output")
        if isinstance(spec_out, Mapping) and "as" in spec_out:
            output = self._eval_field(spec_out["as"], output, self._args({}), ref)
        self._schema(spec_out, output, ref, "workflow output")
        if self.parent is None:
            size = len(dumps(output))
            if size > self.pace.limits.max_value_bytes:
                raise LimitExceeded.of(
                    f"the workflow output is {size:,} bytes of JSON; at most "
                    f"{self.pace.limits.max_value_bytes:,} are allowed: shape it with output.as, or "
                    "raise max_value_bytes (STIGMER_NB_MAX_VALUE_BYTES)",
                    instance=ref,
                )
            while self.background:  # detached runs may start more detached runs
                pending, self.background = self.background, []
                await asyncio.gather(*pending)
        return output

    async def _top(self, data: Any) -> Any:
        return await self.run_list(self.doc["do"], self.prefix + "/do", data, self.parent, {})

    async def run_list(
        self, tasks: list[Any], pointer: str, data: Any, parent: TaskRun | None, scope: Mapping[str, Any]
    ) -> Any:
        """Run a task list from the top, following flow directives (backward jumps included)."""
        names = [next(iter(item)) for item in tasks]
        jumps: dict[str, int] = {}
        index = 0
        while index < len(tasks):
            name = names[index]
            ref = pointer_join(pointer, index, name)
            data, directive = await self.run_task(name, tasks[index][name], ref, data, parent, scope)
            if directive in (None, "continue"):
                index += 1
            elif directive == "exit":
                break
            elif directive == "end":
                raise EndWorkflow(data)
            elif directive in names:
                jumps[directive] = jumps.get(directive, 0) + 1
                self.pace.check_jumps(jumps[directive], directive, ref)
                index = names.index(directive)
            else:
                raise WorkflowProblem.of(
                    "configuration", f"then: {directive!r} is not a task in this list", instance=ref
                )
        return data

    def _kind(self, task: Mapping[str, Any]) -> str:
        kind = task_type(task) or "unknown"
        if kind == "call":
            return f"call:{task.get('call')}"
        if kind == "run" and isinstance(task.get("run"), Mapping):
            sub = next((k for k in ("shell", "script", "workflow", "container") if k in task["run"]), "")
            return f"run:{sub}" if sub else "run"
        return kind

    async def run_task(
        self,
        name: str,
        task: Mapping[str, Any],
        ref: str,
        raw: Any,
        parent: TaskRun | None,
        scope: Mapping[str, Any],
    ) -> tuple[Any, str | None]:
        """One task through the spec's pipeline: if → input → body → output → export → then."""
        run = TaskRun(
            task_id=self.reporter.next_task_id(),
            reference=ref,
            name=name,
            kind=self._kind(task),
            parent_id=parent.task_id if parent else None,
            attempt=int(scope.get("__attempt__", 1)),
            started=workflow.now(),
        )
        task_arg = {
            "name": name,
            "reference": ref,
            "definition": task,
            "input": raw,
            "output": None,
            "startedAt": _timestamp(run.started),
        }
        scope_vars = {k: v for k, v in scope.items() if not k.startswith("__")}
        args = self._args(scope_vars, task=task_arg)
        try:
            await self.pace.task_started(ref)
        except LimitExceeded as err:
            self.reporter.task(run, _STATUS_FAILED, input=raw, error=err.problem)
            raise
        if "if" in task:
            try:
                go = truthy(self._eval_field(task["if"], raw, args, ref))
            except WorkflowProblem as err:
                self.reporter.task(run, _STATUS_FAILED, input=raw, error=err.problem)
                raise
            if not go:
                self.reporter.task(run, _STATUS_SKIPPED, input=raw, output=raw)
                return raw, None
        self.reporter.task(run, _STATUS_IN_PROGRESS, input=raw)
        try:
            limit = self._timeout(task.get("timeout"), ref)
            body = self._pipeline(name, task, ref, raw, run, scope, args)
            if limit is not None:
                try:
                    output, directive = await asyncio.wait_for(body, limit.total_seconds())
                except TimeoutError:
                    raise WorkflowProblem.of(
                        "timeout", f"task {name!r} did not finish within {limit}", instance=ref
                    ) from None
            else:
                output, directive = await body
        except WorkflowProblem as err:
            err.problem.setdefault("instance", ref)
            self.reporter.task(run, _STATUS_FAILED, error=err.problem)
            raise
        except EndWorkflow as end:
            self.reporter.task(run, _STATUS_COMPLETED, output=end.output)
            raise
        except (asyncio.CancelledError, CancelledError):
            self.reporter.task(run, _STATUS_FAILED, error=_cancelled(f"task {name!r} was cancelled"))
            raise
        self.reporter.task(run, _STATUS_COMPLETED, output=output)
        return output, directive if directive is not None else task.get("then")

    async def _pipeline(
        self,
        name: str,
        task: Mapping[str, Any],
        ref: str,
        raw: Any,
        run: TaskRun,
        scope: Mapping[str, Any],
        args: dict[str, Any],
    ) -> tuple[Any, str | None]:
        spec_in = task.get("input")
        self._schema(spec_in, raw, ref, "task input")
        data = raw
        if isinstance(spec_in, Mapping) and "from" in spec_in:
            data = self._eval_field(spec_in["from"], raw, args, ref)
        args["input"] = data
        kind = task_type(task)
        handler: Callable[..., Any] = getattr(self, f"_task_{kind}")
        output, directive = await handler(name, task, ref, data, run, scope, args)
        args["task"] = {**args["task"], "output": output}
        spec_out = task.get("output")
        if isinstance(spec_out, Mapping) and "as" in spec_out:
            output = self._eval_field(spec_out["as"], output, args, ref)
        self._schema(spec_out, output, ref, "task output")
        spec_export = task.get("export")
        if isinstance(spec_export, Mapping) and "as" in spec_export:
            self.context = self._eval_field(spec_export["as"], output, {**args, "output": output}, ref)
            self._schema(spec_export, self.context, ref, "exported context")
        return output, directive

    # --- control flow -----------------------------------------------------------------------

    async def _task_do(self, name, task, ref, data, run, scope, args):  # type: ignore[no-untyped-def]
        return await self.run_list(task["do"], pointer_join(ref, "do"), data, run, scope), None

    async def _task_set(self, name, task, ref, data, run, scope, args):  # type: ignore[no-untyped-def]
        value = task["set"]
        if isinstance(value, str):
            return self._eval_field(value, data, args, ref), None
        return self._eval_value(value, data, args, ref), None

    async def _task_switch(self, name, task, ref, data, run, scope, args):  # type: ignore[no-untyped-def]
        default: str | None = None
        for case in task["switch"]:
            ((case_name, spec),) = case.items()
            if "when" not in spec:
                default = spec.get("then")
                continue
            if truthy(self._eval_field(spec["when"], data, args, pointer_join(ref, "switch", case_name))):
                return data, spec.get("then")
        return data, default

    async def _task_for(self, name, task, ref, data, run, scope, args):  # type: ignore[no-untyped-def]
        spec = task["for"]
        each, at = str(spec.get("each", "item")), str(spec.get("at", "index"))
        items = self._eval_field(spec["in"], data, args, ref)
        if items is None:
            items = []
        elif isinstance(items, Mapping):
            self.pace.check_items(len(items), ref)
            items = list(items.items())
        elif isinstance(items, int) and not isinstance(items, bool):
            self.pace.check_items(items, ref)
            items = list(range(items))
        elif not isinstance(items, list):
            raise WorkflowProblem.of(
                "expression", f"for.in must yield a list, got {type(items).__name__}", instance=ref
            )
        self.pace.check_items(len(items), ref)
        for index, item in enumerate(items):
            inner = {**scope, each: item, at: index}
            if "while" in task:
                cond_args = self._args(
                    {k: v for k, v in inner.items() if not k.startswith("__")},
                    task=args["task"],
                    input=args.get("input"),
                )
                if not truthy(self._eval_field(task["while"], data, cond_args, ref)):
                    break
            data = await self.run_list(task["do"], pointer_join(ref, "do"), data, run, inner)
        return data, None

    async def _task_fork(self, name, task, ref, data, run, scope, args):  # type: ignore[no-untyped-def]
        spec = task["fork"]
        branches = spec["branches"]
        pointer = pointer_join(ref, "fork", "branches")

        async def branch(index: int) -> Any:
            ((branch_name, body),) = branches[index].items()
            out, _ = await self.run_task(
                branch_name, body, pointer_join(pointer, index, branch_name), data, run, scope
            )
            return out

        jobs = [asyncio.create_task(branch(i)) for i in range(len(branches))]
        if not spec.get("compete"):
            try:
                return list(await asyncio.gather(*jobs)), None
            except BaseException:
                for job in jobs:
                    job.cancel()
                await asyncio.gather(*jobs, return_exceptions=True)
                raise
        pending = set(jobs)
        first_error: BaseException | None = None
        while pending:
            done, pending = await workflow.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for job in jobs:  # declaration order breaks ties deterministically
                if job in done and job.exception() is None:
                    for loser in pending:
                        loser.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    return job.result(), None
                if job in done and first_error is None:
                    first_error = job.exception()
        assert first_error is not None
        raise first_error

    async def _task_try(self, name, task, ref, data, run, scope, args):  # type: ignore[no-untyped-def]
        catch = task.get("catch") or {}
        error_var = str(catch.get("as", "error"))
        retry = self._retry_policy(catch.get("retry"), ref)
        attempt = 1
        first_started = workflow.now()
        while True:
            inner = {**scope, "__attempt__": attempt}
            try:
                return await self.run_list(task["try"], pointer_join(ref, "try"), data, run, inner), None
            except LimitExceeded:
                raise  # retrying or handling cannot help: the execution fails
            except WorkflowProblem as err:
                caught = err.problem
                errors = catch.get("errors") or {}
                if not matches_filter(caught, errors.get("with")):
                    raise
                err_scope = {**{k: v for k, v in scope.items() if not k.startswith("__")}, error_var: caught}
                err_args = self._args(err_scope, task=args["task"], input=data)
                if "when" in catch and not truthy(self._eval_field(catch["when"], data, err_args, ref)):
                    raise
                if "exceptWhen" in catch and truthy(
                    self._eval_field(catch["exceptWhen"], data, err_args, ref)
                ):
                    raise
                if retry is not None:
                    delay = self._retry_delay(retry, attempt, caught, data, err_args, ref, first_started)
                    if delay is None:
                        raise
                    if "do" in catch:
                        await self.run_list(
                            catch["do"],
                            pointer_join(ref, "catch", "do"),
                            data,
                            run,
                            {**scope, error_var: caught},
                        )
                    if delay > timedelta(0):
                        await workflow.sleep(delay)
                    attempt += 1
                    continue
                if "do" in catch:
                    out = await self.run_list(
                        catch["do"], pointer_join(ref, "catch", "do"), data, run, {**scope, error_var: caught}
                    )
                    return out, None
                return data, None

    def _retry_policy(self, spec: Any, ref: str) -> Mapping[str, Any] | None:
        if spec is None:
            return None
        if isinstance(spec, str):
            named = (self.use.get("retries") or {}).get(spec)
            if named is None:
                raise WorkflowProblem.of(
                    "configuration", f"no retry policy {spec!r} in use.retries", instance=ref
                )
            return named
        return spec

    def _retry_delay(
        self,
        policy: Mapping[str, Any],
        attempt: int,
        caught: dict[str, Any],
        data: Any,
        args: Mapping[str, Any],
        ref: str,
        first_started: datetime,
    ) -> timedelta | None:
        """The delay before retry number ``attempt``, or None when the policy says stop."""
        if "when" in policy and not truthy(self._eval_field(policy["when"], data, args, ref)):
            return None
        if "exceptWhen" in policy and truthy(self._eval_field(policy["exceptWhen"], data, args, ref)):
            return None
        limit = policy.get("limit") or {}
        count = (limit.get("attempt") or {}).get("count")
        if count is not None and attempt > int(count):  # count limits retries, not runs (sdk-java)
            return None
        if "duration" in limit:
            budget = self._duration(limit["duration"], ref)
            if workflow.now() - first_started >= budget:
                return None
        base = self._duration(policy["delay"], ref) if "delay" in policy else timedelta(0)
        backoff = policy.get("backoff") or {}
        if "exponential" in backoff:
            delay = base * (2**attempt)
        elif "linear" in backoff:
            delay = base * attempt
        else:
            delay = base
        jitter = policy.get("jitter")
        if isinstance(jitter, Mapping):
            low = self._duration(jitter.get("from", {"seconds": 0}), ref)
            high = self._duration(jitter.get("to", {"seconds": 0}), ref)
            if high > low:
                delay += low + (high - low) * workflow.random().random()
            else:
                delay += low
        return delay

    async def _task_raise(self, name, task, ref, data, run, scope, args):  # type: ignore[no-untyped-def]
        error = task["raise"]["error"]
        if isinstance(error, str):
            error = (self.use.get("errors") or {}).get(error)
            if error is None:
                raise WorkflowProblem.of(
                    "configuration", f"no error {task['raise']['error']!r} in use.errors", instance=ref
                )
        details = self._eval_value(dict(error), data, args, ref)
        type_ = str(details.get("type") or "")
        kind = error_kind(type_)
        try:
            status = int(details.get("status", 500))
        except (TypeError, ValueError):
            status = 500
        out = {
            "type": type_,
            "status": status,
            "title": details.get("title") or (f"{kind.capitalize()} error" if kind else "Error"),
        }
        if details.get("detail") is not None:
            out["detail"] = details["detail"]
        out["instance"] = ref
        raise WorkflowProblem(out)

    async def _task_wait(self, name, task, ref, data, run, scope, args):  # type: ignore[no-untyped-def]
        delay = self._duration(task["wait"], ref, data, args)
        if delay > timedelta(0):
            await workflow.sleep(delay)
        return data, None

    async def _task_emit(self, name, task, ref, data, run, scope, args):  # type: ignore[no-untyped-def]
        spec = (task["emit"] or {}).get("event") or {}
        event = self._eval_value(dict(spec.get("with") or {}), data, args, ref)
        event.setdefault("id", str(workflow.uuid4()))
        event.setdefault("specversion", "1.0")
        event.setdefault("time", workflow.now().isoformat())
        event.setdefault("source", f"stigmer-nb://{self.workflow_arg['id']}")
        for required in ("type",):
            if not event.get(required):
                raise WorkflowProblem.of("validation", f"an emitted event needs `{required}`", instance=ref)
        await self._effect(effects.PUBLISH_EVENT, ref, name, event, data, timeout=timedelta(seconds=30))
        return event, None

    async def _task_listen(self, name, task, ref, data, run, scope, args):  # type: ignore[no-untyped-def]
        if self.events is None:
            raise WorkflowProblem.of("configuration", "listen is not available here", instance=ref)
        spec = task["listen"] or {}
        consumed = await self.events.listen(spec.get("to") or {}, data, args, ref, self)
        read = spec.get("read", "data")
        # The spec puts `foreach` beside `listen`; an older shape nests it inside.
        foreach = task.get("foreach", spec.get("foreach"))
        pointer = (
            pointer_join(ref, "foreach") if "foreach" in task else pointer_join(ref, "listen", "foreach")
        )
        out = []
        for index, event in enumerate(consumed):
            item: Any = event.get("data") if read == "data" else event
            if isinstance(foreach, Mapping):
                item_var, at_var = str(foreach.get("item", "item")), str(foreach.get("at", "index"))
                loop = {item_var: item, at_var: index}
                if foreach.get("do"):
                    item = await self.run_list(
                        foreach["do"], pointer_join(pointer, "do"), item, run, {**scope, **loop}
                    )
                output_spec = foreach.get("output")
                if isinstance(output_spec, Mapping) and "as" in output_spec:
                    each_args = self._args(loop, task=args["task"], input=data)
                    item = self._eval_field(output_spec["as"], item, each_args, ref)
            out.append(item)
        return out, None

    # --- effects ----------------------------------------------------------------------------

    async def _effect(
        self,
        activity: str,
        ref: str,
        name: str,
        args_value: Any,
        data: Any,
        *,
        target: str = "",
        timeout: timedelta = timedelta(minutes=2),
        attempts: int = 3,
        heartbeat: timedelta | None = None,
    ) -> Any:
        payload = effects.EffectInput(
            reference=ref,
            name=name,
            args=args_value if isinstance(args_value, dict) else {"value": args_value},
            input=data,
            execution_id=self.inp.execution_id,
            target=target,
        )
        try:
            return await workflow.execute_activity(
                activity,
                payload,
                start_to_close_timeout=timeout,
                heartbeat_timeout=heartbeat,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(milliseconds=500),
                    maximum_interval=timedelta(seconds=5),
                    maximum_attempts=attempts,
                    non_retryable_error_types=[effects.PROBLEM_ERROR_TYPE],
                ),
                summary=name,
            )
        except ActivityError as err:
            raise WorkflowProblem(self._problem_from(err, ref)) from None

    @staticmethod
    def _problem_from(err: ActivityError, ref: str) -> dict[str, Any]:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict):
            details = dict(cause.details[0])
            details.setdefault("instance", ref)
            return details
        if isinstance(cause, ApplicationError):
            return problem("runtime", cause.message or str(cause), instance=ref)
        from temporalio.exceptions import TimeoutError as TemporalTimeout

        if isinstance(cause, TemporalTimeout):
            return problem(
                "timeout",
                f"the call timed out ({cause.type.name if cause.type else 'timeout'})",
                instance=ref,
            )
        return problem("runtime", str(cause or err), instance=ref)

    def _call_timeout(self, task: Mapping[str, Any], ref: str) -> timedelta:
        limit = self._timeout(task.get("timeout"), ref)
        return limit if limit is not None else timedelta(minutes=2)

    def _authentication(self, auth: Any, data: Any, args: Mapping[str, Any], ref: str) -> Any:
        """A policy with names from use.authentications and secret references resolved."""
        name = None
        if isinstance(auth, str):
            name = auth
        elif isinstance(auth, Mapping) and set(auth) == {"use"}:
            name = str(auth["use"])
        if name is not None:
            policy = (self.use.get("authentications") or {}).get(name)
            if policy is None:
                raise WorkflowProblem.of(
                    "configuration", f"no authentication {name!r} in use.authentications", instance=ref
                )
            auth = self._eval_value(dict(policy), data, args, ref)
        if not isinstance(auth, Mapping):
            return auth
        resolved = {}
        for scheme, body in auth.items():
            if isinstance(body, Mapping) and set(body) == {"use"}:
                # `basic: {use: mySecret}` takes the credentials from a secret holding a JSON object.
                secret = self.secrets.get(str(body["use"]))
                if secret is None:
                    raise WorkflowProblem.of(
                        "authorization",
                        f"no secret {body['use']!r} for {scheme} authentication",
                        instance=ref,
                    )
                try:
                    body = json.loads(secret)
                except ValueError:
                    body = {"token": secret}
                self.taint.mark(body)  # a password inside a JSON secret is no longer the secret's text
            resolved[scheme] = body
        return resolved

    def _resolve_auth(
        self, with_: dict[str, Any], data: Any, args: Mapping[str, Any], ref: str
    ) -> dict[str, Any]:
        """Authentication references in a call's ``with`` (endpoint, document endpoint, or top level)."""
        if "authentication" in with_:
            with_["authentication"] = self._authentication(with_["authentication"], data, args, ref)
        holders = [with_.get("endpoint"), (with_.get("document") or {}).get("endpoint") if isinstance(
            with_.get("document"), Mapping) else None]  # fmt: skip
        for holder in holders:
            if isinstance(holder, dict) and "authentication" in holder:
                holder["authentication"] = self._authentication(holder["authentication"], data, args, ref)
        return with_

    async def _task_call(self, name, task, ref, data, run, scope, args):  # type: ignore[no-untyped-def]
        call = str(task["call"])
        with_ = self._eval_value(dict(task.get("with") or {}), data, args, ref)
        with_ = self._resolve_auth(with_, data, args, ref)
        timeout = self._call_timeout(task, ref)
        builtin = {
            "http": effects.CALL_HTTP,
            "openapi": effects.CALL_OPENAPI,
            "grpc": effects.CALL_GRPC,
            "agent": effects.CALL_AGENT,
            "activity": effects.CALL_FUNCTION,
        }
        if call in builtin:
            target = ""
            if call == "activity":
                target = str(with_.get("name") or with_.get("activity") or "")
                with_ = with_.get("input", with_.get("arguments", {}))
            elif call == "agent":
                target = str(with_.get("agent") or "")
            return await self._effect(
                builtin[call], ref, name, with_, data, target=target, timeout=timeout
            ), None
        if call in ("asyncapi", "a2a", "mcp"):
            raise WorkflowProblem.of(
                "configuration", f"call: {call} is not supported by stigmer_nb yet", instance=ref
            )
        function = (self.use.get("functions") or {}).get(call)
        if isinstance(function, Mapping):
            # A use.functions entry is a task; it runs with the call's arguments as its input.
            out, _ = await self._pipeline(
                call, function, ref, with_, run, scope, self._args({}, task=args["task"])
            )
            return out, None
        return await self._effect(
            effects.CALL_FUNCTION, ref, name, with_, data, target=call, timeout=timeout
        ), None

    async def _task_run(self, name, task, ref, data, run, scope, args):  # type: ignore[no-untyped-def]
        spec = task["run"] or {}
        wait = spec.get("await", True) is not False
        if "workflow" in spec:
            job = self._run_workflow(name, spec["workflow"], ref, data, run, args)
        elif "shell" in spec or "script" in spec:
            which = "shell" if "shell" in spec else "script"
            if not self.inp.allow_shell:
                raise WorkflowProblem.of(
                    "configuration",
                    f"run: {which} is disabled; start the lab with allow_shell=True "
                    "(or STIGMER_NB_ALLOW_SHELL=1) to let documents run commands",
                    instance=ref,
                    title="Not allowed",
                )
            body = self._eval_value(dict(spec[which]), data, args, ref)
            body["return"] = spec.get("return", "stdout")
            job = self._effect(
                effects.RUN_SHELL if which == "shell" else effects.RUN_SCRIPT,
                ref,
                name,
                body,
                data,
                timeout=self._call_timeout(task, ref),
                attempts=1,
                heartbeat=timedelta(seconds=10),
            )
        else:
            raise WorkflowProblem.of(
                "configuration", "run: container is not supported by stigmer_nb", instance=ref
            )
        if not wait:
            # Fire and forget within the execution: the run ends only once this is done too.
            self.background.append(asyncio.create_task(self._detached(name, job)))
            return data, None
        return await job, None

    async def _detached(self, name: str, job: Any) -> None:
        try:
            await job
        except WorkflowProblem as err:  # nobody awaits it: its own task runs carry the error
            workflow.logger.warning("run task %r (await: false) failed: %s", name, err.problem.get("title"))

    async def _run_workflow(self, name, spec, ref, data, run, args):  # type: ignore[no-untyped-def]
        if self.depth >= _MAX_RUN_DEPTH:
            raise LimitExceeded.of(
                f"run: workflow nests {self.depth + 1} levels deep; at most {_MAX_RUN_DEPTH} are "
                "allowed (does a workflow run itself?)",
                instance=ref,
            )
        spec = self._eval_value(dict(spec), data, args, ref)
        document = await self._effect(
            effects.LOAD_WORKFLOW, ref, name, spec, data, timeout=timedelta(seconds=30)
        )
        sub_input = spec.get("input", data)
        inp = DSLInput(
            document=document,
            input=sub_input,
            execution_id=self.inp.execution_id,
            progress_workflow_id=self.inp.progress_workflow_id,
            env=self.inp.env,
            secrets=self.inp.secrets,
            allow_shell=self.inp.allow_shell,
            limits=self.inp.limits,
        )
        sub = Engine(
            inp,
            reporter=self.reporter,
            events=self.events,
            parent=run,
            reference_prefix=pointer_join(ref, "run", "workflow"),
            pace=self.pace,
            depth=self.depth + 1,
        )
        sub.background = self.background  # its detached runs are the execution's too
        return await sub.run()


class EventInbox:
    """Events delivered to this workflow (by signal) and the ``listen`` logic over them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.cursor = 0

    def deliver(self, event: dict[str, Any]) -> None:
        """Signal handler body: keep the event for listeners."""
        self.events.append(event)

    async def listen(
        self, to: Mapping[str, Any], data: Any, args: Mapping[str, Any], ref: str, engine: Engine
    ) -> list[dict[str, Any]]:
        """Consume events per ``to`` (``one``/``any``/``all``, optional ``until``)."""
        from .listen import consume

        return await consume(self, to, data, args, ref, engine)
