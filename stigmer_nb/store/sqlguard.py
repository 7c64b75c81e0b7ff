"""Checks user SQL before it runs: no write hidden inside a query, no read of the lab's own files.

DuckDB parses the SQL and ``json_serialize_sql`` hands back the tree of each SELECT, which is
walked here: every query node must be a reading one, and every function that can open files
must name its files as literals that lie outside the protected paths (the lab's home, the
history file). A statement DuckDB cannot serialize is refused on the read-only path.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ..errors import HistoryError, ProtectedPathError, ReadOnlySQLError

__all__ = ["Protected", "SQLGuard"]

_READ_ONLY_KINDS = frozenset({"SELECT", "EXPLAIN"})

# The query nodes that only read. Anything else the serializer emits as ``*_NODE``
# (DELETE_QUERY_NODE, INSERT_QUERY_NODE, UPDATE_QUERY_NODE, COPY_QUERY_NODE, or a node a later
# DuckDB adds) is refused on the read-only path: unknown means no.
_QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})

# Functions that open files: these names, plus any name with one of the prefixes or suffixes
# below (read_csv, read_duckdb, parquet_kv_metadata, delta_scan, st_read, ...).
_FILE_FUNCTIONS = frozenset({"glob", "sniff_csv", "parquet_scan", "parquet_metadata", "parquet_schema"})
_FILE_PREFIXES = ("read_", "parquet_", "iceberg_", "delta_", "st_read")
_FILE_SUFFIXES = ("_scan", "_metadata")

# Reachable from a SELECT and changing database or session state (checkpoints, sequences,
# logging, profiling, parser extensions, external resources). setseed is left alone: it only
# reseeds this connection's random().
_STATEFUL = frozenset({
    "checkpoint", "force_checkpoint", "nextval", "setval", "write_log", "truncate_duckdb_logs",
    "enable_logging", "disable_logging", "enable_profiling", "disable_profiling",
    "add_grammar_extension", "remove_grammar_extension", "register_external_resource",
    "register_external_resource_type", "create_external_resource", "destroy_external_resource",
    "deregister_external_resource",
})  # fmt: skip

# These run SQL handed to them as a string, out of this check's sight: refused even with writes on.
_HIDDEN_SQL = frozenset({"query", "query_table", "json_execute_serialized_sql"})

_EXPLAIN = re.compile(
    r"\s*explain\b\s*(?P<a1>analy[sz]e\b\s*)?(?:\((?P<opts>[^)]*)\)\s*)?(?P<a2>analy[sz]e\b\s*)?",
    re.IGNORECASE,
)
_URL = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://")
# A name "looks like a path" when it could only mean a file: DuckDB scans 'x.csv' or 'dir/x'.
_PATHY = re.compile(r"[/\\.*?\[~]")


@dataclass(frozen=True)
class Protected:
    """A path user SQL may not read (nor anything under it), and why, for the error."""

    path: str
    why: str
    folder: bool = False

    def holds(self, real: str) -> bool:
        """True if the resolved path ``real`` is this path or lies under it."""
        return real == self.path or real.startswith(self.path.rstrip(os.sep) + os.sep)


class SQLGuard:
    """Refuses user SQL that writes (unless allowed) or reads a protected path."""

    def __init__(self, protected: Sequence[Protected]) -> None:
        self.protected = tuple(protected)

    def check(
        self, con: duckdb.DuckDBPyConnection, sql: str, *, write: bool, params: Any = None
    ) -> list[str]:
        """Statement kinds in ``sql`` (what EXPLAIN ANALYZE would run counts as its own); raises if refused."""
        statements = _parse(con, sql)
        paths = _Paths(con, self.protected)
        kinds = []
        for statement in statements:
            kind, text = statement.type.name, statement.query
            inner = kind
            if kind == "EXPLAIN":
                # EXPLAIN ANALYZE runs its statement; plain EXPLAIN still binds it (and so opens
                # its files): either way the inner statement is what gets checked.
                unwrapped = _unwrap_explain(con, text)
                if unwrapped is not None:
                    text, inner, analyze = unwrapped
                    kind = inner if analyze else "EXPLAIN"
            kinds.append(kind)
            if not write and kind not in _READ_ONLY_KINDS:
                raise ReadOnlySQLError(kind)
            tree = _serialize(con, text) if inner == "SELECT" else None
            if tree is None:
                if not write:
                    raise ReadOnlySQLError(
                        kind,
                        found=f"this {inner} statement cannot be checked for hidden writes or file "
                        "reads (DuckDB cannot serialize it)",
                    )
                _check_literals(text, paths)
                continue
            _walk(tree, paths, write=write, params=params)
            if write:
                _check_literals(text, paths)  # COPY TO and friends inside a WITH clause
        return kinds


def _parse(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    try:
        return list(con.extract_statements(sql))
    except duckdb.Error as exc:
        raise HistoryError(f"SQL does not parse: {exc}".splitlines()[0]) from exc


def _unwrap_explain(con: duckdb.DuckDBPyConnection, text: str) -> tuple[str, str, bool] | None:
    """(inner SQL, its kind, whether it runs) of an EXPLAIN, or None if it is not the usual shape."""
    match = _EXPLAIN.match(text)
    if match is None:
        return None
    opts = match.group("opts") or ""
    analyze = bool(match.group("a1") or match.group("a2") or re.search(r"analy[sz]e", opts, re.I))
    inner = text[match.end() :]
    statements = _parse(con, inner)
    if len(statements) != 1 or statements[0].type.name == "EXPLAIN":
        return None
    return inner, statements[0].type.name, analyze


def _serialize(con: duckdb.DuckDBPyConnection, text: str) -> dict[str, Any] | None:
    """The parsed tree of one SELECT, or None where DuckDB cannot serialize it."""
    try:
        raw = con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()
    except duckdb.Error:
        return None
    tree = json.loads(raw[0]) if raw and raw[0] else None
    if not isinstance(tree, dict) or tree.get("error"):
        return None
    return tree


def _walk(tree: dict[str, Any], paths: _Paths, *, write: bool, params: Any = None) -> None:
    stack: list[tuple[Any, bool]] = [(tree, False)]
    while stack:
        node, in_with = stack.pop()
        if isinstance(node, list):
            stack.extend((item, in_with) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if isinstance(kind, str):
            if not write and kind.endswith("_NODE") and kind not in _QUERY_NODES:
                name = kind.removesuffix("_NODE").removesuffix("_QUERY")
                where = "inside a WITH clause" if in_with else "inside the query"
                article = "an" if name[:1] in "AEIOU" else "a"
                raise ReadOnlySQLError(name, found=f"{article} {name} {where} changes the history")
            if kind == "BASE_TABLE":
                name = str(node.get("table_name") or "")
                if _PATHY.search(name):  # FROM 'data.csv': DuckDB reads the file
                    paths.check(name)
        if node.get("class") == "FUNCTION":
            _check_function(node, paths, write=write, params=params)
        if isinstance(node.get("file_path"), str):  # COPY ... TO 'file' (only reached with writes on)
            paths.check(node["file_path"])
        if node.get("file_path_expression") is not None:
            raise ProtectedPathError("the target of COPY", "it is not a string literal; write it as one")
        for key, value in node.items():
            if isinstance(value, dict | list):
                stack.append((value, in_with or key == "cte_map"))


def _check_function(node: dict[str, Any], paths: _Paths, *, write: bool, params: Any = None) -> None:
    name = str(node.get("function_name") or "").lower()
    if name in _HIDDEN_SQL:
        raise HistoryError(
            f"{name}() runs SQL given as a string, which cannot be checked; write that SQL directly"
        )
    if name in _STATEFUL and not write:
        raise ReadOnlySQLError("SELECT", found=f"{name}() changes the database's state")
    if not (name in _FILE_FUNCTIONS or name.startswith(_FILE_PREFIXES) or name.endswith(_FILE_SUFFIXES)):
        return
    args = [a.get("expression", a) for a in node.get("arguments") or node.get("children") or []]
    positional = [a for a in args if not _is_named(a)]
    if positional:
        files = _literal_strings(positional[0], params)
        if files is None:
            raise ProtectedPathError(
                f"the file given to {name}()",
                "it is neither a string literal nor a bound parameter, so it cannot be checked against "
                f"the lab's own files; write the path as a literal, e.g. {name}('data.csv'), or pass "
                "it as a parameter",
            )
        for file in files:
            paths.check(file)
    for other in [a for a in args if not positional or a is not positional[0]]:
        for text in _strings_in(other):  # options rarely name files; check those that look like one
            paths.check(text, loose=True)


def _is_named(expr: dict[str, Any]) -> bool:
    """True for ``option = value`` (how table-function options parse)."""
    left = expr.get("left")
    return (
        expr.get("type") == "COMPARE_EQUAL" and isinstance(left, dict) and left.get("class") == "COLUMN_REF"
    )


def _literal_strings(expr: dict[str, Any], params: Any = None) -> list[str] | None:
    """The strings of ``'x'``, ``['x', 'y']`` or a bound parameter (``?``, ``$name``), else None."""
    if expr.get("class") == "PARAMETER" and params is not None:
        value = _parameter(str(expr.get("identifier")), params)
        if isinstance(value, str):
            return [value]
        if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
            return list(value)
        return None
    if expr.get("class") == "CONSTANT":
        literal = expr.get("literal") or {}
        return [literal["text"]] if literal.get("kind") in {"STRING", "VARCHAR"} else None
    if expr.get("class") == "FUNCTION" and expr.get("function_name") in {"list_value", "array_value"}:
        items = [_literal_strings(a.get("expression", a), params) for a in expr.get("arguments") or []]
        if all(item is not None and len(item) == 1 for item in items):
            return [item[0] for item in items if item]
    return None


def _parameter(identifier: str, params: Any) -> Any:
    """The value bound to ``?`` / ``$1`` (1-based, positional) or ``$name`` (a mapping)."""
    if isinstance(params, Mapping):
        return params.get(identifier)
    if isinstance(params, Sequence) and not isinstance(params, str) and identifier.isdigit():
        index = int(identifier) - 1
        return params[index] if 0 <= index < len(params) else None
    return None


def _strings_in(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _strings_in(item)
    elif isinstance(node, dict):
        if node.get("class") == "CONSTANT":
            literal = node.get("literal") or {}
            if literal.get("kind") in {"STRING", "VARCHAR"}:
                yield literal["text"]
        for value in node.values():
            if isinstance(value, dict | list):
                yield from _strings_in(value)


def _check_literals(text: str, paths: _Paths) -> None:
    """Check every quoted string and identifier in ``text`` that could be a path (no tree to walk)."""
    tokens = duckdb.tokenize(text)
    for i, (start, kind) in enumerate(tokens):
        if kind not in (duckdb.token_type.string_const, duckdb.token_type.identifier):
            continue
        end = tokens[i + 1][0] if i + 1 < len(tokens) else len(text)
        token = text[start:end].strip()
        if token[:1] in {"e", "E"} and token[1:2] == "'":
            token = token[1:]
        if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
            paths.check(token[1:-1].replace(token[0] * 2, token[0]), loose=True)


class _Paths:
    """Resolves paths the way DuckDB would open them and refuses protected ones."""

    def __init__(self, con: duckdb.DuckDBPyConnection, protected: Sequence[Protected]) -> None:
        self._con = con
        self._protected = protected
        self._settings: tuple[list[str], str] | None = None

    def _duckdb_settings(self) -> tuple[list[str], str]:
        # A SET in an earlier write=True call can move where DuckDB looks for relative paths
        # and what it takes ``~`` to mean: resolve as it would.
        if self._settings is None:
            search, home = self._con.execute(
                "SELECT current_setting('file_search_path'), current_setting('home_directory')"
            ).fetchone() or ("", "")
            self._settings = ([d for d in str(search or "").split(",") if d], str(home or ""))
        return self._settings

    def _candidates(self, raw: str) -> list[str]:
        url = _URL.match(raw)
        if url is not None:
            if url.group("scheme").lower() != "file":
                return []  # s3://, https://, ...: not on this disk
            raw = raw[url.end() :]
            raw = raw if raw.startswith("/") else "/" + raw.partition("/")[2]  # file://host/x
        if not self._protected:
            return []
        search, home = self._duckdb_settings()
        if raw.startswith("~"):
            bases = [os.path.expanduser(raw)]
            if home and (raw == "~" or raw.startswith("~/")):
                bases.append(home + raw[1:])
            return [os.path.join(os.getcwd(), b) for b in bases]
        return [os.path.join(base, raw) for base in [os.getcwd(), *search]]

    def check(self, raw: str, *, loose: bool = False) -> None:
        """Raise ProtectedPathError if ``raw`` (a path or glob) can reach a protected path.

        ``loose``: a string that does not look like a path counts only if such a file exists.
        """
        pathy = bool(_PATHY.search(raw))
        for candidate in self._candidates(raw):
            if loose and not pathy and not os.path.lexists(candidate):
                continue
            hit = self._reaches(candidate)
            if hit is not None:
                raise ProtectedPathError(repr(raw), hit.why)

    def _reaches(self, candidate: str) -> Protected | None:
        parts = Path(candidate).parts
        magic = next((i for i, part in enumerate(parts) if glob.has_magic(part)), None)
        if magic is None:
            return self._holding(os.path.realpath(candidate))
        fixed = os.path.realpath(os.path.join(*parts[:magic]))
        rest = parts[magic:]
        hit = self._holding(fixed)
        if hit is not None:
            return hit
        for protected in self._protected:
            if _could_match((*Path(fixed).parts, *rest), Path(protected.path).parts, protected.folder):
                return protected
        # Symlinks under the fixed prefix can still lead in: look at what the pattern finds.
        pattern = os.path.join(glob.escape(fixed), *rest)
        for found in glob.iglob(pattern, recursive=True, include_hidden=True):
            if os.path.isdir(found):
                continue  # DuckDB's globs yield files: '/data/*' does not read '/data/home/*'
            hit = self._holding(os.path.realpath(found))
            if hit is not None:
                return hit
        return None

    def _holding(self, real: str) -> Protected | None:
        return next((p for p in self._protected if p.holds(real)), None)


def _could_match(pattern: tuple[str, ...], target: tuple[str, ...], folder: bool) -> bool:
    """True if the glob ``pattern`` (by components) could match the file ``target``, or a file
    under ``target`` if it is a ``folder``."""
    if ".." in pattern:
        return True  # cannot tell without the disk: refuse

    def match(i: int, j: int) -> bool:
        if j == len(target):
            return i < len(pattern) if folder else i == len(pattern) or pattern[i:] == ("**",)
        if i == len(pattern):
            return False
        part = pattern[i]
        if part == "**":
            return match(i + 1, j) or match(i, j + 1)
        # DuckDB's [...] classes differ from fnmatch's ([^x] vs [!x]): count any as a match.
        same = "[" in part or fnmatch.fnmatchcase(target[j], part)
        return same and match(i + 1, j + 1)

    return match(0, 0)
