"""A DSL document compiled once into frozen, typed task nodes (what the engine walks).

``validate.compile_document`` builds these from a checked document; the per-type ``*Spec``
classes hold what each task type's module (``dsl/tasks/``) reads at run time, so no task
is re-read from the raw mapping while it runs. Expressions stay as written (jq text or
mappings holding ``${}`` strings): they are evaluated with the run's data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CallSpec",
    "CatchSpec",
    "DoSpec",
    "EmitSpec",
    "ForSpec",
    "ForeachSpec",
    "ForkSpec",
    "ListenSpec",
    "RaiseSpec",
    "RunSpec",
    "SetSpec",
    "SwitchCase",
    "SwitchSpec",
    "Task",
    "TaskList",
    "Transform",
    "TrySpec",
    "WaitSpec",
    "Workflow",
]


@dataclass(frozen=True, slots=True)
class Transform:
    """``input: {schema, from}``, ``output``/``export: {schema, as}``."""

    expression: Any = None
    """``from`` or ``as``; None when the section has none."""
    schema: Any = None
    """The JSON Schema itself (``schema.document``, or the bare schema), or None."""

    @property
    def transforms(self) -> bool:
        """True when there is an expression to apply."""
        return self.expression is not None


@dataclass(frozen=True, slots=True)
class Task:
    """One task of a list, its common properties parsed and its type's own part in ``spec``."""

    name: str
    ref: str
    """JSON pointer: ``<list>/<index>/<name>`` (the ``instance`` of its errors)."""
    type: str
    """``set``, ``call``, ``for`` … (picks the module in ``dsl/tasks``)."""
    kind: str
    """What progress reports call it: the type, ``call:http``, ``run:shell`` …"""
    spec: Any
    """The type's ``*Spec``."""
    definition: Mapping[str, Any]
    """The task as written (``$task.definition``)."""
    if_: Any = None
    input: Transform | None = None
    output: Transform | None = None
    export: Transform | None = None
    timeout: Any = None
    """A timeout definition, the name of one in ``use.timeouts``, or an expression."""
    then: str | None = None


@dataclass(frozen=True, slots=True)
class TaskList:
    """An ordered task list and where each name sits (flow directives jump by name)."""

    pointer: str
    tasks: tuple[Task, ...]
    positions: Mapping[str, int]

    @classmethod
    def of(cls, pointer: str, tasks: list[Task]) -> TaskList:
        """The list, with each name's first position."""
        positions: dict[str, int] = {}
        for index, task in enumerate(tasks):
            positions.setdefault(task.name, index)
        return cls(pointer, tuple(tasks), positions)


@dataclass(frozen=True, slots=True)
class Workflow:
    """A whole document: its top-level sections and its compiled ``do`` list."""

    document: Mapping[str, Any]
    do: TaskList
    use: Mapping[str, Any]
    input: Transform | None = None
    output: Transform | None = None
    timeout: Any = None


# --- one spec per task type ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetSpec:
    value: Any
    """A mapping whose ``${}`` strings are evaluated, or one ``${}`` expression."""


@dataclass(frozen=True, slots=True)
class DoSpec:
    do: TaskList


@dataclass(frozen=True, slots=True)
class SwitchCase:
    name: str
    ref: str
    when: Any
    """None for the default case."""
    then: str | None


@dataclass(frozen=True, slots=True)
class SwitchSpec:
    cases: tuple[SwitchCase, ...]


@dataclass(frozen=True, slots=True)
class ForSpec:
    each: str
    at: str
    in_: Any
    while_: Any
    do: TaskList


@dataclass(frozen=True, slots=True)
class ForkSpec:
    branches: TaskList
    compete: bool


@dataclass(frozen=True, slots=True)
class CatchSpec:
    as_: str
    errors_with: Mapping[str, Any] | None
    when: Any
    except_when: Any
    retry: Any
    """A retry policy, or the name of one in ``use.retries``."""
    do: TaskList | None


@dataclass(frozen=True, slots=True)
class TrySpec:
    try_: TaskList
    catch: CatchSpec


@dataclass(frozen=True, slots=True)
class RaiseSpec:
    error: Any
    """An inline error definition, or the name of one in ``use.errors``."""


@dataclass(frozen=True, slots=True)
class WaitSpec:
    duration: Any


@dataclass(frozen=True, slots=True)
class EmitSpec:
    attributes: Mapping[str, Any]
    """``emit.event.with``: the CloudEvent's attributes."""


@dataclass(frozen=True, slots=True)
class ForeachSpec:
    item: str
    at: str
    do: TaskList | None
    output_as: Any


@dataclass(frozen=True, slots=True)
class ListenSpec:
    to: Mapping[str, Any]
    read: str
    foreach: ForeachSpec | None
    approval: bool = False
    """Waits for a person's decision (one ``ai.stigmer.approval`` event)."""


@dataclass(frozen=True, slots=True)
class CallSpec:
    call: str
    """``http``, ``openapi``, ``grpc`` … or a function's name."""
    with_: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RunSpec:
    process: str
    """``shell``, ``script``, ``workflow``, ``container``, or "" when the run names none."""
    body: Mapping[str, Any]
    await_: bool
    return_: str
