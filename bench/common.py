"""Shared helpers: timing statistics, result files, markdown tables."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS",
    "Stats",
    "env_int",
    "markdown_table",
    "peak_rss_mb",
    "percentile",
    "reset_peak_rss",
    "rss_mb",
    "span",
    "stats",
    "write_result",
]

RESULTS = Path(__file__).parent / "results"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Stats(dict[str, float]):
    """median, p95, min, max, n of a sample (seconds or whatever unit was measured)."""


def stats(values: Sequence[float]) -> Stats:
    """Summary of a sample."""
    return Stats(
        median=statistics.median(values),
        p95=percentile(values, 95),
        min=min(values),
        max=max(values),
        n=len(values),
    )


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` with the machine and time."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A markdown table of ``rows``."""

    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def env_int(name: str, default: int) -> int:
    """An integer from the environment (to scale a benchmark down for a quick check)."""
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


def _status_kb(field: str, pid: int | None) -> float:
    text = Path(f"/proc/{pid or 'self'}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return float(match.group(1)) if match else float("nan")


def rss_mb(pid: int | None = None, *, trim: bool = False) -> float:
    """Resident set size of a process (this one by default), in MiB; ``trim`` first hands freed
    heap back to the OS (glibc ``malloc_trim``), so the figure is what is in use, not what was."""
    if trim and pid is None:
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
    return _status_kb("VmRSS", pid) / 1024


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident set size since start or the last ``reset_peak_rss()``, in MiB."""
    return _status_kb("VmHWM", pid) / 1024


def reset_peak_rss() -> None:
    """Reset this process's peak RSS to its current RSS (Linux ``clear_refs`` 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def span(sample: Stats, scale: float = 1.0) -> str:
    """``median (min..max)`` of a sample, scaled (e.g. 1000 for seconds → ms)."""

    def fmt(value: float) -> str:
        value *= scale
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"

    return f"{fmt(sample['median'])} ({fmt(sample['min'])}..{fmt(sample['max'])})"
