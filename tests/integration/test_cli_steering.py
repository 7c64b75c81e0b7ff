"""``stigmer-nb`` steering a running lab's executions (pause, resume, terminate, approve, reject,
send-event), and rerun/recover on a home no lab holds: exit codes and one-line messages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stigmer_nb.lab import Lab
from stigmer_nb.temporal.server import EmbeddedServer

from ..conftest import assert_eventually, queue_env

pytestmark = pytest.mark.integration

STEER = """
document: {dsl: 1.0.0, namespace: t, name: cli-steer, version: 1.0.0}
do:
  - a: {set: {x: 1}}
  - go:
      listen: {to: {one: {with: {type: t.go}}}}
      output: {as: '${ .[0] }'}
  - b: {set: {y: '${ .n }'}}
"""
# Not `a; wait 2 s; b`: a CLI process takes 1-4 s to start on a busy machine, so the pause would
# race the wait. The run waits for `t.go` instead, sent by the CLI once the pause is asked.
APPROVE = """
document: {dsl: 1.0.0, namespace: t, name: cli-approve, version: 1.0.0}
do:
  - ok:
      listen: {to: {one: {with: {type: ai.stigmer.approval}}}}
      metadata: {prompt: 'Ship it?'}
      output: {as: '${ .[0] }'}
"""
FAILS = """
document: {dsl: 1.0.0, namespace: t, name: cli-recover, version: 1.0.0}
do:
  - a: {set: {x: 1}}
  - b:
      raise:
        error: {type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime, status: 500, title: Boom}
"""
FIXED = """
document: {dsl: 1.0.0, namespace: t, name: cli-recover, version: 1.0.0}
do:
  - a: {set: {x: 1}}
  - b: {set: {x: '${ .x + 1 }', fixed: true}}
"""

NO_SUCH = "no-such-execution-17"


class Cli:
    """Runs ``stigmer-nb`` as a subprocess, several at once if asked; kills what is left at the end."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.started: list[subprocess.Popen[str]] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        base = {k: v for k, v in os.environ.items() if k != "TEMPORAL_HOST_PORT"}
        proc = subprocess.Popen(
            [*self.argv, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**base, **(env or {})},
            start_new_session=True,  # its own group: a leftover lab's children go with it
        )
        self.started.append(proc)
        return proc

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return finish(self.start(*args, env=env))

    def many(self, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
        return [finish(p) for p in [self.start(*c) for c in commands]]

    def kill_leftovers(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def run(cli: list[str]) -> Iterator[Cli]:
    runner = Cli(cli)
    yield runner
    runner.kill_leftovers()


def at(lab: Lab) -> list[str]:
    """Where the CLI finds ``lab``: its home (codec key) and its Temporal server."""
    return ["--home", str(lab.settings.home), "--temporal", str(lab.settings.temporal_host_port)]


def refused(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 2 with one line on stderr, starting ``stigmer-nb:``, containing ``words``."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("stigmer-nb: ") and proc.stderr.count("\n") == 1, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


def test_pause_send_event_resume(run: Cli, lab: Lab) -> None:
    execution = lab.run(STEER)
    assert_eventually(lambda: "go" in set(execution.tasks["name"]))  # listening: it pauses before b
    paused, approve = run.many(
        ["pause", execution.id, "--reason", "look first", *at(lab)],
        ["approve", execution.id, *at(lab)],
    )
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.startswith(f"pause requested for {execution.id}: it stops at its next task")
    refused(approve, "not waiting for an approval")
    assert execution.phase == "EXECUTION_IN_PROGRESS"  # `go` still waits for its event
    sent = run("send-event", execution.id, "--type", "t.go", "--data", '{"n": 2}', *at(lab))
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("sent t.go event ") and sent.stdout.endswith(f" to {execution.id}\n")
    execution.wait(10, until="paused")
    assert list(execution.tasks["name"]) == ["a", "go"]
    resumed = run("resume", execution.id, *at(lab))
    assert resumed.returncode == 0, resumed.stderr
    assert execution.wait(10).phase == "EXECUTION_COMPLETED"
    assert execution.output == {"y": 2}
    events = execution.events
    assert list(events["kind"]) == [
        "started",
        "pause_requested",
        "event_received",
        "paused",
        "resume_requested",
        "resumed",
        "completed",
    ]
    assert events.iloc[1]["detail"] == {"reason": "look first"}


def test_terminate_then_nothing_left_to_do(run: Cli, lab: Lab) -> None:
    execution = lab.run(APPROVE)
    execution.wait(10, until="approval")
    done = run("terminate", execution.id, "--reason", "wrong input", *at(lab))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"terminated {execution.id}: it ends EXECUTION_TERMINATED\n"
    assert execution.wait(10).phase == "EXECUTION_TERMINATED"
    again, pause, approve, event = run.many(
        ["terminate", execution.id, *at(lab)],
        ["pause", execution.id, *at(lab)],
        ["approve", execution.id, *at(lab)],
        ["send-event", execution.id, "--type", "t.ping", *at(lab)],
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"{execution.id} has already ended: nothing to terminate\n"
    refused(pause, "has ended", "nothing to pause")
    refused(approve, "has ended", "nothing to approve")
    refused(event, "has ended")


def test_approve_and_reject(run: Cli, lab: Lab, temporal_server: EmbeddedServer) -> None:
    shipped, held = lab.run(APPROVE), lab.run(APPROVE)
    shipped.wait(10, until="approval")
    held.wait(10, until="approval")
    # Through the server's PID file (no --temporal, no TEMPORAL_HOST_PORT), as beside a kernel's lab.
    embedded = ["--home", str(temporal_server.pid_path.parent)]
    approve, reject = run.many(
        ["approve", shipped.id, "--comment", "looks good", "--by", "ana", *embedded],
        ["reject", held.id, "--comment", "not today", *at(lab)],
    )
    assert approve.returncode == 0, approve.stderr
    assert approve.stdout == f"approved task 'ok' of {shipped.id}\n"
    assert reject.returncode == 0, reject.stderr
    assert reject.stdout == f"rejected task 'ok' of {held.id}\n"
    assert shipped.wait(10).phase == "EXECUTION_COMPLETED"
    assert shipped.output == {"approved": True, "comment": "looks good", "by": "ana"}
    assert held.wait(10).phase == "EXECUTION_COMPLETED"
    assert held.output["approved"] is False and held.output["comment"] == "not today"
    assert held.output["by"]  # the user's name by default


def test_unknown_execution_or_no_lab_exit_2(run: Cli, lab: Lab, tmp_path: Path) -> None:
    results = run.many(
        *(
            [command, NO_SUCH, *extra, *at(lab)]
            for command, extra in (
                ("pause", []),
                ("terminate", []),
                ("approve", ["--comment", "x"]),
                ("send-event", ["--type", "t.ping"]),
                ("cancel", []),
            )
        ),
        ["pause", NO_SUCH, "--home", str(tmp_path / "no-lab")],
    )
    for proc in results[:-1]:
        refused(proc, f"no execution {NO_SUCH}", "check the id")
    refused(results[-1], "no lab is running on", "--temporal")


def test_rerun_and_recover_on_a_home_no_lab_holds(
    run: Cli, lab: Lab, lab_factory: Any, temporal_server: EmbeddedServer, tmp_path: Path
) -> None:
    failed: dict[str, str] = {}
    for how in ("recover", "rerun"):  # a home each, so both commands run at once
        first = lab_factory(home=tmp_path / how)
        execution = first.run(FAILS).wait(10)
        assert execution.phase == "EXECUTION_FAILED"
        failed[how] = execution.id
        first.stop()
    fixed = _write(tmp_path / "fixed.yaml", FIXED)

    def on(how: str) -> dict[str, str]:  # each CLI lab on queues of its own
        return {**queue_env(f"cli-{how}-{os.getpid()}"), "TEMPORAL_HOST_PORT": temporal_server.target}

    recovering = run.start(
        "recover", failed["recover"], "--file", str(fixed), "--json", "--home", str(tmp_path / "recover"),
        env=on("recover"),
    )  # fmt: skip
    rerunning = run.start("rerun", failed["rerun"], "--home", str(tmp_path / "rerun"), env=on("rerun"))
    # A running lab holds its history: one line, exit 2.
    locked = run.start("rerun", NO_SUCH, "--home", str(lab.settings.home), env=on("locked"))

    recovered = finish(recovering)
    assert recovered.returncode == 0, recovered.stderr
    result = json.loads(recovered.stdout)
    assert result["phase"] == "EXECUTION_COMPLETED" and result["recovered_from_id"] == failed["recover"]
    assert result["output"] == {"x": 2, "fixed": True}  # b got a's output: a did not run again
    assert [t["name"] for t in result["tasks"]] == ["b"]
    rerun = finish(rerunning)
    assert rerun.returncode == 1, rerun.stderr
    new_id = rerun.stdout.split()[1]
    assert rerun.stdout.startswith(f"started {new_id} (re-run of {failed['rerun']})\n")
    assert new_id != failed["rerun"] and "Boom" in rerun.stdout
    refused(finish(locked), "a running lab holds the history", "stop that lab")


def test_run_terminated_from_another_process_exits_130(
    run: Cli, temporal_server: EmbeddedServer, tmp_path: Path
) -> None:
    home = str(tmp_path / "run-home")
    env = {**queue_env(f"cli-run-{os.getpid()}"), "TEMPORAL_HOST_PORT": temporal_server.target}
    proc = run.start("run", str(_write(tmp_path / "approve.yaml", APPROVE)), "--home", home, env=env)
    assert proc.stdout is not None
    started = proc.stdout.readline()
    assert started.startswith("started "), finish(proc).stderr
    execution_id = started.split()[1]
    done = run("terminate", execution_id, "--home", home, "--temporal", temporal_server.target)
    assert done.returncode == 0, done.stderr
    result = finish(proc)
    assert result.returncode == 130, result.stderr
    assert f"{execution_id}  EXECUTION_TERMINATED" in result.stdout


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
