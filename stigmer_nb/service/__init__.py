"""Stigmer-side service: create/get/list, the status merge, and subscribers."""

from .merge import MergeResult, TaskState, merge_status, redact
from .service import Service, Starter
from .subscribers import ExecutionSnapshot, SubscriberHub, Subscription

__all__ = [
    "ExecutionSnapshot",
    "MergeResult",
    "Service",
    "Starter",
    "SubscriberHub",
    "Subscription",
    "TaskState",
    "merge_status",
    "redact",
]
