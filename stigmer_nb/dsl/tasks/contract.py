"""What a task type's module provides (``TaskType``) and what its run receives (``Step``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...runner.converter import SpecTask
    from ..check import Checker, Scope
    from ..interpreter import Engine, TaskRun
    from ..model import Task, TaskList

__all__ = ["Outcome", "Step", "TaskType"]

Outcome = tuple[Any, str | None]
"""A task body's output and the flow directive it chose (None: the task's own ``then``)."""


@dataclass
class Step:
    """One run of one task's body: the node, its transformed input, and the engine to call back."""

    engine: Engine
    task: Task
    data: Any
    """The task's transformed input."""
    run: TaskRun
    scope: Mapping[str, Any]
    """Loop and catch variables bound around the task (and the private ``__attempt__``)."""
    args: dict[str, Any]
    """jq arguments for this task: ``$context``, ``$task``, ``$input`` …"""

    @property
    def ref(self) -> str:
        """The task's JSON pointer."""
        return self.task.ref

    def field(self, value: Any, data: Any = None, args: Mapping[str, Any] | None = None) -> Any:
        """A field that is jq by nature (``when``, ``in`` …), on the task's input by default."""
        return self.engine.eval_field(
            value, self.data if data is None else data, self.args if args is None else args, self.ref
        )

    def value(self, value: Any) -> Any:
        """A value whose ``${}`` strings are evaluated (``set``, ``with`` …), on the task's input."""
        return self.engine.eval_value(value, self.data, self.args, self.ref)

    def variables(self, **extra: Any) -> dict[str, Any]:
        """jq arguments with the scope's variables, ``$task`` and ``$input`` kept, plus ``extra``."""
        scope = {k: v for k, v in self.scope.items() if not k.startswith("__")}
        return self.engine.arguments({**scope, **extra}, task=self.args["task"], input=self.data)

    async def run_list(self, tasks: TaskList, data: Any, scope: Mapping[str, Any] | None = None) -> Any:
        """A nested task list, under this task's run, with ``scope`` (default: this task's)."""
        return await self.engine.run_list(tasks, data, self.run, self.scope if scope is None else scope)


@dataclass(frozen=True)
class TaskType:
    """One task type: the keys it adds to a task, its check, its run, and Stigmer kinds mapping to it."""

    name: str
    keys: tuple[str, ...]
    check: Callable[[Checker, str, Mapping[str, Any], Scope], Any]
    """(checker, pointer, task body, scope) → the type's ``*Spec`` (problems go to the checker)."""
    run: Callable[[Step], Awaitable[Outcome]]
    from_stigmer: Mapping[str, Callable[[SpecTask], dict[str, Any] | None]] = field(default_factory=dict)
    """Stigmer ``WorkflowTaskKind`` name → its ``taskConfig`` as this type's DSL task body."""
    kind_of: Callable[[Mapping[str, Any]], str] | None = None
    """The kind progress reports use, when it says more than the type (``call:http``)."""

    def reported_kind(self, body: Mapping[str, Any]) -> str:
        """What progress reports call a task of this type."""
        return self.kind_of(body) if self.kind_of is not None else self.name
