"""Charts render to PNG bytes from frames and snapshots, empty or not, without pyplot."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.colors import to_rgb

from stigmer_nb.widgets.charts import (
    BORDER,
    INK,
    PAPER,
    durations_png,
    phase_counts_png,
    throughput_png,
    timeline_png,
)

from ..unit.test_analytics import EXECUTIONS
from .conftest import snapshot, task

PNG = b"\x89PNG\r\n\x1a\n"


def test_history_charts() -> None:
    frame = pd.DataFrame(EXECUTIONS)
    for render in (phase_counts_png, durations_png, throughput_png):
        assert render(frame).startswith(PNG)
        assert render(frame.iloc[:0]).startswith(PNG)  # "no data" rather than an error


def test_charts_never_touch_pyplot() -> None:
    # In a fresh interpreter: another test may have imported pyplot into this one.
    code = (
        "import sys, pandas as pd\n"
        "from stigmer_nb.widgets import charts\n"
        "from tests.unit.test_analytics import EXECUTIONS\n"
        "frame = pd.DataFrame(EXECUTIONS)\n"
        "charts.phase_counts_png(frame); charts.durations_png(frame); charts.throughput_png(frame)\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2], timeout=60)


def test_timeline_of_nested_and_running_tasks() -> None:
    tasks = [
        task("fetch", start=0, end=0.4),
        task("loop", "WORKFLOW_TASK_IN_PROGRESS", kind="for", start=0.4, end=None),
        task("inner", depth=1, start=0.5, end=0.5),
    ] + [task(f"many{i}", start=1 + i, end=1.5 + i) for i in range(60)]
    assert timeline_png(snapshot(tasks=tasks)).startswith(PNG)
    assert timeline_png(snapshot("EXECUTION_PENDING")).startswith(PNG)


def _rgba(png: bytes) -> Any:
    from matplotlib.image import imread

    return imread(io.BytesIO(png), format="png")


def test_charts_are_light_cards_with_dark_text_whatever_the_notebook_style() -> None:
    # Inside a kernel matplotlib-inline makes figures transparent, and a notebook may use a dark
    # style: neither may leave a chart unreadable on JupyterLab's dark (or light) background.
    hostile = {
        "figure.facecolor": (1, 1, 1, 0),
        "figure.edgecolor": (1, 1, 1, 0),
        "savefig.transparent": True,
        "axes.facecolor": "black",
        "axes.edgecolor": "white",
        "text.color": "white",
        "axes.labelcolor": "white",
        "axes.titlecolor": "white",
        "xtick.color": "white",
        "ytick.color": "white",
    }
    frame = pd.DataFrame(EXECUTIONS)
    running = snapshot(
        tasks=[task("a", start=0, end=0.4), task("b", "WORKFLOW_TASK_IN_PROGRESS", start=0.4, end=None)]
    )
    with matplotlib.rc_context(hostile):
        charts = {
            "phases": phase_counts_png(frame),
            "durations": durations_png(frame),
            "throughput": throughput_png(frame),
            "timeline": timeline_png(running),
            "empty": phase_counts_png(frame.iloc[:0]),
        }
    border = to_rgb(BORDER)
    for name, png in charts.items():
        rgba = _rgba(png)
        assert rgba[..., 3].min() == 1.0, f"{name}: transparent pixels"
        inside = rgba[2:-2, 2:-2, :3]
        assert (inside.min(axis=2) > 0.97).mean() > 0.5, f"{name}: the background is not white"
        assert abs(rgba[0, rgba.shape[1] // 2, :3] - border).max() < 0.02, f"{name}: no frame"
        title = inside[:18]  # the title's band: dark text on the white card
        luminance = title @ [0.2126, 0.7152, 0.0722]
        assert luminance.min() < 0.35, f"{name}: no dark text in the title"
    assert to_rgb(PAPER) == (1.0, 1.0, 1.0) and sum(to_rgb(INK)) < 0.6
