"""``stigmer_nb.logs``: one file handler per home, nothing to stderr, the user's own set-up kept."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer_nb import logs
from stigmer_nb.temporal.codec import SecretValues


def _ours(name: str) -> list[logging.Handler]:
    return [
        h for h in logging.getLogger(name).handlers if isinstance(h, logging.handlers.RotatingFileHandler)
    ]


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    before = {
        name: (logging.getLogger(name).propagate, logging.getLogger(name).level) for name in logs.LEVELS
    }
    yield
    assert not logs._files, "a test left a handle attached"
    after = {name: (logging.getLogger(name).propagate, logging.getLogger(name).level) for name in logs.LEVELS}
    assert after == before


def test_attach_twice_on_one_home_is_one_handler(tmp_path: Path) -> None:
    first = logs.attach(tmp_path)
    second = logs.attach(tmp_path / ".")
    try:
        for name in ("stigmer_nb", "temporalio"):
            assert len(_ours(name)) == 1
            assert logging.getLogger(name).propagate is False
        handler = _ours("temporalio")[0]
        logs.detach(first)
        assert _ours("temporalio") == [handler]  # the other lab still writes there
    finally:
        logs.detach(second)
    assert _ours("temporalio") == [] and _ours("stigmer_nb") == []
    assert handler.stream is None  # closed
    logs.detach(second)  # again: nothing to do


def test_detach_restores_propagation_and_closes_the_file(tmp_path: Path) -> None:
    handle = logs.attach(tmp_path)
    logging.getLogger("temporalio.activity").warning("attempt failed")
    logging.getLogger("stigmer_nb.lab").info("started")
    logging.getLogger("temporalio.worker").info("too chatty for the file")
    handler = _ours("stigmer_nb")[0]
    assert handler.stream is not None and not handler.stream.closed
    stream = handler.stream
    logs.detach(handle)
    assert stream.closed
    assert logging.getLogger("temporalio").propagate is True
    text = (tmp_path / "workers.log").read_text()
    assert "WARNING temporalio.activity" in text and "attempt failed" in text
    assert "INFO stigmer_nb.lab" in text and "started" in text
    assert "too chatty" not in text


def test_nothing_reaches_stderr_or_the_root_logger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    root = Collect()
    logging.getLogger().addHandler(root)
    handle = logs.attach(tmp_path)
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("temporalio.worker._activity").exception("Completing activity as failed")
    finally:
        logs.detach(handle)
        logging.getLogger().removeHandler(root)
    assert seen == []
    assert capsys.readouterr().err == ""
    text = (tmp_path / "workers.log").read_text()
    assert "Completing activity as failed" in text and "RuntimeError: boom" in text  # the whole traceback


def test_a_handler_the_user_added_stays(tmp_path: Path) -> None:
    mine = logging.StreamHandler()
    logger = logging.getLogger("temporalio")
    logger.addHandler(mine)
    logger.setLevel(logging.ERROR)
    try:
        handle = logs.attach(tmp_path)
        assert mine in logger.handlers and logger.level == logging.ERROR
        logs.detach(handle)
        assert mine in logger.handlers and logger.level == logging.ERROR
    finally:
        logger.removeHandler(mine)
        logger.setLevel(logging.NOTSET)


def test_secrets_are_masked(tmp_path: Path) -> None:
    secrets = SecretValues()
    secrets.add(["s3cr3t-token"])
    handle = logs.attach(tmp_path, redact=secrets.redact)
    try:
        logging.getLogger("stigmer_nb.dsl").warning("call failed: Bearer %s", "s3cr3t-token")
    finally:
        logs.detach(handle)
    text = (tmp_path / "workers.log").read_text()
    assert "s3cr3t-token" not in text and "Bearer ***" in text


def test_warnings_on_lab_threads_are_logged(tmp_path: Path) -> None:
    handle = logs.attach(tmp_path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = logs._showwarning  # catch_warnings saved the one attach put in place
            thread = threading.Thread(
                target=warnings.warn, args=("from a worker",), name="stigmer-nb-lab-io_0"
            )
            thread.start()
            thread.join()
    finally:
        logs.detach(handle)
    assert "UserWarning: from a worker" in (tmp_path / "workers.log").read_text()


def test_the_loop_handler_logs_what_asyncio_would_print(tmp_path: Path) -> None:
    handle = logs.attach(tmp_path)
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(logs.loop_exception_handler)

        async def fails() -> None:
            raise ValueError("never retrieved")

        task = loop.create_task(fails())
        loop.run_until_complete(asyncio.sleep(0.01))
        del task  # its __del__ reports the exception nobody retrieved
        import gc

        gc.collect()
    finally:
        loop.close()
        logs.detach(handle)
    text = (tmp_path / "workers.log").read_text()
    assert "Task exception was never retrieved" in text and "ValueError: never retrieved" in text


def test_an_exception_ending_a_lab_thread_is_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails() -> None:
        raise OSError("writer died")

    handle = logs.attach(tmp_path)
    try:
        thread = threading.Thread(target=fails, name="stigmer-nb-writer")
        thread.start()
        thread.join()
    finally:
        logs.detach(handle)
    assert threading.excepthook is not logs._excepthook
    assert capsys.readouterr().err == ""
    assert "OSError: writer died" in (tmp_path / "workers.log").read_text()
