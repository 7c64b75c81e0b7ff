import re

import pytest

from stigmer_nb.errors import InvalidInputError
from stigmer_nb.model import (
    ExecutionPhase,
    WorkflowTaskKind,
    WorkflowTaskStatus,
    default_execution_name,
    new_id,
    new_ulid,
    slugify,
)


def test_enum_names_and_numbers_are_stigmers() -> None:
    assert [(p.name, p.value) for p in ExecutionPhase] == [
        ("EXECUTION_PHASE_UNSPECIFIED", 0),
        ("EXECUTION_PENDING", 1),
        ("EXECUTION_IN_PROGRESS", 2),
        ("EXECUTION_COMPLETED", 3),
        ("EXECUTION_FAILED", 4),
        ("EXECUTION_CANCELLED", 5),
        # Ours, past Stigmer's numbers (its runner has no real pause and no terminate).
        ("EXECUTION_PAUSED", 6),
        ("EXECUTION_TERMINATED", 7),
    ]
    assert [(s.name, s.value) for s in WorkflowTaskStatus][1:] == [
        ("WORKFLOW_TASK_PENDING", 1),
        ("WORKFLOW_TASK_IN_PROGRESS", 2),
        ("WORKFLOW_TASK_COMPLETED", 3),
        ("WORKFLOW_TASK_FAILED", 4),
        ("WORKFLOW_TASK_SKIPPED", 5),
    ]
    assert len(WorkflowTaskKind) == 14  # UNSPECIFIED + 13 kinds
    assert WorkflowTaskKind.WORKFLOW_TASK_KIND_SET == 1
    assert WorkflowTaskKind.WORKFLOW_TASK_KIND_AGENT_CALL == 13


def test_terminal_phases() -> None:
    assert {p for p in ExecutionPhase if p.terminal} == {
        ExecutionPhase.EXECUTION_COMPLETED,
        ExecutionPhase.EXECUTION_FAILED,
        ExecutionPhase.EXECUTION_CANCELLED,
        ExecutionPhase.EXECUTION_TERMINATED,
    }


def test_ids_are_prefix_plus_lowercase_ulid() -> None:
    for kind, prefix in (("workflow", "wfl"), ("workflow_instance", "win"), ("workflow_execution", "wex")):
        value = new_id(kind)
        assert re.fullmatch(prefix + r"-[0-9a-hjkmnp-tv-z]{26}", value), value
    ulids = [new_ulid() for _ in range(200)]
    assert len(set(ulids)) == 200
    assert new_ulid()[:10] >= ulids[0][:10]  # the 48-bit time prefix orders them


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Test Execution", "test-execution"),
        ("hello", "hello"),
        ("  Many   Spaces  ", "many-spaces"),
        ("Ünïcode & symbols!", "ncode-symbols"),
        ("a--b", "a-b"),
        ("my-flow-default", "my-flow-default"),
    ],
)
def test_slug_rules(name: str, slug: str) -> None:
    assert slugify(name) == slug


@pytest.mark.parametrize("name", ["", "   ", "!!!"])
def test_slug_of_empty_name_is_an_error(name: str) -> None:
    with pytest.raises(InvalidInputError):
        slugify(name)


def test_default_execution_name() -> None:
    assert re.fullmatch(r"execution-\d{16}", default_execution_name())
