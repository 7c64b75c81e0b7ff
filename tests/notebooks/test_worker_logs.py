"""In a real kernel, a failing activity's tracebacks go to ``<home>/workers.log``, never into a cell."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from stigmer_nb.settings import Settings

from ..conftest import closed_port_document, start_options

pytestmark = pytest.mark.integration

CLOSED_PORT = closed_port_document("closed-port")


def _execute(kc: Any, code: str, messages: list[dict[str, Any]], timeout: float = 120) -> dict[str, Any]:
    """Run ``code``; every iopub message until the kernel is idle again goes to ``messages``."""
    msg_id = kc.execute(code)
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        messages.append(msg)
        if (
            msg["parent_header"].get("msg_id") == msg_id
            and msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
        ):
            break
    reply = kc.get_shell_msg(timeout=timeout)
    assert reply["content"]["status"] == "ok", reply["content"]
    return reply


def _drain(kc: Any, messages: list[dict[str, Any]], quiet: float = 1.0) -> None:
    """Whatever the kernel's threads still send after the last cell."""
    while True:
        try:
            messages.append(kc.get_iopub_msg(timeout=quiet))
        except queue.Empty:
            return


def test_a_failing_activity_leaves_no_traceback_in_the_cell(
    lab_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    s = lab_settings()
    options = start_options(s)
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    messages: list[dict[str, Any]] = []
    try:
        kc.wait_for_ready(timeout=60)
        _execute(kc, f"import stigmer_nb\nlab = stigmer_nb.start(**{options!r})", messages)
        _execute(kc, f"execution = lab.run({CLOSED_PORT!r})\nexecution", messages)
        _execute(kc, "print(execution.wait(60).phase, execution.error['title'])", messages)
        _execute(kc, "print(lab.log_path)\nlab.stop()", messages)
        _drain(kc, messages)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)

    streams = [m["content"] for m in messages if m["msg_type"] == "stream"]
    assert not [c for c in streams if c["name"] == "stderr"], streams
    assert not [m for m in messages if m["msg_type"] == "error"]
    everything = json.dumps([m["content"] for m in messages])
    assert "Traceback" not in everything and "Completing activity" not in everything
    stdout = "".join(c["text"] for c in streams if c["name"] == "stdout")
    assert "EXECUTION_FAILED Connection failed" in stdout  # the failure itself is shown, as before
    log = s.home / "workers.log"
    assert str(log) in stdout  # lab.log_path
    text = log.read_text()
    assert "Completing activity as failed" in text and "Traceback (most recent call last)" in text
