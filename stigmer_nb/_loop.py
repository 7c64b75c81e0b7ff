"""The lab's own thread and asyncio loop, so a blocked notebook cell never stalls a worker."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .logs import loop_exception_handler

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """A daemon thread running one event loop; coroutines are handed to it from any thread."""

    def __init__(self, name: str = "stigmer-nb-lab") -> None:
        self.loop = asyncio.new_event_loop()
        # Unhandled errors go to the lab's log, not to stderr (a random cell); the executor's threads
        # are named so that their warnings go there too (see logs.THREAD_PREFIX).
        self.loop.set_exception_handler(loop_exception_handler)
        self.loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(thread_name_prefix=f"{name}-io"))
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    @property
    def in_thread(self) -> bool:
        """True when called from the loop's own thread."""
        return threading.current_thread() is self.thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; a future usable from any thread.

        The coroutine runs in a fresh context: it must not inherit the calling cell's, or ipykernel
        would attribute its output (and widget messages) to a cell that has long finished.
        """
        # run_coroutine_threadsafe schedules with a copy of the current context: make that empty.
        return contextvars.Context().run(asyncio.run_coroutine_threadsafe, coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and block this thread for its result."""
        if self.in_thread:
            coro.close()
            raise RuntimeError("LoopThread.call from the loop's own thread would deadlock; await it instead")
        return self.submit(coro).result(timeout)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the loop from another loop (for async twins like ``lab.arun``)."""
        if self.in_thread:
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and join the thread."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if not self.in_thread:
            self.thread.join(timeout)
