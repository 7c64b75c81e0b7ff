"""The history store: owns the DuckDB file, its writer, and read-only SQL for users."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ..errors import HistoryError, HistoryLockedError, SchemaVersionError
from .schema import SCHEMA_VERSION, current_version, migrate
from .sqlguard import Protected, SQLGuard
from .values import dumps
from .writer import Writer

if TYPE_CHECKING:
    import pandas as pd  # imported by DuckDB when a DataFrame is asked for: keeps start-up fast

__all__ = ["HistoryStore", "classify_sql", "dumps"]

_READ_ONLY_KINDS = {"SELECT", "EXPLAIN"}

# DuckDB shares one database instance per file inside a process, so its file lock cannot stop a
# second lab in the same kernel: this registry does.
_OPEN_FOR_WRITE: set[str] = set()
_OPEN_LOCK = threading.Lock()
_LOCK_HOLDER = re.compile(r"\(PID (\d+)\)")


def classify_sql(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    """Statement kinds in ``sql`` (``SELECT``, ``INSERT``, …), parsed, not run."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise HistoryError(f"SQL does not parse: {exc}".splitlines()[0]) from exc
    kinds = []
    for statement in statements:
        kind = statement.type.name
        if kind == "EXPLAIN" and re.match(r"\s*explain\s+analy[sz]e\b", statement.query, re.IGNORECASE):
            # EXPLAIN ANALYZE runs the statement; classify what it would run.
            inner = re.sub(r"^\s*explain\s+analy[sz]e\s+", "", statement.query, flags=re.IGNORECASE)
            kinds.extend(classify_sql(con, inner))
            continue
        kinds.append(kind)
    return kinds


def _protected(path: Path | None, extra: Sequence[Path]) -> list[Protected]:
    """What user SQL may not read: the history file (with its WAL), and ``extra``."""
    found: list[Protected] = []
    for given in extra:
        real = os.path.realpath(given)
        if os.path.isfile(real):
            why = f"{real} is one of the lab's private files (such as its codec key)"
        else:
            # A folder, or not created yet (the home before the first start): protect what goes in it.
            why = (
                f"it is inside {real}, which the lab keeps private (its home holds the codec key, "
                "server state and history); copy the data you need to another folder and read it there"
            )
        found.append(Protected(real, why, folder=not os.path.isfile(real)))
    if path is not None:
        why = "it is the history file itself; query its tables and views instead"
        real = os.path.realpath(path)
        found += [
            Protected(real, why),
            Protected(real + ".wal", why),
            Protected(real + ".tmp", why, folder=True),
        ]
    return found


class HistoryStore:
    """One open history file: the read-write connection, the writer, and cursors for readers."""

    def __init__(self, path: Path | None, *, read_only: bool = False, protected: Sequence[Path] = ()) -> None:
        """``protected``: paths user SQL may not read (the lab passes its home and codec key)."""
        self.path = path
        self.read_only = read_only
        self._guard = SQLGuard(_protected(path, protected))
        target = ":memory:" if path is None else str(path)
        self._claim = str(path.resolve()) if path is not None and not read_only else None
        if self._claim is not None:
            with _OPEN_LOCK:
                if self._claim in _OPEN_FOR_WRITE:
                    raise HistoryLockedError(target, "another lab in this process")
                _OPEN_FOR_WRITE.add(self._claim)
        try:
            self._open(path, target, read_only)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        if self._claim is not None:
            with _OPEN_LOCK:
                _OPEN_FOR_WRITE.discard(self._claim)
            self._claim = None

    def _open(self, path: Path | None, target: str, read_only: bool) -> None:
        if path is not None and not read_only:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(
                    f"cannot create the folder of history file {path} ({exc.strerror or exc}); "
                    "pass a writable home: start(home=...)"
                ) from None
        if read_only and path is not None and not path.exists():
            raise HistoryError(f"no history file at {path}; run a workflow first or pass --home")
        try:
            self._con = duckdb.connect(target, read_only=read_only)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                holder = _LOCK_HOLDER.search(text)
                raise HistoryLockedError(target, f"PID {holder.group(1)}" if holder else "") from None
            raise HistoryError(f"cannot open history file {target}: {text}") from None
        except duckdb.Error as exc:
            raise HistoryError(f"cannot open history file {target}: {exc}") from None
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursor_lock = threading.Lock()
        self._closed = False
        try:
            if read_only:
                self._check_version()
            else:
                found, _ = migrate(self._con)
                if found > SCHEMA_VERSION:
                    raise SchemaVersionError(target, found, SCHEMA_VERSION)
        except BaseException:
            self._con.close()
            raise
        # The root connection only hands out cursors (under a lock): a DuckDB connection object
        # is not thread-safe, so the writer and every reading thread get their own.
        self.writer: Writer | None = None if read_only else Writer(self._new_cursor())

    def _check_version(self) -> None:
        found = current_version(self._con)
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(str(self.path), found, SCHEMA_VERSION)
        if found < SCHEMA_VERSION:
            raise HistoryError(
                f"history file {self.path} has schema version {found}; open it once with a lab "
                "(stigmer_nb.start) to migrate it"
            )

    # --- reading ----------------------------------------------------------------------------

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor (DuckDB connections are not shared across threads)."""
        if self._closed:
            raise HistoryError("the history store is closed (the lab was stopped); start a new lab")
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._new_cursor()
            self._local.cursor = cur
        return cur

    def _new_cursor(self) -> duckdb.DuckDBPyConnection:
        with self._cursor_lock:
            cur = self._con.cursor()
            self._cursors.append(cur)
        return cur

    def query(self, sql: str, params: Any = None) -> pd.DataFrame:
        """Run a trusted query and return a DataFrame."""
        return self.cursor().execute(sql, params).df()

    def rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run a trusted query and return tuples."""
        return self.cursor().execute(sql, params).fetchall()

    def sql(self, sql: str, params: Any = None, *, write: bool = False) -> pd.DataFrame | None:
        """Run user SQL: read-only unless ``write=True``; the last statement's result as a DataFrame.

        Read-only means SELECT and EXPLAIN statements, checked node by node (a DELETE inside a
        WITH clause is refused, as is what DuckDB cannot serialize for checking, and functions
        that change state such as nextval or checkpoint), run in a transaction that is always
        rolled back. Either way user SQL reads the history's tables and views, and data files
        anywhere else (``read_parquet('export.parquet')``, ``FROM 'x.csv'``), given as literal
        paths or globs; never anything inside the lab's home (codec key, server state and log,
        the history file and its WAL) nor the history file wherever it is: those raise
        ProtectedPathError.
        """
        cur = self.cursor()
        kinds = self._guard.check(cur, sql, write=write, params=params)
        if not kinds:
            raise HistoryError("no SQL statement given")
        if write and self.writer is None:
            raise HistoryError("this history file was opened read-only; writes need the lab that owns it")
        if write and any(k not in _READ_ONLY_KINDS for k in kinds):
            # Writes are serialised with the lab's own writes: wait for what is queued first.
            assert self.writer is not None
            self.writer.flush()
        if not write:
            return self._read(cur, sql, params)
        try:
            return cur.execute(sql, params).df()
        except duckdb.Error as exc:
            raise HistoryError(str(exc).splitlines()[0]) from None

    def _read(self, cur: duckdb.DuckDBPyConnection, sql: str, params: Any) -> pd.DataFrame | None:
        # Defence in depth: a write the check missed is rolled back with the transaction. The
        # lab's writer commits on its own cursor meanwhile (DuckDB is MVCC); this read sees its
        # snapshot.
        try:
            cur.execute("BEGIN")
        except duckdb.Error:
            raise HistoryError(
                "a transaction opened with write=True is still open on this thread; "
                "end it first: lab.sql('COMMIT', write=True) or 'ROLLBACK'"
            ) from None
        try:
            return cur.execute(sql, params).df()
        except duckdb.Error as exc:
            raise HistoryError(str(exc).splitlines()[0]) from None
        finally:
            try:
                cur.execute("ROLLBACK")
            except duckdb.Error:
                pass  # the failed statement already ended it

    # --- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Commit pending writes, close cursors and the file. Idempotent."""
        if self._closed:
            return
        if self.writer is not None:
            self.writer.close()
        self._closed = True
        with self._cursor_lock:
            for cur in self._cursors:
                try:
                    cur.close()
                except duckdb.Error:
                    pass
            self._cursors.clear()
        self._con.close()
        self._release()

    @property
    def closed(self) -> bool:
        """True after ``close()``."""
        return self._closed
