"""Loading workflow documents: YAML text, a file or a dict, with the position of every node."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml  # imported on first parse: it is not needed to start a lab

from ..errors import DSLValidationError, InvalidInputError
from .problems import problem

__all__ = [
    "TASK_TYPES",
    "LoadedDocument",
    "is_workflow_spec",
    "load_source",
    "pointer_join",
    "task_type",
]

TASK_TYPES = ("call", "do", "emit", "for", "fork", "listen", "raise", "run", "set", "switch", "try", "wait")
"""The DSL's task types; a task is the one whose key it carries (``for``/``try`` win over ``do``/``catch``)."""

_PRECEDENCE = ("for", "try", "call", "emit", "fork", "listen", "raise", "run", "set", "switch", "wait", "do")


def task_type(task: Mapping[str, Any]) -> str | None:
    """The task's type, or None when it carries none of the type keys."""
    for key in _PRECEDENCE:
        if key in task:
            return key
    return None


def pointer_join(pointer: str, *parts: str | int) -> str:
    """Extend a JSON pointer, escaping ``~`` and ``/`` in names."""
    out = pointer
    for part in parts:
        out += "/" + str(part).replace("~", "~0").replace("/", "~1")
    return out


@functools.cache
def _loader_class() -> type[yaml.SafeLoader]:
    """Safe YAML without implicit timestamps: documents must stay JSON."""
    import yaml

    class Loader(yaml.SafeLoader):
        yaml_implicit_resolvers = {
            key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
            for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }

    return Loader


@dataclass
class LoadedDocument:
    """A parsed document and where each node came from."""

    data: dict[str, Any]
    text: str | None = None
    path: Path | None = None
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    """JSON pointer → (line, column), both 1-based; empty for dict input."""

    def position(self, pointer: str) -> tuple[int, int] | None:
        """Line and column of ``pointer``, or of its nearest ancestor that has one."""
        while True:
            if pointer in self.positions:
                return self.positions[pointer]
            if not pointer:
                return None
            pointer = pointer.rsplit("/", 1)[0]

    @property
    def source(self) -> str:
        """Where it came from, for messages."""
        return str(self.path) if self.path else "document"


def _construct(
    node: yaml.Node, loader: yaml.SafeLoader, pointer: str, positions: dict[str, tuple[int, int]]
) -> Any:
    positions.setdefault(pointer, (node.start_mark.line + 1, node.start_mark.column + 1))
    if node.id == "mapping":
        loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            child = pointer_join(pointer, key)
            positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _construct(value_node, loader, child, positions)
        return out
    if node.id == "sequence":
        return [
            _construct(item, loader, pointer_join(pointer, i), positions) for i, item in enumerate(node.value)
        ]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, bytes | set):
        raise InvalidInputError(f"{pointer or '/'}: binary and set values are not JSON; use strings")
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[str, tuple[int, int]]]:
    import yaml

    loader = _loader_class()(text)
    positions: dict[str, tuple[int, int]] = {}
    try:
        node = loader.get_single_node()
        if node is None:
            raise DSLValidationError(
                [
                    problem(
                        "validation",
                        "the document is empty; it needs `document` and `do`",
                        title="Empty document",
                    )
                ],
                source=source,
            )
        return _construct(node, loader, "", positions), positions
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or "invalid YAML"
        details = problem("validation", f"YAML syntax error: {what}", title="Malformed YAML")
        if mark is not None:
            details["line"], details["column"] = mark.line + 1, mark.column + 1
        raise DSLValidationError([details], source=source) from None
    except yaml.YAMLError as exc:
        raise DSLValidationError(
            [problem("validation", f"YAML error: {exc}", title="Malformed YAML")], source=source
        ) from None
    finally:
        loader.dispose()


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and len(text) < 4096 and text.strip().endswith((".yaml", ".yml", ".json"))


def load_source(source: str | Path | Mapping[str, Any]) -> LoadedDocument:
    """Parse a document from a dict, a path, or YAML/JSON text. Syntax errors carry line and column."""
    if isinstance(source, Mapping):
        try:
            data = json.loads(json.dumps(source))
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"the document is not JSON-compatible: {exc}") from None
        return LoadedDocument(data)
    path: Path | None = None
    if isinstance(source, Path) or _looks_like_path(source):
        path = Path(source)
        if not path.exists():
            raise InvalidInputError(f"no workflow file at {path}; check the path")
        text = path.read_text(encoding="utf-8")
    else:
        text = source
    data, positions = _parse_yaml(text, str(path) if path else "document")
    if not isinstance(data, dict):
        raise DSLValidationError(
            [
                problem(
                    "validation",
                    "a workflow document must be a mapping with `document` and `do`",
                    title="Not a workflow document",
                )
            ],
            source=str(path) if path else "document",
        )
    return LoadedDocument(data, text=text, path=path, positions=positions)


def is_workflow_spec(data: Mapping[str, Any]) -> bool:
    """True for Stigmer's ``WorkflowSpec`` (protojson: ``document`` + ``tasks`` with ``kind``)."""
    tasks = data.get("tasks")
    return "do" not in data and isinstance(tasks, list)
