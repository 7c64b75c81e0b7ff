"""Stigmer's "proto → YAML" converter: a ``WorkflowSpec`` (protojson) as a DSL 1.0 document."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..dsl.check import SUPPORTED_DSL
from ..dsl.document import pointer_join
from ..dsl.problems import problem
from ..dsl.tasks import TYPES
from ..errors import DSLValidationError, did_you_mean

__all__ = ["TASK_KINDS", "SpecTask", "convert_spec"]

TASK_KINDS = (
    "SET",
    "HTTP_CALL",
    "GRPC_CALL",
    "CALL_ACTIVITY",
    "SWITCH",
    "FOR",
    "FORK",
    "TRY",
    "LISTEN",
    "WAIT",
    "RAISE",
    "RUN",
    "AGENT_CALL",
)
"""``WorkflowTaskKind`` without its ``WORKFLOW_TASK_KIND_`` prefix; the enum number is index + 1."""

_FROM_STIGMER = {kind: convert for t in TYPES.values() for kind, convert in t.from_stigmer.items()}
"""Each kind's ``taskConfig`` → DSL task body, from the task type it becomes (``dsl/tasks``)."""
assert set(_FROM_STIGMER) == set(TASK_KINDS), "every Stigmer kind maps to one task type"

_KIND_PREFIX = "WORKFLOW_TASK_KIND_"
_SPEC_FIELDS = ("document", "tasks", "description", "env_spec")
_DOCUMENT_FIELDS = ("dsl", "namespace", "name", "version", "description")
_TASK_FIELDS = ("name", "kind", "task_config", "export", "flow")
_SCOPES = ("api_resource_owner_scope_unspecified", "platform", "organization", "identity_account")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(key: str) -> str:
    """``taskConfig`` → ``task_config`` (protojson's JSON names back to proto names)."""
    return _CAMEL.sub("_", key).lower()


class _Message:
    """A protojson message: fields by proto name, whichever spelling the input used."""

    def __init__(self, data: Mapping[str, Any], pointer: str) -> None:
        self.data = data
        self.pointer = pointer
        self._keys = {_snake(str(k)): k for k in data}

    def has(self, name: str) -> bool:
        """Present and not protojson's default (empty string, zero, false, empty list or map)."""
        value = self.get(name)
        return value is not None and value != "" and value != 0 and value != [] and value != {}

    def get(self, name: str, default: Any = None) -> Any:
        key = self._keys.get(name)
        return self.data[key] if key is not None else default

    def at(self, name: str) -> str:
        """The JSON pointer of field ``name`` (as spelled in the input)."""
        return pointer_join(self.pointer, self._keys.get(name, name))

    def unknown(self, allowed: tuple[str, ...]) -> list[tuple[str, str]]:
        """(original key, hint) for fields the message does not have."""
        return [
            (key, did_you_mean(snake, allowed)) for snake, key in self._keys.items() if snake not in allowed
        ]


class _Converter:
    """Converts one spec, collecting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[dict[str, Any]] = []
        self.namespace = ""

    def fail(self, pointer: str, detail: str) -> None:
        """Record a problem at ``pointer`` (a JSON pointer into the spec)."""
        self.problems.append(
            problem("validation", detail, title="Invalid WorkflowSpec", instance=pointer or "/")
        )

    def message(self, pointer: str, value: Any, what: str, fields: tuple[str, ...]) -> _Message | None:
        """``value`` as a message with only ``fields``; None (after reporting) when it is not a mapping."""
        if not isinstance(value, Mapping):
            self.fail(pointer, f"{what} must be an object, not {type(value).__name__}")
            return None
        msg = _Message(value, pointer)
        for key, hint in msg.unknown(fields):
            self.fail(pointer_join(pointer, key), f"{what} has no field {key!r}{hint}")
        return msg

    # --- spec and document ------------------------------------------------------------------

    def spec(self, spec: Any) -> dict[str, Any]:
        """The whole document: ``{document, do}``."""
        msg = self.message("", spec, "a WorkflowSpec", _SPEC_FIELDS)
        if msg is None:
            return {}
        document = self.document(msg)
        tasks = msg.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            self.fail(msg.at("tasks"), "a WorkflowSpec needs `tasks`: a non-empty list of tasks")
            return {"document": document, "do": []}
        return {"document": document, "do": self.tasks(msg.at("tasks"), tasks, "the spec")}

    def document(self, spec: _Message) -> dict[str, Any]:
        """``document`` → ``{dsl, namespace, name, version, summary}``."""
        if not spec.has("document"):
            self.fail("", "a WorkflowSpec needs `document`: {dsl, namespace, name, version}")
            return {}
        doc = self.message(spec.at("document"), spec.get("document"), "document", _DOCUMENT_FIELDS)
        if doc is None:
            return {}
        dsl = doc.get("dsl") or "1.0.0"
        if not isinstance(dsl, str) or not SUPPORTED_DSL.match(dsl):
            self.fail(doc.at("dsl"), f"document.dsl {dsl!r} is not supported; use 1.0.0")
        out: dict[str, Any] = {"dsl": dsl}
        for name in ("namespace", "name", "version"):
            value = doc.get(name)
            if value is None:
                self.fail(doc.pointer, f"document needs `{name}`")
            elif not isinstance(value, str) or not value:
                self.fail(doc.at(name), f"document.{name} must be a non-empty string, not {value!r}")
            out[name] = value
        self.namespace = out["namespace"] if isinstance(out["namespace"], str) else ""
        description = doc.get("description") or spec.get("description")
        if description:
            out["summary"] = description
        return out

    # --- tasks ------------------------------------------------------------------------------

    def tasks(self, pointer: str, tasks: Any, where: str) -> list[dict[str, Any]]:
        """A list of ``WorkflowTask`` objects → a DSL task list (problems reported, items skipped)."""
        if not isinstance(tasks, list) or not tasks:
            self.fail(pointer, f"{where} needs a non-empty list of tasks")
            return []
        out = []
        for index, item in enumerate(tasks):
            converted = self.task(pointer_join(pointer, index), item)
            if converted is not None:
                out.append(converted)
        return out

    def task(self, pointer: str, task: Any) -> dict[str, Any] | None:
        """One ``WorkflowTask`` → ``{name: body}``."""
        msg = self.message(pointer, task, "a task", _TASK_FIELDS)
        if msg is None:
            return None
        name = msg.get("name")
        if not isinstance(name, str) or not name:
            self.fail(pointer, "a task needs a `name`")
            return None
        kind = self.kind(msg, name)
        if kind is None:
            return None
        if not isinstance(msg.get("task_config"), Mapping):
            self.fail(
                msg.at("task_config") if msg.get("task_config") is not None else pointer,
                f"task {name!r} ({kind}) needs `taskConfig`: an object",
            )
            return None
        config = _Message(msg.get("task_config"), msg.at("task_config"))
        errors_before = len(self.problems)
        body = _FROM_STIGMER[kind](SpecTask(name, kind, config, self))
        if len(self.problems) > errors_before or body is None:
            return None
        self.common(msg, name, body)
        return {name: body}

    def kind(self, msg: _Message, name: str) -> str | None:
        """The task's kind without prefix; accepts the enum name, its short form, or its number."""
        value = msg.get("kind")
        kind: str | None = None
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= len(TASK_KINDS):
            kind = TASK_KINDS[value - 1]
        elif isinstance(value, str) and value.upper().removeprefix(_KIND_PREFIX) in TASK_KINDS:
            kind = value.upper().removeprefix(_KIND_PREFIX)
        if kind is None:
            known = [_KIND_PREFIX + k for k in TASK_KINDS]
            hint = did_you_mean(value, known) if isinstance(value, str) else ""
            what = "needs a `kind`" if value in (None, "", 0) else f"has an unknown kind {value!r}"
            self.fail(
                msg.at("kind") if value is not None else msg.pointer,
                f"task {name!r} {what}{hint}; kinds are {', '.join(known)}",
            )
        return kind

    def common(self, msg: _Message, name: str, body: dict[str, Any]) -> None:
        """``export.as`` → ``export: {as}``; ``flow.then`` → ``then``."""
        if msg.has("export"):
            export = self.message(msg.at("export"), msg.get("export"), f"task {name!r} export", ("as",))
            if export is not None and export.has("as"):
                body["export"] = {"as": export.get("as")}
        if msg.has("flow"):
            flow = self.message(msg.at("flow"), msg.get("flow"), f"task {name!r} flow", ("then",))
            if flow is not None and flow.has("then"):
                body["then"] = flow.get("then")


class SpecTask:
    """Reading one task's ``taskConfig``: typed getters that report problems with the task's name."""

    def __init__(self, name: str, kind: str, config: _Message, converter: _Converter) -> None:
        self.name = name
        self.kind = kind
        self.config = config
        self.converter = converter

    def fail(self, pointer: str, detail: str) -> None:
        self.converter.fail(pointer, f"task {self.name!r} ({self.kind}): {detail}")

    def fields(self, *allowed: str) -> None:
        """Refuse fields the kind's config message does not have (as protojson does)."""
        for key, hint in self.config.unknown(allowed):
            self.fail(pointer_join(self.config.pointer, key), f"taskConfig has no field {key!r}{hint}")

    def string(self, name: str, *, within: _Message | None = None) -> str | None:
        """A required non-empty string field."""
        msg = within or self.config
        value = msg.get(name)
        if isinstance(value, str) and value:
            return value
        where = msg.at(name) if value is not None else msg.pointer
        self.fail(where, f"`{name}` must be a non-empty string" if value is not None else f"needs `{name}`")
        return None

    def integer(
        self, name: str, low: int, high: int | None, *, required: bool = False, within: _Message | None = None
    ) -> int | None:
        msg = within or self.config
        value = msg.get(name)
        if value is None or (value == 0 and not required):
            if required:
                self.fail(msg.pointer, f"needs `{name}`")
            return None
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)  # protojson writes 64-bit integers as strings; accept them here too
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # a google.protobuf.Struct holds every number as a double
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < low
            or (high is not None and value > high)
        ):
            bound = f"{low}..{high}" if high is not None else f"≥ {low}"
            self.fail(msg.at(name), f"`{name}` must be a whole number {bound}, not {value!r}")
            return None
        return value

    def number(self, name: str, low: float, high: float, *, within: _Message | None = None) -> float | None:
        msg = within or self.config
        value = msg.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
            self.fail(msg.at(name), f"`{name}` must be a number from {low} to {high}, not {value!r}")
            return None
        return value

    def mapping(self, name: str, *, required: bool = False) -> dict[str, Any] | None:
        """An object field (a ``google.protobuf.Struct`` or a map)."""
        value = self.config.get(name)
        if value is None or value == {}:
            if required:
                self.fail(self.config.pointer, f"needs `{name}`: a non-empty object")
            return None
        if not isinstance(value, Mapping):
            self.fail(self.config.at(name), f"`{name}` must be an object, not {type(value).__name__}")
            return None
        return dict(value)

    def string_map(self, name: str) -> dict[str, str] | None:
        """A ``map<string, string>`` field (headers, env)."""
        value = self.mapping(name)
        for key, item in (value or {}).items():
            if not isinstance(item, str):
                self.fail(
                    pointer_join(self.config.at(name), key), f"`{name}.{key}` must be a string, not {item!r}"
                )
        return value

    def message(self, name: str, fields: tuple[str, ...], *, required: bool = False) -> _Message | None:
        """A nested message field."""
        value = self.config.get(name)
        if value is None:
            if required:
                self.fail(self.config.pointer, f"needs `{name}`")
            return None
        if not isinstance(value, Mapping):
            self.fail(self.config.at(name), f"`{name}` must be an object, not {type(value).__name__}")
            return None
        msg = _Message(value, self.config.at(name))
        for key, hint in msg.unknown(fields):
            self.fail(pointer_join(msg.pointer, key), f"`{name}` has no field {key!r}{hint}")
        return msg

    def items(
        self, name: str, *, fields: tuple[str, ...], within: _Message | None = None
    ) -> list[tuple[int, _Message | None]]:
        """A required non-empty repeated message field, each item as a message (None when invalid)."""
        msg = within or self.config
        values = msg.get(name)
        if not isinstance(values, list) or not values:
            self.fail(
                msg.at(name) if values is not None else msg.pointer, f"needs `{name}`: a non-empty list"
            )
            return []
        out: list[tuple[int, _Message | None]] = []
        for index, value in enumerate(values):
            pointer = pointer_join(msg.at(name), index)
            if not isinstance(value, Mapping):
                self.fail(pointer, f"each of `{name}` must be an object")
                out.append((index, None))
                continue
            item = _Message(value, pointer)
            for key, hint in item.unknown(fields):
                self.fail(pointer_join(pointer, key), f"`{name}` items have no field {key!r}{hint}")
            out.append((index, item))
        return out

    def subtasks(self, name: str, msg: _Message) -> list[dict[str, Any]]:
        """Nested ``WorkflowTask``s, converted recursively."""
        return self.converter.tasks(msg.at(name), msg.get(name), f"task {self.name!r} ({self.kind}) `{name}`")

    def scope(self) -> str | None:
        """``ApiResourceOwnerScope`` (name or number) → its lowercase name; unspecified → organization."""
        value = self.config.get("scope")
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(_SCOPES):
            name = _SCOPES[value]
        elif isinstance(value, str) and value.lower() in _SCOPES:
            name = value.lower()
        else:
            self.fail(self.config.at("scope"), f"scope {value!r} must be one of {', '.join(_SCOPES[1:])}")
            return None
        return "organization" if name == _SCOPES[0] else name


def convert_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A Stigmer ``WorkflowSpec`` (protojson) as a DSL 1.0 document ``{document, do}``.

    Unlike Stigmer's Go converter, every one of the 13 kinds is converted, the bodies of ``for``,
    ``fork`` branches, ``try`` and ``catch`` are converted recursively, and the shapes are the ones
    the DSL (and this engine) run. Keys may be camelCase (``taskConfig``) or snake_case
    (``task_config``), as protojson accepts both; unknown keys are refused, as protojson refuses
    them. ``kind`` may be ``WORKFLOW_TASK_KIND_SET``, ``SET`` or the enum number.

    Where Stigmer's protos leave the DSL shape open:

    * ``RAISE.error`` becomes the error ``type``: kept when it is a URI or a ``${}`` expression;
      a standard kind (``timeout``, ``validation`` …, any case) becomes the spec's URI for it with
      its default status; any other word becomes the ``runtime`` type with status 500. The word
      itself is always the ``title`` (so it is never lost) and ``message`` the ``detail``.
    * ``LISTEN`` signals become event filters on the CloudEvent ``type`` (the signal id): mode
      ``one`` with one signal is ``one``, with several ``any`` (the first to arrive); ``all`` is
      ``all``. Signal types ``query`` and ``update`` are refused: they do not wait for an event.
    * ``RUN.workflow`` is ``name`` or ``namespace/name``; the namespace defaults to the document's
      and the version to ``latest``; ``input`` becomes ``run.workflow.input``.
    * ``HTTP_CALL.timeout_seconds`` becomes the task's ``timeout: {after: {seconds: N}}``.
    * A ``TRY`` without ``catch`` gets ``catch: {}`` (the DSL needs one; it catches every error).
    * ``FOR`` without ``each`` keeps the DSL's default ``$item``.
    * ``AGENT_CALL.scope`` becomes its lowercase enum name; unspecified means ``organization``.
    * ``document.description`` (else the spec's ``description``) becomes ``document.summary``;
      ``env_spec`` is not part of the document and is ignored here.

    Raises ``DSLValidationError`` (an ``InvalidInputError``) listing every problem, each with a
    JSON pointer into ``spec`` and the task's name and kind. The result is not validated here:
    pass it to ``stigmer_nb.dsl.validate.validate_document`` (expressions, flow targets …).
    """
    converter = _Converter()
    document = converter.spec(spec)
    if converter.problems:
        raise DSLValidationError(converter.problems, source="WorkflowSpec")
    return document
