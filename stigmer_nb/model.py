"""Resource model: Stigmer's enums, IDs, slugs, and the workflow / instance / execution records."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from .errors import InvalidInputError

__all__ = [
    "ExecutionPhase",
    "ExecutionRecord",
    "InstanceRecord",
    "WorkflowRecord",
    "WorkflowTaskKind",
    "WorkflowTaskStatus",
    "default_execution_name",
    "new_id",
    "new_ulid",
    "slugify",
]


class ExecutionPhase(IntEnum):
    """Phase of a workflow execution (Stigmer ``ExecutionPhase``; names and numbers kept)."""

    EXECUTION_PHASE_UNSPECIFIED = 0
    EXECUTION_PENDING = 1
    EXECUTION_IN_PROGRESS = 2
    EXECUTION_COMPLETED = 3
    EXECUTION_FAILED = 4
    EXECUTION_CANCELLED = 5
    # Past Stigmer's numbers: its runner can only flip an in-memory flag for pause, and has no
    # terminate; here both are real states of the run, so the history says so.
    EXECUTION_PAUSED = 6
    """Stopped between two tasks until resumed (timers already running keep their deadline)."""
    EXECUTION_TERMINATED = 7
    """Stopped at once by ``terminate``: no task got to finish or clean up."""

    @property
    def terminal(self) -> bool:
        """True for COMPLETED, FAILED, CANCELLED and TERMINATED."""
        return self in _TERMINAL


_TERMINAL = {
    ExecutionPhase.EXECUTION_COMPLETED,
    ExecutionPhase.EXECUTION_FAILED,
    ExecutionPhase.EXECUTION_CANCELLED,
    ExecutionPhase.EXECUTION_TERMINATED,
}


class WorkflowTaskStatus(IntEnum):
    """Status of one task run (Stigmer ``WorkflowTaskStatus``; names and numbers kept)."""

    WORKFLOW_TASK_STATUS_UNSPECIFIED = 0
    WORKFLOW_TASK_PENDING = 1
    WORKFLOW_TASK_IN_PROGRESS = 2
    WORKFLOW_TASK_COMPLETED = 3
    WORKFLOW_TASK_FAILED = 4
    WORKFLOW_TASK_SKIPPED = 5


class WorkflowTaskKind(IntEnum):
    """Kind of a task in Stigmer's ``WorkflowSpec`` (names and numbers kept)."""

    WORKFLOW_TASK_KIND_UNSPECIFIED = 0
    WORKFLOW_TASK_KIND_SET = 1
    WORKFLOW_TASK_KIND_HTTP_CALL = 2
    WORKFLOW_TASK_KIND_GRPC_CALL = 3
    WORKFLOW_TASK_KIND_CALL_ACTIVITY = 4
    WORKFLOW_TASK_KIND_SWITCH = 5
    WORKFLOW_TASK_KIND_FOR = 6
    WORKFLOW_TASK_KIND_FORK = 7
    WORKFLOW_TASK_KIND_TRY = 8
    WORKFLOW_TASK_KIND_LISTEN = 9
    WORKFLOW_TASK_KIND_WAIT = 10
    WORKFLOW_TASK_KIND_RAISE = 11
    WORKFLOW_TASK_KIND_RUN = 12
    WORKFLOW_TASK_KIND_AGENT_CALL = 13


# --- IDs -------------------------------------------------------------------------------------

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_PREFIXES = {"workflow": "wfl", "workflow_instance": "win", "workflow_execution": "wex", "batch": "bat"}


def new_ulid() -> str:
    """A lowercase ULID: 48-bit millisecond time + 80 random bits, Crockford base32."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(kind: str) -> str:
    """``wfl-``, ``win-`` or ``wex-`` + lowercase ULID, as Stigmer's ``GenerateID`` does."""
    return f"{_PREFIXES[kind]}-{new_ulid()}"


_SLUG_DROP = re.compile(r"[^a-z0-9-]")
_SLUG_DASHES = re.compile(r"-{2,}")


def slugify(name: str) -> str:
    """Stigmer's slug rule: lowercase, spaces to ``-``, keep ``[a-z0-9-]``, collapse and trim ``-``."""
    if not name or not name.strip():
        raise InvalidInputError("resource name is empty, cannot generate slug; give it a name")
    slug = _SLUG_DASHES.sub("-", _SLUG_DROP.sub("", name.lower().replace(" ", "-"))).strip("-")
    if not slug:
        raise InvalidInputError(f"name {name!r} has no letters or digits to build a slug from; rename it")
    return slug


def default_execution_name() -> str:
    """``execution-<unix micros>``, the name Stigmer's CLI gives an execution."""
    return f"execution-{time.time_ns() // 1000}"


# --- Records ---------------------------------------------------------------------------------


@dataclass
class WorkflowRecord:
    """A workflow template: a DSL document (or a Stigmer WorkflowSpec) under a unique slug."""

    id: str
    name: str
    slug: str
    namespace: str
    version: str
    document: dict[str, Any]
    """The DSL document as run (converted from a WorkflowSpec when that was given)."""
    spec: dict[str, Any] | None = None
    """The Stigmer ``WorkflowSpec`` (protojson form) it came from, if any."""
    description: str = ""
    default_instance_id: str | None = None
    document_hash: str = ""
    """Content hash of ``document``: its current version (``workflow_versions``)."""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class InstanceRecord:
    """A configured instance of a workflow; every workflow gets ``<name>-default``."""

    id: str
    name: str
    slug: str
    workflow_id: str
    description: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class ExecutionRecord:
    """One execution and its merged status (what ``workflow_executions`` holds)."""

    id: str
    name: str
    slug: str
    workflow_id: str
    workflow_instance_id: str
    workflow_name: str
    phase: ExecutionPhase = ExecutionPhase.EXECUTION_PENDING
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    runtime_env: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``{KEY: {"value": ..., "is_secret": bool}}``; secret values are redacted in storage."""
    trigger_message: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    updated_at: datetime | None = None
    temporal_workflow_id: str | None = None
    runner_workflow_id: str | None = None
    time_skipping: bool = False
    """The run had a virtual clock: started_at, completed_at and task times are workflow time."""
    last_seq: int = 0
    """Highest progress sequence number merged (makes replayed reports idempotent)."""
    document_hash: str | None = None
    """Content hash of the document version this execution runs (``workflow_versions``)."""
    tags: list[str] = field(default_factory=list)
    batch_id: str | None = None
    """Set on the executions one ``lab.map`` started together."""
    rerun_of_id: str | None = None
    recovered_from_id: str | None = None
    checkpoint: dict[str, Any] | None = None
    """Where a FAILED run can be recovered from: the failed top-level task, its input and
    ``$context`` (``{"task", "index", "data", "context"}``); None when it cannot be."""
