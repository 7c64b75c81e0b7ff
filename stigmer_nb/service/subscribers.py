"""Subscribers: who hears about execution changes, without ever slowing the writer down.

Each subscription is a latest-state mailbox. Publishing replaces the mailbox content and never
blocks; a slow reader skips intermediate states but always sees the newest one, so it cannot miss
the terminal state (Stigmer's broker drops updates from a full 100-slot buffer instead).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..model import ExecutionRecord
from .merge import TaskState

__all__ = ["ExecutionSnapshot", "SubscriberHub", "Subscription"]


@dataclass(frozen=True)
class ExecutionSnapshot:
    """An execution's full state at one moment: what subscribers receive."""

    record: ExecutionRecord
    tasks: tuple[TaskState, ...]

    @property
    def terminal(self) -> bool:
        """True once COMPLETED, FAILED, CANCELLED or TERMINATED."""
        return self.record.phase.terminal


Callback = Callable[[ExecutionSnapshot], Any]


class Subscription:
    """Current state first, then each newer state; iteration ends after a terminal state.

    Usable from threads (``get``, plain iteration) and from asyncio (``async for``).
    """

    def __init__(self, hub: SubscriberHub, execution_id: str) -> None:
        self._hub = hub
        self.execution_id = execution_id
        self._cond = threading.Condition()
        self._latest: ExecutionSnapshot | None = None
        self._version = 0
        self._taken = 0
        self._finished = False
        self._closed = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def offer(self, snapshot: ExecutionSnapshot) -> None:
        """Replace the mailbox content (called by the hub; never blocks for long)."""
        with self._cond:
            self._latest = snapshot
            self._version += 1
            waiters, self._waiters = self._waiters, []
            self._cond.notify_all()
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_resolve, fut)

    def get(self, timeout: float | None = None) -> ExecutionSnapshot | None:
        """Next newer state, blocking up to ``timeout``; None on timeout or once finished."""
        with self._cond:
            if self._finished or self._closed:
                return None
            if not self._cond.wait_for(lambda: self._version > self._taken or self._closed, timeout):
                return None
            return self._take()

    def _take(self) -> ExecutionSnapshot | None:
        if self._closed or self._latest is None:
            return None
        self._taken = self._version
        snapshot = self._latest
        if snapshot.terminal:
            self._finished = True
            self._hub.remove(self)
        return snapshot

    def close(self) -> None:
        """Stop receiving; pending readers wake up with None."""
        with self._cond:
            self._closed = True
            waiters, self._waiters = self._waiters, []
            self._cond.notify_all()
        self._hub.remove(self)
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_resolve, fut)

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> ExecutionSnapshot:
        snapshot = self.get()
        if snapshot is None:
            raise StopIteration
        return snapshot

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ExecutionSnapshot:
        while True:
            with self._cond:
                if self._finished or self._closed:
                    raise StopAsyncIteration
                if self._version > self._taken:
                    snapshot = self._take()
                    if snapshot is None:
                        raise StopAsyncIteration
                    return snapshot
                loop = asyncio.get_running_loop()
                fut: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, fut))
            await fut


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class SubscriberHub:
    """Subscriptions and callbacks per execution id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, list[Subscription]] = {}
        self._callbacks: dict[str, list[Callback]] = {}

    def subscribe(self, execution_id: str, current: ExecutionSnapshot | None) -> Subscription:
        """A mailbox primed with ``current`` (if given), then fed every publish."""
        sub = Subscription(self, execution_id)
        with self._lock:
            self._subs.setdefault(execution_id, []).append(sub)
        if current is not None:
            sub.offer(current)
        return sub

    def add_callback(self, execution_id: str, callback: Callback) -> Callable[[], None]:
        """Call ``callback(snapshot)`` on every publish (on the lab's thread); returns an unsubscriber."""
        with self._lock:
            self._callbacks.setdefault(execution_id, []).append(callback)

        def remove() -> None:
            with self._lock:
                callbacks = self._callbacks.get(execution_id, [])
                if callback in callbacks:
                    callbacks.remove(callback)
                if not callbacks:
                    self._callbacks.pop(execution_id, None)

        return remove

    def remove(self, sub: Subscription) -> None:
        """Forget ``sub``."""
        with self._lock:
            subs = self._subs.get(sub.execution_id, [])
            if sub in subs:
                subs.remove(sub)
            if not subs:
                self._subs.pop(sub.execution_id, None)

    def wants(self, execution_id: str) -> bool:
        """True when someone listens (so snapshots are only built when needed)."""
        return execution_id in self._subs or execution_id in self._callbacks

    def publish(self, snapshot: ExecutionSnapshot) -> None:
        """Hand ``snapshot`` to every listener of its execution; callback errors are contained."""
        eid = snapshot.record.id
        with self._lock:
            subs = list(self._subs.get(eid, ()))
            callbacks = list(self._callbacks.get(eid, ()))
        for sub in subs:
            sub.offer(snapshot)
        for callback in callbacks:
            try:
                callback(snapshot)
            except Exception:  # a broken widget must not break the status path
                import logging

                logging.getLogger(__name__).exception("execution subscriber failed")
        if snapshot.terminal:
            with self._lock:
                self._callbacks.pop(eid, None)
