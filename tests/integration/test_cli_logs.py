"""``stigmer-nb run`` of a failing workflow: the failure on stdout, the tracebacks in the home's log."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ..conftest import closed_port_document, queue_env

pytestmark = pytest.mark.integration

CLOSED_PORT = closed_port_document("cli-closed-port")


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_a_failing_activity_keeps_stderr_clean(
    cli: list[str], tmp_path: Path, temporal_server: Any, as_json: bool
) -> None:
    doc = tmp_path / "closed.yaml"
    doc.write_text(CLOSED_PORT)
    home = tmp_path / "h"
    env = {
        **os.environ,
        **queue_env(f"cli-logs-{as_json}-{os.getpid()}"),
        "TEMPORAL_HOST_PORT": temporal_server.target,
    }
    args = [*cli, "run", str(doc), "--home", str(home), *(["--json"] if as_json else [])]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)

    assert proc.returncode == 1, proc.stderr  # README: 1 failed
    assert len(proc.stderr.splitlines()) <= 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    if as_json:
        assert json.loads(proc.stdout)["error"]["title"] == "Connection failed"
    else:
        assert "EXECUTION_FAILED" in proc.stdout and "Connection failed" in proc.stdout
    log = (home / "workers.log").read_text()
    assert "Completing activity as failed" in log and "Traceback (most recent call last)" in log
    assert "ConnectError: All connection attempts failed" in log


# 800 KB of output: the Rust core warns about the payload on its own, below Python's logging.
BIG_OUTPUT = """
document: {dsl: '1.0.0', namespace: cli, name: cli-big-output, version: '1.0.0'}
do:
  - big:
      set: '${ "0123456789" * 80000 }'
"""


def test_the_rust_core_warnings_go_to_the_log_too(
    cli: list[str], tmp_path: Path, temporal_server: Any
) -> None:
    doc = tmp_path / "big.yaml"
    doc.write_text(BIG_OUTPUT)
    home = tmp_path / "h"
    env = {**os.environ, **queue_env(f"cli-core-{os.getpid()}"), "TEMPORAL_HOST_PORT": temporal_server.target}
    proc = subprocess.run(
        [*cli, "run", str(doc), "--home", str(home), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "TMPRL1103" in (home / "workers.log").read_text()
