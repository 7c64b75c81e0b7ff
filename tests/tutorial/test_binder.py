"""Binder, replayed: a fresh virtual environment gets what binder/postBuild installs, and the
quickstart notebook runs there, on that environment's kernel, top to bottom."""

# repo2docker builds from a checkout with Python from binder/runtime.txt, runs binder/postBuild from
# the repository root, then opens JupyterLab on the notebooks. Here: a copy of the working tree,
# `python -m venv`, the real postBuild with the venv first on PATH, then nbclient (from the venv)
# executes notebooks/01-quickstart.ipynb with the venv's own kernel, as Binder's JupyterLab would.

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from .conftest import REPO, alive, clean_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

_SKIP = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints",
         "test-artifacts", "build", "dist", ".stigmer_nb"}  # fmt: skip

# Run inside the fresh environment: execute notebooks with nbclient, save them executed.
RUNNER = """
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

for source, target in zip(sys.argv[1::2], sys.argv[2::2]):
    nb = nbformat.read(source, as_version=4)
    folder = str(Path(source).parent)
    client = NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": folder}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, target)
"""

# What the Binder environment should give a kernel: its own Python and package, the magics loaded.
CHECKS = [
    "import sys, json, stigmer_nb\nprint(json.dumps({'python': sys.executable, 'package': stigmer_nb.__file__}))",
    "print(json.dumps(sorted(get_ipython().extension_manager.loaded)))",
    "%stigmer",
]


def _copy_tree(dest: Path) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in _SKIP or n.endswith(".egg-info")}

    shutil.copytree(REPO, dest, ignore=ignore)


def _outputs_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.extend(str(v) for k, v in output.data.items() if k.startswith("text/"))
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}")
    return "\n".join(parts)


def test_binder_runtime_and_post_build_are_what_repo2docker_expects() -> None:
    runtime = (REPO / "binder" / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-3\.(\d+)", runtime)
    assert match and int(match.group(1)) >= 11, runtime
    post_build = REPO / "binder" / "postBuild"
    assert post_build.stat().st_mode & 0o111, "binder/postBuild must be executable"
    text = post_build.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert "pip install" in text and "'.[lab]'" in text and "extensions/install.py" in text


def test_quickstart_runs_in_a_fresh_binder_environment(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _copy_tree(repo)
    venv = tmp_path / "venv"
    timings: dict[str, float] = {}

    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = clean_env(tmp_path / "state", first_on_path=venv / "bin")
    build = subprocess.run(
        ["bash", str(repo / "binder" / "postBuild")], cwd=repo, env=env,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    timings["venv + postBuild"] = time.monotonic() - started
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    # What postBuild enabled: the proxy server extension, the widgets, the kernel autoload.
    extensions = subprocess.run(
        [str(venv / "bin" / "jupyter"), "server", "extension", "list"],
        env=env,
        capture_output=True,
        text=True,
    )
    listing = extensions.stdout + extensions.stderr
    assert re.search(r"jupyter_server_proxy.*enabled", listing), listing
    labextensions = subprocess.run(
        [str(venv / "bin" / "jupyter"), "labextension", "list"], env=env, capture_output=True, text=True
    )
    assert "@jupyter-widgets/jupyterlab-manager" in labextensions.stdout + labextensions.stderr
    assert "stigmer_nb" in (venv / "etc" / "ipython" / "ipython_kernel_config.py").read_text()
    overrides = json.loads((venv / "share" / "jupyter" / "lab" / "settings" / "overrides.json").read_text())
    assert overrides["@jupyter-widgets/jupyterlab-manager:plugin"]["saveState"] is True

    # The quickstart, then the checks, each on a kernel of the fresh environment.
    notebooks = repo / "notebooks"
    checks = nbformat.v4.new_notebook()
    checks.cells = [nbformat.v4.new_code_cell(source) for source in CHECKS]
    checks.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(checks, notebooks / "binder-checks.ipynb")
    (tmp_path / "run_notebooks.py").write_text(RUNNER)
    executed = {
        name: tmp_path / f"executed-{name}" for name in ("01-quickstart.ipynb", "binder-checks.ipynb")
    }
    args = [arg for name, out in executed.items() for arg in (str(notebooks / name), str(out))]
    started = time.monotonic()
    run = subprocess.run(
        [str(venv / "bin" / "python"), str(tmp_path / "run_notebooks.py"), *args],
        cwd=notebooks, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    timings["notebooks"] = time.monotonic() - started
    print("binder replay:", ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))

    home = notebooks / ".stigmer_nb"  # the default data directory, next to the notebooks
    pid_file = home / "temporal.pid"
    if pid_file.exists():  # a lab that did not stop: stop its server, then fail
        pid = int(json.loads(pid_file.read_text())["pid"])
        if alive(pid):
            subprocess.run(["kill", str(pid)], check=False)
        pytest.fail(f"the quickstart left its Temporal server running (pid {pid})")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    quickstart = nbformat.read(executed["01-quickstart.ipynb"], as_version=4)
    code = [cell for cell in quickstart.cells if cell.cell_type == "code"]
    assert all(o.output_type != "error" for cell in code for o in cell.get("outputs", []))
    texts = [_outputs_text(cell) for cell in code]
    assert any("HELLO, ADA!" in text for text in texts), texts
    assert any("COMPLETED" in text for text in texts), texts
    assert (home / "history.duckdb").exists()

    check_cells = nbformat.read(executed["binder-checks.ipynb"], as_version=4).cells
    where = json.loads(_outputs_text(check_cells[0]))
    assert Path(where["python"]).parent == venv / "bin", where  # the fresh environment's kernel
    assert Path(where["package"]).is_relative_to(venv), where  # the installed package, not the tree
    assert "stigmer_nb" in json.loads(_outputs_text(check_cells[1]))  # loaded without %load_ext
    assert "%stigmer start" in _outputs_text(check_cells[2])
