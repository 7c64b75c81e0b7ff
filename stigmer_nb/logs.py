"""Where the workers' logs go: a rotating file in the lab's home, never a notebook cell or stderr.

temporalio logs through the stdlib ``logging`` module (``temporalio.*``: "Completing activity as
failed" with a whole traceback, once per attempt) and so do we (``stigmer_nb.*``). With no handler
configured, Python's last-resort handler prints WARNING and above to stderr, which inside a kernel
is whichever cell happens to be running. ``attach(home)`` gives both loggers a file handler on
``<home>/workers.log`` and stops them propagating; ``detach`` undoes it. A handler the user added
on purpose stays where it is.

The same goes for what the lab's threads would otherwise print: ``warnings.warn`` raised on a
``stigmer-nb*`` thread, an exception that ends such a thread, and the lab loop's unhandled
exceptions (``loop_exception_handler``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

__all__ = ["LOG_FILE", "LogHandle", "attach", "detach", "log_path", "loop_exception_handler"]

LOG_FILE = "workers.log"
"""The file in the lab's home (beside the server's ``temporal.log``)."""

LEVELS = {"stigmer_nb": logging.INFO, "temporalio": logging.WARNING}
"""The loggers sent to the file, each with the lowest level written."""

MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"
THREAD_PREFIX = "stigmer-nb"
"""Warnings raised on threads named so (the lab loop, its executor, the history writer) are logged."""

_lock = threading.Lock()


def log_path(home: Path | str) -> Path:
    """The workers' log file of ``home``."""
    return Path(home) / LOG_FILE


class _Redacting(logging.Formatter):
    """The usual format, with the secrets each attached lab knows masked in the whole text."""

    def __init__(self) -> None:
        super().__init__(FORMAT)
        self.redactors: list[Callable[[str], str]] = []

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for redact in list(self.redactors):
            text = redact(text)
        return text


class _Floor(logging.Filter):
    """Each logger's own lowest level, so one handler serves both (INFO for ours, WARNING for temporalio)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, level in LEVELS.items():
            if record.name == name or record.name.startswith(name + "."):
                return record.levelno >= level
        return record.levelno >= logging.WARNING


class _FileHandler(RotatingFileHandler):
    def handleError(self, record: logging.LogRecord) -> None:
        # A log that cannot be written (a full disk, a home gone) must not print "--- Logging
        # error ---" into a cell either: the line is dropped.
        pass


@dataclass
class _File:
    handler: RotatingFileHandler
    formatter: _Redacting
    handles: list[LogHandle] = field(default_factory=list)


@dataclass(eq=False)
class LogHandle:
    """One ``attach``; give it back to ``detach``."""

    path: Path
    redact: Callable[[str], str] | None = None


_files: dict[Path, _File] = {}
_saved: dict[str, tuple[bool, int]] = {}
"""Each logger's propagate flag and level before the first attach, restored after the last detach."""
_original_showwarning: Callable[..., None] | None = None
_default_showwarning = warnings.showwarning
_original_excepthook: Callable[[threading.ExceptHookArgs], Any] | None = None


def attach(home: Path | str, *, redact: Callable[[str], str] | None = None) -> LogHandle:
    """Send the ``stigmer_nb`` and ``temporalio`` logs to ``<home>/workers.log``.

    Idempotent per home: a second attach on the same home shares the file (one handler); the file
    is closed when the last of its handles is detached. ``redact`` masks secrets in each line.
    """
    path = log_path(home).resolve()
    with _lock:
        entry = _files.get(path)
        if entry is None:
            with contextlib.suppress(OSError):  # an unusable home is the history's error to report
                path.parent.mkdir(parents=True, exist_ok=True)
            formatter = _Redacting()
            handler = _FileHandler(
                path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True
            )
            handler.setFormatter(formatter)
            handler.addFilter(_Floor())
            entry = _files[path] = _File(handler, formatter)
            if len(_files) == 1:
                _take_over()
                _forward_core_logs()
            for name in LEVELS:
                logging.getLogger(name).addHandler(handler)
        handle = LogHandle(path, redact)
        entry.handles.append(handle)
        if redact is not None:
            entry.formatter.redactors.append(redact)
        return handle


_core_forwarded = False


def _forward_core_logs() -> None:
    """Send the Rust core's log lines (it writes them to the process's stderr, which a kernel shows
    in the running cell, e.g. "[TMPRL1103] ... payloads ... exceeded the warning limit") to the
    ``temporalio.core`` logger. Clients made before keep the runtime they were made with."""
    global _core_forwarded
    if _core_forwarded:
        return
    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        Runtime,
        TelemetryConfig,
        TelemetryFilter,
    )

    logging_config = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
    )
    Runtime.set_default(
        Runtime(telemetry=TelemetryConfig(logging=logging_config)), error_if_already_set=False
    )
    _core_forwarded = True


def detach(handle: LogHandle) -> None:
    """Undo ``attach``; the last handle of a home removes its handler and closes the file. Idempotent."""
    with _lock:
        entry = _files.get(handle.path)
        if entry is None or handle not in entry.handles:
            return
        entry.handles.remove(handle)
        if handle.redact is not None and handle.redact in entry.formatter.redactors:
            entry.formatter.redactors.remove(handle.redact)
        if entry.handles:
            return
        del _files[handle.path]
        for name in LEVELS:
            logging.getLogger(name).removeHandler(entry.handler)
        entry.handler.close()
        if not _files:
            _give_back()


def _take_over() -> None:
    """First attach of the process: stop propagation, open the levels, catch the lab threads' warnings."""
    global _original_showwarning, _original_excepthook
    for name, level in LEVELS.items():
        logger = logging.getLogger(name)
        _saved[name] = (logger.propagate, logger.level)
        logger.propagate = False
        if logger.level == logging.NOTSET:  # a level the user chose stays
            logger.setLevel(level)
    _original_showwarning = warnings.showwarning
    warnings.showwarning = _showwarning
    _original_excepthook = threading.excepthook
    threading.excepthook = _excepthook


def _give_back() -> None:
    global _original_showwarning, _original_excepthook
    for name, (propagate, level) in _saved.items():
        logger = logging.getLogger(name)
        logger.propagate = propagate
        logger.setLevel(level)
    _saved.clear()
    if warnings.showwarning is _showwarning and _original_showwarning is not None:
        warnings.showwarning = _original_showwarning
    _original_showwarning = None
    if threading.excepthook is _excepthook and _original_excepthook is not None:
        threading.excepthook = _original_excepthook
    _original_excepthook = None


def _ours(thread: threading.Thread | None) -> bool:
    return thread is not None and thread.name.startswith(THREAD_PREFIX)


def _showwarning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    if _ours(threading.current_thread()):
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
        logging.getLogger("stigmer_nb.warnings").warning("%s", text)
        return
    (_original_showwarning or _default_showwarning)(message, category, filename, lineno, file, line)


def loop_exception_handler(loop: Any, context: dict[str, Any]) -> None:
    """For ``loop.set_exception_handler``: what asyncio would print to stderr ("Task exception was
    never retrieved", "Exception in callback ..."), logged to ``stigmer_nb.loop`` instead."""
    message = context.get("message") or "unhandled exception in the event loop"
    exc = context.get("exception")
    details = [f"{key}: {value!r}" for key, value in context.items() if key not in ("message", "exception")]
    logging.getLogger("stigmer_nb.loop").error(
        "%s", "\n".join([message, *details]), exc_info=(type(exc), exc, exc.__traceback__) if exc else None
    )


def _excepthook(args: threading.ExceptHookArgs) -> None:
    """An exception that ends one of the lab's threads is logged, not printed."""
    if _ours(args.thread) and args.exc_type is not SystemExit:
        logging.getLogger("stigmer_nb.threads").error(
            "thread %s ended with an exception",
            args.thread.name if args.thread else "?",
            exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        )
        return
    (_original_excepthook or threading.__excepthook__)(args)
