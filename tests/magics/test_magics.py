"""The IPython extension, typed as users type it, through a testing shell."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import stigmer_nb
from stigmer_nb.errors import LabStateError, ReadOnlySQLError
from stigmer_nb.lab import Execution, Lab
from stigmer_nb.settings import Settings

HELLO = """document: {dsl: '1.0.0', namespace: magics, name: hello, version: '1.0.0'}
do:
  - greet:
      set: {greeting: '${ "hi " + (.n | tostring) }'}
"""


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_cell("%load_ext stigmer_nb").raise_error()
    yield ip
    lab = stigmer_nb.current()
    if lab is not None:
        lab.stop()
    for name in ("lab", "df", "params"):
        ip.user_ns.pop(name, None)


def run(ip: InteractiveShell, cell: str) -> Any:
    """Run ``cell`` as a user would; its value, or raise what it raised."""
    result = ip.run_cell(cell, store_history=True)
    result.raise_error()
    return result.result


def one_line(
    ip: InteractiveShell, cell: str, capsys: pytest.CaptureFixture[str]
) -> tuple[BaseException, str]:
    """Run a failing cell; the error and the single line the user saw."""
    capsys.readouterr()
    result = ip.run_cell(cell)
    error = result.error_in_exec or result.error_before_exec
    assert error is not None, f"{cell!r} did not fail"
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return error, lines[0]


@pytest.fixture
def start_line(lab_settings: Callable[..., Settings]) -> str:
    """``%stigmer start`` on the shared test server, with this test's own queues and home."""
    s = lab_settings()
    return (
        f"%stigmer start --home {s.home} temporal_host_port={s.temporal_host_port} "
        f"stigmer_queue={s.stigmer_queue} runner_queue={s.runner_queue} zigflow_queue={s.zigflow_queue}"
    )


def test_without_a_lab_every_command_says_what_to_do(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shell, "%stigmer")
    assert "%stigmer start" in capsys.readouterr().out
    run(shell, "%stigmer status")
    assert capsys.readouterr().out.strip() == "no lab is running; start one with %stigmer start"
    error, line = one_line(shell, "%stigmer history", capsys)
    assert isinstance(error, LabStateError) and line.startswith("LabStateError: no lab is running;")
    error, line = one_line(shell, "%%stigmer_sql\nSELECT 1", capsys)
    assert isinstance(error, LabStateError) and "%stigmer start" in line
    error, line = one_line(shell, "%stigmer histroy", capsys)
    assert isinstance(error, UsageError) and "did you mean 'history'" in line
    error, line = one_line(shell, "%stigmer start durable", capsys)
    assert isinstance(error, UsageError) and "KEY=VALUE" in line
    error, line = one_line(shell, "%stigmer start no_such_option=1", capsys)
    assert "unknown option(s) ['no_such_option']" in line
    error, line = one_line(shell, "%stigmer history --limit many", capsys)
    assert isinstance(error, UsageError) and "--limit" in line


def test_a_session_of_magics(
    shell: InteractiveShell, start_line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = run(shell, start_line)
    assert isinstance(lab, Lab) and shell.user_ns["lab"] is lab
    assert run(shell, start_line) is lab  # idempotent
    run(shell, "%stigmer status")
    out = capsys.readouterr().out
    assert "lab running: Temporal" in out and "executions: none yet" in out and "history:" in out

    execution = run(shell, f"%%stigmer_run --input '{{\"n\": 2}}' --name first-run\n{HELLO}")
    assert isinstance(execution, Execution)
    assert execution.wait(30).output == {"greeting": "hi 2"} and execution.record.name == "first-run"
    run(shell, "params = {'n': 5}")
    second = run(shell, f"%%stigmer_run --input params --tag demo --tag five\n{HELLO}")
    assert second.wait(30).output == {"greeting": "hi 5"}
    assert second.record.tags == ["demo", "five"]
    assert list(run(shell, "%stigmer history --tag five")["id"]) == [second.id]

    error, line = one_line(shell, f"%%stigmer_run --input {{oops\n{HELLO}", capsys)
    assert isinstance(error, UsageError) and "--input is not JSON" in line
    error, line = one_line(shell, "%%stigmer_run\n", capsys)
    assert isinstance(error, UsageError) and "empty" in line
    error, line = one_line(shell, "%%stigmer_run\ndocument: {dsl: '1.0.0'}\ndo: []\n", capsys)
    assert line.startswith("DSLValidationError")

    frame = run(
        shell, "%%stigmer_sql -o df\nSELECT phase, count(*) AS n FROM workflow_executions GROUP BY phase"
    )
    assert isinstance(frame, pd.DataFrame) and shell.user_ns["df"] is frame
    assert frame.set_index("phase")["n"].to_dict() == {"EXECUTION_COMPLETED": 2}
    error, line = one_line(shell, "%%stigmer_sql\nDELETE FROM task_updates", capsys)
    assert isinstance(error, ReadOnlySQLError) and "--write" in line
    run(shell, "%%stigmer_sql --write\nDELETE FROM workflow_executions WHERE name = 'first-run'")
    assert len(run(shell, "%stigmer history")) == 1

    history = run(shell, "%stigmer history --workflow hello --phase completed --since 1h --limit 5")
    assert list(history["id"]) == [second.id]
    ui = run(shell, "%stigmer ui")
    assert "existing Temporal server" in repr(ui)

    run(shell, "%stigmer stop")
    assert "lab stopped" in capsys.readouterr().out and not lab.running
    run(shell, "%stigmer stop")
    assert "no lab is running" in capsys.readouterr().out


def test_start_leaves_a_users_own_lab_variable_alone(shell: InteractiveShell, start_line: str) -> None:
    run(shell, "lab = 'my laboratory'")
    started = run(shell, start_line)
    assert isinstance(started, Lab) and shell.user_ns["lab"] == "my laboratory"
