"""Reading the problem a raised effect error carries (what crosses Temporal as its FailureDetail)."""

from __future__ import annotations

from typing import Any

from stigmer_nb.temporal.types import FailureDetail


def problem_of(error: BaseException) -> dict[str, Any]:
    """The problem details of ``error``; fails the test when it carries none."""
    failure = FailureDetail.of(error)
    assert failure is not None, f"{error!r} carries no FailureDetail"
    return failure.problem
