"""The notebooks as committed: all seven, outputs cleared, each one leaves no lab running."""

from __future__ import annotations

import nbformat
import pytest

from .conftest import NOTEBOOKS, REPO

EXPECTED = [
    "01-quickstart.ipynb",
    "02-two-workers.ipynb",
    "03-dsl-tour.ipynb",
    "04-sql-over-history.ipynb",
    "05-failures-retries-cancel.ipynb",
    "06-durability-and-scale.ipynb",
    "07-teaching-demo.ipynb",
]


def test_the_tutorial_notebooks_exist_and_the_readme_lists_them() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED
    readme = (REPO / "README.md").read_text()
    for name in EXPECTED:
        assert f"(notebooks/{name})" in readme, name


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_saved_clean(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs not cleared"
    assert "widgets" not in nb.metadata, f"{name}: saved widget state; clear outputs before saving"
    # Notebooks share one data directory; each stops its lab so the next one can start.
    assert "stop" in code[-1].source, f"{name}: the last cell should stop the lab"
