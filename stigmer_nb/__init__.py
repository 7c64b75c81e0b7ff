"""stigmer_nb: run, watch and analyse durable Serverless Workflow executions from a notebook.

``lab = stigmer_nb.start()`` brings up an embedded Temporal server and both workers;
``lab.run(doc)`` starts an execution; ``lab.history()`` and ``lab.sql()`` read the DuckDB history.
Imports are lazy so ``import stigmer_nb`` stays cheap (and the workflow sandbox stays light).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    # starting and stopping
    "start",
    "astart",
    "current",
    "Lab",
    "Execution",
    "Batch",
    "Settings",
    # resources
    "ExecutionPhase",
    "WorkflowTaskStatus",
    "WorkflowTaskKind",
    # errors
    "StigmerError",
    "DSLValidationError",
    # IPython
    "load_ipython_extension",
]

_LAZY = {
    "start": ".session",
    "astart": ".session",
    "current": ".session",
    "Lab": ".lab",
    "Execution": ".lab",
    "Batch": ".batch",
    "Settings": ".settings",
    "ExecutionPhase": ".model",
    "WorkflowTaskStatus": ".model",
    "WorkflowTaskKind": ".model",
    "StigmerError": ".errors",
    "DSLValidationError": ".errors",
}

if TYPE_CHECKING:
    from .batch import Batch
    from .errors import DSLValidationError, StigmerError
    from .lab import Execution, Lab
    from .model import ExecutionPhase, WorkflowTaskKind, WorkflowTaskStatus
    from .session import astart, current, start
    from .settings import Settings


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stigmer_nb' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext stigmer_nb``: the %stigmer line magic and the %%stigmer_run / %%stigmer_sql cells."""
    from .magics import register  # keeps `import stigmer_nb` fast

    register(ipython)
