"""``fork``: branches run concurrently; all of them (outputs in order) or the first to finish."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from temporalio import workflow

from ..document import pointer_join
from ..model import ForkSpec, TaskList
from .contract import Outcome, Step, TaskType

if TYPE_CHECKING:
    from ...runner.converter import SpecTask
    from ..check import Checker, Scope

__all__ = ["TYPE"]


def check(c: Checker, pointer: str, body: Mapping[str, Any], scope: Scope) -> ForkSpec:
    """``fork: {branches: [tasks], compete}``."""
    ptr = pointer_join(pointer, "fork")
    branches = TaskList.of(pointer_join(ptr, "branches"), [])
    spec = c.mapping(ptr, body["fork"], "fork")
    if spec is None:
        return ForkSpec(branches=branches, compete=False)
    c.keys(ptr, spec, ("branches", "compete"), "fork")
    if c.need(ptr, spec, "branches", "fork (a list of `- name: {task}`)"):
        branches = c.task_list(pointer_join(ptr, "branches"), spec["branches"], scope)
    if "compete" in spec:
        c.boolean(pointer_join(ptr, "compete"), spec["compete"], "fork.compete")
    return ForkSpec(branches=branches, compete=spec.get("compete") is True)


async def run(step: Step) -> Outcome:
    """Each branch is a task run on the fork's input; a branch's ``then`` is not followed."""
    spec: ForkSpec = step.task.spec

    async def branch(index: int) -> Any:
        out, _ = await step.engine.run_task(spec.branches.tasks[index], step.data, step.run, step.scope)
        return out

    jobs = [asyncio.create_task(branch(i)) for i in range(len(spec.branches.tasks))]
    if not spec.compete:
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


def from_stigmer(t: SpecTask) -> dict[str, Any] | None:
    """``FORK``: ``branches: [{name, do}]``, ``compete``."""
    t.fields("branches", "compete")
    branches = []
    for _, branch in t.items("branches", fields=("name", "do")):
        if branch is not None:
            branches.append({t.string("name", within=branch): {"do": t.subtasks("do", branch)}})
    compete = t.config.get("compete", False)
    if not isinstance(compete, bool):
        t.fail(t.config.at("compete"), f"compete must be true or false, not {compete!r}")
    return {"fork": {"branches": branches, "compete": compete}}


TYPE = TaskType("fork", ("fork",), check, run, {"FORK": from_stigmer})
