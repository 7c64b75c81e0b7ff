"""The ``stigmer-nb`` command: JSON output and exit codes, over repeated runs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ..conftest import queue_env

pytestmark = pytest.mark.integration

OK = """
document: {dsl: '1.0.0', namespace: cli, name: cli-ok, version: '1.0.0'}
do:
  - first:
      set: {greeting: '${ "hi " + .who }'}
  - second:
      set: {greeting: '${ .greeting }', n: 2}
"""
FAILS = """
document: {dsl: '1.0.0', namespace: cli, name: cli-fails, version: '1.0.0'}
do:
  - boom:
      raise:
        error: {type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime, status: 500, title: Boom}
"""
INVALID = """
document: {dsl: '1.0.0', namespace: cli, name: cli-invalid, version: '1.0.0'}
do:
  - first:
      sett: {a: 1}
  - second:
      set: {b: 2}
      then: nowhere
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, text in (("ok", OK), ("fails", FAILS), ("invalid", INVALID)):
        out[name] = tmp_path / f"{name}.yaml"
        out[name].write_text(text)
    return out


def run_cli(
    cli: list[str], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def test_embedded_run_prints_one_json_object(cli: list[str], files: dict[str, Path], tmp_path: Path) -> None:
    proc = run_cli(
        cli, "run", str(files["ok"]), "--input", '{"who": "cli"}', "--json", "--home", str(tmp_path / "h")
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"execution_id", "phase", "output", "error", "tasks"}
    assert result["phase"] == "EXECUTION_COMPLETED" and result["error"] is None
    assert result["output"] == {"greeting": "hi cli", "n": 2}
    assert [t["name"] for t in result["tasks"]] == ["first", "second"]
    assert set(result["tasks"][0]) == {
        "reference",
        "name",
        "kind",
        "status",
        "started_at",
        "completed_at",
        "error",
    }
    assert not (tmp_path / "h" / "temporal.pid").exists()  # the embedded server was stopped


@pytest.mark.parametrize("attempt", range(3))
def test_exit_codes_over_repeated_runs(
    cli: list[str], files: dict[str, Path], tmp_path: Path, temporal_server: Any, attempt: int
) -> None:
    env = {**queue_env(f"cli-{attempt}-{os.getpid()}"), "TEMPORAL_HOST_PORT": temporal_server.target}
    home = ["--home", str(tmp_path / "h")]
    ok = run_cli(cli, "run", str(files["ok"]), "--input", '{"who": "x"}', "--json", *home, env=env)
    assert ok.returncode == 0, ok.stderr
    failed = run_cli(cli, "run", str(files["fails"]), "--json", *home, env=env)
    assert failed.returncode == 1, failed.stderr
    assert json.loads(failed.stdout)["error"]["title"] == "Boom"
    invalid = run_cli(cli, "run", str(files["invalid"]), *home, env=env)
    assert invalid.returncode == 2
    assert "did you mean 'set'" in invalid.stderr and "'nowhere'" in invalid.stderr
    bad_input = run_cli(cli, "run", str(files["ok"]), "--input", "{nope", *home, env=env)
    assert bad_input.returncode == 2 and "not JSON" in bad_input.stderr
    history = run_cli(cli, "history", "--json", *home)
    assert history.returncode == 0
    assert [r["phase"] for r in json.loads(history.stdout)] == ["EXECUTION_FAILED", "EXECUTION_COMPLETED"]


def test_usage_errors_exit_2(cli: list[str], tmp_path: Path) -> None:
    assert run_cli(cli, "frobnicate").returncode == 2
    missing = run_cli(cli, "run", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "no workflow file" in missing.stderr
    sql = run_cli(cli, "sql", "DROP TABLE workflows", "--home", str(tmp_path / "empty"))
    assert sql.returncode == 2


def test_validate_lists_every_problem(cli: list[str], files: dict[str, Path]) -> None:
    proc = run_cli(cli, "validate", str(files["invalid"]))
    assert proc.returncode == 2
    assert "2 problem(s)" in proc.stderr and "line 4" in proc.stderr and "line 8" in proc.stderr
    assert run_cli(cli, "validate", str(files["ok"])).returncode == 0
