"""Stigmer WorkflowSpec → DSL: golden files per kind, and clear errors for bad specs."""

# After a deliberate change, regenerate the expected files and review the diff:
#   UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_converter.py

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from stigmer_nb.dsl.document import load_source
from stigmer_nb.dsl.validate import validate_document
from stigmer_nb.errors import DSLValidationError, InvalidInputError
from stigmer_nb.runner.converter import TASK_KINDS, convert_spec

GOLDEN = Path(__file__).parents[1] / "golden" / "converter"
CASES = sorted(p.name.removesuffix(".spec.json") for p in GOLDEN.glob("*.spec.json"))
_HEADER = "# Expected output of convert_spec for {name}.spec.json (UPDATE_GOLDEN=1 rewrites it).\n"


def _spec(case: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{case}.spec.json").read_text(encoding="utf-8"))


def _kinds(tasks: list[dict[str, Any]]) -> set[str]:
    """Every kind used in ``tasks``, nested ones included."""
    found: set[str] = set()
    for task in tasks:
        found.add(task["kind"].removeprefix("WORKFLOW_TASK_KIND_"))
        config = task.get("taskConfig") or task.get("task_config") or {}
        nested = [*config.get("do", []), *config.get("try", []), *(config.get("catch") or {}).get("do", [])]
        nested += [t for branch in config.get("branches", []) for t in branch.get("do", [])]
        found |= _kinds(nested)
    return found


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    converted = convert_spec(_spec(case))
    expected_path = GOLDEN / f"{case}.dsl.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        text = yaml.safe_dump(converted, sort_keys=False, allow_unicode=True, width=110)
        expected_path.write_text(_HEADER.format(name=case) + text, encoding="utf-8")
    expected = load_source(expected_path)
    assert converted == expected.data
    # Every converted document is one the engine accepts (the file too, with line numbers on failure),
    # except GRPC_CALL, which converts faithfully but names no .proto (Stigmer's config has none),
    # so it is refused before anything runs.
    if case == "grpc_call":
        with pytest.raises(DSLValidationError, match="call: grpc `with` needs `proto`"):
            validate_document(load_source(converted))
        return
    validate_document(expected)
    validate_document(load_source(converted))


def test_goldens_cover_every_kind() -> None:
    covered = set().union(*(_kinds(_spec(case)["tasks"]) for case in CASES))
    assert covered == set(TASK_KINDS)


def test_snake_case_and_camel_case_convert_alike() -> None:
    camel = _spec("http_call")
    snake = copy.deepcopy(camel)
    for task in snake["tasks"]:
        config = task.pop("taskConfig")
        if "timeoutSeconds" in config:
            config["timeout_seconds"] = config.pop("timeoutSeconds")
        task["task_config"] = config
    assert convert_spec(snake) == convert_spec(camel)


def test_kind_may_be_short_or_a_number() -> None:
    spec = _spec("wait")
    spec["tasks"][0]["kind"] = "WAIT"
    spec["tasks"][1]["kind"] = 1  # SET
    assert convert_spec(spec) == convert_spec(_spec("wait"))


def _problems(spec: Any) -> list[dict[str, Any]]:
    with pytest.raises(DSLValidationError) as info:
        convert_spec(spec)
    return info.value.problems


def _one(spec: Any) -> tuple[str, str]:
    problems = _problems(spec)
    assert len(problems) == 1, problems
    return problems[0]["instance"], problems[0]["detail"]


def test_errors_are_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match=r"WorkflowSpec: .*needs `document`"):
        convert_spec({"tasks": _spec("wait")["tasks"]})


def test_no_document() -> None:
    assert _one({"tasks": _spec("wait")["tasks"]}) == (
        "/",
        "a WorkflowSpec needs `document`: {dsl, namespace, name, version}",
    )


def test_no_tasks() -> None:
    spec = _spec("wait")
    spec["tasks"] = []
    assert _one(spec) == ("/tasks", "a WorkflowSpec needs `tasks`: a non-empty list of tasks")


def test_document_fields_required_and_dsl_checked() -> None:
    spec = _spec("wait")
    spec["document"] = {"dsl": "0.8", "namespace": "golden", "version": "1.0.0", "titel": "x"}
    problems = {p["instance"]: p["detail"] for p in _problems(spec)}
    assert problems == {
        "/document/titel": "document has no field 'titel'",
        "/document/dsl": "document.dsl '0.8' is not supported; use 1.0.0",
        "/document": "document needs `name`",
    }


def test_unknown_kind_suggests_the_right_one() -> None:
    spec = _spec("wait")
    spec["tasks"][0]["kind"] = "WORKFLOW_TASK_KIND_WIAT"
    pointer, detail = _one(spec)
    assert pointer == "/tasks/0/kind"
    assert detail.startswith(
        "task 'pause' has an unknown kind 'WORKFLOW_TASK_KIND_WIAT'; did you mean 'WORKFLOW_TASK_KIND_WAIT'?"
    )


def test_unspecified_kind() -> None:
    spec = _spec("wait")
    spec["tasks"][0]["kind"] = "WORKFLOW_TASK_KIND_UNSPECIFIED"
    pointer, detail = _one(spec)
    assert (pointer, detail.split(";")[0]) == (
        "/tasks/0/kind",
        "task 'pause' has an unknown kind 'WORKFLOW_TASK_KIND_UNSPECIFIED'",
    )


def test_bad_task_config_names_the_task() -> None:
    spec = _spec("http_call")
    config = spec["tasks"][0]["taskConfig"]
    del config["endpoint"]
    config["timeoutSeconds"] = 900
    config["headrs"] = {}
    problems = [(p["instance"], p["detail"]) for p in _problems(spec)]
    assert problems == [
        (
            "/tasks/0/taskConfig/headrs",
            "task 'fetchItem' (HTTP_CALL): taskConfig has no field 'headrs'; did you mean 'headers'?",
        ),
        ("/tasks/0/taskConfig", "task 'fetchItem' (HTTP_CALL): needs `endpoint`"),
        (
            "/tasks/0/taskConfig/timeoutSeconds",
            "task 'fetchItem' (HTTP_CALL): `timeout_seconds` must be a whole number 1..300, not 900",
        ),
    ]


def test_missing_task_config() -> None:
    spec = _spec("wait")
    del spec["tasks"][0]["taskConfig"]
    assert _one(spec) == ("/tasks/0", "task 'pause' (WAIT) needs `taskConfig`: an object")


def test_nested_problems_point_into_the_nested_task() -> None:
    spec = _spec("for")
    inner = spec["tasks"][0]["taskConfig"]["do"][0]
    inner["taskConfig"]["variables"]["position"] = 3
    assert _one(spec) == (
        "/tasks/0/taskConfig/do/0/taskConfig/variables/position",
        "task 'tally' (SET): variable 'position' must be a string, not 3",
    )


def test_every_problem_is_reported_at_once() -> None:
    spec = _spec("example_10_error_handling")
    spec["tasks"][0]["taskConfig"]["catch"]["do"][0]["kind"] = "NOPE"
    spec["tasks"][1]["taskConfig"]["cases"][0].pop("then")
    spec["tasks"][2]["taskConfig"] = {}
    spec["tasks"][3]["flow"] = {"then": "end", "else": "x"}
    pointers = [p["instance"] for p in _problems(spec)]
    assert pointers == [
        "/tasks/0/taskConfig/catch/do/0/kind",
        "/tasks/1/taskConfig/cases/0",
        "/tasks/2/taskConfig",
        "/tasks/3/flow/else",
    ]


def test_wait_needs_positive_seconds() -> None:
    spec = _spec("wait")
    spec["tasks"][0]["taskConfig"] = {"seconds": 0}
    assert _one(spec) == (
        "/tasks/0/taskConfig/seconds",
        "task 'pause' (WAIT): `seconds` must be a whole number ≥ 1, not 0",
    )


def test_listen_refuses_query_signals() -> None:
    spec = _spec("listen")
    spec["tasks"][0]["taskConfig"]["to"]["signals"][0]["type"] = "query"
    assert _one(spec) == (
        "/tasks/0/taskConfig/to/signals/0/type",
        "task 'approval' (LISTEN): signal type 'query' is not supported; listen waits for events delivered by signal",
    )


@pytest.mark.parametrize(
    ("error", "type_", "status"),
    [
        ("timeout", "https://serverlessworkflow.io/spec/1.0.0/errors/timeout", 408),
        ("Validation", "https://serverlessworkflow.io/spec/1.0.0/errors/validation", 400),
        ("PaymentDeclined", "https://serverlessworkflow.io/spec/1.0.0/errors/runtime", 500),
        ("https://example.com/errors/x", "https://example.com/errors/x", 500),
        (
            "https://serverlessworkflow.io/dsl/errors/types/communication",
            "https://serverlessworkflow.io/dsl/errors/types/communication",
            500,
        ),
        ("urn:acme:out-of-stock", "urn:acme:out-of-stock", 500),
        ("${ .kind }", "${ .kind }", 500),
    ],
)
def test_raise_error_type_rule(error: str, type_: str, status: int) -> None:
    spec = _spec("wait")
    spec["tasks"] = [{"name": "fail", "kind": "RAISE", "taskConfig": {"error": error, "message": "m"}}]
    raised = convert_spec(spec)["do"][0]["fail"]["raise"]["error"]
    assert raised == {"type": type_, "status": status, "title": error, "detail": "m"}


def test_agent_scope_by_number() -> None:
    spec = _spec("agent_call")
    spec["tasks"][1]["taskConfig"]["scope"] = 3
    assert convert_spec(spec)["do"][1]["summarise"]["with"]["scope"] == "identity_account"
