"""Batches: one document over many inputs (``lab.map``), tagged and followed together."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ExecutionTimeoutError, InvalidInputError
from .model import new_id

if TYPE_CHECKING:
    import pandas as pd

    from .lab import Execution, Lab

__all__ = ["Batch", "start_batch"]

_MAX_BATCH = 10_000


class Batch:
    """The executions one ``lab.map`` started: their progress, outcomes and outputs."""

    def __init__(self, lab: Lab, batch_id: str, executions: list[Execution], tags: list[str]) -> None:
        self.lab = lab
        self.id = batch_id
        self.executions = executions
        self.tags = tags

    def __len__(self) -> int:
        return len(self.executions)

    def __iter__(self) -> Any:
        return iter(self.executions)

    def __getitem__(self, index: int) -> Execution:
        return self.executions[index]

    def __repr__(self) -> str:
        counts = self.counts()
        done = sum(v for k, v in counts.items() if k in _FINISHED)
        return f"<Batch {self.id} {done}/{len(self)} finished {counts}>"

    def counts(self) -> dict[str, int]:
        """Executions per phase (short names: ``completed``, ``failed``, ``in_progress`` …)."""
        df = self.lab.store.query(
            "SELECT phase, count(*) AS n FROM workflow_executions WHERE batch_id = ? GROUP BY phase",
            [self.id],
        )
        return {
            str(p).removeprefix("EXECUTION_").lower(): int(n)
            for p, n in zip(df["phase"], df["n"], strict=True)
        }

    @property
    def done(self) -> bool:
        """True once every execution has ended."""
        return sum(v for k, v in self.counts().items() if k in _FINISHED) == len(self)

    def wait(self, timeout: float | None = None) -> Batch:
        """Block until every execution has ended; ExecutionTimeoutError after ``timeout`` seconds."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        for execution in self.executions:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                execution.wait(left)
            except ExecutionTimeoutError:
                raise ExecutionTimeoutError(self.id, timeout or 0, f"{self.counts()}") from None
        return self

    def results(self) -> pd.DataFrame:
        """One row per execution, in input order: id, phase, input, output, error, duration."""
        from .lab import _json_columns

        df = self.lab.store.query(
            "SELECT e.id, e.name, e.phase, e.input, e.output, e.error, d.duration_ms, e.tags "
            "FROM workflow_executions e JOIN execution_durations d ON d.execution_id = e.id "
            "WHERE e.batch_id = ?",
            [self.id],
        )
        order = {e.id: i for i, e in enumerate(self.executions)}
        df = df.assign(_order=df["id"].map(order)).sort_values("_order").drop(columns="_order")
        return _json_columns(df.reset_index(drop=True), ("input", "output", "error"))

    @property
    def outputs(self) -> list[Any]:
        """Each execution's output (None where it has none), in input order."""
        return list(self.results()["output"])

    def _ipython_display_(self) -> None:
        from .widgets.batch import display_batch

        display_batch(self)


_FINISHED = {"completed", "failed", "cancelled", "terminated"}


def _inputs(inputs: Any) -> list[Any]:
    """The inputs as a list (a DataFrame gives one dict per row), each checked to be JSON."""
    try:
        import pandas as pd

        if isinstance(inputs, pd.DataFrame):
            inputs = json.loads(inputs.to_json(orient="records", date_format="iso"))
    except ImportError:
        pass
    if isinstance(inputs, str | bytes | Mapping) or not isinstance(inputs, Iterable):
        raise InvalidInputError(
            "inputs must be a list (or any iterable, or a DataFrame) of inputs, one per execution"
        )
    items = list(inputs)
    if not items:
        raise InvalidInputError("inputs is empty: give at least one input")
    if len(items) > _MAX_BATCH:
        raise InvalidInputError(f"{len(items):,} inputs; one batch takes at most {_MAX_BATCH:,}")
    for index, item in enumerate(items):
        try:
            json.dumps(item, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"inputs[{index}] is not JSON: {exc}") from None
        except RecursionError:
            raise InvalidInputError(f"inputs[{index}] nests too deeply; flatten it") from None
    return items


def start_batch(
    lab: Lab,
    doc: str | Path | Mapping[str, Any],
    inputs: Any,
    *,
    tags: list[str] | None = None,
    name: str | None = None,
    runtime_env: Mapping[str, Any] | None = None,
) -> Batch:
    """Validate ``doc`` and every input, then start one execution per input; returns at once."""
    from .service.service import normalise_tags

    thread = lab._check()
    items = _inputs(inputs)
    tag_list = normalise_tags(tags)
    document, spec = lab._prepared(doc, runtime_env)
    batch_id = new_id("batch")
    return thread.call(_start(lab, document, spec, items, tag_list, name, runtime_env, batch_id))


async def _start(
    lab: Lab,
    document: dict[str, Any],
    spec: dict[str, Any] | None,
    items: list[Any],
    tags: list[str],
    name: str | None,
    runtime_env: Mapping[str, Any] | None,
    batch_id: str,
) -> Batch:
    from .lab import Execution

    wf = await lab.service.apply_workflow(document, spec=spec)
    prefix = name or f"{wf.slug}-{batch_id.removeprefix('bat-')[-8:]}"
    executions = []
    for index, item in enumerate(items):
        record = await lab.service.create_execution(
            workflow=wf.id,
            name=f"{prefix}-{index + 1}",
            input=item,
            runtime_env=runtime_env,
            tags=tags,
            batch_id=batch_id,
            document_hash=wf.document_hash,
        )
        executions.append(Execution(lab, record.id))
    return Batch(lab, batch_id, executions, tags)
