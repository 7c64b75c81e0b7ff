"""Re-run, recover, document versions and batches through the real server."""

from __future__ import annotations

from typing import Any

import pytest

from stigmer_nb.errors import ExecutionStateError, InvalidInputError, NotFoundError
from stigmer_nb.lab import Lab

pytestmark = pytest.mark.integration

BUGGY = """
document: {dsl: '1.0.0', namespace: tests, name: pipeline, version: '1.0.0'}
do:
  - fetch:
      call: fetch
      with: {n: '${ .n }'}
      export: {as: '${ {fetched: .} }'}
  - parse:
      set: {value: '${ .rows / 0 }'}
  - report:
      set: {value: '${ .value }', from: '${ $context.fetched.rows }'}
"""

FIXED = BUGGY.replace("'${ .rows / 0 }'", "'${ .rows * 10 }'")


@pytest.fixture
def counted(lab: Lab) -> dict[str, int]:
    calls = {"fetch": 0}

    def fetch(n: int) -> dict[str, Any]:
        calls["fetch"] += 1
        return {"rows": n}

    lab.register_function("fetch", fetch)
    return calls


def test_recover_resumes_at_the_failed_task_with_its_recorded_input_and_context(
    lab: Lab, counted: dict[str, int]
) -> None:
    failed = lab.run(BUGGY, input={"n": 4}).wait(30)
    assert failed.phase == "EXECUTION_FAILED"
    assert failed.record.checkpoint == {
        "task": "parse",
        "index": 1,
        "data": {"rows": 4},
        "context": {"fetched": {"rows": 4}},
    }
    recovered = failed.recover(document=FIXED).wait(30)
    assert recovered.phase == "EXECUTION_COMPLETED", recovered.error
    assert recovered.output == {"value": 40, "from": 4}
    assert counted["fetch"] == 1  # the task before the failed one did not run again
    assert list(recovered.tasks["name"]) == ["parse", "report"]
    record = recovered.record
    assert record.recovered_from_id == failed.id
    assert record.document_hash != failed.document_hash
    assert record.trigger_message == f"recovery of {failed.id}"
    assert list(failed.events["kind"])[-1] == "recovered"
    # Did the fix lower the failure rate? One SQL question over the versions.
    rates = lab.sql(
        "SELECT document_hash, failure_rate FROM version_failure_rates WHERE workflow_name = 'pipeline'"
    ).set_index("document_hash")["failure_rate"]
    assert rates[failed.document_hash] == 1.0
    assert rates[recovered.document_hash] == 0.0
    versions = lab.versions("pipeline")
    assert list(versions["current"]) == [False, True]
    assert list(versions["number"]) == [1, 2]
    assert list(versions["short_hash"]) == [failed.document_hash[:12], recovered.document_hash[:12]]
    assert recovered.recovered_from.id == failed.id and failed.checkpoint["task"] == "parse"
    assert list(versions["executions"]) == [1, 1]
    diff = lab.diff("pipeline")
    assert "-      value: ${ .rows / 0 }" in diff and "+      value: ${ .rows * 10 }" in diff
    assert "<span" in diff._repr_html_()


def test_recover_refuses_what_it_cannot_do_and_writes_nothing(lab: Lab, counted: dict[str, int]) -> None:
    failed = lab.run(BUGGY, input={"n": 1}).wait(30)
    before = len(lab.history())
    renamed = FIXED.replace("- parse:", "- parsed:")
    with pytest.raises(InvalidInputError, match="failed in top-level task 'parse'"):
        failed.recover(document=renamed)
    done = lab.run(FIXED, input={"n": 1}).wait(30)
    with pytest.raises(ExecutionStateError, match="EXECUTION_COMPLETED, not EXECUTION_FAILED"):
        done.recover()
    input_failure = lab.run(
        """
document: {dsl: '1.0.0', namespace: tests, name: strict, version: '1.0.0'}
input:
  schema: {format: json, document: {type: object, required: [n]}}
do:
  - a: {set: {n: '${ .n }'}}
""",
        input={},
    ).wait(30)
    assert input_failure.phase == "EXECUTION_FAILED"
    with pytest.raises(ExecutionStateError, match="failed outside its tasks"):
        input_failure.recover()
    assert len(lab.history()) == before + 2


def test_rerun_runs_the_same_version_even_after_an_edit(lab: Lab, counted: dict[str, int]) -> None:
    first = lab.run(FIXED, input={"n": 2}).wait(30)
    lab.run(FIXED.replace("* 10", "* 100"), input={"n": 2}).wait(30)  # the workflow moves on
    again = first.rerun().wait(30)
    assert again.output == first.output == {"value": 20, "from": 2}
    assert again.document_hash == first.document_hash
    assert again.record.rerun_of_id == first.id
    other = first.rerun(input={"n": 3}, tags=["retry"]).wait(30)
    assert other.output == {"value": 30, "from": 3}
    assert other.record.tags == ["retry"]
    assert list(first.events["kind"]).count("rerun") == 2
    # Pinned: the context a runner reads is the version the execution was created with.
    assert lab.service.load_context(first.id).document == lab.prepare(FIXED)[0]
    with pytest.raises(NotFoundError):
        lab.diff("pipeline", "0000", None)


def test_rerun_needs_secret_values_again(lab: Lab) -> None:
    doc = """
document: {dsl: '1.0.0', namespace: tests, name: secretive, version: '1.0.0'}
do:
  - use: {set: {n: '${ $secrets.TOKEN | length }'}}
"""
    first = lab.run(doc, runtime_env={"TOKEN": {"value": "s3cr3t-value", "is_secret": True}}).wait(30)
    assert first.output == {"n": 12}
    with pytest.raises(ExecutionStateError, match="secret runtime values \\(TOKEN\\)"):
        first.rerun()
    again = first.rerun(runtime_env={"TOKEN": {"value": "other", "is_secret": True}}).wait(30)
    assert again.output == {"n": 5}


def test_map_starts_a_tagged_batch(lab: Lab) -> None:
    doc = """
document: {dsl: '1.0.0', namespace: tests, name: square, version: '1.0.0'}
do:
  - sq: {set: {sq: '${ .n * .n }'}}
"""
    batch = lab.map(doc, [{"n": n} for n in range(6)], tags=["nightly", "squares"])
    assert len(batch) == 6
    batch.wait(60)
    assert batch.done and batch.counts() == {"completed": 6}
    assert batch.outputs == [{"sq": n * n} for n in range(6)]
    tagged = lab.sql(
        "SELECT count(*) AS n, any_value(batch_id) AS batch FROM workflow_executions "
        "WHERE list_contains(tags, 'nightly')"
    )
    assert (tagged["n"][0], tagged["batch"][0]) == (6, batch.id)
    assert list(batch.results()["phase"]) == ["EXECUTION_COMPLETED"] * 6
    assert "6/6 finished" in repr(batch)


def test_map_refuses_a_bad_input_before_starting_any(lab: Lab) -> None:
    doc = "document: {dsl: '1.0.0', namespace: tests, name: noop, version: '1.0.0'}\ndo:\n  - a: {set: {}}\n"
    with pytest.raises(InvalidInputError, match=r"inputs\[2\] is not JSON"):
        lab.map(doc, [{}, {}, {"x": object()}])
    with pytest.raises(InvalidInputError, match="inputs must be a list"):
        lab.map(doc, {"n": 1})
    with pytest.raises(InvalidInputError, match="every tag"):
        lab.map(doc, [{}], tags=["ok", ""])
    assert len(lab.history()) == 0


def test_history_and_tasks_filter_by_tag_and_batch(lab: Lab) -> None:
    doc = (
        "document: {dsl: '1.0.0', namespace: tests, name: tagged, version: '1.0.0'}\ndo:\n  - a: {set: {}}\n"
    )
    lab.run(doc, tags=["alpha"]).wait(30)
    batch = lab.map(doc, [{}, {}], tags=["beta"]).wait(30)
    assert len(lab.history(tag="alpha")) == 1
    assert len(lab.history(tag="beta")) == 2
    assert set(lab.history(batch=batch.id)["id"]) == {e.id for e in batch}
    assert len(lab.tasks(tag="beta")) == 2
    assert list(lab.history(tag="alpha")["tags"][0]) == ["alpha"]
