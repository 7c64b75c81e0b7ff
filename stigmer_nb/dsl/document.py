"""Loading workflow documents: YAML text, a file or a dict, with the position of every node."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml  # imported on first parse: it is not needed to start a lab

from ..errors import DSLValidationError, InvalidInputError
from .problems import problem

__all__ = [
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_NODES",
    "TASK_TYPES",
    "LoadedDocument",
    "check_nesting",
    "is_workflow_spec",
    "load_source",
    "load_yaml",
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


MAX_DEPTH = 128
"""Most mappings and lists a document or an input may nest (a nested task list takes three): the
examples reach 15. The YAML reader, the validator and the interpreter recurse per level; at 128 they
stay far below Python's recursion limit."""

MAX_NODES = 100_000
"""Most values a document may expand to (the examples hold under 100); YAML aliases can make a few
lines expand to billions."""

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
"""Largest document text or file accepted; larger ones are refused before being read whole."""

_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"

# The YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1033-core-schema): PyYAML resolves YAML 1.1,
# where `on`/`off`/`yes`/`no` are booleans, `010` is octal, `1:20` sexagesimal, dates timestamps.
_CORE_SCHEMA: tuple[tuple[str, str, str], ...] = (
    ("tag:yaml.org,2002:null", r"~|null|Null|NULL|", "~nN"),
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    (_INT, r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    (
        _FLOAT,
        r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        "-+.0123456789",
    ),
)


def _core_resolvers() -> dict[str | None, list[tuple[str, re.Pattern[str]]]]:
    """PyYAML's resolver table (first character → [(tag, regex)]) for the core schema, built from scratch."""
    table: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}
    for tag, pattern, first in _CORE_SCHEMA:
        regex = re.compile(rf"(?:{pattern})\Z")
        # The empty string keys the empty scalar, which the core schema reads as null.
        for char in (*first, "") if tag.endswith(":null") else first:
            table.setdefault(char, []).append((tag, regex))
    return table


def _scalar_error(node: yaml.ScalarNode, what: str) -> yaml.YAMLError:
    import yaml

    return yaml.constructor.ConstructorError(
        None, None, f"{node.value[:40]!r} is not {what}; quote it to keep it a string", node.start_mark
    )


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    try:
        if text[:2] == "0o":
            return int(text[2:], 8)
        if text[:2] == "0x":
            return int(text[2:], 16)
        return int(text)  # decimal, leading zeros included: YAML 1.2 has no 0-prefixed octal
    except ValueError:  # an explicit !!int that is no 1.2 integer, or more digits than Python converts
        long = len(text) > 1000 and text.lstrip("+-").isdigit()
        raise _scalar_error(
            node, "an integer of a readable length" if long else "a YAML 1.2 integer"
        ) from None


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node))
    if text.lower().endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text.lower() == ".nan":
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise _scalar_error(node, "a YAML 1.2 float") from None


@functools.cache
def _loader_class() -> type[yaml.SafeLoader]:
    """Safe YAML read with the 1.2 core schema (no timestamps, no merge keys), counting nesting."""
    import yaml

    class Loader(yaml.SafeLoader):
        yaml_implicit_resolvers = _core_resolvers()
        yaml_constructors = {
            **yaml.SafeLoader.yaml_constructors,
            _INT: _construct_int,
            _FLOAT: _construct_float,
        }

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.depth = 0

        def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
            # PyYAML composes recursively: stop before the stack does, and say how deep it goes.
            if not self.check_event(yaml.CollectionStartEvent):
                return super().compose_node(parent, index)  # type: ignore[no-any-return]
            if self.depth >= MAX_DEPTH:
                raise _TooDeep
            self.depth += 1
            try:
                return super().compose_node(parent, index)  # type: ignore[no-any-return]
            finally:
                self.depth -= 1

    return Loader


class _TooDeep(Exception):
    """Raised inside the loader; turned into an ``InvalidInputError`` naming the source."""


_FLATTEN = "flatten it, e.g. move inner task lists into workflows of their own"


def too_deep(what: str, depth: int | None, hint: str = _FLATTEN) -> InvalidInputError:
    """The one error for data nested past ``MAX_DEPTH``."""
    levels = f"{depth:,} levels deep" if depth else f"more than {MAX_DEPTH} levels deep"
    return InvalidInputError(
        f"{what} nests {levels} (mappings and lists); at most {MAX_DEPTH} are allowed; {hint}"
    )


def _too_many(what: str, limit: int) -> InvalidInputError:
    return InvalidInputError(
        f"{what} expands to more than {limit:,} values (a YAML alias, or a value referred to more "
        "than once, counts each time); make it smaller or repeat less"
    )


def check_nesting(
    value: Any, what: str = "the document", *, max_nodes: int = MAX_NODES, hint: str = _FLATTEN
) -> None:
    """Refuse ``value`` (plain Python data) if it nests past ``MAX_DEPTH`` or expands to over
    ``max_nodes`` values; walks without recursion, so a 100,000-deep list cannot overflow the stack."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    deepest = nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            # Past the depth limit already (or a container that holds itself): say that.
            raise too_deep(what, None, hint) if deepest > MAX_DEPTH else _too_many(what, max_nodes)
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    if deepest > MAX_DEPTH:
        raise too_deep(what, deepest, hint)


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


_JSON_SCALARS = (str, int, float, bool, type(None))


class _Constructor:
    """Builds plain JSON data from a composed node graph, recording positions and counting values."""

    def __init__(self, loader: yaml.SafeLoader, source: str, max_nodes: int) -> None:
        self.loader = loader
        self.source = source
        self.max_nodes = max_nodes
        self.positions: dict[str, tuple[int, int]] = {}
        self.nodes = 0

    def build(self, node: yaml.Node, pointer: str = "", depth: int = 1) -> Any:
        # Aliases are not copied by the composer but expanded here: count what they expand to, and
        # the depth a chain of aliases reaches, before either exhausts memory or the stack.
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise _too_many(self.source, self.max_nodes)
        if depth > MAX_DEPTH:
            raise too_deep(self.source, None)
        self.positions.setdefault(pointer, (node.start_mark.line + 1, node.start_mark.column + 1))
        if node.id == "mapping":
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.id != "scalar":
                    raise InvalidInputError(
                        f"{self.source}: {pointer or '/'} has a {key_node.id} as a key; keys must be strings"
                    )
                # The key's own text: JSON keys are strings, so `1:`/`true:` mean "1"/"true".
                key = str(key_node.value)
                child = pointer_join(pointer, key)
                self.positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[key] = self.build(value_node, child, depth + 1)
            return out
        if node.id == "sequence":
            return [
                self.build(item, pointer_join(pointer, i), depth + 1) for i, item in enumerate(node.value)
            ]
        value = self.loader.construct_object(node, deep=True)
        if not isinstance(value, _JSON_SCALARS):
            raise InvalidInputError(
                f"{self.source}: {pointer or '/'} is a {type(value).__name__} (tag {node.tag}), which JSON "
                "cannot hold; drop the tag or quote the value"
            )
        if isinstance(value, float) and value != value:  # NaN
            return None
        return value


def _parse_yaml(text: str, source: str, max_nodes: int = MAX_NODES) -> tuple[Any, dict[str, tuple[int, int]]]:
    """``(data, positions)``; data is None for an empty stream."""
    import yaml

    loader = _loader_class()(text)
    what = "the document" if source == "document" else source  # for the limits' messages
    builder = _Constructor(loader, what, max_nodes)
    try:
        node = loader.get_single_node()
        return (None if node is None else builder.build(node)), builder.positions
    except _TooDeep:
        raise too_deep(what, None) from None
    except RecursionError:
        # The depth limit keeps well inside the stack; this only fires if the caller was already deep.
        raise too_deep(what, None) from None
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


def load_yaml(text: str | bytes, source: str = "document", *, max_nodes: int = MAX_NODES) -> Any:
    """Read YAML (or JSON) text the way documents are read: YAML 1.2 core schema, JSON values only,
    nesting, size and alias expansion limited. Raises ``InvalidInputError`` (syntax errors:
    ``DSLValidationError``, with line and column)."""
    what = "the document" if source == "document" else source
    if isinstance(text, bytes):
        text = _decode(text, what)
    _check_size(len(text), what)
    return _parse_yaml(text, source, max_nodes)[0]


def _check_size(size: int, source: str) -> None:
    if size > MAX_DOCUMENT_BYTES:
        raise InvalidInputError(
            f"{source} is {size / 2**20:.1f} MiB; documents are limited to "
            f"{MAX_DOCUMENT_BYTES // 2**20} MiB: keep data out of it and pass it as input or a file"
        )


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        utf16 = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise InvalidInputError(
            f"{source} is not UTF-8: byte {data[exc.start]:#04x} at offset {exc.start} cannot be "
            f"decoded{utf16}; save it as UTF-8"
        ) from None


def _read_file(path: Path) -> str:
    """The file's text, refusing directories, unreadable, oversized and non-UTF-8 files."""
    if not path.exists():
        raise InvalidInputError(f"no workflow file at {path}; check the path")
    if path.is_dir():
        raise InvalidInputError(f"{path} is a directory; pass the workflow file (.yaml) inside it")
    try:
        with path.open("rb") as handle:
            # Read one byte past the limit rather than trusting stat: devices and pipes report 0.
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read {path}: {exc.strerror or exc}; check that it is a file you may read"
        ) from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InvalidInputError(
            f"{path} is over {MAX_DOCUMENT_BYTES // 2**20} MiB, the limit for a workflow document; "
            "check it is the right file, and keep data out of it (pass it as input)"
        )
    return _decode(data, str(path))


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and len(text) < 4096 and text.strip().endswith((".yaml", ".yml", ".json"))


def load_source(source: str | bytes | Path | Mapping[str, Any]) -> LoadedDocument:
    """Parse a document from a dict, a path, bytes (UTF-8) or YAML/JSON text. Syntax errors carry line
    and column; anything else odd is an ``InvalidInputError`` saying what to do."""
    if isinstance(source, Mapping):
        check_nesting(source)  # before json.dumps, which recurses per level
        try:
            data = json.loads(json.dumps(source))
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"the document is not JSON-compatible: {exc}") from None
        return LoadedDocument(data)
    path: Path | None = None
    if isinstance(source, bytes):
        text = _decode(source, "the document")
    elif isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
        path = Path(source)
        text = _read_file(path)
    elif isinstance(source, str):
        text = source
    else:
        raise InvalidInputError(
            f"a workflow document must be YAML/JSON text, a path, a dict or bytes, not "
            f"{type(source).__name__}; pass one of those"
        )
    _check_size(len(text), str(path) if path else "the document")
    data, positions = _parse_yaml(text, str(path) if path else "document")
    if data is None or not isinstance(data, dict):
        empty = data is None
        detail = (
            "the document is empty; it needs `document` and `do`"
            if empty
            else "a workflow document must be a mapping with `document` and `do`"
        )
        title = "Empty document" if empty else "Not a workflow document"
        raise DSLValidationError(
            [problem("validation", detail, title=title)], source=str(path) if path else "document"
        )
    return LoadedDocument(data, text=text, path=path, positions=positions)


def is_workflow_spec(data: Mapping[str, Any]) -> bool:
    """True for Stigmer's ``WorkflowSpec`` (protojson: ``document`` + ``tasks`` with ``kind``)."""
    tasks = data.get("tasks")
    return "do" not in data and isinstance(tasks, list)
