"""Worker faults and scale-out: runner processes killed, added, and the Stigmer side stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from typing import Any

import pytest
from temporalio.client import Client

from stigmer_nb.lab import Lab
from stigmer_nb.temporal.names import invoke_workflow_id

from ..integration.test_remote_runner import start_runner, stop

pytestmark = pytest.mark.integration

SLOW = """
document: {dsl: '1.0.0', namespace: workers, name: slow-three, version: '1.0.0'}
do:
  - first:
      set: {i: '${ .i }'}
  - nap:
      wait: {seconds: 2}
  - last:
      set: {i: '${ .i }', done: true}
"""


def worker_identities(lab: Lab, execution_ids: list[str]) -> set[str]:
    """Which worker processes ran each execution's ExecuteWorkflow activity (from Temporal history)."""

    async def collect() -> set[str]:
        found = set()
        for eid in execution_ids:
            history = await lab.client.get_workflow_handle(
                f"stigmer/workflow-execution/invoke/{eid}"
            ).fetch_history()
            for event in history.events:
                if event.HasField("activity_task_started_event_attributes"):
                    found.add(event.activity_task_started_event_attributes.identity)
        return found

    return lab._check().call(collect())


def test_two_runner_processes_share_the_load(lab_factory: Any) -> None:
    lab = lab_factory(local_runner=False)
    runners = [start_runner(lab), start_runner(lab)]
    try:
        executions = [lab.run(SLOW, input={"i": i}) for i in range(16)]
        for execution in executions:
            assert execution.wait(120).phase == "EXECUTION_COMPLETED", execution.error
        identities = worker_identities(lab, [e.id for e in executions])
        pids = {identity.split("@")[0] for identity in identities}
        assert pids == {str(p.pid) for p in runners}, identities  # both took work
        assert lab.sql("SELECT count(*) AS n FROM task_updates")["n"][0] == 16 * 6
    finally:
        for proc in runners:
            stop(proc)


def test_a_killed_runner_is_replaced_and_runs_complete(lab_factory: Any) -> None:
    lab = lab_factory(local_runner=False)
    first = start_runner(lab)
    executions = [lab.run(SLOW, input={"i": i}) for i in range(4)]
    deadline = time.monotonic() + 30
    while not all(e.phase == "EXECUTION_IN_PROGRESS" for e in executions) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)  # mid-activity: every run is in its 2 s wait
    first.wait(10)
    killed_at = time.monotonic()
    second = start_runner(lab)
    try:
        for execution in executions:
            assert execution.wait(60).phase == "EXECUTION_COMPLETED", execution.error
        recovery = time.monotonic() - killed_at
        print(f"runner killed mid-activity: all runs done {recovery:.1f}s later")
        assert recovery < 25  # heartbeats and short timeouts, not the 30-minute defaults
        for execution in executions:
            updates = execution.updates
            assert len(updates) == 6 and updates["seq"].is_unique
    finally:
        stop(second)


def test_progress_waits_for_a_stopped_stigmer_side_and_arrives_once_in_order(lab_factory: Any) -> None:
    lab = lab_factory(local_runner=False)
    settings = lab.settings
    runner = start_runner(lab)
    try:
        execution_ids = [lab.run(SLOW, input={"i": i}).id for i in range(3)]
        lab.stop()  # the Stigmer side goes away; the runner keeps executing
        time.sleep(4)  # long enough for every run to finish on the runner side
        restarted = Lab.create(settings)
        try:
            for eid in execution_ids:
                execution = restarted.execution(eid).wait(60)
                assert execution.phase == "EXECUTION_COMPLETED", execution.error
                updates = execution.updates
                assert list(updates["seq"]) == list(range(updates["seq"].iloc[0], updates["seq"].iloc[0] + 6))
                assert list(updates["name"]) == ["first", "first", "nap", "nap", "last", "last"]
        finally:
            restarted.stop()
    finally:
        stop(runner)


def test_cancel_from_the_cli(lab: Lab, cli: list[str]) -> None:
    execution = lab.run(SLOW.replace("seconds: 2", "seconds: 60"), input={"i": 0})
    deadline = time.monotonic() + 30
    while execution.phase != "EXECUTION_IN_PROGRESS" and time.monotonic() < deadline:
        time.sleep(0.05)
    proc = subprocess.run(
        [*cli, "cancel", execution.id, "--temporal", str(lab.settings.temporal_host_port), "--home", str(lab.settings.home)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert execution.wait(30).phase == "EXECUTION_CANCELLED"
    tasks = execution.tasks.set_index("name")
    assert tasks.loc["nap", "status"] == "WORKFLOW_TASK_FAILED"
    assert tasks.loc["nap", "error"]["title"] == "Cancelled"
    rows = len(execution.updates)
    time.sleep(1)
    assert len(execution.updates) == rows  # nothing arrives after the cancel
    assert execution.error["title"] == "Cancelled"


def test_cli_cancel_of_an_ended_or_unknown_execution(lab: Lab, cli: list[str]) -> None:
    """An execution that has ended is nothing to cancel (exit 0, as ``lab.cancel``); an id the
    server has never seen is a usage error (exit 2) that says so."""
    done = lab.run(SLOW.replace("seconds: 2", "seconds: 0"), input={"i": 0}).wait(60)
    assert done.phase == "EXECUTION_COMPLETED"
    # The row says COMPLETED a moment before the invoke workflow itself closes.
    lab._check().call(lab.client.get_workflow_handle(invoke_workflow_id(done.id)).result())
    where = ["--temporal", str(lab.settings.temporal_host_port), "--home", str(lab.settings.home)]
    ended = subprocess.run([*cli, "cancel", done.id, *where], capture_output=True, text=True, timeout=60)
    assert ended.returncode == 0, ended.stderr
    assert f"{done.id} has already ended (completed): nothing to cancel" in ended.stdout
    assert lab.execution(done.id).phase == "EXECUTION_COMPLETED"
    unknown = subprocess.run(
        [*cli, "cancel", "wex-01nosuchexecution", *where], capture_output=True, text=True, timeout=60
    )
    assert unknown.returncode == 2
    assert "no execution wex-01nosuchexecution" in unknown.stderr and "check the id" in unknown.stderr


def test_cancel_reaches_the_run_without_waiting_for_a_heartbeat(lab: Lab) -> None:
    """The invoke workflow cancels the DSL run itself; ExecuteWorkflow hears of its own cancel
    only with its next heartbeat, up to 12 s later, so the run must not wait for that."""
    execution = lab.run(SLOW.replace("seconds: 2", "seconds: 60"), input={"i": 0})
    deadline = time.monotonic() + 30
    while execution.phase != "EXECUTION_IN_PROGRESS" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # past the attempt's first beat: the next is 12 s away
    execution.cancel()
    assert execution.wait(8).phase == "EXECUTION_CANCELLED"
    assert execution.tasks.set_index("name").loc["nap", "status"] == "WORKFLOW_TASK_FAILED"


def test_cancel_right_after_run_leaves_no_task_open(lab: Lab) -> None:
    """Cancelled at once, the run may not exist yet, or may have just begun its tasks: either way
    the execution ends CANCELLED, every task it began is closed, and nothing arrives later."""
    executions = [lab.run(SLOW.replace("seconds: 2", "seconds: 60"), input={"i": i}) for i in range(6)]
    for execution in executions:
        execution.cancel()
    for execution in executions:
        assert execution.wait(30).phase == "EXECUTION_CANCELLED"
    time.sleep(1)
    for execution in executions:
        tasks = execution.tasks
        assert "WORKFLOW_TASK_IN_PROGRESS" not in set(tasks["status"]), tasks[["name", "status"]]
        assert "last" not in set(tasks["name"])


def test_a_cancel_racing_the_end_of_a_run_still_closes_the_books(lab: Lab) -> None:
    """Cancels landing anywhere around a short run's end: each execution ends COMPLETED (too late
    to cancel) or CANCELLED, never stays open, and a cancelled one has no task left running."""
    quick = SLOW.replace("seconds: 2", "milliseconds: 30")
    executions = []
    for i in range(24):
        execution = lab.run(quick, input={"i": i})
        time.sleep(0.005 * (i % 12))
        execution.cancel()
        executions.append(execution)
    phases = {execution.wait(30).phase for execution in executions}
    assert phases <= {"EXECUTION_COMPLETED", "EXECUTION_CANCELLED"}, phases
    for execution in executions:
        statuses = set(execution.tasks["status"])
        assert "WORKFLOW_TASK_IN_PROGRESS" not in statuses, (execution.phase, execution.updates)
        if execution.phase == "EXECUTION_COMPLETED":
            assert statuses == {"WORKFLOW_TASK_COMPLETED"}


def test_a_run_cancelled_on_the_runner_side_ends_cancelled(lab: Lab) -> None:
    """Someone cancels the DSL workflow itself (Temporal UI, CLI): the execution ends CANCELLED
    instead of ExecuteWorkflow retrying against a run that is over."""
    from stigmer_nb.temporal.names import dsl_workflow_id

    execution = lab.run(SLOW.replace("seconds: 2", "seconds: 60"), input={"i": 0})
    deadline = time.monotonic() + 30
    while execution.phase != "EXECUTION_IN_PROGRESS" and time.monotonic() < deadline:
        time.sleep(0.05)
    lab._check().call(lab.client.get_workflow_handle(dsl_workflow_id(execution.id)).cancel())
    assert execution.wait(30).phase == "EXECUTION_CANCELLED"
    assert execution.error["title"] == "Cancelled"
    assert execution.tasks.set_index("name").loc["nap", "status"] == "WORKFLOW_TASK_FAILED"


def test_a_stigmer_worker_process_keeps_recording_without_the_lab(lab_factory: Any, cli: list[str]) -> None:
    """`stigmer-nb worker stigmer` records progress of in-flight runs while no notebook is open."""
    from stigmer_nb.store import HistoryStore

    lab = lab_factory(local_runner=False)
    settings = lab.settings
    runner = start_runner(lab)
    worker = None
    try:
        execution_ids = [lab.run(SLOW, input={"i": i}).id for i in range(3)]
        lab.stop()  # the notebook goes away mid-run
        env = {
            **os.environ,
            "TEMPORAL_WORKFLOW_EXECUTION_STIGMER_TASK_QUEUE": settings.stigmer_queue,
            "TEMPORAL_WORKFLOW_EXECUTION_RUNNER_TASK_QUEUE": settings.runner_queue,
            "TEMPORAL_ZIGFLOW_EXECUTION_TASK_QUEUE": settings.zigflow_queue,
        }
        worker = subprocess.Popen(
            [*cli, "worker", "stigmer", "--temporal", str(settings.temporal_host_port), "--home", str(settings.home)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert worker.stdout is not None and "polling" in worker.stdout.readline()

        # The invoke workflow completes only after its final status is committed by the worker.
        async def all_done() -> None:
            client = await Client.connect(str(settings.temporal_host_port))
            for eid in execution_ids:
                await client.get_workflow_handle(f"stigmer/workflow-execution/invoke/{eid}").result()

        asyncio.run(asyncio.wait_for(all_done(), timeout=120))
        stop(worker)
        assert worker.returncode == 0
        store = HistoryStore(settings.history_path, read_only=True)
        try:
            phases = dict(store.rows("SELECT id, phase FROM workflow_executions"))
            assert {phases[eid] for eid in execution_ids} == {"EXECUTION_COMPLETED"}
            counts = dict(store.rows("SELECT execution_id, count(*) FROM task_updates GROUP BY 1"))
            assert all(counts[eid] == 6 for eid in execution_ids)
        finally:
            store.close()
    finally:
        if worker is not None:
            stop(worker)
        stop(runner)
