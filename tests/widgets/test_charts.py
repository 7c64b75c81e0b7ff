"""Charts render to PNG bytes from frames and snapshots, empty or not, without pyplot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from stigmer_nb.widgets.charts import durations_png, phase_counts_png, throughput_png, timeline_png

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
