"""``run``: a shell command or script (with the lab's opt-in) as an activity, or another workflow."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow

from .. import effects
from ..document import pointer_join
from ..limits import LimitExceeded
from ..model import RunSpec
from ..problems import WorkflowProblem
from .contract import Outcome, Step, TaskType

if TYPE_CHECKING:
    from ...runner.converter import SpecTask
    from ..check import Checker, Scope

__all__ = ["TYPE"]

_MAX_RUN_DEPTH = 16
"""``run: workflow`` nesting (a workflow that runs itself would otherwise recurse until Python stops it)."""
_RUN_KEYS = ("shell", "script", "workflow", "container", "await", "return")
_PROCESSES = ("shell", "script", "workflow", "container")
_RUN_RETURN = ("stdout", "stderr", "code", "all", "none")
_SHELL = ("command", "arguments", "environment", "stdin")
_SCRIPT = ("language", "code", "source", "arguments", "environment", "stdin")
_SCRIPT_LANGUAGES = ("python", "javascript")
_SUBFLOW = ("namespace", "name", "version", "input")
_CONTAINER = (
    "image",
    "name",
    "command",
    "ports",
    "volumes",
    "environment",
    "stdin",
    "arguments",
    "lifetime",
    "pullPolicy",
)


def check(c: Checker, pointer: str, body: Mapping[str, Any], scope: Scope) -> RunSpec:
    """``run``: exactly one of shell, script, workflow, container; ``await``; ``return``."""
    ptr = pointer_join(pointer, "run")
    spec = c.mapping(ptr, body["run"], "run")
    if spec is None:
        return RunSpec(process="", body={}, await_=True, return_="stdout")
    c.keys(ptr, spec, _RUN_KEYS, "run")
    chosen = [k for k in _PROCESSES if k in spec]
    if len(chosen) != 1:
        c.add(
            ptr,
            f"run needs exactly one of shell, script, workflow, container (found {', '.join(chosen) or 'none'})",
        )
    if "await" in spec:
        c.boolean(pointer_join(ptr, "await"), spec["await"], "run.await")
    if "return" in spec:
        c.choice(pointer_join(ptr, "return"), spec["return"], _RUN_RETURN, "run.return")
    if "container" in chosen:
        c.add(pointer_join(ptr, "container"), "run: container is not supported by stigmer_nb (there is "
                 "no container runtime here); use run: shell or run: script", title="Not supported")  # fmt: skip
        chosen = [c for c in chosen if c != "container"]
    for process in chosen:
        process_ptr = pointer_join(ptr, process)
        value = c.mapping(process_ptr, spec[process], f"run.{process}")
        if value is not None:
            _CHECKS[process](c, process_ptr, value)
            c.expression(process_ptr, value, bare=False, names=scope.names)
    process = next((k for k in ("shell", "script", "workflow", "container") if k in spec), "")
    body_ = spec.get(process) if process else None
    return RunSpec(
        process=process,
        body=body_ if isinstance(body_, Mapping) else {},
        await_=spec.get("await", True) is not False,
        return_=str(spec.get("return", "stdout")),
    )


def _run_shell(c: Checker, pointer: str, shell: Mapping[str, Any]) -> None:
    c.keys(pointer, shell, _SHELL, "run.shell")
    if c.need(pointer, shell, "command", "run.shell"):
        c.string(pointer_join(pointer, "command"), shell["command"], "run.shell.command")


def _run_script(c: Checker, pointer: str, script: Mapping[str, Any]) -> None:
    c.keys(pointer, script, _SCRIPT, "run.script")
    if c.need(pointer, script, "language", "run.script"):
        c.choice(
            pointer_join(pointer, "language"),
            script["language"],
            _SCRIPT_LANGUAGES,
            "run.script.language",
        )
    if ("code" in script) == ("source" in script):
        c.add(pointer, "run.script needs exactly one of `code` and `source`")
    elif "code" in script:
        c.string(pointer_join(pointer, "code"), script["code"], "run.script.code")
    else:
        c.resource(pointer_join(pointer, "source"), script["source"], "run.script.source")


def _run_workflow(c: Checker, pointer: str, subflow: Mapping[str, Any]) -> None:
    # `version` defaults to latest (spec); namespace and name pick the workflow.
    c.keys(pointer, subflow, _SUBFLOW, "run.workflow")
    for key in ("namespace", "name"):
        if c.need(pointer, subflow, key, "run.workflow"):
            c.string(pointer_join(pointer, key), subflow[key], f"run.workflow.{key}")
    if "version" in subflow:
        c.string(pointer_join(pointer, "version"), subflow["version"], "run.workflow.version")


def _run_container(c: Checker, pointer: str, container: Mapping[str, Any]) -> None:
    c.keys(pointer, container, _CONTAINER, "run.container")
    if c.need(pointer, container, "image", "run.container"):
        c.string(pointer_join(pointer, "image"), container["image"], "run.container.image")


_CHECKS = {
    "shell": _run_shell,
    "script": _run_script,
    "workflow": _run_workflow,
    "container": _run_container,
}


async def run(step: Step) -> Outcome:
    """The process's result (or, with ``await: false``, the input at once)."""
    engine = step.engine
    spec: RunSpec = step.task.spec
    if spec.process == "workflow":
        job = _subflow(step, spec)
    elif spec.process in ("shell", "script"):
        which = spec.process
        if not engine.inp.allow_shell:
            raise WorkflowProblem.of(
                "configuration",
                f"run: {which} is disabled; start the lab with allow_shell=True "
                "(or STIGMER_NB_ALLOW_SHELL=1) to let documents run commands",
                instance=step.ref,
                title="Not allowed",
            )
        body = step.value(dict(spec.body))
        body["return"] = spec.return_
        job = engine.effect(
            effects.RUN_SHELL if which == "shell" else effects.RUN_SCRIPT,
            step,
            body,
            timeout=engine.call_timeout(step.task),
            attempts=1,
            heartbeat=timedelta(seconds=10),
        )
    else:
        raise WorkflowProblem.of(
            "configuration", "run: container is not supported by stigmer_nb", instance=step.ref
        )
    if not spec.await_:
        # Fire and forget within the execution: the run ends only once this is done too.
        engine.background.append(asyncio.create_task(_detached(step.task.name, job)))
        return step.data, None
    return await job, None


async def _detached(name: str, job: Any) -> None:
    try:
        await job
    except WorkflowProblem as err:  # nobody awaits it: its own task runs carry the error
        workflow.logger.warning("run task %r (await: false) failed: %s", name, err.problem.get("title"))


async def _subflow(step: Step, spec: RunSpec) -> Any:
    """``run: workflow``: the named document, run by this engine under this task."""
    engine = step.engine
    if engine.depth >= _MAX_RUN_DEPTH:
        raise LimitExceeded.of(
            f"run: workflow nests {engine.depth + 1} levels deep; at most {_MAX_RUN_DEPTH} are "
            "allowed (does a workflow run itself?)",
            instance=step.ref,
        )
    target = step.value(dict(spec.body))
    document = await engine.effect(effects.LOAD_WORKFLOW, step, target, timeout=timedelta(seconds=30))
    return await engine.subflow(document, target.get("input", step.data), step)


def kind_of(body: Mapping[str, Any]) -> str:
    """``run:shell``, ``run:workflow`` …"""
    spec = body.get("run")
    if isinstance(spec, Mapping):
        sub = next((k for k in _PROCESSES if k in spec), "")
        return f"run:{sub}" if sub else "run"
    return "run"


def from_stigmer(t: SpecTask) -> dict[str, Any] | None:
    """``RUN``: ``workflow`` (``namespace/name``, or a name in the spec's namespace), ``input``."""
    t.fields("workflow", "input")
    ref = t.string("workflow")
    if ref is None:
        return None
    namespace, _, name = ref.rpartition("/")
    workflow_: dict[str, Any] = {
        "namespace": namespace or t.converter.namespace,
        "name": name,
        "version": "latest",
    }
    data = t.mapping("input")
    if data:
        workflow_["input"] = data
    return {"run": {"workflow": workflow_}}


TYPE = TaskType("run", ("run",), check, run, {"RUN": from_stigmer}, kind_of=kind_of)
