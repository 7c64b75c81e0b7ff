"""A notebook run headless (nbclient) keeps the final execution view: widget state and static HTML."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from stigmer_nb.settings import Settings

from ..conftest import start_options

pytestmark = pytest.mark.integration

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
STATE_MIME = "application/vnd.jupyter.widget-state+json"
DOC = """
document: {dsl: '1.0.0', namespace: notebooks, name: saved, version: '1.0.0'}
do:
  - greet:
      set: {greeting: '${ "hello " + .name }'}
  - pause:
      wait: {milliseconds: 300}
"""


def test_the_saved_notebook_shows_the_finished_execution(
    lab_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    s = lab_settings()
    options = start_options(s)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"import stigmer_nb\nlab = stigmer_nb.start(**{options!r})"),
        nbformat.v4.new_code_cell(f"execution = lab.run({DOC!r}, input={{'name': 'nb'}})\nexecution"),
        nbformat.v4.new_code_cell("execution.wait(30).output"),
        nbformat.v4.new_code_cell("lab.stop()"),
    ]
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    # The view's output: the widget, and static HTML that was replaced by the final rendering.
    (output,) = nb.cells[1].outputs
    assert output.output_type == "display_data"
    assert ">COMPLETED<" in output.data["text/html"] and "2/2 tasks" in output.data["text/html"]
    assert "Loading widget" not in output.data["text/html"]
    model_id = output.data[WIDGET_MIME]["model_id"]

    # The saved widget state holds the view in its final state.
    state = nb.metadata.widgets[STATE_MIME]["state"]
    assert model_id in state and state[model_id]["model_name"] == "VBoxModel"
    values = [m["state"].get("value", "") for m in state.values() if m["model_name"] == "HTMLModel"]
    assert any(">COMPLETED<" in v and "wex-" in v for v in values)
    assert any("hello nb" in v for v in values)
    assert not any(">PENDING<" in v or ">IN_PROGRESS<" in v for v in values)

    # Exported to HTML, it carries both the widget state and the static rendering.
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert STATE_MIME in html and "COMPLETED" in html
    nbformat.write(nb, tmp_path / "saved.ipynb")
