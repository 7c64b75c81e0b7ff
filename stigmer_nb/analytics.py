"""Execution analytics as pure pandas functions over ``lab.history()`` and ``lab.tasks()`` frames."""

# Each function has a DuckDB twin among the history's views (``task_durations``,
# ``task_duration_stats``, ``task_retry_rates``, ``failure_rates``, ``slowest_tasks``,
# ``workflow_summaries``); both compute the same numbers, so a notebook can start in pandas and move
# to SQL (or back) without surprises. Durations are whole milliseconds counted like DuckDB's
# ``date_diff('millisecond', …)``; percentiles interpolate linearly like ``quantile_cont``.

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidInputError, did_you_mean
from .model import ExecutionPhase

__all__ = [
    # filters
    "parse_since",
    "normalise_phases",
    "filter_executions",
    # executions
    "execution_durations",
    "phase_counts",
    "failure_rates",
    "throughput",
    "workflow_summary",
    # tasks
    "task_durations",
    "task_duration_stats",
    "retry_rates",
    "slowest_tasks",
    # constants
    "PHASES",
    "TERMINAL_PHASES",
    "RUNNING_PHASES",
    "STOPPED_PHASES",
    "PERCENTILES",
]

PHASES: tuple[str, ...] = tuple(p.name for p in ExecutionPhase if p.value)
"""Execution phases in lifecycle order (``EXECUTION_PENDING`` … ``EXECUTION_CANCELLED``)."""
TERMINAL_PHASES: tuple[str, ...] = (
    "EXECUTION_COMPLETED",
    "EXECUTION_FAILED",
    "EXECUTION_CANCELLED",
    "EXECUTION_TERMINATED",
)
RUNNING_PHASES: tuple[str, ...] = ("EXECUTION_PENDING", "EXECUTION_IN_PROGRESS", "EXECUTION_PAUSED")
STOPPED_PHASES: tuple[str, ...] = ("EXECUTION_CANCELLED", "EXECUTION_TERMINATED")
"""Stopped by a person: counted as ``cancelled`` in the rates."""
_TERMINAL_TASK = ("WORKFLOW_TASK_COMPLETED", "WORKFLOW_TASK_FAILED", "WORKFLOW_TASK_SKIPPED")
PERCENTILES: tuple[float, ...] = (0.5, 0.9, 0.99)
"""Percentiles every duration summary reports (as ``p50_ms``, ``p90_ms``, ``p99_ms``)."""

_PHASE_ALIASES = {"RUNNING": RUNNING_PHASES, "FINISHED": TERMINAL_PHASES, "DONE": TERMINAL_PHASES}
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.IGNORECASE)
_UNITS = {
    "s": "seconds",
    "sec": "seconds",
    "secs": "seconds",
    "second": "seconds",
    "seconds": "seconds",
    "m": "minutes",
    "min": "minutes",
    "mins": "minutes",
    "minute": "minutes",
    "minutes": "minutes",
    "h": "hours",
    "hr": "hours",
    "hrs": "hours",
    "hour": "hours",
    "hours": "hours",
    "d": "days",
    "day": "days",
    "days": "days",
    "w": "weeks",
    "week": "weeks",
    "weeks": "weeks",
}


# --- filters ---------------------------------------------------------------------------------------


def parse_since(since: Any, now: datetime | None = None) -> datetime | None:
    """A UTC instant from ``since``: a datetime, a timedelta or ``"15min"``/``"2h"``/``"7d"`` back
    from ``now``, or ISO 8601 text. Naive datetimes are taken as UTC; None stays None."""
    if since is None:
        return None
    now = now or datetime.now(UTC)
    if isinstance(since, pd.Timestamp):
        since = since.to_pydatetime()
    if isinstance(since, datetime):
        return since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
    if isinstance(since, date):
        return datetime(since.year, since.month, since.day, tzinfo=UTC)
    if isinstance(since, pd.Timedelta):
        since = since.to_pytimedelta()
    if isinstance(since, timedelta):
        return now - since
    if isinstance(since, str):
        match = _SINCE.match(since)
        if match and match.group(2).lower() in _UNITS:
            return now - timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})
        try:
            return parse_since(datetime.fromisoformat(since.strip().replace("Z", "+00:00")), now)
        except ValueError:
            pass
    raise InvalidInputError(
        f"since={since!r} is not a time; pass a datetime, a timedelta, ISO 8601 text or an age "
        "like '15min', '2h', '7d'"
    )


def normalise_phases(phase: Any) -> list[str] | None:
    """Phase names from ``phase``: ``"completed"``, ``"EXECUTION_FAILED"``, an ``ExecutionPhase``,
    ``"running"`` (pending or in progress), ``"finished"``, or a list of those. None means all."""
    if phase is None:
        return None
    items = [phase] if isinstance(phase, str | ExecutionPhase) else list(phase)
    names: list[str] = []
    for item in items:
        if isinstance(item, ExecutionPhase):
            names.append(item.name)
            continue
        key = str(item).strip().upper().replace(" ", "_").replace("-", "_")
        if key in _PHASE_ALIASES:
            names.extend(_PHASE_ALIASES[key])
            continue
        name = key if key.startswith("EXECUTION_") else f"EXECUTION_{key}"
        if name not in PHASES:
            known = [p.removeprefix("EXECUTION_").lower() for p in PHASES] + ["running", "finished"]
            raise InvalidInputError(
                f"unknown phase {item!r}{did_you_mean(str(item).lower(), known)}; use one of {', '.join(known)}"
            )
        names.append(name)
    return list(dict.fromkeys(names))


def filter_executions(
    executions: pd.DataFrame,
    *,
    workflow: str | Sequence[str] | None = None,
    phase: Any = None,
    since: Any = None,
    now: datetime | None = None,
) -> pd.DataFrame:
    """Rows of ``executions`` for ``workflow`` (name or id), ``phase`` and created at or after ``since``."""
    mask = pd.Series(True, index=executions.index)
    if workflow is not None:
        wanted = [workflow] if isinstance(workflow, str) else list(workflow)
        by_name = executions["workflow_name"].isin(wanted)
        by_id = executions["workflow_id"].isin(wanted) if "workflow_id" in executions else False
        mask &= by_name | by_id
    phases = normalise_phases(phase)
    if phases is not None:
        mask &= executions["phase"].isin(phases)
    start = parse_since(since, now)
    if start is not None:
        mask &= _utc(executions["created_at"]) >= pd.Timestamp(start)
    return executions.loc[mask]


# --- helpers ---------------------------------------------------------------------------------------


def _utc(series: pd.Series) -> pd.Series:
    """``series`` as tz-aware UTC timestamps (naive values are taken as UTC)."""
    values = pd.to_datetime(series, utc=False)
    if getattr(values.dt, "tz", None) is None:
        return values.dt.tz_localize("UTC")
    return values.dt.tz_convert("UTC")


def _ms_between(start: pd.Series, end: pd.Series) -> pd.Series:
    """Millisecond boundaries crossed from ``start`` to ``end`` (DuckDB's ``date_diff`` rule)."""
    a = _utc(start).dt.floor("ms")
    b = _utc(end).dt.floor("ms")
    return ((b - a) / pd.Timedelta(milliseconds=1)).astype("Float64").astype(float)


def _rate(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    den = denominator.astype(float).replace(0, np.nan)
    return numerator.astype(float) / den


def _duration_stats(grouped: Any, column: str) -> pd.DataFrame:
    stats = grouped[column].agg(["mean", "max"]).rename(columns={"mean": "mean_ms", "max": "max_ms"})
    for q in PERCENTILES:
        stats[f"p{round(q * 100)}_ms"] = grouped[column].quantile(q)
    return stats[["mean_ms", *(f"p{round(q * 100)}_ms" for q in PERCENTILES), "max_ms"]].astype(float)


def _with_workflow(tasks: pd.DataFrame, executions: pd.DataFrame | None) -> pd.DataFrame:
    if executions is None or "workflow_name" in tasks.columns:
        return tasks
    names = executions.set_index("id")[["workflow_id", "workflow_name"]]
    return tasks.join(names, on="execution_id")


# --- executions ------------------------------------------------------------------------------------


def execution_durations(executions: pd.DataFrame) -> pd.DataFrame:
    """Per execution: ``duration_ms`` (started → completed) and ``queued_ms`` (created → started)."""
    out = pd.DataFrame(
        {
            "execution_id": executions["id"],
            "name": executions["name"],
            "workflow_name": executions["workflow_name"],
            "phase": executions["phase"],
            "created_at": _utc(executions["created_at"]),
            "started_at": _utc(executions["started_at"]),
            "completed_at": _utc(executions["completed_at"]),
        }
    )
    out["duration_ms"] = _ms_between(out["started_at"], out["completed_at"])
    out["queued_ms"] = _ms_between(out["created_at"], out["started_at"])
    return out.reset_index(drop=True)


def phase_counts(executions: pd.DataFrame) -> pd.DataFrame:
    """How many executions are in each phase, in lifecycle order (phases with none are left out)."""
    counts = executions["phase"].value_counts()
    order = [p for p in PHASES if p in counts.index] + sorted(set(counts.index) - set(PHASES))
    return pd.DataFrame({"phase": order, "executions": [int(counts[p]) for p in order]})


def failure_rates(executions: pd.DataFrame, by: str | Sequence[str] = "workflow_name") -> pd.DataFrame:
    """Per ``by``: executions, finished, completed, failed, cancelled, failure and cancel rates
    (over finished executions; NaN while none has finished)."""
    keys = [by] if isinstance(by, str) else list(by)
    phase = executions["phase"]
    frame = executions[keys].assign(
        executions=1,
        finished=phase.isin(TERMINAL_PHASES).astype(int),
        completed=(phase == "EXECUTION_COMPLETED").astype(int),
        failed=(phase == "EXECUTION_FAILED").astype(int),
        cancelled=phase.isin(STOPPED_PHASES).astype(int),
    )
    out = frame.groupby(keys, dropna=False, sort=True).sum()
    out["failure_rate"] = _rate(out["failed"], out["finished"])
    out["cancel_rate"] = _rate(out["cancelled"], out["finished"])
    return out.reset_index()


def _auto_freq(span: pd.Timedelta) -> str:
    for freq, width in (("1s", 1), ("10s", 10), ("1min", 60), ("10min", 600), ("1h", 3600), ("6h", 21600)):
        if span <= pd.Timedelta(seconds=width * 60):
            return freq
    return "1D"


def throughput(
    executions: pd.DataFrame, freq: str | None = None, *, on: str = "completed_at"
) -> pd.DataFrame:
    """Executions per time bucket of ``on`` (default: when they finished), one column per phase.
    ``freq`` is a pandas frequency (``"1min"``); None picks one giving about 60 buckets or fewer."""
    times = _utc(executions[on])
    frame = pd.DataFrame({"at": times, "phase": executions["phase"]}).dropna(subset=["at"])
    if frame.empty:
        return pd.DataFrame(columns=["at"]).set_index("at")
    freq = freq or _auto_freq(frame["at"].max() - frame["at"].min())
    frame["at"] = frame["at"].dt.floor(freq)
    table = frame.pivot_table(index="at", columns="phase", aggfunc="size", fill_value=0)
    full = pd.date_range(table.index.min(), table.index.max(), freq=freq)
    table = table.reindex(full, fill_value=0)
    table.index.name = "at"
    table.columns.name = None
    order = [p for p in PHASES if p in table.columns]
    return table[order].astype(int)


def workflow_summary(executions: pd.DataFrame, tasks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per workflow: counts by outcome, failure and cancel rates, duration mean/percentiles/max,
    first and last run; with ``tasks``, also task runs and their retry rate."""
    durations = execution_durations(executions)
    phase = durations["phase"]
    frame = durations.assign(
        executions=1,
        running=phase.isin(RUNNING_PHASES).astype(int),
        completed=(phase == "EXECUTION_COMPLETED").astype(int),
        failed=(phase == "EXECUTION_FAILED").astype(int),
        cancelled=phase.isin(STOPPED_PHASES).astype(int),
    )
    grouped = frame.groupby("workflow_name", dropna=False, sort=True)
    out = grouped[["executions", "running", "completed", "failed", "cancelled"]].sum()
    finished = out["completed"] + out["failed"] + out["cancelled"]
    out["failure_rate"] = _rate(out["failed"], finished)
    out["cancel_rate"] = _rate(out["cancelled"], finished)
    out = out.join(_duration_stats(grouped, "duration_ms"))
    out["first_created_at"] = grouped["created_at"].min()
    out["last_created_at"] = grouped["created_at"].max()
    if tasks is not None:
        runs = _with_workflow(tasks, executions)
        per = runs.assign(retried=(runs["attempt"] > 1).astype(int)).groupby("workflow_name", dropna=False)
        out["task_runs"] = per.size().reindex(out.index).fillna(0).astype(int)
        out["task_retry_rate"] = _rate(per["retried"].sum().reindex(out.index), out["task_runs"])
    return out.reset_index()


# --- tasks -----------------------------------------------------------------------------------------


def task_durations(tasks: pd.DataFrame, executions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per task run: identity, status, attempt, start/end and ``duration_ms``; with ``executions``,
    the workflow it belongs to."""
    runs = _with_workflow(tasks, executions)
    duration = (
        runs["duration_ms"].astype(float)
        if "duration_ms" in runs.columns
        else _ms_between(runs["started_at"], runs["completed_at"])
    )
    columns = [
        c
        for c in (
            "execution_id",
            "workflow_id",
            "workflow_name",
            "task_id",
            "parent_id",
            "reference",
            "name",
            "kind",
            "status",
            "attempt",
            "started_at",
            "completed_at",
        )
        if c in runs.columns
    ]
    out = runs[columns].copy()
    out["duration_ms"] = duration.to_numpy()
    return out.reset_index(drop=True)


def _task_keys(runs: pd.DataFrame, by: Sequence[str] | None) -> list[str]:
    if by is not None:
        return list(by)
    base = ["reference", "name", "kind"]
    return ["workflow_name", *base] if "workflow_name" in runs.columns else base


def task_duration_stats(
    tasks: pd.DataFrame, executions: pd.DataFrame | None = None, *, by: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per task (workflow, reference, name, kind): runs, finished runs, mean, p50/p90/p99 and max
    duration in ms; slowest (by p90) first."""
    runs = task_durations(tasks, executions)
    keys = _task_keys(runs, by)
    grouped = runs.groupby(keys, dropna=False, sort=True)
    out = pd.DataFrame({"runs": grouped.size(), "finished": grouped["duration_ms"].count()})
    out = out.join(_duration_stats(grouped, "duration_ms")).reset_index()
    return out.sort_values(["p90_ms", *keys], ascending=[False] + [True] * len(keys), na_position="last")


def retry_rates(
    tasks: pd.DataFrame, executions: pd.DataFrame | None = None, *, by: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per task: runs, runs that needed a retry (attempt > 1), retry rate, mean attempts, failed
    runs and failure rate (over finished runs)."""
    runs = task_durations(tasks, executions)
    keys = _task_keys(runs, by)
    frame = runs[keys].assign(
        runs=1,
        retried=(runs["attempt"] > 1).astype(int),
        attempts=runs["attempt"].astype(float),
        failed=(runs["status"] == "WORKFLOW_TASK_FAILED").astype(int),
        finished=runs["status"].isin(_TERMINAL_TASK).astype(int),
    )
    grouped = frame.groupby(keys, dropna=False, sort=True)
    out = grouped[["runs", "retried", "failed", "finished"]].sum()
    out["retry_rate"] = _rate(out["retried"], out["runs"])
    out["mean_attempts"] = grouped["attempts"].mean()
    out["failure_rate"] = _rate(out["failed"], out["finished"])
    out = out[["runs", "retried", "retry_rate", "mean_attempts", "failed", "failure_rate"]]
    return out.reset_index()


def slowest_tasks(tasks: pd.DataFrame, n: int = 10, executions: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ``n`` longest finished task runs, longest first, ranked from 1."""
    runs = task_durations(tasks, executions)
    runs = runs[runs["duration_ms"].notna()]
    runs = runs.sort_values(["duration_ms", "execution_id", "task_id"], ascending=[False, True, True])
    runs = runs.head(n).reset_index(drop=True)
    runs.insert(0, "rank", range(1, len(runs) + 1))
    return runs
