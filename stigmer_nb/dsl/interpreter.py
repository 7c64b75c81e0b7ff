"""The DSL engine: the data pipeline and the task-list walker over a compiled document.

It runs inside the Temporal workflow as deterministic code: each task goes through if → input →
its type's run (``dsl/tasks``) → output → export → then; effects (calls, runs, emit) are
activities the engine schedules and retries. Every task run reports its transitions through the
``Reporter`` (``dsl/reporter.py``), which the workflow ships to the Stigmer side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, ChildWorkflowError

from ..temporal.names import DSL_WORKFLOW
from ..temporal.types import (
    DSLInput,
    DSLResult,
    FailureDetail,
)
from . import effects
from .check import Checker, Scope
from .document import LoadedDocument, pointer_join
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
from .listen import EventInbox
from .model import Task, TaskList
from .problems import WorkflowProblem, problem
from .reporter import Reporter, TaskRun
from .steering import Steering
from .tasks import TYPES, Outcome, Step
from .validate import compile_checked

__all__ = ["ContinueRun", "EndWorkflow", "Engine"]

_CHILD_WORKFLOW_PATCH = "run-workflow-as-child"
_CONTINUE_PATCH = "continue-as-new-between-tasks"
_NO_RETRY = RetryPolicy(maximum_attempts=1)
_RETRY_FIRST_DELAY = timedelta(milliseconds=500)
_RETRY_MAX_DELAY = timedelta(seconds=5)
_RUNTIME = {"name": "stigmer_nb", "version": "0.1.0", "metadata": {"engine": "temporal"}}
# A checkpoint travels in the run's failure (a Temporal payload) and sits in the history: past
# this size a failed run says it cannot be recovered rather than carry it.
_MAX_CHECKPOINT_BYTES = 1024 * 1024

_STATUS_IN_PROGRESS = "WORKFLOW_TASK_IN_PROGRESS"
_STATUS_COMPLETED = "WORKFLOW_TASK_COMPLETED"
_STATUS_FAILED = "WORKFLOW_TASK_FAILED"
_STATUS_SKIPPED = "WORKFLOW_TASK_SKIPPED"


def _retryable(err: ActivityError) -> bool:
    """Whether another attempt may succeed: a retryable error, a timeout or a lost worker; not a problem."""
    from temporalio.exceptions import TimeoutError as TemporalTimeout

    cause = err.cause
    if isinstance(cause, ApplicationError):
        return not cause.non_retryable and cause.type != effects.PROBLEM_ERROR_TYPE
    return isinstance(cause, TemporalTimeout)


class ContinueRun(Exception):
    """The run's history is long: stop between two top-level tasks and continue as new from there."""

    def __init__(self, index: int, data: Any, jumps: dict[str, int]) -> None:
        super().__init__("continue as new")
        self.index = index
        self.data = data
        self.jumps = jumps


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


class Engine:
    """Runs one document's task nodes: the data pipeline and the task-list walker.

    What each task type does lives in its module under ``dsl/tasks``; ``Engine.run`` is called
    from the workflow's run method.
    """

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
        nested: bool = False,
        steering: Steering | None = None,
    ) -> None:
        self.inp = inp
        self.steering = steering
        """Pause/resume and approvals of this run (None for an inline sub-run's own engine)."""
        self._at: tuple[int, str, Any, Any] | None = None
        """The top-level task running now: (index, name, its input, ``$context`` before it)."""
        self.pace = pace if pace is not None else Pace(inp.limits)
        self.depth = depth
        self.nested = nested
        """Runs inside another engine's workflow (``run: workflow`` histories from before child workflows)."""
        self.doc = inp.document
        self.compiled = compile_checked(self.doc, reference_prefix)
        self.use: Mapping[str, Any] = self.doc.get("use") or {}
        self.reporter = reporter
        self.events = events
        self.parent = parent
        self.prefix = reference_prefix
        self.context: Any = {}
        self.secrets = dict(inp.secrets)
        self.taint = reporter.taint
        self.background: list[asyncio.Task[None]] = []
        """``run`` tasks started with ``await: false``; the top-level run waits for them at the end."""
        self._functions: dict[tuple[str, str], Task | None] = {}
        info = workflow.info()
        cont = inp.continuation
        self.started = datetime.fromisoformat(cont.started_at) if cont else workflow.now()
        self.jumps: dict[str, int] = {}
        """Jumps in the top-level list so far (carried over a continue-as-new)."""
        self._may_continue = False
        self.workflow_arg = {
            "id": info.workflow_id,
            "definition": self.doc,
            "input": inp.input,
            "startedAt": _timestamp(self.started),
        }

    # --- expressions and shared shapes -------------------------------------------------------

    def arguments(self, scope: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        """jq arguments: ``$context``, ``$secrets``, ``$workflow``, ``$runtime``, then ``scope`` and ``extra``."""
        args = {
            "context": self.context,
            "secrets": self.secrets,
            "workflow": self.workflow_arg,
            "runtime": _RUNTIME,
        }
        args.update(scope)
        args.update(extra)
        return args

    def eval_field(self, value: Any, data: Any, args: Mapping[str, Any], ref: str) -> Any:
        """A field that is jq by nature (``if``, ``when``, ``in`` …), ``${}`` or not."""
        return self._evaluate(evaluate_field, value, data, args, ref)

    def eval_value(self, value: Any, data: Any, args: Mapping[str, Any], ref: str) -> Any:
        """A value whose ``${}`` strings are evaluated, recursively."""
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

    @staticmethod
    def _schema(schema: Any, value: Any, ref: str, what: str) -> None:
        if not schema:
            return
        import jsonschema  # passthrough module: a real import, outside the sandbox

        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            raise WorkflowProblem.of(
                "validation", f"{what} does not match its schema at /{where}: {exc.message}", instance=ref
            ) from None
        except jsonschema.SchemaError as exc:
            raise WorkflowProblem.of(
                "configuration", f"{what} schema is invalid: {exc.message}", instance=ref
            ) from None

    def duration(
        self, value: Any, ref: str, data: Any = None, args: Mapping[str, Any] | None = None
    ) -> timedelta:
        """A duration (``{seconds: 5}``, ``PT5S``, or a ``${}`` expression yielding one)."""
        if isinstance(value, str) and is_expression(value):
            value = self.eval_value(value, data, args or self.arguments({}), ref)
        try:
            return parse_duration(value)
        except DurationError as exc:
            raise WorkflowProblem.of("configuration", str(exc), instance=ref) from None

    def timeout(self, spec: Any, ref: str) -> timedelta | None:
        """A timeout definition or the name of one in ``use.timeouts``; None when there is none."""
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
        return self.duration(after, ref)

    def call_timeout(self, task: Task) -> timedelta:
        """An activity's start-to-close timeout: the task's own, else two minutes."""
        limit = self.timeout(task.timeout, task.ref)
        return limit if limit is not None else timedelta(minutes=2)

    # --- running ----------------------------------------------------------------------------

    async def run(self) -> Any:
        """The whole document: workflow input → tasks → workflow output."""
        ref = self.prefix or "/"
        if isinstance(self.compiled, list):
            first = self.compiled[0]
            raise WorkflowProblem.of(
                "configuration",
                f"the document is not valid: {first.get('detail')} (at {first.get('instance')})",
                instance=ref,
            )
        compiled = self.compiled
        cont = self.inp.continuation
        # Only a whole run may continue as new (not a run: workflow child, nor an inline sub-run).
        self._may_continue = not self.nested and self.inp.parent_task_id is None
        start = 0
        if cont is not None:
            data, self.context, start, self.jumps = cont.data, cont.context, cont.index, dict(cont.jumps)
            self.pace.task_runs = cont.task_runs
        elif self.inp.resume is not None:
            # A recovery: the failed task's input and $context, as the failed run recorded them.
            resume = self.inp.resume
            data, self.context, start = resume.get("data"), resume.get("context") or {}, int(resume["index"])
        else:
            raw = self.inp.input if self.inp.input is not None else {}
            wf_args = {"secrets": self.secrets, "workflow": self.workflow_arg, "runtime": _RUNTIME}
            data = raw
            if compiled.input is not None:
                self._schema(compiled.input.schema, raw, ref, "workflow input")
                if compiled.input.transforms:
                    data = self.eval_field(compiled.input.expression, raw, wf_args, ref)
        limit = self.timeout(compiled.timeout, ref)
        top = self.run_list(compiled.do, data, self.parent, {}, start=start, top=True)
        try:
            if limit is not None:
                left = limit - (workflow.now() - self.started)  # earlier runs spent the rest
                try:
                    output = await asyncio.wait_for(top, max(left.total_seconds(), 0.001))
                except TimeoutError:
                    raise WorkflowProblem.of(
                        "timeout", f"the workflow did not finish within {limit}", instance=ref
                    ) from None
            else:
                output = await top
        except EndWorkflow as end:
            output = end.output
        self._at = None  # past the tasks: a failure from here on is not a task's to recover from
        if compiled.output is not None:
            if compiled.output.transforms:
                output = self.eval_field(compiled.output.expression, output, self.arguments({}), ref)
            self._schema(compiled.output.schema, output, ref, "workflow output")
        if not self.nested:
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

    async def run_list(
        self,
        tasks: TaskList,
        data: Any,
        parent: TaskRun | None,
        scope: Mapping[str, Any],
        *,
        start: int = 0,
        top: bool = False,
    ) -> Any:
        """Run a task list from the top (or ``start``), following flow directives (backward jumps too).

        Between two tasks of the document's own list (``top``), a run whose history has grown
        long stops, to continue as new from the next task.
        """
        nodes = tasks.tasks
        jumps: dict[str, int] = self.jumps if top else {}
        index = start
        resumed = True
        while index < len(nodes):
            if top and not resumed and self._continue_due():
                raise ContinueRun(index, data, jumps)
            resumed = False
            task = nodes[index]
            if top and self._may_continue:
                self._at = (index, task.name, data, self.context)
            data, directive = await self.run_task(task, data, parent, scope)
            if directive is None or directive == "continue":
                index += 1
            elif directive == "exit":
                break
            elif directive == "end":
                raise EndWorkflow(data)
            elif directive in tasks.positions:
                jumps[directive] = jumps.get(directive, 0) + 1
                self.pace.check_jumps(jumps[directive], directive, task.ref)
                index = tasks.positions[directive]
            else:
                raise WorkflowProblem.of(
                    "configuration", f"then: {directive!r} is not a task in this list", instance=task.ref
                )
        return data

    async def run_task(
        self, task: Task, raw: Any, parent: TaskRun | None, scope: Mapping[str, Any]
    ) -> Outcome:
        """One task through the spec's pipeline: if → input → body → output → export → then."""
        ref = task.ref
        run = TaskRun(
            task_id=self.reporter.next_task_id(),
            reference=ref,
            name=task.name,
            kind=task.kind,
            parent_id=parent.task_id if parent else None,
            attempt=int(scope.get("__attempt__", 1)),
            started=workflow.now(),
        )
        task_arg = {
            "name": task.name,
            "reference": ref,
            "definition": task.definition,
            "input": raw,
            "output": None,
            "startedAt": _timestamp(run.started),
        }
        scope_vars = {k: v for k, v in scope.items() if not k.startswith("__")}
        if self.steering is not None:
            await self.steering.gate()  # a pause takes effect here, between two tasks
        args = self.arguments(scope_vars, task=task_arg)
        try:
            await self.pace.task_started(ref)
        except LimitExceeded as err:
            self.reporter.task(run, _STATUS_FAILED, input=raw, error=err.problem)
            raise
        if task.if_ is not None:
            try:
                go = truthy(self.eval_field(task.if_, raw, args, ref))
            except WorkflowProblem as err:
                self.reporter.task(run, _STATUS_FAILED, input=raw, error=err.problem)
                raise
            if not go:
                self.reporter.task(run, _STATUS_SKIPPED, input=raw, output=raw)
                return raw, None
        self.reporter.task(run, _STATUS_IN_PROGRESS, input=raw)
        try:
            limit = self.timeout(task.timeout, ref)
            body = self.pipeline(task, raw, run, scope, args)
            if limit is not None:
                try:
                    output, directive = await asyncio.wait_for(body, limit.total_seconds())
                except TimeoutError:
                    raise WorkflowProblem.of(
                        "timeout", f"task {task.name!r} did not finish within {limit}", instance=ref
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
            self.reporter.task(run, _STATUS_FAILED, error=_cancelled(f"task {task.name!r} was cancelled"))
            raise
        self.reporter.task(run, _STATUS_COMPLETED, output=output)
        return output, directive if directive is not None else task.then

    async def pipeline(
        self, task: Task, raw: Any, run: TaskRun, scope: Mapping[str, Any], args: dict[str, Any]
    ) -> Outcome:
        """input (schema, from) → the type's run → output (as, schema) → export (as, schema)."""
        ref = task.ref
        data = raw
        if task.input is not None:
            self._schema(task.input.schema, raw, ref, "task input")
            if task.input.transforms:
                data = self.eval_field(task.input.expression, raw, args, ref)
        args["input"] = data
        output, directive = await TYPES[task.type].run(Step(self, task, data, run, scope, args))
        args["task"] = {**args["task"], "output": output}
        if task.output is not None:
            if task.output.transforms:
                output = self.eval_field(task.output.expression, output, args, ref)
            self._schema(task.output.schema, output, ref, "task output")
        if task.export is not None and task.export.transforms:
            self.context = self.eval_field(task.export.expression, output, {**args, "output": output}, ref)
            self._schema(task.export.schema, self.context, ref, "exported context")
        return output, directive

    def checkpoint(self) -> dict[str, Any] | None:
        """Where a recovery of this failed run starts: the top-level task it failed in, with that
        task's input and ``$context`` (cleaned of secrets); None when there is none to give."""
        if self._at is None:
            return None
        index, name, data, context = self._at
        point = self.taint.clean({"task": name, "index": index, "data": data, "context": context})
        if len(dumps(point)) > _MAX_CHECKPOINT_BYTES:
            return None
        return dict(point)

    def _continue_due(self) -> bool:
        if not self._may_continue or self.background:
            return False  # detached runs cannot travel to the next run: wait until they are done
        info = workflow.info()
        due = (
            info.get_current_history_length() >= self.inp.limits.continue_after
            or info.is_continue_as_new_suggested()
        )
        # Asked only once it is due, so short runs carry no marker; a run recorded before this
        # code existed replays without one and goes on as it did.
        return due and workflow.patched(_CONTINUE_PATCH)

    def function(self, name: str, ref: str) -> Task | None:
        """``use.functions[name]`` as a task run at ``ref`` (None when there is no such function)."""
        key = (name, ref)
        if key not in self._functions:
            body = (self.use.get("functions") or {}).get(name)
            node = None
            if isinstance(body, Mapping):
                # Compiled where it is called: its nested tasks are reported under the calling task.
                node = Checker(LoadedDocument({"use": self.use}), expressions=False).task(
                    ref, name, body, Scope()
                )
            self._functions[key] = node
        return self._functions[key]

    async def subflow(self, document: dict[str, Any], sub_input: Any, step: Step) -> Any:
        """``run: workflow``: ``document`` as a child workflow (any runner may run it), reporting under ``step``."""
        prefix = pointer_join(step.ref, "run", "workflow")
        if not workflow.patched(_CHILD_WORKFLOW_PATCH):
            return await self._inline_subflow(document, sub_input, step, prefix)
        info = workflow.info()
        child_id = f"{info.workflow_id}/{step.run.task_id}"
        inp = DSLInput(
            document=document,
            input=sub_input,
            execution_id=self.inp.execution_id,
            progress_workflow_id=info.workflow_id if self.reporter.enabled else None,
            env=self.inp.env,
            secrets=self.inp.secrets,
            allow_shell=self.inp.allow_shell,
            limits=self.inp.limits,
            parent_task_id=step.run.task_id,
            reference_prefix=prefix,
            depth=self.depth + 1,
        )
        try:
            result: DSLResult = await workflow.execute_child_workflow(
                DSL_WORKFLOW, inp, id=child_id, task_queue=info.task_queue, result_type=DSLResult
            )
        except ChildWorkflowError as err:
            failure = FailureDetail.of(err.cause)
            if failure is None:
                raise WorkflowProblem(problem("runtime", str(err.cause or err), instance=step.ref)) from None
            self.reporter.relay(child_id, failure.events)
            if failure.problem.get("title") == LimitExceeded.TITLE:
                raise LimitExceeded(failure.problem) from None
            raise WorkflowProblem(failure.problem) from None
        self.reporter.relay(child_id, result.events)
        return result.output

    async def _inline_subflow(self, document: dict[str, Any], sub_input: Any, step: Step, prefix: str) -> Any:
        """``run: workflow`` inside this workflow, as runs started before child workflows replay it."""
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
            parent=step.run,
            reference_prefix=prefix,
            pace=self.pace,
            depth=self.depth + 1,
            nested=True,
        )
        sub.background = self.background  # its detached runs are the execution's too
        return await sub.run()

    # --- effects ----------------------------------------------------------------------------

    async def effect(
        self,
        activity: str,
        step: Step,
        args_value: Any,
        *,
        target: str = "",
        timeout: timedelta = timedelta(minutes=2),
        attempts: int = 3,
        heartbeat: timedelta | None = None,
    ) -> Any:
        """Run an effect activity for ``step``; its failure becomes the task's problem."""
        payload = effects.EffectInput(
            reference=step.ref,
            name=step.task.name,
            args=args_value if isinstance(args_value, dict) else {"value": args_value},
            input=step.data,
            execution_id=self.inp.execution_id,
            target=target,
        )
        # Retried here rather than by Temporal, so that each attempt is reported on the task: a
        # failed attempt that will be retried moves the run to its next attempt, with the error.
        delay = _RETRY_FIRST_DELAY
        for attempt in range(1, attempts + 1):
            try:
                return await workflow.execute_activity(
                    activity,
                    payload,
                    start_to_close_timeout=timeout,
                    heartbeat_timeout=heartbeat,
                    retry_policy=_NO_RETRY,
                    summary=step.task.name,
                )
            except ActivityError as err:
                failed = self._problem_from(err, step.ref)
                if attempt == attempts or not _retryable(err):
                    raise WorkflowProblem(failed) from None
            step.run.attempt += 1
            self.reporter.task(step.run, _STATUS_IN_PROGRESS, error=failed)
            self.reporter.note(
                "retrying",
                {
                    "task_id": step.run.task_id,
                    "task": step.task.name,
                    "attempt": step.run.attempt,
                    "delay_ms": int(delay.total_seconds() * 1000),
                    "error": failed.get("title") or failed.get("detail"),
                },
            )
            await workflow.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_DELAY)
        raise AssertionError("unreachable: the last attempt returns or raises")

    @staticmethod
    def _problem_from(err: ActivityError, ref: str) -> dict[str, Any]:
        cause = err.cause
        failure = FailureDetail.of(cause)
        if failure is not None:
            details = dict(failure.problem)
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
