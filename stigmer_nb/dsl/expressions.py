"""The jq evaluator: runtime expressions with the spec's arguments, compiled once and cached.

Compiling a jq program costs about a millisecond and running a compiled one a few microseconds,
but ``jq.compile(args=...)`` binds variables at compile time. So each expression is compiled once
as ``.[1] as {$context, $input, …} | .[0] | (EXPR)`` and fed ``[data, variables]`` on every run.
Nondeterministic builtins are shadowed: workflow code must replay identically.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

import jq

__all__ = [
    "STANDARD_ARGS",
    "ExpressionError",
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


_cache: dict[tuple[str, tuple[str, ...]], Any] = {}
_cache_lock = threading.Lock()


def is_expression(value: Any) -> bool:
    """True for a string written as ``${ … }``."""
    return isinstance(value, str) and _WRAPPED.match(value) is not None


def strip_expression(text: str) -> str:
    """The jq inside ``${ … }``, or the text itself when it is not wrapped."""
    match = _WRAPPED.match(text)
    return match.group(1).strip() if match else text.strip()


def compile_expression(expression: str, names: tuple[str, ...] = ()) -> Any:
    """The compiled program for ``expression`` with variables ``names`` (cached)."""
    key = (expression, names)
    program = _cache.get(key)
    if program is not None:
        return program
    for name in names:
        if not _IDENT.match(name):
            raise ExpressionError(expression, f"${name} is not a valid variable name")
    binding = ", ".join(f"${n}" for n in names)
    if names:
        source = f"{_PRELUDE}.[1] as {{{binding}}} | .[0] | ({expression})"
    else:
        source = f"{_PRELUDE}{expression}"
    try:
        program = jq.compile(source)
    except ValueError as exc:
        raise ExpressionError(expression, _compile_message(expression, names, str(exc))) from None
    with _cache_lock:
        _cache[key] = program
    return program


def _first_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # jq prints the error, then "jq: N compile error(s)"; the first line says what is wrong.
    return (lines[0] if lines else text).rstrip(":").strip()


def _compile_message(expression: str, names: tuple[str, ...], fallback: str) -> str:
    # Positions in the wrapped program mean nothing to the author: recompile the bare text, with
    # the same variables defined so an undefined one is named correctly.
    try:
        jq.compile(expression, args=dict.fromkeys(names))
    except ValueError as exc:
        return _first_line(str(exc))
    return _first_line(fallback)


def referenced(expression: str, available: set[str] | frozenset[str]) -> tuple[str, ...]:
    """Variables ``expression`` mentions that are in ``available`` (only those are bound)."""
    return tuple(sorted({m for m in _VARIABLE.findall(expression) if m in available}))


_STANDARD = frozenset(STANDARD_ARGS)


def evaluate(expression: str, data: Any, variables: Mapping[str, Any] | None = None) -> Any:
    """Run jq ``expression`` (no ``${}``) on ``data``; the first result, or None when it yields nothing."""
    variables = variables or {}
    names = referenced(expression, _STANDARD | variables.keys()) if "$" in expression else ()
    program = compile_expression(expression, names)
    try:
        if names:
            results = program.input_value([data, {n: variables.get(n) for n in names}]).all()
        else:
            results = program.input_value(data).all()
    except ValueError as exc:
        raise ExpressionError(expression, _first_line(str(exc))) from None
    except TypeError as exc:
        raise ExpressionError(expression, f"value is not JSON: {exc}") from None
    return results[0] if results else None


def evaluate_field(value: Any, data: Any, variables: Mapping[str, Any] | None = None) -> Any:
    """An expression-typed field (``if``, ``when``, ``for.in``, ``input.from`` …): jq whether or
    not it is wrapped in ``${}``; a non-string value is evaluated as an object of expressions."""
    if isinstance(value, str):
        return evaluate(strip_expression(value), data, variables)
    return evaluate_value(value, data, variables)


def evaluate_value(value: Any, data: Any, variables: Mapping[str, Any] | None = None) -> Any:
    """A value whose nested strings are expressions only when wrapped in ``${}`` (``set``, ``with`` …)."""
    if isinstance(value, str):
        match = _WRAPPED.match(value)
        return evaluate(match.group(1).strip(), data, variables) if match else value
    if isinstance(value, dict):
        return {k: evaluate_value(v, data, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate_value(v, data, variables) for v in value]
    return value


def truthy(value: Any) -> bool:
    """jq truthiness: only ``false`` and ``null`` are false."""
    return value is not None and value is not False
