"""The document checker: walks a DSL document once, collecting every problem and building its task nodes.

Shared shapes (durations, endpoints, authentication, errors, retry policies, event consumption)
are checked here; each task type's own shape is checked by its module in ``dsl/tasks``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import closest, did_you_mean
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
from .model import Task, TaskList, Transform, Workflow
from .problems import problem

__all__ = [
    "ERROR_HINTS",
    "SUPPORTED_DSL",
    "Checker",
    "Scope",
    "describe",
    "is_int",
    "iter_tasks",
    "transform",
]

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
_ENDPOINT = ("uri", "authentication")
_RESOURCE = ("name", "endpoint")
_AUTH_SCHEMES = ("basic", "bearer", "certificate", "digest", "oauth2", "oidc")
_ERROR_KEYS = ("type", "status", "instance", "title", "detail")
_RETRY_KEYS = ("when", "exceptWhen", "delay", "backoff", "limit", "jitter")
_BACKOFFS = ("constant", "linear", "exponential")
_STRATEGIES = ("one", "any", "all")
_FILTER = ("with", "correlate")
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
_AFTER_HINT = "; the duration goes under `after`, e.g. `timeout: {after: {seconds: 30}}`"
_TIMEOUT_HINTS = dict.fromkeys(("days", "hours", "minutes", "seconds", "milliseconds"), _AFTER_HINT)
ERROR_HINTS = {"message": "; use `detail`", "code": "; use `status`", "name": "; use `title`"}


@dataclass(frozen=True)
class Scope:
    """What a task can see: loop/catch variables bound around it and the names in its list."""

    names: tuple[str, ...] = ()
    siblings: tuple[str, ...] = ()

    def bind(self, *names: str) -> Scope:
        """This scope with more variables (invalid names are left out: they were reported)."""
        extra = tuple(n for n in names if isinstance(n, str) and _IDENT.match(n))
        return Scope(names=(*self.names, *extra), siblings=self.siblings)

    def within(self, siblings: Iterable[str]) -> Scope:
        """The scope of tasks in a new list (same variables, other flow targets)."""
        return Scope(names=self.names, siblings=tuple(siblings))


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Checker:
    """Walks one document, collecting problems and building its nodes.

    With ``expressions=False`` jq and JSON Schemas are not compiled: the workflow compiles a
    document that was checked when it was submitted, and only needs its nodes.
    """

    def __init__(self, loaded: LoadedDocument, *, expressions: bool = True, prefix: str = "") -> None:
        self.loaded = loaded
        self.expressions = expressions
        self.prefix = prefix
        """Where the document's tasks sit (a ``run: workflow`` document's under the task running it)."""
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

    def keys(
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

    def mapping(self, pointer: str, value: Any, what: str) -> Mapping[str, Any] | None:
        """``value`` when it is a mapping; otherwise report it and return None."""
        if isinstance(value, Mapping):
            return value
        self.add(pointer, f"{what} must be a mapping, not {describe(value)}")
        return None

    def need(self, pointer: str, value: Mapping[str, Any], key: str, what: str, hint: str = "") -> bool:
        """Report a missing required property (unless a misspelling of it was); True when present."""
        if key in value:
            return True
        if (pointer, key) not in self._misspelled:
            self.add(pointer, f"{what} needs `{key}`{hint}")
        return False

    def string(self, pointer: str, value: Any, what: str) -> bool:
        if isinstance(value, str) and value.strip():
            return True
        self.add(pointer, f"{what} must be a non-empty string, not {describe(value)}")
        return False

    def boolean(self, pointer: str, value: Any, what: str) -> None:
        if not isinstance(value, bool):
            self.add(pointer, f"{what} must be true or false, not {describe(value)}")

    def choice(self, pointer: str, value: Any, allowed: Iterable[str], what: str) -> None:
        allowed = tuple(allowed)
        if value not in allowed:
            hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
            self.add(pointer, f"{what} must be one of {', '.join(allowed)}, not {value!r}{hint}")

    def variable(self, pointer: str, value: Any, what: str) -> None:
        """A name that becomes a jq ``$variable`` (``for.each``, ``catch.as`` …)."""
        if not isinstance(value, str) or not _IDENT.match(value):
            self.add(pointer, f"{what} {value!r} must be a name jq accepts as $name: letters, digits and _")
        elif value in STANDARD_ARGS:
            self.add(pointer, f"{what} {value!r} would hide ${value}; pick another name")

    def reference(self, pointer: str, name: Any, section: str) -> None:
        """A name that must be a key of ``use.<section>``."""
        known = self.use.get(section)
        known_names = list(known) if isinstance(known, Mapping) else []
        if not isinstance(name, str) or name not in known_names:
            hint = did_you_mean(name, known_names) if isinstance(name, str) else ""
            self.add(pointer, f"no {name!r} in use.{section}{hint}", title="Unknown reference")

    def string_map(self, pointer: str, value: Any, what: str, names: tuple[str, ...]) -> None:
        """Headers, query: a mapping, or one ``${}`` expression that yields one."""
        if isinstance(value, str) and is_expression(value):
            self.expression(pointer, value, bare=False, names=names)
        elif not isinstance(value, Mapping):
            self.add(pointer, f"{what} must be a mapping or a ${{ }} expression, not {describe(value)}")

    # --- expressions ------------------------------------------------------------------------

    def expression(self, pointer: str, value: Any, *, bare: bool, names: Iterable[str] = ()) -> None:
        """Compile ``value``: a field that is jq when ``bare``, else only its ``${}`` strings."""
        if not self.expressions:
            return
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

    def duration(self, pointer: str, value: Any, what: str, names: tuple[str, ...] = ()) -> None:
        """A duration: ``{seconds: 5}``, ISO 8601 ``PT5S``, or a ``${}`` expression yielding one."""
        if isinstance(value, str) and is_expression(value):
            self.expression(pointer, value, bare=False, names=names)
            return
        if is_number(value):
            self.add(pointer, f"{what} needs units: write {{seconds: {value}}} or PT{value}S")
            return
        try:
            parse_duration(value)
        except DurationError as exc:
            self.add(pointer, f"{what}: {exc}")

    # --- the document -----------------------------------------------------------------------

    def document(self) -> Workflow:
        """Top-level properties, then every task; the nodes (complete only when no problem was found)."""
        data = self.loaded.data
        self.keys("", data, _TOP_KEYS, "the workflow document")
        self._document_meta(data.get("document"))
        if "use" in data:
            self._use(data["use"])
        if "input" in data:
            self.io("/input", data["input"], "input", "from", ())
        if "output" in data:
            self.io("/output", data["output"], "output", "as", ())
        if "timeout" in data:
            self.timeout("/timeout", data["timeout"])
        if "schedule" in data:
            self._schedule(data["schedule"])
        if "evaluate" in data:
            self._evaluate(data["evaluate"])
        do = TaskList.of(self.prefix + "/do", [])
        if self.need("", data, "do", "the document", ": a list of tasks"):
            do = self.task_list(self.prefix + "/do", data["do"], Scope())
        return Workflow(
            document=data,
            do=do,
            use=self.use,
            input=transform(data.get("input"), "from"),
            output=transform(data.get("output"), "as"),
            timeout=data.get("timeout"),
        )

    def _document_meta(self, meta: Any) -> None:
        if meta is None:
            self.need("", self.loaded.data, "document", "the document", ": {dsl, namespace, name, version}")
            return
        meta = self.mapping("/document", meta, "`document`")
        if meta is None:
            return
        self.keys("/document", meta, _DOCUMENT_KEYS, "`document`")
        for key in ("dsl", "namespace", "name", "version"):
            self.need("/document", meta, key, "`document`")
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
                self.mapping(pointer_join("/document", key), meta[key], f"document.{key}")

    def _use(self, use: Any) -> None:
        """Reusable components; each is checked where it is defined, references where they are used."""
        use = self.mapping("/use", use, "`use`")
        if use is None:
            return
        self.keys("/use", use, _USE_KEYS, "`use`")
        sections = {
            k: self.mapping(f"/use/{k}", use[k], f"use.{k}")
            for k in _USE_KEYS
            if k in use and k not in ("secrets", "extensions")
        }
        for name, error in (sections.get("errors") or {}).items():
            self.error(pointer_join("/use/errors", name), error, ())
        catch_names = self._catch_names()
        for name, policy in (sections.get("retries") or {}).items():
            self.retry(pointer_join("/use/retries", name), policy, ("error", *catch_names))
        for name, timeout in (sections.get("timeouts") or {}).items():
            self.timeout_definition(pointer_join("/use/timeouts", name), timeout)
        for name, policy in (sections.get("authentications") or {}).items():
            self.auth_policy(pointer_join("/use/authentications", name), policy)
        for name, function in (sections.get("functions") or {}).items():
            self.task(pointer_join("/use/functions", name), name, function, Scope())
        if "secrets" in use:
            secrets = use["secrets"]
            if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
                self.add("/use/secrets", "use.secrets must be a list of secret names")
        if "extensions" in use and not isinstance(use["extensions"], list):
            self.add("/use/extensions", "use.extensions must be a list of `- name: {extend, ...}`")
        elif use.get("extensions"):
            # The engine would run the tasks without their before/after tasks: refuse instead.
            self.add(
                "/use/extensions",
                "use.extensions (tasks run before or after others) is not supported by stigmer_nb; "
                "call the extra tasks explicitly",
                title="Not supported",
            )

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
        schedule = self.mapping("/schedule", schedule, "`schedule`")
        if schedule is None:
            return
        self.keys("/schedule", schedule, ("every", "cron", "after", "on"), "`schedule`")
        for key in ("every", "after"):
            if key in schedule:
                self.duration(pointer_join("/schedule", key), schedule[key], f"schedule.{key}")
        if "cron" in schedule:
            self.string("/schedule/cron", schedule["cron"], "schedule.cron")
        if "on" in schedule:
            self.consumption("/schedule/on", schedule["on"], ())

    def _evaluate(self, evaluate: Any) -> None:
        evaluate = self.mapping("/evaluate", evaluate, "`evaluate`")
        if evaluate is None:
            return
        self.keys("/evaluate", evaluate, ("language", "mode"), "`evaluate`")
        if "language" in evaluate and evaluate["language"] != "jq":
            self.add(
                "/evaluate/language", f"evaluate.language {evaluate['language']!r} is not supported; use jq"
            )
        if "mode" in evaluate:
            self.choice("/evaluate/mode", evaluate["mode"], ("strict", "loose"), "evaluate.mode")
            if evaluate["mode"] == "loose":
                # The engine evaluates only ${ } strings; loose documents would silently misbehave.
                self.add("/evaluate/mode", "evaluate.mode loose is not supported; wrap expressions in ${ }")

    # --- task lists and common task properties ----------------------------------------------

    def task_list(self, pointer: str, tasks: Any, scope: Scope) -> TaskList:
        """A list of ``- name: {task}`` items with unique names."""
        if not isinstance(tasks, list) or not tasks:
            self.add(pointer, "a task list must be a non-empty list of `- name: {task}` items")
            return TaskList.of(pointer, [])
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
        nodes = [self.task(task_ptr, name, body, inner) for name, task_ptr, body in entries]
        return TaskList.of(pointer, [node for node in nodes if node is not None])

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

    def task(self, pointer: str, name: str, body: Any, scope: Scope) -> Task | None:
        """One task: its type, its common properties, then its type's own shape (by its module)."""
        from .tasks import TYPES  # the task modules use this checker: imported once it exists

        if not isinstance(body, Mapping):
            self.add(pointer, f"task {name!r} must be a mapping with one of {', '.join(TASK_TYPES)}")
            return None
        kind = task_type(body)
        if kind is None:
            self.add(
                pointer,
                f"task {name!r} has no task type (one of {', '.join(TASK_TYPES)}){_type_hint(body)}",
                title="Unknown task type",
            )
            return None
        types = [k for k in TASK_TYPES if k in body and not (kind == "for" and k == "do")]
        if len(types) > 1:
            self.add(
                pointer,
                f"task {name!r} has more than one task type ({', '.join(types)}); split it into tasks",
            )
        handler = TYPES[kind]
        allowed = (*_TASK_COMMON, *handler.keys, *TASK_TYPES)
        self.keys(pointer, body, allowed, f"task {name!r} ({kind})", _TASK_HINTS)
        self._common(pointer, body, scope)
        spec = handler.check(self, pointer, body, scope)
        then = body.get("then")
        return Task(
            name=name,
            ref=pointer,
            type=kind,
            kind=handler.reported_kind(body),
            spec=spec,
            definition=body,
            if_=body.get("if"),
            input=transform(body.get("input"), "from"),
            output=transform(body.get("output"), "as"),
            export=transform(body.get("export"), "as"),
            timeout=body.get("timeout"),
            then=then if isinstance(then, str) else None,
        )

    def _common(self, pointer: str, body: Mapping[str, Any], scope: Scope) -> None:
        """``if``, ``input``, ``output``, ``export``, ``timeout``, ``then``, ``metadata``."""
        if "if" in body:
            self.expression(pointer_join(pointer, "if"), body["if"], bare=True, names=scope.names)
        if "input" in body:
            self.io(pointer_join(pointer, "input"), body["input"], "input", "from", scope.names)
        for key in ("output", "export"):
            if key in body:
                self.io(pointer_join(pointer, key), body[key], key, "as", scope.names)
        if "timeout" in body:
            self.timeout(pointer_join(pointer, "timeout"), body["timeout"])
        if "then" in body:
            self.flow(pointer_join(pointer, "then"), body["then"], scope.siblings)
        if "metadata" in body:
            self.mapping(pointer_join(pointer, "metadata"), body["metadata"], "metadata")

    def io(self, pointer: str, section: Any, what: str, field: str, names: tuple[str, ...]) -> None:
        """``input: {schema, from}``, ``output``/``export: {schema, as}``."""
        section = self.mapping(pointer, section, f"`{what}`")
        if section is None:
            return
        self.keys(pointer, section, ("schema", field), f"`{what}`")
        if field in section:
            self.expression(pointer_join(pointer, field), section[field], bare=True, names=names)
        if "schema" in section:
            self.schema(pointer_join(pointer, "schema"), section["schema"])

    def schema(self, pointer: str, schema: Any) -> None:
        """``{format, document}`` (or a bare JSON Schema): the schema itself must be valid."""
        schema = self.mapping(pointer, schema, "a schema")
        if schema is None or not self.expressions:
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

    def timeout(self, pointer: str, value: Any) -> None:
        """A task's or the workflow's ``timeout``: a definition, or the name of one in ``use.timeouts``."""
        if isinstance(value, str) and not is_expression(value):
            self.reference(pointer, value, "timeouts")
        elif isinstance(value, str):
            self.expression(pointer, value, bare=False)
        else:
            self.timeout_definition(pointer, value)

    def timeout_definition(self, pointer: str, value: Any) -> None:
        """``{after: duration}``."""
        value = self.mapping(pointer, value, "timeout")
        if value is None:
            return
        self.keys(pointer, value, ("after",), "timeout", _TIMEOUT_HINTS)
        if self.need(pointer, value, "after", "timeout"):
            self.duration(pointer_join(pointer, "after"), value["after"], "timeout.after")

    # --- per task type ----------------------------------------------------------------------

    def endpoint(self, pointer: str, endpoint: Any) -> None:
        """A URL (template or ``${}``) or ``{uri, authentication}``."""
        if isinstance(endpoint, str):
            self.string(pointer, endpoint, "endpoint")
            return
        endpoint = self.mapping(pointer, endpoint, "endpoint (a URL string or {uri, authentication})")
        if endpoint is None:
            return
        self.keys(pointer, endpoint, _ENDPOINT, "endpoint", {"url": "; use `uri`"})
        if self.need(pointer, endpoint, "uri", "endpoint"):
            self.string(pointer_join(pointer, "uri"), endpoint["uri"], "endpoint.uri")
        if "authentication" in endpoint:
            self.authentication(pointer_join(pointer, "authentication"), endpoint["authentication"])

    def resource(self, pointer: str, resource: Any, what: str) -> None:
        """An external resource: ``{name, endpoint}``."""
        resource = self.mapping(pointer, resource, f"{what} ({{endpoint}})")
        if resource is None:
            return
        self.keys(pointer, resource, _RESOURCE, what)
        if self.need(pointer, resource, "endpoint", what):
            self.endpoint(pointer_join(pointer, "endpoint"), resource["endpoint"])

    def authentication(self, pointer: str, value: Any) -> None:
        """A policy inline, ``{use: name}``, or a name, from ``use.authentications``."""
        if isinstance(value, str):
            self.reference(pointer, value, "authentications")
        elif isinstance(value, Mapping) and "use" in value:
            self.keys(pointer, value, ("use",), "authentication")
            self.reference(pointer_join(pointer, "use"), value["use"], "authentications")
        else:
            self.auth_policy(pointer, value)

    def auth_policy(self, pointer: str, policy: Any) -> None:
        policy = self.mapping(pointer, policy, "an authentication policy")
        if policy is None:
            return
        self.keys(pointer, policy, _AUTH_SCHEMES, "an authentication policy")
        if sum(k in policy for k in _AUTH_SCHEMES) != 1:
            self.add(pointer, f"an authentication policy has exactly one of {', '.join(_AUTH_SCHEMES)}")

    def consumption(self, pointer: str, to: Any, names: tuple[str, ...], *, nested: bool = False) -> None:
        """An event consumption strategy: exactly one of one/any/all; ``until`` only with any."""
        to = self.mapping(pointer, to, "listen.to")
        if to is None:
            return
        self.keys(pointer, to, (*_STRATEGIES, "until"), "listen.to")
        chosen = [k for k in _STRATEGIES if k in to]
        if len(chosen) != 1:
            self.add(
                pointer, f"listen.to needs exactly one of one, any, all (found {', '.join(chosen) or 'none'})"
            )
        if "one" in to:
            self.event_filter(pointer_join(pointer, "one"), to["one"], names)
        for key in ("any", "all"):
            if key in to:
                filters = to[key]
                if not isinstance(filters, list):
                    self.add(pointer_join(pointer, key), f"listen.to.{key} must be a list of event filters")
                    continue
                for i, item in enumerate(filters):
                    self.event_filter(pointer_join(pointer, key, i), item, names)
        if "until" in to:
            until_ptr = pointer_join(pointer, "until")
            if "any" not in to or nested:
                self.add(until_ptr, "`until` goes only with `any`")
            elif isinstance(to["until"], str):
                self.expression(until_ptr, to["until"], bare=True, names=names)
            elif to["until"] is not False:
                self.consumption(until_ptr, to["until"], names, nested=True)

    def event_filter(self, pointer: str, spec: Any, names: tuple[str, ...]) -> None:
        spec = self.mapping(pointer, spec, "an event filter ({with: {type, ...}})")
        if spec is None:
            return
        self.keys(pointer, spec, _FILTER, "an event filter")
        if "with" in spec:
            attributes = self.mapping(pointer_join(pointer, "with"), spec["with"], "the filter's `with`")
            if attributes is not None:
                self.expression(pointer_join(pointer, "with"), attributes, bare=False, names=names)
        if "correlate" in spec:
            self._correlate(pointer_join(pointer, "correlate"), spec["correlate"], names)

    def _correlate(self, pointer: str, correlate: Any, names: tuple[str, ...]) -> None:
        """``{key: {from, expect}}``: ``from`` is jq on the event; ``expect`` a value or ``${}``."""
        correlate = self.mapping(pointer, correlate, "correlate ({key: {from, expect}})")
        if correlate is None:
            return
        for key, rule in correlate.items():
            ptr = pointer_join(pointer, key)
            rule = self.mapping(ptr, rule, f"correlation {key!r} ({{from, expect}})")
            if rule is None:
                continue
            self.keys(ptr, rule, ("from", "expect"), f"correlation {key!r}")
            if self.need(ptr, rule, "from", f"correlation {key!r}", " (jq on the event, e.g. .data.orderId)"):
                self.expression(pointer_join(ptr, "from"), rule["from"], bare=True, names=names)
            if "expect" in rule:
                self.expression(pointer_join(ptr, "expect"), rule["expect"], bare=False, names=names)

    def error(self, pointer: str, error: Any, names: tuple[str, ...]) -> None:
        """An error definition: ``type`` and ``status`` required (RFC 7807 fields)."""
        error = self.mapping(pointer, error, "an error ({type, status, title, detail})")
        if error is None:
            return
        self.keys(pointer, error, _ERROR_KEYS, "an error", ERROR_HINTS)
        if self.need(
            pointer,
            error,
            "type",
            "an error (a URI such as https://serverlessworkflow.io/spec/1.0.0/errors/runtime)",
        ):
            self.string(pointer_join(pointer, "type"), error["type"], "error.type")
        if self.need(pointer, error, "status", "an error"):
            status = error["status"]
            if not is_int(status) and not is_expression(status):
                self.add(
                    pointer_join(pointer, "status"),
                    f"error.status must be a number like 500, not {describe(status)}",
                )
        self.expression(pointer, error, bare=False, names=names)

    def retry(self, pointer: str, policy: Any, names: tuple[str, ...]) -> None:
        """``{when, exceptWhen, delay, backoff, limit: {attempt: {count, duration}, duration}, jitter}``."""
        policy = self.mapping(pointer, policy, "a retry policy")
        if policy is None:
            return
        self.keys(pointer, policy, _RETRY_KEYS, "a retry policy")
        for key in ("when", "exceptWhen"):
            if key in policy:
                self.expression(pointer_join(pointer, key), policy[key], bare=True, names=names)
        if "delay" in policy:
            self.duration(pointer_join(pointer, "delay"), policy["delay"], "retry.delay")
        if "backoff" in policy:
            self.backoff(pointer_join(pointer, "backoff"), policy["backoff"])
        if "limit" in policy:
            self.retry_limit(pointer_join(pointer, "limit"), policy["limit"])
        if "jitter" in policy:
            ptr = pointer_join(pointer, "jitter")
            jitter = self.mapping(ptr, policy["jitter"], "retry.jitter ({from, to})")
            if jitter is not None:
                self.keys(ptr, jitter, ("from", "to"), "retry.jitter")
                for key in ("from", "to"):
                    if self.need(ptr, jitter, key, "retry.jitter"):
                        self.duration(pointer_join(ptr, key), jitter[key], f"retry.jitter.{key}")

    def backoff(self, pointer: str, backoff: Any) -> None:
        backoff = self.mapping(pointer, backoff, "retry.backoff")
        if backoff is None:
            return
        self.keys(pointer, backoff, _BACKOFFS, "retry.backoff")
        if sum(k in backoff for k in _BACKOFFS) != 1:
            self.add(
                pointer,
                "retry.backoff needs exactly one of constant, linear, exponential (e.g. `exponential: {}`)",
            )
        for key in _BACKOFFS:
            if backoff.get(key) is not None:
                self.mapping(pointer_join(pointer, key), backoff[key], f"retry.backoff.{key}")

    def retry_limit(self, pointer: str, limit: Any) -> None:
        limit = self.mapping(pointer, limit, "retry.limit")
        if limit is None:
            return
        self.keys(pointer, limit, ("attempt", "duration"), "retry.limit")
        if "duration" in limit:
            self.duration(pointer_join(pointer, "duration"), limit["duration"], "retry.limit.duration")
        if "attempt" in limit:
            ptr = pointer_join(pointer, "attempt")
            attempt = self.mapping(ptr, limit["attempt"], "retry.limit.attempt")
            if attempt is None:
                return
            self.keys(ptr, attempt, ("count", "duration"), "retry.limit.attempt")
            count = attempt.get("count")
            if "count" in attempt and (not is_int(count) or count < 0):
                self.add(
                    pointer_join(ptr, "count"),
                    f"retry.limit.attempt.count must be a whole number ≥ 0, not {count!r}",
                )
            if "duration" in attempt:
                self.duration(
                    pointer_join(ptr, "duration"), attempt["duration"], "retry.limit.attempt.duration"
                )


def transform(section: Any, field: str) -> Transform | None:
    """An ``input``/``output``/``export`` section's node (None when absent or not a mapping)."""
    if not isinstance(section, Mapping):
        return None
    schema = section.get("schema")
    if schema:
        schema = schema.get("document", schema) if isinstance(schema, Mapping) else schema
    return Transform(expression=section.get(field), schema=schema or None)


def describe(value: Any) -> str:
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
        return f"{base}, not {describe(item)}"
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
