"""Shared helpers for the tutorial-path tests: the repository, clean environments, free ports."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: builds a fresh environment (about a minute); still part of `make test`"
    )


def free_port() -> int:
    """A port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(tmp: Path, *, first_on_path: Path | None = None) -> dict[str, str]:
    """This process's environment without its virtualenv, project settings or Jupyter/IPython
    state: what a fresh shell on this machine would have. Jupyter and IPython keep their per-user
    state under ``tmp``."""
    ours = Path(sys.prefix).resolve()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STIGMER_NB_", "TEMPORAL_", "JUPYTER", "IPYTHON", "PYTHON", "VIRTUAL_ENV"))
    }
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve().parent != ours]
    if first_on_path is not None:
        path.insert(0, str(first_on_path))
    env["PATH"] = os.pathsep.join(path)
    for name, sub in (
        ("JUPYTER_CONFIG_DIR", "jupyter-config"),
        ("JUPYTER_DATA_DIR", "jupyter-data"),
        ("JUPYTER_RUNTIME_DIR", "jupyter-runtime"),
        ("JUPYTERLAB_SETTINGS_DIR", "jupyterlab-settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "jupyterlab-workspaces"),
        ("IPYTHONDIR", "ipython"),
    ):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(tmp / sub)
    return env


def alive(pid: int) -> bool:
    """True while a process with this id exists (zombies excluded)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state != "Z"
