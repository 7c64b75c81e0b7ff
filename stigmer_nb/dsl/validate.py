"""Validation of DSL documents before anything is stored or started: every problem, at once."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import DSLValidationError, did_you_mean
from .document import TASK_TYPES, LoadedDocument, pointer_join, task_type
from .expressions import ExpressionError, compile_expression, is_expression, strip_expression
from .problems import problem

__all__ = ["SUPPORTED_DSL", "check_document", "validate_document"]

SUPPORTED_DSL = re.compile(r"^1\.0\.[0-3]$")
_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_TOP_KEYS = ("document", "input", "use", "do", "timeout", "output", "schedule", "evaluate")
_FLOW = ("continue", "exit", "end")
# Fields that are jq whether or not they are wrapped in ${ }.
_EXPRESSION_FIELDS = ("if",)


class _Checker:
    def __init__(self, loaded: LoadedDocument) -> None:
        self.loaded = loaded
        self.problems: list[dict[str, Any]] = []

    def add(self, pointer: str, detail: str, *, title: str = "Invalid workflow document") -> None:
        details = problem("validation", detail, title=title, instance=pointer or "/")
        pos = self.loaded.position(pointer)
        if pos:
            details["line"], details["column"] = pos
        self.problems.append(details)

    # --- expressions ------------------------------------------------------------------------

    def expression(self, pointer: str, value: Any, *, bare: bool, names: Iterable[str] = ()) -> None:
        """Compile ``value`` (a field that is jq when ``bare``, else only ``${}`` strings)."""
        if isinstance(value, str):
            if bare or is_expression(value):
                self._compile(pointer, strip_expression(value), names)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                self.expression(pointer_join(pointer, key), item, bare=False, names=names)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.expression(pointer_join(pointer, i), item, bare=False, names=names)

    def _compile(self, pointer: str, text: str, names: Iterable[str]) -> None:
        if not text:
            self.add(pointer, "empty expression", title="Invalid expression")
            return
        try:
            from .expressions import STANDARD_ARGS, referenced

            available = set(STANDARD_ARGS) | set(names)
            compile_expression(text, referenced(text, available) if "$" in text else ())
        except ExpressionError as exc:
            self.add(pointer, f"jq does not compile: {exc.message}", title="Invalid expression")

    # --- structure --------------------------------------------------------------------------

    def document(self) -> None:
        data = self.loaded.data
        for key in data:
            if key not in _TOP_KEYS:
                self.add(
                    pointer_join("", key), f"unknown top-level property {key!r}{did_you_mean(key, _TOP_KEYS)}"
                )
        meta = data.get("document")
        if not isinstance(meta, Mapping):
            self.add("/document", "`document` is required: {dsl, namespace, name, version}")
        else:
            dsl = str(meta.get("dsl", ""))
            if not SUPPORTED_DSL.match(dsl):
                self.add("/document/dsl", f"dsl {dsl!r} is not supported; use 1.0.0 to 1.0.3")
            for key in ("namespace", "name"):
                value = meta.get(key)
                if not isinstance(value, str) or not _NAME.match(value):
                    self.add(
                        pointer_join("/document", key),
                        f"document.{key} {value!r} must be letters, digits and '-' (max 63), "
                        "starting and ending with a letter or digit",
                    )
            version = meta.get("version")
            if not isinstance(version, str) or not _SEMVER.match(version):
                self.add(
                    "/document/version", f"document.version {version!r} must be a semantic version like 1.0.0"
                )
        tasks = data.get("do")
        if tasks is None:
            self.add("/do", "`do` is required: a list of tasks")
        else:
            self.task_list("/do", tasks, names=())

    def task_list(self, pointer: str, tasks: Any, *, names: Iterable[str]) -> None:
        if not isinstance(tasks, list) or not tasks:
            self.add(pointer, "a task list must be a non-empty list of `- name: {task}` items")
            return
        seen: dict[str, int] = {}
        entries: list[tuple[str, str, Any]] = []
        for index, item in enumerate(tasks):
            item_ptr = pointer_join(pointer, index)
            if not isinstance(item, Mapping) or len(item) != 1:
                keys = list(item) if isinstance(item, Mapping) else []
                self.add(
                    item_ptr,
                    "each item of a task list is a single-key map `- name: {task}`"
                    + (f"; this one has {len(keys)} keys {keys}" if keys else ""),
                )
                continue
            ((name, body),) = item.items()
            if name in seen:
                self.add(
                    pointer_join(item_ptr, name), f"duplicate task name {name!r} (also item {seen[name]})"
                )
            seen.setdefault(name, index)
            entries.append((name, pointer_join(item_ptr, name), body))
        known = list(seen)
        for name, task_ptr, body in entries:
            self.task(task_ptr, name, body, siblings=known, names=names)

    def flow(self, pointer: str, target: Any, siblings: list[str]) -> None:
        if not isinstance(target, str):
            self.add(pointer, f"then must be a task name or one of {list(_FLOW)}")
        elif target not in _FLOW and target not in siblings:
            self.add(
                pointer,
                f"then: {target!r} is not a task in this list{did_you_mean(target, [*siblings, *_FLOW])}",
                title="Unknown flow target",
            )

    def task(self, pointer: str, name: str, body: Any, *, siblings: list[str], names: Iterable[str]) -> None:
        if not isinstance(body, Mapping):
            self.add(pointer, f"task {name!r} must be a mapping with one of {list(TASK_TYPES)}")
            return
        kind = task_type(body)
        if kind is None:
            guess = ""
            for key in body:
                guess = did_you_mean(key, TASK_TYPES)
                if guess:
                    break
            self.add(
                pointer,
                f"task {name!r} has no known task type (one of {', '.join(TASK_TYPES)}){guess}",
                title="Unknown task type",
            )
            return
        if "then" in body:
            self.flow(pointer_join(pointer, "then"), body["then"], siblings)
        for key in _EXPRESSION_FIELDS:
            if key in body:
                self.expression(pointer_join(pointer, key), body[key], bare=True, names=names)
        for key in ("input", "output", "export"):
            section = body.get(key)
            if isinstance(section, Mapping):
                field = "from" if key == "input" else "as"
                if field in section:
                    self.expression(pointer_join(pointer, key, field), section[field], bare=True, names=names)
        handler = getattr(self, f"task_{kind}", None)
        if handler is not None:
            handler(pointer, body, names=names)

    # --- per type (shapes the engine relies on) ---------------------------------------------

    def task_do(self, pointer: str, body: Mapping[str, Any], *, names: Iterable[str]) -> None:
        self.task_list(pointer_join(pointer, "do"), body["do"], names=names)

    def task_set(self, pointer: str, body: Mapping[str, Any], *, names: Iterable[str]) -> None:
        value = body["set"]
        if not isinstance(value, Mapping | str):
            self.add(pointer_join(pointer, "set"), "set must be a mapping (or one ${ } expression)")
        self.expression(pointer_join(pointer, "set"), value, bare=False, names=names)

    def task_switch(self, pointer: str, body: Mapping[str, Any], *, names: Iterable[str]) -> None:
        cases = body["switch"]
        ptr = pointer_join(pointer, "switch")
        if not isinstance(cases, list) or not cases:
            self.add(ptr, "switch must be a non-empty list of `- caseName: {when, then}`")
            return
        defaults = 0
        siblings = self._siblings(pointer)
        for i, case in enumerate(cases):
            case_ptr = pointer_join(ptr, i)
            if not isinstance(case, Mapping) or len(case) != 1:
                self.add(case_ptr, "each switch case is a single-key map `- caseName: {when, then}`")
                continue
            ((case_name, spec),) = case.items()
            case_ptr = pointer_join(case_ptr, case_name)
            if not isinstance(spec, Mapping):
                self.add(case_ptr, "a switch case is a mapping with `then` and an optional `when`")
                continue
            if "when" in spec:
                self.expression(pointer_join(case_ptr, "when"), spec["when"], bare=True, names=names)
            else:
                defaults += 1
            if "then" not in spec:
                self.add(case_ptr, f"switch case {case_name!r} needs `then`")
            else:
                self.flow(pointer_join(case_ptr, "then"), spec["then"], siblings)
        if defaults > 1:
            self.add(ptr, "at most one switch case may omit `when` (the default case)")

    def task_for(self, pointer: str, body: Mapping[str, Any], *, names: Iterable[str]) -> None:
        spec = body["for"]
        ptr = pointer_join(pointer, "for")
        if not isinstance(spec, Mapping) or "in" not in spec:
            self.add(ptr, "for needs `in` (an expression) and optional `each` and `at`")
            return
        each, at = spec.get("each", "item"), spec.get("at", "index")
        inner = [*names, str(each), str(at)]
        self.expression(pointer_join(ptr, "in"), spec["in"], bare=True, names=names)
        if "while" in body:
            self.expression(pointer_join(pointer, "while"), body["while"], bare=True, names=inner)
        if "do" not in body:
            self.add(pointer, "for needs a `do` list beside `for`")
        else:
            self.task_list(pointer_join(pointer, "do"), body["do"], names=inner)

    def task_fork(self, pointer: str, body: Mapping[str, Any], *, names: Iterable[str]) -> None:
        spec = body["fork"]
        if not isinstance(spec, Mapping) or "branches" not in spec:
            self.add(pointer_join(pointer, "fork"), "fork needs `branches`: a list of `- name: {task}`")
            return
        self.task_list(pointer_join(pointer, "fork", "branches"), spec["branches"], names=names)

    def task_try(self, pointer: str, body: Mapping[str, Any], *, names: Iterable[str]) -> None:
        self.task_list(pointer_join(pointer, "try"), body["try"], names=names)
        catch = body.get("catch")
        if catch is None:
            self.add(pointer, "try needs a `catch` beside it")
            return
        if not isinstance(catch, Mapping):
            self.add(pointer_join(pointer, "catch"), "catch must be a mapping")
            return
        inner = [*names, str(catch.get("as", "error"))]
        for key in ("when", "exceptWhen"):
            if key in catch:
                self.expression(pointer_join(pointer, "catch", key), catch[key], bare=True, names=inner)
        if "do" in catch:
            self.task_list(pointer_join(pointer, "catch", "do"), catch["do"], names=inner)

    def task_wait(self, pointer: str, body: Mapping[str, Any], *, names: Iterable[str]) -> None:
        from .durations import DurationError, parse_duration

        value = body["wait"]
        if isinstance(value, str) and is_expression(value):
            self.expression(pointer_join(pointer, "wait"), value, bare=False, names=names)
            return
        try:
            parse_duration(value)
        except DurationError as exc:
            self.add(pointer_join(pointer, "wait"), str(exc))

    def task_raise(self, pointer: str, body: Mapping[str, Any], *, names: Iterable[str]) -> None:
        spec = body["raise"]
        ptr = pointer_join(pointer, "raise")
        if not isinstance(spec, Mapping) or "error" not in spec:
            self.add(ptr, "raise needs `error`: an inline error or the name of one in use.errors")
            return
        error = spec["error"]
        if isinstance(error, str):
            known = list((self.loaded.data.get("use") or {}).get("errors") or {})
            if error not in known:
                self.add(
                    pointer_join(ptr, "error"),
                    f"no error {error!r} in use.errors{did_you_mean(error, known)}",
                )
        elif isinstance(error, Mapping):
            for key in ("type", "status"):
                if key not in error:
                    self.add(pointer_join(ptr, "error"), f"an error needs `{key}`")
            self.expression(pointer_join(ptr, "error"), error, bare=False, names=names)
        else:
            self.add(pointer_join(ptr, "error"), "error must be a mapping or a name from use.errors")

    def _siblings(self, pointer: str) -> list[str]:
        """Names in the list that holds the task at ``pointer``."""
        parent = pointer.rsplit("/", 2)[0]
        node: Any = self.loaded.data
        for part in [p for p in parent.split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node.get(part)
        return [next(iter(item)) for item in node if isinstance(item, Mapping) and len(item) == 1]


def check_document(loaded: LoadedDocument) -> list[dict[str, Any]]:
    """Every problem in ``loaded`` (empty when it is valid)."""
    checker = _Checker(loaded)
    checker.document()
    return checker.problems


def validate_document(loaded: LoadedDocument) -> LoadedDocument:
    """Raise ``DSLValidationError`` listing every problem, or return ``loaded`` unchanged."""
    problems = check_document(loaded)
    if problems:
        raise DSLValidationError(problems, source=loaded.source)
    return loaded


def iter_tasks(tasks: list[Any], pointer: str = "/do") -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(pointer, name, body) for every task at every depth, in document order."""
    for index, item in enumerate(tasks or []):
        if not isinstance(item, Mapping) or len(item) != 1:
            continue
        ((name, body),) = item.items()
        ptr = pointer_join(pointer, index, name)
        if not isinstance(body, Mapping):
            continue
        yield ptr, name, body
        for key, sub in (("do", body.get("do")), ("try", body.get("try"))):
            if isinstance(sub, list):
                yield from iter_tasks(sub, pointer_join(ptr, key))
        catch = body.get("catch")
        if isinstance(catch, Mapping) and isinstance(catch.get("do"), list):
            yield from iter_tasks(catch["do"], pointer_join(ptr, "catch", "do"))
        fork = body.get("fork")
        if isinstance(fork, Mapping) and isinstance(fork.get("branches"), list):
            yield from iter_tasks(fork["branches"], pointer_join(ptr, "fork", "branches"))
