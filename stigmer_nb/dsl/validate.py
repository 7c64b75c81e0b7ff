"""Validation of DSL documents before anything is stored or started: every problem, at once."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import DSLValidationError, closest, did_you_mean
from .document import TASK_TYPES, LoadedDocument, pointer_join, task_type
from .durations import DurationError, parse_duration
from .expressions import (
    STANDARD_ARGS,
    ExpressionError,
    check_expression,
    compile_error,
    is_expression,
    referenced,
    strip_expression,
)
from .problems import problem

__all__ = ["SUPPORTED_DSL", "check_document", "iter_tasks", "validate_document"]

SUPPORTED_DSL = re.compile(r"^1\.0\.[0-3]$")
"""DSL versions the engine runs."""

_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNDEFINED = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*) is not defined")
_HINT_TARGET = re.compile(r"`(\w+)`")
_FLOW = ("continue", "exit", "end")

# --- the properties each object may have --------------------------------------------------------

_TOP_KEYS = ("document", "input", "use", "do", "timeout", "output", "schedule", "evaluate")
# `description` is not DSL, but Stigmer's documents carry it and other runtimes ignore it.
_DOCUMENT_KEYS = (
    "dsl",
    "namespace",
    "name",
    "version",
    "title",
    "summary",
    "tags",
    "metadata",
    "description",
)
_USE_KEYS = (
    "authentications",
    "catalogs",
    "errors",
    "extensions",
    "functions",
    "retries",
    "secrets",
    "timeouts",
)
_TASK_COMMON = ("if", "input", "output", "export", "timeout", "then", "metadata")
_TASK_KEYS = {
    "call": ("call", "with"),
    "do": ("do",),
    "emit": ("emit",),
    "for": ("for", "while", "do"),
    "fork": ("fork",),
    "listen": ("listen", "foreach"),
    "raise": ("raise",),
    "run": ("run",),
    "set": ("set",),
    "switch": ("switch",),
    "try": ("try", "catch"),
    "wait": ("wait",),
}
_RESERVED_CALLS = ("http", "openapi", "grpc", "asyncapi", "a2a", "mcp")
_WRAP = "wrap the client in a Python function (lab.register_function) and call it by name"
_UNSUPPORTED_CALLS = {
    "grpc": f"there is no protobuf compiler at run time; {_WRAP}",
    "asyncapi": _WRAP,
    "a2a": _WRAP,
    "mcp": _WRAP,
}
_HTTP_WITH = ("method", "endpoint", "headers", "body", "query", "output", "redirect")
_HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options", "trace", "connect")
_OPENAPI_WITH = ("document", "operationId", "parameters", "authentication", "output", "redirect")
_GRPC_WITH = ("proto", "service", "method", "arguments", "authentication")
_GRPC_SERVICE = ("name", "host", "port", "authentication")
_AGENT_WITH = ("agent", "message", "scope", "env", "config")
_AGENT_CONFIG = ("model", "timeout", "temperature")
_ACTIVITY_WITH = ("name", "input", "arguments")
_ENDPOINT = ("uri", "authentication")
_RESOURCE = ("name", "endpoint")
_AUTH_SCHEMES = ("basic", "bearer", "certificate", "digest", "oauth2", "oidc")
_CALL_OUTPUT = ("content", "response", "raw")
_ERROR_KEYS = ("type", "status", "instance", "title", "detail")
# The spec's error filter spells `details`; accept both spellings.
_ERROR_FILTER = ("type", "status", "instance", "title", "detail", "details")
_CATCH_KEYS = ("errors", "as", "when", "exceptWhen", "retry", "do")
_RETRY_KEYS = ("when", "exceptWhen", "delay", "backoff", "limit", "jitter")
_BACKOFFS = ("constant", "linear", "exponential")
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
_STRATEGIES = ("one", "any", "all")
_FILTER = ("with", "correlate")
_FOREACH = ("item", "at", "do", "output", "export")
_LISTEN_READ = ("data", "envelope", "raw")

# What people write by habit (other engines, older drafts) and what the DSL calls it.
_FORK_HINT = "; to run tasks in parallel use `fork: {branches: [...]}`"
_TASK_HINTS = {
    "parallel": _FORK_HINT,
    "concurrently": _FORK_HINT,
    "compete": "; `compete` goes under `fork`",
    "branches": "; `branches` go under `fork`",
    "sequentially": "; to run tasks in order use `do: [...]`",
    "execute": "; use `do` (in order) or `fork` (in parallel)",
    "sleep": "; to pause use `wait: {seconds: N}`",
    "delay": "; to pause use `wait: {seconds: N}`",
    "when": "; to run a task only sometimes use `if`",
    "condition": "; to run a task only sometimes use `if`",
    "retry": "; retries go in a try's `catch.retry`",
    "catch": "; `catch` goes beside `try`",
    "with": "; `with` belongs to `call` tasks",
    "foreach": "; to loop use `for: {each, in}` beside a `do` list",
    "next": "; use `then`",
    "goto": "; use `then`",
}
_ENDPOINT_HINT = "; the address goes in `endpoint` (a URL string or {uri, authentication})"
_HTTP_HINTS = {
    "url": _ENDPOINT_HINT,
    "uri": _ENDPOINT_HINT,
    "params": "; use `query`",
    "json": "; use `body`",
    "data": "; use `body`",
    "timeout": "; set `timeout: {after: ...}` on the task",
}
_AFTER_HINT = "; the duration goes under `after`, e.g. `timeout: {after: {seconds: 30}}`"
_TIMEOUT_HINTS = dict.fromkeys(("days", "hours", "minutes", "seconds", "milliseconds"), _AFTER_HINT)
_ERROR_HINTS = {"message": "; use `detail`", "code": "; use `status`", "name": "; use `title`"}


@dataclass(frozen=True)
class _Scope:
    """What a task can see: loop/catch variables bound around it and the names in its list."""

    names: tuple[str, ...] = ()
    siblings: tuple[str, ...] = ()

    def bind(self, *names: str) -> _Scope:
        """This scope with more variables (invalid names are left out: they were reported)."""
        extra = tuple(n for n in names if isinstance(n, str) and _IDENT.match(n))
        return _Scope(names=(*self.names, *extra), siblings=self.siblings)

    def within(self, siblings: Iterable[str]) -> _Scope:
        """The scope of tasks in a new list (same variables, other flow targets)."""
        return _Scope(names=self.names, siblings=tuple(siblings))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Checker:
    """Walks one document, collecting problems; one ``task_<type>`` method per task type."""

    def __init__(self, loaded: LoadedDocument) -> None:
        self.loaded = loaded
        self.problems: list[dict[str, Any]] = []
        use = loaded.data.get("use")
        self.use: Mapping[str, Any] = use if isinstance(use, Mapping) else {}
        # (pointer, property) pairs already reported as misspelled, so "needs X" is not said twice.
        self._misspelled: set[tuple[str, str]] = set()

    def add(self, pointer: str, detail: str, *, title: str = "Invalid workflow document") -> None:
        """Record a problem at ``pointer`` with its line and column when known."""
        details = problem("validation", detail, title=title, instance=pointer or "/")
        pos = self.loaded.position(pointer)
        if pos:
            details["line"], details["column"] = pos
        self.problems.append(details)

    # --- small shape helpers ----------------------------------------------------------------

    def _keys(
        self,
        pointer: str,
        value: Mapping[str, Any],
        allowed: Iterable[str],
        what: str,
        hints: Mapping[str, str] | None = None,
    ) -> None:
        """Report properties of ``value`` that ``what`` does not have, with a hint when we can."""
        allowed = tuple(allowed)
        for key in value:
            if key in allowed:
                continue
            close = closest(key, allowed)
            hint = (hints or {}).get(key) or (f"; did you mean {close!r}?" if close else "")
            # A hint naming a property (`endpoint`) says the same as "needs endpoint" would.
            named = [word for word in _HINT_TARGET.findall(hint) if word in allowed]
            meant = named[0] if named else close
            if meant and meant not in value:
                self._misspelled.add((pointer, meant))
            self.add(pointer_join(pointer, key), f"unknown property {key!r} in {what}{hint}")

    def _mapping(self, pointer: str, value: Any, what: str) -> Mapping[str, Any] | None:
        """``value`` when it is a mapping; otherwise report it and return None."""
        if isinstance(value, Mapping):
            return value
        self.add(pointer, f"{what} must be a mapping, not {_describe(value)}")
        return None

    def _need(self, pointer: str, value: Mapping[str, Any], key: str, what: str, hint: str = "") -> bool:
        """Report a missing required property (unless a misspelling of it was); True when present."""
        if key in value:
            return True
        if (pointer, key) not in self._misspelled:
            self.add(pointer, f"{what} needs `{key}`{hint}")
        return False

    def _string(self, pointer: str, value: Any, what: str) -> bool:
        if isinstance(value, str) and value.strip():
            return True
        self.add(pointer, f"{what} must be a non-empty string, not {_describe(value)}")
        return False

    def _bool(self, pointer: str, value: Any, what: str) -> None:
        if not isinstance(value, bool):
            self.add(pointer, f"{what} must be true or false, not {_describe(value)}")

    def _choice(self, pointer: str, value: Any, allowed: Iterable[str], what: str) -> None:
        allowed = tuple(allowed)
        if value not in allowed:
            hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
            self.add(pointer, f"{what} must be one of {', '.join(allowed)}, not {value!r}{hint}")

    def _variable(self, pointer: str, value: Any, what: str) -> None:
        """A name that becomes a jq ``$variable`` (``for.each``, ``catch.as`` …)."""
        if not isinstance(value, str) or not _IDENT.match(value):
            self.add(pointer, f"{what} {value!r} must be a name jq accepts as $name: letters, digits and _")
        elif value in STANDARD_ARGS:
            self.add(pointer, f"{what} {value!r} would hide ${value}; pick another name")

    def _reference(self, pointer: str, name: Any, section: str) -> None:
        """A name that must be a key of ``use.<section>``."""
        known = self.use.get(section)
        known_names = list(known) if isinstance(known, Mapping) else []
        if not isinstance(name, str) or name not in known_names:
            hint = did_you_mean(name, known_names) if isinstance(name, str) else ""
            self.add(pointer, f"no {name!r} in use.{section}{hint}", title="Unknown reference")

    def _string_map(self, pointer: str, value: Any, what: str, names: tuple[str, ...]) -> None:
        """Headers, query: a mapping, or one ``${}`` expression that yields one."""
        if isinstance(value, str) and is_expression(value):
            self.expression(pointer, value, bare=False, names=names)
        elif not isinstance(value, Mapping):
            self.add(pointer, f"{what} must be a mapping or a ${{ }} expression, not {_describe(value)}")

    # --- expressions ------------------------------------------------------------------------

    def expression(self, pointer: str, value: Any, *, bare: bool, names: Iterable[str] = ()) -> None:
        """Compile ``value``: a field that is jq when ``bare``, else only its ``${}`` strings."""
        if isinstance(value, str):
            if bare or is_expression(value):
                self._compile(pointer, strip_expression(value), tuple(names))
            elif value.lstrip().startswith("${"):
                self.add(pointer, "this ${ expression has no closing }", title="Invalid expression")
        elif isinstance(value, Mapping):
            for key, item in value.items():
                self.expression(pointer_join(pointer, key), item, bare=False, names=names)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.expression(pointer_join(pointer, i), item, bare=False, names=names)

    def _compile(self, pointer: str, text: str, names: tuple[str, ...]) -> None:
        if not text:
            self.add(pointer, "empty expression", title="Invalid expression")
            return
        available = {*STANDARD_ARGS, *names}
        try:
            # Exactly what the engine compiles, so what passes here compiles at run time.
            check_expression(text, referenced(text, available) if "$" in text else ())
        except ExpressionError as exc:
            message = _jq_message(text, available) or exc.message
            self.add(
                pointer,
                f"jq does not compile: {message}{_undefined_hint(message, available)}",
                title="Invalid expression",
            )

    def _duration(self, pointer: str, value: Any, what: str, names: tuple[str, ...] = ()) -> None:
        """A duration: ``{seconds: 5}``, ISO 8601 ``PT5S``, or a ``${}`` expression yielding one."""
        if isinstance(value, str) and is_expression(value):
            self.expression(pointer, value, bare=False, names=names)
            return
        if _is_number(value):
            self.add(pointer, f"{what} needs units: write {{seconds: {value}}} or PT{value}S")
            return
        try:
            parse_duration(value)
        except DurationError as exc:
            self.add(pointer, f"{what}: {exc}")

    # --- the document -----------------------------------------------------------------------

    def document(self) -> None:
        """Top-level properties, then every task."""
        data = self.loaded.data
        self._keys("", data, _TOP_KEYS, "the workflow document")
        self._document_meta(data.get("document"))
        if "use" in data:
            self._use(data["use"])
        if "input" in data:
            self._io("/input", data["input"], "input", "from", ())
        if "output" in data:
            self._io("/output", data["output"], "output", "as", ())
        if "timeout" in data:
            self._timeout("/timeout", data["timeout"])
        if "schedule" in data:
            self._schedule(data["schedule"])
        if "evaluate" in data:
            self._evaluate(data["evaluate"])
        if self._need("", data, "do", "the document", ": a list of tasks"):
            self.task_list("/do", data["do"], _Scope())

    def _document_meta(self, meta: Any) -> None:
        if meta is None:
            self._need("", self.loaded.data, "document", "the document", ": {dsl, namespace, name, version}")
            return
        meta = self._mapping("/document", meta, "`document`")
        if meta is None:
            return
        self._keys("/document", meta, _DOCUMENT_KEYS, "`document`")
        for key in ("dsl", "namespace", "name", "version"):
            self._need("/document", meta, key, "`document`")
        if "dsl" in meta and not SUPPORTED_DSL.match(str(meta["dsl"])):
            self.add("/document/dsl", f"dsl {meta['dsl']!r} is not supported; use 1.0.0 to 1.0.3")
        for key in ("namespace", "name"):
            value = meta.get(key)
            if key in meta and (not isinstance(value, str) or not _NAME.match(value)):
                self.add(
                    pointer_join("/document", key),
                    f"document.{key} {value!r} must be letters, digits and '-' (at most 63), "
                    "starting and ending with a letter or digit",
                )
        version = meta.get("version")
        if "version" in meta and (not isinstance(version, str) or not _SEMVER.match(version)):
            # YAML reads an unquoted 1.0 as a number, hence the quoting advice.
            self.add(
                "/document/version", f"document.version {version!r} must be a semantic version like '1.0.0'"
            )
        for key in ("tags", "metadata"):
            if key in meta:
                self._mapping(pointer_join("/document", key), meta[key], f"document.{key}")

    def _use(self, use: Any) -> None:
        """Reusable components; each is checked where it is defined, references where they are used."""
        use = self._mapping("/use", use, "`use`")
        if use is None:
            return
        self._keys("/use", use, _USE_KEYS, "`use`")
        sections = {
            k: self._mapping(f"/use/{k}", use[k], f"use.{k}")
            for k in _USE_KEYS
            if k in use and k not in ("secrets", "extensions")
        }
        for name, error in (sections.get("errors") or {}).items():
            self._error(pointer_join("/use/errors", name), error, ())
        catch_names = self._catch_names()
        for name, policy in (sections.get("retries") or {}).items():
            self._retry(pointer_join("/use/retries", name), policy, ("error", *catch_names))
        for name, timeout in (sections.get("timeouts") or {}).items():
            self._timeout_definition(pointer_join("/use/timeouts", name), timeout)
        for name, policy in (sections.get("authentications") or {}).items():
            self._auth_policy(pointer_join("/use/authentications", name), policy)
        for name, function in (sections.get("functions") or {}).items():
            self.task(pointer_join("/use/functions", name), name, function, _Scope())
        if "secrets" in use:
            secrets = use["secrets"]
            if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
                self.add("/use/secrets", "use.secrets must be a list of secret names")
        if "extensions" in use and not isinstance(use["extensions"], list):
            self.add("/use/extensions", "use.extensions must be a list of `- name: {extend, ...}`")

    def _catch_names(self) -> tuple[str, ...]:
        """Every ``catch.as`` in the document: a shared retry policy may name any of them."""
        tasks = self.loaded.data.get("do")
        names: set[str] = set()
        for _, _, body in iter_tasks(tasks if isinstance(tasks, list) else []):
            catch = body.get("catch")
            if isinstance(catch, Mapping) and isinstance(catch.get("as"), str):
                names.add(catch["as"])
        return tuple(sorted(names))

    def _schedule(self, schedule: Any) -> None:
        schedule = self._mapping("/schedule", schedule, "`schedule`")
        if schedule is None:
            return
        self._keys("/schedule", schedule, ("every", "cron", "after", "on"), "`schedule`")
        for key in ("every", "after"):
            if key in schedule:
                self._duration(pointer_join("/schedule", key), schedule[key], f"schedule.{key}")
        if "cron" in schedule:
            self._string("/schedule/cron", schedule["cron"], "schedule.cron")
        if "on" in schedule:
            self._consumption("/schedule/on", schedule["on"], ())

    def _evaluate(self, evaluate: Any) -> None:
        evaluate = self._mapping("/evaluate", evaluate, "`evaluate`")
        if evaluate is None:
            return
        self._keys("/evaluate", evaluate, ("language", "mode"), "`evaluate`")
        if "language" in evaluate and evaluate["language"] != "jq":
            self.add(
                "/evaluate/language", f"evaluate.language {evaluate['language']!r} is not supported; use jq"
            )
        if "mode" in evaluate:
            self._choice("/evaluate/mode", evaluate["mode"], ("strict", "loose"), "evaluate.mode")
            if evaluate["mode"] == "loose":
                # The engine evaluates only ${ } strings; loose documents would silently misbehave.
                self.add("/evaluate/mode", "evaluate.mode loose is not supported; wrap expressions in ${ }")

    # --- task lists and common task properties ----------------------------------------------

    def task_list(self, pointer: str, tasks: Any, scope: _Scope) -> None:
        """A list of ``- name: {task}`` items with unique names."""
        if not isinstance(tasks, list) or not tasks:
            self.add(pointer, "a task list must be a non-empty list of `- name: {task}` items")
            return
        seen: dict[str, int] = {}
        entries: list[tuple[str, str, Any]] = []
        for index, item in enumerate(tasks):
            item_ptr = pointer_join(pointer, index)
            if not isinstance(item, Mapping) or len(item) != 1:
                self.add(item_ptr, _item_problem(item))
                continue
            ((name, body),) = item.items()
            if name in seen:
                self.add(
                    pointer_join(item_ptr, name), f"duplicate task name {name!r} (also item {seen[name]})"
                )
            seen.setdefault(name, index)
            entries.append((name, pointer_join(item_ptr, name), body))
        inner = scope.within(seen)
        for name, task_ptr, body in entries:
            self.task(task_ptr, name, body, inner)

    def flow(self, pointer: str, target: Any, siblings: Iterable[str]) -> None:
        """A ``then``: continue, exit, end, or a task of the same list (backward jumps allowed)."""
        siblings = list(siblings)
        if not isinstance(target, str):
            self.add(pointer, f"then must be a task name or one of {', '.join(_FLOW)}")
        elif target not in _FLOW and target not in siblings:
            self.add(
                pointer,
                f"then: {target!r} is not a task in this list{did_you_mean(target, [*siblings, *_FLOW])}",
                title="Unknown flow target",
            )

    def task(self, pointer: str, name: str, body: Any, scope: _Scope) -> None:
        """One task: its type, its common properties, then its type's own shape."""
        if not isinstance(body, Mapping):
            self.add(pointer, f"task {name!r} must be a mapping with one of {', '.join(TASK_TYPES)}")
            return
        kind = task_type(body)
        if kind is None:
            self.add(
                pointer,
                f"task {name!r} has no task type (one of {', '.join(TASK_TYPES)}){_type_hint(body)}",
                title="Unknown task type",
            )
            return
        types = [k for k in TASK_TYPES if k in body and not (kind == "for" and k == "do")]
        if len(types) > 1:
            self.add(
                pointer,
                f"task {name!r} has more than one task type ({', '.join(types)}); split it into tasks",
            )
        allowed = (*_TASK_COMMON, *_TASK_KEYS[kind], *TASK_TYPES)
        self._keys(pointer, body, allowed, f"task {name!r} ({kind})", _TASK_HINTS)
        self._common(pointer, body, scope)
        getattr(self, f"task_{kind}")(pointer, body, scope)

    def _common(self, pointer: str, body: Mapping[str, Any], scope: _Scope) -> None:
        """``if``, ``input``, ``output``, ``export``, ``timeout``, ``then``, ``metadata``."""
        if "if" in body:
            self.expression(pointer_join(pointer, "if"), body["if"], bare=True, names=scope.names)
        if "input" in body:
            self._io(pointer_join(pointer, "input"), body["input"], "input", "from", scope.names)
        for key in ("output", "export"):
            if key in body:
                self._io(pointer_join(pointer, key), body[key], key, "as", scope.names)
        if "timeout" in body:
            self._timeout(pointer_join(pointer, "timeout"), body["timeout"])
        if "then" in body:
            self.flow(pointer_join(pointer, "then"), body["then"], scope.siblings)
        if "metadata" in body:
            self._mapping(pointer_join(pointer, "metadata"), body["metadata"], "metadata")

    def _io(self, pointer: str, section: Any, what: str, field: str, names: tuple[str, ...]) -> None:
        """``input: {schema, from}``, ``output``/``export: {schema, as}``."""
        section = self._mapping(pointer, section, f"`{what}`")
        if section is None:
            return
        self._keys(pointer, section, ("schema", field), f"`{what}`")
        if field in section:
            self.expression(pointer_join(pointer, field), section[field], bare=True, names=names)
        if "schema" in section:
            self._schema(pointer_join(pointer, "schema"), section["schema"])

    def _schema(self, pointer: str, schema: Any) -> None:
        """``{format, document}`` (or a bare JSON Schema): the schema itself must be valid."""
        schema = self._mapping(pointer, schema, "a schema")
        if schema is None:
            return
        if "resource" in schema:
            # The engine cannot fetch external schemas; it would validate nothing.
            self.add(
                pointer_join(pointer, "resource"),
                "external schemas are not supported; put the schema under `document`",
            )
            return
        fmt = schema.get("format", "json")
        if not isinstance(fmt, str) or not fmt.startswith("json"):
            self.add(pointer_join(pointer, "format"), f"schema format {fmt!r} is not supported; use json")
        document = (
            schema["document"] if "document" in schema else {k: v for k, v in schema.items() if k != "format"}
        )
        if not isinstance(document, Mapping | bool):
            self.add(pointer_join(pointer, "document"), "schema.document must be a JSON Schema (a mapping)")
            return
        from jsonschema import SchemaError, validators  # slow to import: only schemas pay for it

        try:
            validators.validator_for(document).check_schema(document)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            self.add(pointer, f"invalid JSON Schema at /{where}: {exc.message}")

    def _timeout(self, pointer: str, value: Any) -> None:
        """A task's or the workflow's ``timeout``: a definition, or the name of one in ``use.timeouts``."""
        if isinstance(value, str) and not is_expression(value):
            self._reference(pointer, value, "timeouts")
        elif isinstance(value, str):
            self.expression(pointer, value, bare=False)
        else:
            self._timeout_definition(pointer, value)

    def _timeout_definition(self, pointer: str, value: Any) -> None:
        """``{after: duration}``."""
        value = self._mapping(pointer, value, "timeout")
        if value is None:
            return
        self._keys(pointer, value, ("after",), "timeout", _TIMEOUT_HINTS)
        if self._need(pointer, value, "after", "timeout"):
            self._duration(pointer_join(pointer, "after"), value["after"], "timeout.after")

    # --- per task type ----------------------------------------------------------------------

    def task_call(self, pointer: str, body: Mapping[str, Any], scope: _Scope) -> None:
        """``call: http|openapi|grpc|asyncapi|a2a|mcp|agent|activity`` or a function by name.

        A function name need not be in ``use.functions``: notebooks register Python functions at run
        time, so an unknown name is left for the runtime to resolve.
        """
        call = body["call"]
        if not self._string(pointer_join(pointer, "call"), call, "call"):
            return
        if call in _UNSUPPORTED_CALLS:
            # Refused here, not at run time: nothing is stored or started for a run that cannot work.
            self.add(pointer_join(pointer, "call"), f"call: {call} is not supported by stigmer_nb; "
                     f"{_UNSUPPORTED_CALLS[call]}", title="Not supported")  # fmt: skip
            return
        with_ptr = pointer_join(pointer, "with")
        with_ = body.get("with")
        if with_ is None:
            if call in (*_RESERVED_CALLS, "agent", "activity"):
                self.add(pointer, f"call: {call} needs `with`{_CALL_NEEDS.get(call, '')}")
            return
        with_ = self._mapping(with_ptr, with_, f"the `with` of call: {call}")
        if with_ is None:
            return
        checker = {
            "http": self._call_http,
            "openapi": self._call_openapi,
            "grpc": self._call_grpc,
            "agent": self._call_agent,
            "activity": self._call_activity,
        }.get(call)
        if checker is not None:
            checker(with_ptr, with_, scope)
        self.expression(with_ptr, with_, bare=False, names=scope.names)

    def _call_http(self, pointer: str, with_: Mapping[str, Any], scope: _Scope) -> None:
        self._keys(pointer, with_, _HTTP_WITH, "the `with` of call: http", _HTTP_HINTS)
        if self._need(pointer, with_, "method", "call: http `with`"):
            method, ptr = with_["method"], pointer_join(pointer, "method")
            if not isinstance(method, str):
                self.add(ptr, f"method must be a string like get or post, not {_describe(method)}")
            elif not is_expression(method) and method.lower() not in _HTTP_METHODS:
                hint = did_you_mean(method.lower(), _HTTP_METHODS)
                self.add(ptr, f"{method!r} is not an HTTP method{hint}")
        if self._need(
            pointer, with_, "endpoint", "call: http `with`", " (a URL string or {uri, authentication})"
        ):
            self._endpoint(pointer_join(pointer, "endpoint"), with_["endpoint"])
        for key in ("headers", "query"):
            if key in with_:
                self._string_map(pointer_join(pointer, key), with_[key], key, scope.names)
        self._response_options(pointer, with_)

    def _response_options(self, pointer: str, with_: Mapping[str, Any]) -> None:
        if "output" in with_:
            self._choice(pointer_join(pointer, "output"), with_["output"], _CALL_OUTPUT, "output")
        if "redirect" in with_:
            self._bool(pointer_join(pointer, "redirect"), with_["redirect"], "redirect")

    def _call_openapi(self, pointer: str, with_: Mapping[str, Any], scope: _Scope) -> None:
        self._keys(pointer, with_, _OPENAPI_WITH, "the `with` of call: openapi")
        if self._need(pointer, with_, "document", "call: openapi `with`"):
            self._resource(pointer_join(pointer, "document"), with_["document"], "the OpenAPI document")
        if self._need(pointer, with_, "operationId", "call: openapi `with`"):
            self._string(pointer_join(pointer, "operationId"), with_["operationId"], "operationId")
        if "parameters" in with_:
            self._string_map(
                pointer_join(pointer, "parameters"), with_["parameters"], "parameters", scope.names
            )
        if "authentication" in with_:
            self._authentication(pointer_join(pointer, "authentication"), with_["authentication"])
        self._response_options(pointer, with_)

    def _call_grpc(self, pointer: str, with_: Mapping[str, Any], scope: _Scope) -> None:
        # `proto` is optional here: the engine does not compile protos, and Stigmer's specs have none.
        self._keys(pointer, with_, _GRPC_WITH, "the `with` of call: grpc")
        if self._need(pointer, with_, "service", "call: grpc `with`"):
            ptr, service = pointer_join(pointer, "service"), with_["service"]
            if isinstance(service, Mapping):
                self._keys(ptr, service, _GRPC_SERVICE, "the gRPC service")
                if self._need(ptr, service, "name", "the gRPC service"):
                    self._string(pointer_join(ptr, "name"), service["name"], "service.name")
                if "port" in service and not _is_int(service["port"]):
                    self.add(
                        pointer_join(ptr, "port"),
                        f"service.port must be a number, not {_describe(service['port'])}",
                    )
                if "authentication" in service:
                    self._authentication(pointer_join(ptr, "authentication"), service["authentication"])
            else:
                self._string(ptr, service, "service")
        if self._need(pointer, with_, "method", "call: grpc `with`"):
            self._string(pointer_join(pointer, "method"), with_["method"], "method")
        if "proto" in with_:
            self._resource(pointer_join(pointer, "proto"), with_["proto"], "proto")
        if "arguments" in with_:
            self._string_map(pointer_join(pointer, "arguments"), with_["arguments"], "arguments", scope.names)
        if "authentication" in with_:
            self._authentication(pointer_join(pointer, "authentication"), with_["authentication"])

    def _call_agent(self, pointer: str, with_: Mapping[str, Any], scope: _Scope) -> None:
        self._keys(pointer, with_, _AGENT_WITH, "the `with` of call: agent")
        for key in ("agent", "message"):
            if self._need(pointer, with_, key, "call: agent `with`"):
                self._string(pointer_join(pointer, key), with_[key], key)
        if "env" in with_:
            self._string_map(pointer_join(pointer, "env"), with_["env"], "env", scope.names)
        if "config" in with_:
            config = self._mapping(pointer_join(pointer, "config"), with_["config"], "config")
            if config is not None:
                self._keys(pointer_join(pointer, "config"), config, _AGENT_CONFIG, "the agent config")

    def _call_activity(self, pointer: str, with_: Mapping[str, Any], scope: _Scope) -> None:
        self._keys(
            pointer, with_, _ACTIVITY_WITH, "the `with` of call: activity", {"activity": "; use `name`"}
        )
        if self._need(pointer, with_, "name", "call: activity `with` (the registered function)"):
            self._string(pointer_join(pointer, "name"), with_["name"], "name")

    def _endpoint(self, pointer: str, endpoint: Any) -> None:
        """A URL (template or ``${}``) or ``{uri, authentication}``."""
        if isinstance(endpoint, str):
            self._string(pointer, endpoint, "endpoint")
            return
        endpoint = self._mapping(pointer, endpoint, "endpoint (a URL string or {uri, authentication})")
        if endpoint is None:
            return
        self._keys(pointer, endpoint, _ENDPOINT, "endpoint", {"url": "; use `uri`"})
        if self._need(pointer, endpoint, "uri", "endpoint"):
            self._string(pointer_join(pointer, "uri"), endpoint["uri"], "endpoint.uri")
        if "authentication" in endpoint:
            self._authentication(pointer_join(pointer, "authentication"), endpoint["authentication"])

    def _resource(self, pointer: str, resource: Any, what: str) -> None:
        """An external resource: ``{name, endpoint}``."""
        resource = self._mapping(pointer, resource, f"{what} ({{endpoint}})")
        if resource is None:
            return
        self._keys(pointer, resource, _RESOURCE, what)
        if self._need(pointer, resource, "endpoint", what):
            self._endpoint(pointer_join(pointer, "endpoint"), resource["endpoint"])

    def _authentication(self, pointer: str, value: Any) -> None:
        """A policy inline, ``{use: name}``, or a name, from ``use.authentications``."""
        if isinstance(value, str):
            self._reference(pointer, value, "authentications")
        elif isinstance(value, Mapping) and "use" in value:
            self._keys(pointer, value, ("use",), "authentication")
            self._reference(pointer_join(pointer, "use"), value["use"], "authentications")
        else:
            self._auth_policy(pointer, value)

    def _auth_policy(self, pointer: str, policy: Any) -> None:
        policy = self._mapping(pointer, policy, "an authentication policy")
        if policy is None:
            return
        self._keys(pointer, policy, _AUTH_SCHEMES, "an authentication policy")
        if sum(k in policy for k in _AUTH_SCHEMES) != 1:
            self.add(pointer, f"an authentication policy has exactly one of {', '.join(_AUTH_SCHEMES)}")

    def task_do(self, pointer: str, body: Mapping[str, Any], scope: _Scope) -> None:
        """``do: [tasks]`` in order."""
        self.task_list(pointer_join(pointer, "do"), body["do"], scope)

    def task_emit(self, pointer: str, body: Mapping[str, Any], scope: _Scope) -> None:
        """``emit: {event: {with: {type, source, data, ...}}}``."""
        ptr = pointer_join(pointer, "emit")
        emit = self._mapping(ptr, body["emit"], "emit")
        if emit is None:
            return
        self._keys(ptr, emit, ("event",), "emit")
        if not self._need(ptr, emit, "event", "emit"):
            return
        ptr = pointer_join(ptr, "event")
        event = self._mapping(ptr, emit["event"], "emit.event")
        if event is None:
            return
        if "with" not in event:
            self.add(ptr, "emit.event needs `with`: the event's attributes {type, source, data, ...}")
            return
        self._keys(ptr, event, ("with",), "emit.event")
        ptr = pointer_join(ptr, "with")
        attributes = self._mapping(ptr, event["with"], "emit.event.with")
        if attributes is None:
            return
        if self._need(ptr, attributes, "type", "emit.event.with"):
            self._string(pointer_join(ptr, "type"), attributes["type"], "the event type")
        self.expression(ptr, attributes, bare=False, names=scope.names)

    def task_for(self, pointer: str, body: Mapping[str, Any], scope: _Scope) -> None:
        """``for: {each, in, at}``, ``while``, ``do``: ``$each``/``$at`` exist inside only."""
        ptr = pointer_join(pointer, "for")
        spec = self._mapping(ptr, body["for"], "for")
        inner = scope
        if spec is not None:
            self._keys(ptr, spec, ("each", "in", "at"), "for")
            if self._need(ptr, spec, "in", "for (the list to loop over)"):
                self.expression(pointer_join(ptr, "in"), spec["in"], bare=True, names=scope.names)
            for key in ("each", "at"):
                if key in spec:
                    self._variable(pointer_join(ptr, key), spec[key], f"for.{key}")
            inner = scope.bind(spec.get("each", "item"), spec.get("at", "index"))
        if "while" in body:
            self.expression(pointer_join(pointer, "while"), body["while"], bare=True, names=inner.names)
        if "do" not in body:
            self.add(pointer, "for needs a `do` list beside `for`")
        else:
            self.task_list(pointer_join(pointer, "do"), body["do"], inner)

    def task_fork(self, pointer: str, body: Mapping[str, Any], scope: _Scope) -> None:
        """``fork: {branches: [tasks], compete}``."""
        ptr = pointer_join(pointer, "fork")
        spec = self._mapping(ptr, body["fork"], "fork")
        if spec is None:
            return
        self._keys(ptr, spec, ("branches", "compete"), "fork")
        if self._need(ptr, spec, "branches", "fork (a list of `- name: {task}`)"):
            self.task_list(pointer_join(ptr, "branches"), spec["branches"], scope)
        if "compete" in spec:
            self._bool(pointer_join(ptr, "compete"), spec["compete"], "fork.compete")

    def task_listen(self, pointer: str, body: Mapping[str, Any], scope: _Scope) -> None:
        """``listen: {to: {one|any|all, until}, read}`` and ``foreach`` (beside or inside ``listen``)."""
        ptr = pointer_join(pointer, "listen")
        spec = self._mapping(ptr, body["listen"], "listen")
        if spec is not None:
            self._keys(ptr, spec, ("to", "read", "foreach"), "listen")
            if self._need(ptr, spec, "to", "listen"):
                self._consumption(pointer_join(ptr, "to"), spec["to"], scope.names)
            if "read" in spec:
                self._choice(pointer_join(ptr, "read"), spec["read"], _LISTEN_READ, "listen.read")
            if "foreach" in spec:
                self._foreach(pointer_join(ptr, "foreach"), spec["foreach"], scope)
        if "foreach" in body:
            self._foreach(pointer_join(pointer, "foreach"), body["foreach"], scope)

    def _consumption(self, pointer: str, to: Any, names: tuple[str, ...], *, nested: bool = False) -> None:
        """An event consumption strategy: exactly one of one/any/all; ``until`` only with any."""
        to = self._mapping(pointer, to, "listen.to")
        if to is None:
            return
        self._keys(pointer, to, (*_STRATEGIES, "until"), "listen.to")
        chosen = [k for k in _STRATEGIES if k in to]
        if len(chosen) != 1:
            self.add(
                pointer, f"listen.to needs exactly one of one, any, all (found {', '.join(chosen) or 'none'})"
            )
        if "one" in to:
            self._event_filter(pointer_join(pointer, "one"), to["one"], names)
        for key in ("any", "all"):
            if key in to:
                filters = to[key]
                if not isinstance(filters, list):
                    self.add(pointer_join(pointer, key), f"listen.to.{key} must be a list of event filters")
                    continue
                for i, item in enumerate(filters):
                    self._event_filter(pointer_join(pointer, key, i), item, names)
        if "until" in to:
            until_ptr = pointer_join(pointer, "until")
            if "any" not in to or nested:
                self.add(until_ptr, "`until` goes only with `any`")
            elif isinstance(to["until"], str):
                self.expression(until_ptr, to["until"], bare=True, names=names)
            elif to["until"] is not False:
                self._consumption(until_ptr, to["until"], names, nested=True)

    def _event_filter(self, pointer: str, spec: Any, names: tuple[str, ...]) -> None:
        spec = self._mapping(pointer, spec, "an event filter ({with: {type, ...}})")
        if spec is None:
            return
        self._keys(pointer, spec, _FILTER, "an event filter")
        if "with" in spec:
            attributes = self._mapping(pointer_join(pointer, "with"), spec["with"], "the filter's `with`")
            if attributes is not None:
                self.expression(pointer_join(pointer, "with"), attributes, bare=False, names=names)
        if "correlate" in spec:
            # The engine would ignore it and accept uncorrelated events: refuse instead.
            self.add(
                pointer_join(pointer, "correlate"),
                "event correlation is not supported; filter on attributes in `with`",
            )

    def _foreach(self, pointer: str, spec: Any, scope: _Scope) -> None:
        """A subscription iterator: ``{item, at, do, output, export}`` with ``$item``/``$at`` bound."""
        spec = self._mapping(pointer, spec, "foreach")
        if spec is None:
            return
        self._keys(pointer, spec, _FOREACH, "foreach")
        for key in ("item", "at"):
            if key in spec:
                self._variable(pointer_join(pointer, key), spec[key], f"foreach.{key}")
        inner = scope.bind(spec.get("item", "item"), spec.get("at", "index"))
        if "do" in spec:
            self.task_list(pointer_join(pointer, "do"), spec["do"], inner)
        for key in ("output", "export"):
            if key in spec:
                self._io(pointer_join(pointer, key), spec[key], key, "as", inner.names)

    def task_raise(self, pointer: str, body: Mapping[str, Any], scope: _Scope) -> None:
        """``raise: {error: {type, status, ...} | name in use.errors}``."""
        ptr = pointer_join(pointer, "raise")
        spec = self._mapping(ptr, body["raise"], "raise")
        if spec is None:
            return
        self._keys(ptr, spec, ("error",), "raise")
        if not self._need(ptr, spec, "error", "raise (an inline error or a name from use.errors)"):
            return
        error = spec["error"]
        if isinstance(error, str):
            self._reference(pointer_join(ptr, "error"), error, "errors")
        else:
            self._error(pointer_join(ptr, "error"), error, scope.names)

    def _error(self, pointer: str, error: Any, names: tuple[str, ...]) -> None:
        """An error definition: ``type`` and ``status`` required (RFC 7807 fields)."""
        error = self._mapping(pointer, error, "an error ({type, status, title, detail})")
        if error is None:
            return
        self._keys(pointer, error, _ERROR_KEYS, "an error", _ERROR_HINTS)
        if self._need(
            pointer,
            error,
            "type",
            "an error (a URI such as https://serverlessworkflow.io/spec/1.0.0/errors/runtime)",
        ):
            self._string(pointer_join(pointer, "type"), error["type"], "error.type")
        if self._need(pointer, error, "status", "an error"):
            status = error["status"]
            if not _is_int(status) and not is_expression(status):
                self.add(
                    pointer_join(pointer, "status"),
                    f"error.status must be a number like 500, not {_describe(status)}",
                )
        self.expression(pointer, error, bare=False, names=names)

    def task_run(self, pointer: str, body: Mapping[str, Any], scope: _Scope) -> None:
        """``run``: exactly one of shell, script, workflow, container; ``await``; ``return``."""
        ptr = pointer_join(pointer, "run")
        spec = self._mapping(ptr, body["run"], "run")
        if spec is None:
            return
        self._keys(ptr, spec, _RUN_KEYS, "run")
        chosen = [k for k in _PROCESSES if k in spec]
        if len(chosen) != 1:
            self.add(
                ptr,
                f"run needs exactly one of shell, script, workflow, container (found {', '.join(chosen) or 'none'})",
            )
        if "await" in spec:
            self._bool(pointer_join(ptr, "await"), spec["await"], "run.await")
        if "return" in spec:
            self._choice(pointer_join(ptr, "return"), spec["return"], _RUN_RETURN, "run.return")
        if "container" in chosen:
            self.add(pointer_join(ptr, "container"), "run: container is not supported by stigmer_nb (there is "
                     "no container runtime here); use run: shell or run: script", title="Not supported")  # fmt: skip
            chosen = [c for c in chosen if c != "container"]
        for process in chosen:
            process_ptr = pointer_join(ptr, process)
            value = self._mapping(process_ptr, spec[process], f"run.{process}")
            if value is not None:
                getattr(self, f"_run_{process}")(process_ptr, value)
                self.expression(process_ptr, value, bare=False, names=scope.names)

    def _run_shell(self, pointer: str, shell: Mapping[str, Any]) -> None:
        self._keys(pointer, shell, _SHELL, "run.shell")
        if self._need(pointer, shell, "command", "run.shell"):
            self._string(pointer_join(pointer, "command"), shell["command"], "run.shell.command")

    def _run_script(self, pointer: str, script: Mapping[str, Any]) -> None:
        self._keys(pointer, script, _SCRIPT, "run.script")
        if self._need(pointer, script, "language", "run.script"):
            self._choice(
                pointer_join(pointer, "language"),
                script["language"],
                _SCRIPT_LANGUAGES,
                "run.script.language",
            )
        if ("code" in script) == ("source" in script):
            self.add(pointer, "run.script needs exactly one of `code` and `source`")
        elif "code" in script:
            self._string(pointer_join(pointer, "code"), script["code"], "run.script.code")
        else:
            self._resource(pointer_join(pointer, "source"), script["source"], "run.script.source")

    def _run_workflow(self, pointer: str, subflow: Mapping[str, Any]) -> None:
        # `version` defaults to latest (spec); namespace and name pick the workflow.
        self._keys(pointer, subflow, _SUBFLOW, "run.workflow")
        for key in ("namespace", "name"):
            if self._need(pointer, subflow, key, "run.workflow"):
                self._string(pointer_join(pointer, key), subflow[key], f"run.workflow.{key}")
        if "version" in subflow:
            self._string(pointer_join(pointer, "version"), subflow["version"], "run.workflow.version")

    def _run_container(self, pointer: str, container: Mapping[str, Any]) -> None:
        self._keys(pointer, container, _CONTAINER, "run.container")
        if self._need(pointer, container, "image", "run.container"):
            self._string(pointer_join(pointer, "image"), container["image"], "run.container.image")

    def task_set(self, pointer: str, body: Mapping[str, Any], scope: _Scope) -> None:
        """``set``: a mapping whose ``${}`` strings are evaluated, or one ``${}`` expression."""
        value = body["set"]
        ptr = pointer_join(pointer, "set")
        if isinstance(value, str) and not is_expression(value):
            self.add(ptr, "set must be a mapping or a ${ } expression; a plain string would be jq")
            return
        if not isinstance(value, Mapping | str):
            self.add(ptr, f"set must be a mapping (or one ${{ }} expression), not {_describe(value)}")
            return
        self.expression(ptr, value, bare=False, names=scope.names)

    def task_switch(self, pointer: str, body: Mapping[str, Any], scope: _Scope) -> None:
        """``switch: [- case: {when, then}]``: at most one case without ``when`` (the default)."""
        cases = body["switch"]
        ptr = pointer_join(pointer, "switch")
        if not isinstance(cases, list) or not cases:
            self.add(ptr, "switch must be a non-empty list of `- caseName: {when, then}`")
            return
        defaults: list[str] = []
        seen: set[str] = set()
        for i, case in enumerate(cases):
            case_ptr = pointer_join(ptr, i)
            if not isinstance(case, Mapping) or len(case) != 1:
                self.add(case_ptr, "each switch case is a single-key map `- caseName: {when, then}`")
                continue
            ((case_name, spec),) = case.items()
            case_ptr = pointer_join(case_ptr, case_name)
            if case_name in seen:
                self.add(case_ptr, f"duplicate switch case {case_name!r}")
            seen.add(case_name)
            spec = self._mapping(case_ptr, spec, f"switch case {case_name!r} ({{when, then}})")
            if spec is None:
                continue
            self._keys(case_ptr, spec, ("when", "then"), f"switch case {case_name!r}", {"if": "; use `when`"})
            if "when" in spec:
                self.expression(pointer_join(case_ptr, "when"), spec["when"], bare=True, names=scope.names)
            else:
                defaults.append(case_name)
            if self._need(case_ptr, spec, "then", f"switch case {case_name!r}"):
                self.flow(pointer_join(case_ptr, "then"), spec["then"], scope.siblings)
        if len(defaults) > 1:
            self.add(
                ptr, f"at most one switch case may omit `when` (the default); found {', '.join(defaults)}"
            )

    def task_try(self, pointer: str, body: Mapping[str, Any], scope: _Scope) -> None:
        """``try: [tasks]`` and ``catch: {errors, as, when, exceptWhen, retry, do}``."""
        self.task_list(pointer_join(pointer, "try"), body["try"], scope)
        if "catch" not in body:
            self.add(pointer, "try needs a `catch` beside it (an empty `catch: {}` catches every error)")
            return
        ptr = pointer_join(pointer, "catch")
        catch = self._mapping(ptr, body["catch"], "catch")
        if catch is None:
            return
        self._keys(ptr, catch, _CATCH_KEYS, "catch")
        if "as" in catch:
            self._variable(pointer_join(ptr, "as"), catch["as"], "catch.as")
        inner = scope.bind(catch.get("as", "error"))
        if "errors" in catch:
            self._error_filter(pointer_join(ptr, "errors"), catch["errors"])
        for key in ("when", "exceptWhen"):
            if key in catch:
                self.expression(pointer_join(ptr, key), catch[key], bare=True, names=inner.names)
        if "retry" in catch:
            retry = catch["retry"]
            if isinstance(retry, str):
                self._reference(pointer_join(ptr, "retry"), retry, "retries")
            else:
                self._retry(pointer_join(ptr, "retry"), retry, inner.names)
        if "do" in catch:
            self.task_list(pointer_join(ptr, "do"), catch["do"], inner)

    def _error_filter(self, pointer: str, errors: Any) -> None:
        errors = self._mapping(pointer, errors, "catch.errors ({with: {type, status}})")
        if errors is None:
            return
        self._keys(pointer, errors, ("with",), "catch.errors")
        if "with" in errors:
            attributes = self._mapping(pointer_join(pointer, "with"), errors["with"], "catch.errors.with")
            if attributes is not None:
                self._keys(
                    pointer_join(pointer, "with"),
                    attributes,
                    _ERROR_FILTER,
                    "catch.errors.with",
                    _ERROR_HINTS,
                )

    def _retry(self, pointer: str, policy: Any, names: tuple[str, ...]) -> None:
        """``{when, exceptWhen, delay, backoff, limit: {attempt: {count, duration}, duration}, jitter}``."""
        policy = self._mapping(pointer, policy, "a retry policy")
        if policy is None:
            return
        self._keys(pointer, policy, _RETRY_KEYS, "a retry policy")
        for key in ("when", "exceptWhen"):
            if key in policy:
                self.expression(pointer_join(pointer, key), policy[key], bare=True, names=names)
        if "delay" in policy:
            self._duration(pointer_join(pointer, "delay"), policy["delay"], "retry.delay")
        if "backoff" in policy:
            self._backoff(pointer_join(pointer, "backoff"), policy["backoff"])
        if "limit" in policy:
            self._retry_limit(pointer_join(pointer, "limit"), policy["limit"])
        if "jitter" in policy:
            ptr = pointer_join(pointer, "jitter")
            jitter = self._mapping(ptr, policy["jitter"], "retry.jitter ({from, to})")
            if jitter is not None:
                self._keys(ptr, jitter, ("from", "to"), "retry.jitter")
                for key in ("from", "to"):
                    if self._need(ptr, jitter, key, "retry.jitter"):
                        self._duration(pointer_join(ptr, key), jitter[key], f"retry.jitter.{key}")

    def _backoff(self, pointer: str, backoff: Any) -> None:
        backoff = self._mapping(pointer, backoff, "retry.backoff")
        if backoff is None:
            return
        self._keys(pointer, backoff, _BACKOFFS, "retry.backoff")
        if sum(k in backoff for k in _BACKOFFS) != 1:
            self.add(
                pointer,
                "retry.backoff needs exactly one of constant, linear, exponential (e.g. `exponential: {}`)",
            )
        for key in _BACKOFFS:
            if backoff.get(key) is not None:
                self._mapping(pointer_join(pointer, key), backoff[key], f"retry.backoff.{key}")

    def _retry_limit(self, pointer: str, limit: Any) -> None:
        limit = self._mapping(pointer, limit, "retry.limit")
        if limit is None:
            return
        self._keys(pointer, limit, ("attempt", "duration"), "retry.limit")
        if "duration" in limit:
            self._duration(pointer_join(pointer, "duration"), limit["duration"], "retry.limit.duration")
        if "attempt" in limit:
            ptr = pointer_join(pointer, "attempt")
            attempt = self._mapping(ptr, limit["attempt"], "retry.limit.attempt")
            if attempt is None:
                return
            self._keys(ptr, attempt, ("count", "duration"), "retry.limit.attempt")
            count = attempt.get("count")
            if "count" in attempt and (not _is_int(count) or count < 0):
                self.add(
                    pointer_join(ptr, "count"),
                    f"retry.limit.attempt.count must be a whole number ≥ 0, not {count!r}",
                )
            if "duration" in attempt:
                self._duration(
                    pointer_join(ptr, "duration"), attempt["duration"], "retry.limit.attempt.duration"
                )

    def task_wait(self, pointer: str, body: Mapping[str, Any], scope: _Scope) -> None:
        """``wait``: ``{seconds: N}``, ``PT30S`` or a ``${}`` expression yielding ISO 8601."""
        self._duration(pointer_join(pointer, "wait"), body["wait"], "wait", scope.names)


_CALL_NEEDS = {
    "http": ": {method, endpoint}",
    "openapi": ": {document, operationId}",
    "grpc": ": {service, method}",
    "agent": ": {agent, message}",
    "activity": ": {name, input}",
}


def _describe(value: Any) -> str:
    """A short phrase for a value of the wrong kind."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value) if len(value) < 40 else "a string"
    return repr(value)


def _item_problem(item: Any) -> str:
    """What is wrong with a task-list item that is not ``- name: {task}``."""
    base = "each item of a task list is a single-key map `- name: {task}`"
    if not isinstance(item, Mapping):
        return f"{base}, not {_describe(item)}"
    keys = list(item)
    if not keys:
        return f"{base}; this one is empty"
    hint = ""
    if any(v is None for v in item.values()) or any(k in TASK_TYPES for k in keys):
        # `- name:` followed by the body at the same indent: the body lands beside the name.
        hint = "; indent the task's body under its name"
    return f"{base}; this one has {len(keys)} keys ({', '.join(map(str, keys))}){hint}"


def _type_hint(body: Mapping[str, Any]) -> str:
    """A hint for a task with no type key: the type it misspells, else what it was meant to be."""
    for key in body:
        hint = did_you_mean(key, TASK_TYPES)
        if hint:
            return hint
    return next((_TASK_HINTS[key] for key in body if key in _TASK_HINTS), "")


def _jq_message(text: str, available: set[str]) -> str | None:
    """jq's first error for ``text`` with every available variable bound, positions in ``text``.

    The engine's compile error names the first unbound variable of the bare text, which may be
    one that is bound (``$context``) rather than the one at fault.
    """
    error = compile_error(text, tuple(sorted(available)))
    return error.removeprefix("jq: error: ") if error else None


def _undefined_hint(message: str, available: set[str]) -> str:
    """For ``$x is not defined``: a close name, or where loop and catch variables exist."""
    match = _UNDEFINED.search(message)
    if not match:
        return ""
    name = match.group(1)
    close = did_you_mean(name, sorted(available))
    if close:
        return close
    return "; loop and catch variables ($item, $index, $error, or their `each`/`at`/`as` names) exist only inside their task"


def check_document(loaded: LoadedDocument) -> list[dict[str, Any]]:
    """Every problem in ``loaded``, in document order; empty when it is valid.

    Each is a problem-details dict (``type`` …/errors/validation, ``status`` 400, ``title``,
    ``detail``, ``instance`` = JSON pointer) plus ``line`` and ``column`` when the text is known.
    """
    checker = _Checker(loaded)
    checker.document()
    # Document order reads best; problems without a position (dict input) keep the walk's order.
    return sorted(checker.problems, key=lambda p: (p.get("line", 0), p.get("column", 0)))


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
