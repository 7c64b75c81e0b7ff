"""The jq evaluator: runtime expressions with the spec's arguments, run out of process under limits.

Each expression becomes one program, ``.[1] as {$context, $input, …} | .[0] | (EXPR)``, fed
``[data, variables]`` (``jq.compile(args=...)`` would bind variables at compile time). Programs run
in child processes (``jqpool``) with a deadline, a memory limit and a result-size limit: jq holds
the GIL, so an in-process runaway froze the whole lab. Validation compiles in-process (bounded and
fast). Nondeterministic builtins are shadowed: workflow code must replay identically.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import jq

from .jqpool import JqLimitError, JqLimits, JqRuntimeError, compile_remote, dumps, evaluate_remote

__all__ = [
    "STANDARD_ARGS",
    "ExpressionError",
    "ExpressionLimitError",
    "JqLimits",
    "check_expression",
    "compile_error",
    "compile_expression",
    "evaluate",
    "evaluate_field",
    "evaluate_value",
    "is_expression",
    "referenced",
    "strip_expression",
    "truthy",
]

STANDARD_ARGS = ("context", "input", "output", "secrets", "task", "workflow", "runtime", "authorization")
"""Arguments every expression may name; unset ones are null."""

_WRAPPED = re.compile(r"^\s*\$\{(.*)\}\s*$", re.DOTALL)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")

# Shadow what would make replay differ: the clock, the environment, stdin, the local time zone.
_PRELUDE = (
    'def now: error("now is not available in workflow expressions (replay must be deterministic)"); '
    'def env: error("env is not available in workflow expressions; use $secrets or runtime_env"); '
    'def input: error("input is not available in workflow expressions; use $input"); '
    'def inputs: error("inputs is not available in workflow expressions"); '
    "def input_filename: null; "
    'def localtime: error("localtime depends on the machine; use gmtime"); '
    'def strflocaltime(f): error("strflocaltime depends on the machine; use strftime"); '
    "def debug: .; def debug(m): .; def stderr: .; "
    "{} as $ENV | "
)


class ExpressionError(ValueError):
    """An expression did not compile or failed while running (a spec ``expression`` error)."""

    def __init__(self, expression: str, message: str) -> None:
        text = message.removeprefix("jq: error: ").strip()
        super().__init__(f"expression {expression.strip()!r} failed: {text}")
        self.expression = expression
        self.message = text


class ExpressionLimitError(ExpressionError):
    """An expression ran past a limit (time, memory, result size): retrying cannot help."""


_CACHE_SIZE = 4096
_cache: OrderedDict[tuple[str, tuple[str, ...]], Any] = OrderedDict()
_cache_lock = threading.Lock()


def is_expression(value: Any) -> bool:
    """True for a string written as ``${ … }``."""
    return isinstance(value, str) and _WRAPPED.match(value) is not None


def strip_expression(text: str) -> str:
    """The jq inside ``${ … }``, or the text itself when it is not wrapped."""
    match = _WRAPPED.match(text)
    return match.group(1).strip() if match else text.strip()


def program_source(expression: str, names: tuple[str, ...] = ()) -> str:
    """The jq program that runs ``expression`` with variables ``names`` bound from ``.[1]``."""
    for name in names:
        if not _IDENT.match(name):
            raise ValueError(f"${name} is not a valid variable name")
    if not names:
        return f"{_PRELUDE}{expression}"
    binding = ", ".join(f"${n}" for n in names)
    return f"{_PRELUDE}.[1] as {{{binding}}} | .[0] | ({expression})"


def compile_expression(expression: str, names: tuple[str, ...] = ()) -> Any:
    """The compiled program for ``expression`` with variables ``names`` (cached; for validation)."""
    key = (expression, names)
    with _cache_lock:
        program = _cache.get(key)
        if program is not None:
            _cache.move_to_end(key)
            return program
    try:
        program = jq.compile(program_source(expression, names))
    except ValueError as exc:
        raise ExpressionError(expression, compile_message(expression, names, str(exc))) from None
    with _cache_lock:
        _cache[key] = program
        while len(_cache) > _CACHE_SIZE:  # documents are user input: unique expressions are unbounded
            _cache.popitem(last=False)
    return program


def check_expression(expression: str, names: tuple[str, ...] = ()) -> None:
    """Raise ``ExpressionError`` when ``expression`` does not compile, exactly as the engine would
    compile it. jq folds constants while compiling (``"x" * 1e9`` is built there), so only bounded
    expressions compile in this process; the others compile in an evaluator process."""
    if _bounded(expression):
        compile_expression(expression, names)
        return
    error = compile_error(program_source(expression, names))
    if error is not None:
        if error.startswith(_STOPPED):
            raise ExpressionLimitError(expression, error)
        raise ExpressionError(expression, compile_error(expression, names) or error)


def compile_error(source: str, names: tuple[str, ...] = ()) -> str | None:
    """jq's first error compiling ``source`` with ``names`` as variables (null), or None."""
    try:
        if _bounded(source):
            try:
                jq.compile(source, args=dict.fromkeys(names))
            except ValueError as exc:
                return first_line(str(exc))
            return None
        return compile_remote(source, names, _DEFAULT_LIMITS)
    except JqLimitError as exc:
        return f"{_STOPPED}{exc}"


_STOPPED = "compiling it was stopped: "


def first_line(text: str) -> str:
    """The line of a jq error message that says what is wrong."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # jq prints the error, then "jq: N compile error(s)"; the first line says what is wrong.
    return (lines[0] if lines else text).rstrip(":").strip()


def compile_message(expression: str, names: tuple[str, ...], fallback: str) -> str:
    """A compile error as the author wrote the expression (not as it was wrapped)."""
    # Positions in the wrapped program mean nothing to the author: recompile the bare text, with
    # the same variables defined so an undefined one is named correctly.
    try:
        jq.compile(expression, args=dict.fromkeys(names))
    except ValueError as exc:
        return first_line(str(exc))
    return first_line(fallback)


def referenced(expression: str, available: set[str] | frozenset[str]) -> tuple[str, ...]:
    """Variables ``expression`` mentions that are in ``available`` (only those are bound)."""
    return tuple(sorted({m for m in _VARIABLE.findall(expression) if m in available}))


_STANDARD = frozenset(STANDARD_ARGS)


def evaluate(
    expression: str, data: Any, variables: Mapping[str, Any] | None = None, limits: JqLimits | None = None
) -> Any:
    """Run jq ``expression`` (no ``${}``) on ``data``; the first result, or None when it yields nothing."""
    variables = variables or {}
    names = referenced(expression, _STANDARD | variables.keys()) if "$" in expression else ()
    value = [data, {n: variables.get(n) for n in names}] if names else data
    try:
        if _bounded(expression):
            text = dumps(value)
            if len(text) <= _IN_PROCESS_BYTES:
                results = compile_expression(expression, names).input_text(text.decode()).all()
                return results[0] if results else None
        results = evaluate_remote(expression, names, value, limits or _DEFAULT_LIMITS)
    except JqLimitError as exc:
        raise ExpressionLimitError(expression, f"stopped: {exc}") from None
    except JqRuntimeError as exc:
        raise ExpressionError(expression, str(exc)) from None
    except ValueError as exc:  # jq's runtime errors in-process (compile errors are ExpressionError)
        if isinstance(exc, ExpressionError):
            raise
        raise ExpressionError(expression, first_line(str(exc))) from None
    except TypeError as exc:
        raise ExpressionError(expression, f"value is not JSON: {exc}") from None
    return results[0] if results else None


# In-process fast path. jq holds the GIL, so only programs that cannot run away run here: short,
# without loops, generators over the data, definitions, regexes, assignment, or the operators whose
# cost is not linear (`*` repeats strings, `-` of arrays is quadratic), on small data.
_IN_PROCESS_BYTES = 64 * 1024
_IN_PROCESS_CHARS = 256
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_FIELD = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*|\.\s*[A-Za-z_][A-Za-z0-9_]*|\b[A-Za-z_][A-Za-z0-9_]*\s*:")
_SAFE_WORDS = frozenset(
    [
        "and",
        "or",
        "not",
        "if",
        "then",
        "elif",
        "else",
        "end",
        "null",
        "true",
        "false",
        "length",
        "utf8bytelength",
        "tostring",
        "tonumber",
        "type",
        "ascii_downcase",
        "ascii_upcase",
        "keys",
        "has",
        "startswith",
        "endswith",
        "ltrimstr",
        "rtrimstr",
        "tojson",
        "floor",
        "sqrt",
        "select",
        "empty",
        "error",
        "values",
        "reverse",
        "sort",
        "unique",
        "min",
        "max",
    ]
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNSAFE_SYMBOLS = re.compile(r"\*|-|(?<![=!<>])=(?!=)|\.\.|\[\s*\]|@|;|#|\?//")
_bounded_cache: dict[str, bool] = {}


def _bounded(expression: str) -> bool:
    """True when ``expression`` is short and loop-free: its cost is linear in its input."""
    known = _bounded_cache.get(expression)
    if known is not None:
        return known
    ok = len(expression) <= _IN_PROCESS_CHARS and "\\(" not in expression
    if ok:
        rest = _FIELD.sub(" ", _STRING.sub(" ", expression))
        ok = not _UNSAFE_SYMBOLS.search(rest) and all(w in _SAFE_WORDS for w in _WORD.findall(rest))
    if len(_bounded_cache) > _CACHE_SIZE:
        _bounded_cache.clear()
    _bounded_cache[expression] = ok
    return ok


_DEFAULT_LIMITS = JqLimits()


def evaluate_field(
    value: Any, data: Any, variables: Mapping[str, Any] | None = None, limits: JqLimits | None = None
) -> Any:
    """An expression-typed field (``if``, ``when``, ``for.in``, ``input.from`` …): jq whether or
    not it is wrapped in ``${}``; a non-string value is evaluated as an object of expressions."""
    if isinstance(value, str):
        return evaluate(strip_expression(value), data, variables, limits)
    return evaluate_value(value, data, variables, limits)


def evaluate_value(
    value: Any, data: Any, variables: Mapping[str, Any] | None = None, limits: JqLimits | None = None
) -> Any:
    """A value whose nested strings are expressions only when wrapped in ``${}`` (``set``, ``with`` …)."""
    if isinstance(value, str):
        match = _WRAPPED.match(value)
        return evaluate(match.group(1).strip(), data, variables, limits) if match else value
    if isinstance(value, dict):
        return {k: evaluate_value(v, data, variables, limits) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate_value(v, data, variables, limits) for v in value]
    return value


def truthy(value: Any) -> bool:
    """jq truthiness: only ``false`` and ``null`` are false."""
    return value is not None and value is not False
