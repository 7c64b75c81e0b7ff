"""Shared fixtures: settings, one embedded Temporal server per session, labs with their own queues."""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stigmer_nb._loop import LoopThread
from stigmer_nb.lab import Lab
from stigmer_nb.settings import Settings
from stigmer_nb.temporal.server import EmbeddedServer

_counter = itertools.count()


def assert_eventually(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns a truthy value (returned) or raise its last failure."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except AssertionError as exc:
            last = exc
        time.sleep(interval)
    if last is not None:
        raise last
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture(scope="session")
def server_thread() -> Iterator[LoopThread]:
    thread = LoopThread(name="test-server")
    yield thread
    thread.stop()


@pytest.fixture(scope="session")
def temporal_server(
    tmp_path_factory: pytest.TempPathFactory, server_thread: LoopThread
) -> Iterator[EmbeddedServer]:
    """The one embedded Temporal server of this test session (in memory, no UI)."""
    home = tmp_path_factory.mktemp("temporal")
    # Time skipping is enabled on the server (per-workflow opt-in): labs choose with time_skipping=True.
    settings = Settings.from_env({}, home=home, durable=False, ui=False, time_skipping=True)
    server = server_thread.call(EmbeddedServer.start(settings))
    yield server
    server.stop_blocking()


def queue_env(suffix: str) -> dict[str, str]:
    """Environment naming a test's own task queues."""
    return {
        "TEMPORAL_WORKFLOW_EXECUTION_STIGMER_TASK_QUEUE": f"stigmer-{suffix}",
        "TEMPORAL_WORKFLOW_EXECUTION_RUNNER_TASK_QUEUE": f"runner-{suffix}",
        "TEMPORAL_ZIGFLOW_EXECUTION_TASK_QUEUE": f"zigflow-{suffix}",
    }


def start_options(settings: Settings) -> dict[str, str | None]:
    """``stigmer_nb.start(**options)`` for a lab in a kernel: these settings' home, server and queues."""
    return {
        "home": str(settings.home),
        "temporal_host_port": settings.temporal_host_port,
        "stigmer_queue": settings.stigmer_queue,
        "runner_queue": settings.runner_queue,
        "zigflow_queue": settings.zigflow_queue,
    }


def closed_port_document(name: str) -> str:
    """A workflow whose call fails on every attempt: port 1 is closed, so each attempt is a
    retryable ConnectError that temporalio logs with a traceback before the retries run out."""
    return f"""
document: {{dsl: '1.0.0', namespace: tests, name: {name}, version: '1.0.0'}}
do:
  - fetch:
      call: http
      with:
        method: get
        endpoint: http://127.0.0.1:1/
"""


@pytest.fixture
def lab_settings(
    temporal_server: EmbeddedServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[..., Settings]:
    """Settings for a lab on the shared server, with this test's own queues and history."""

    def make(**overrides: Any) -> Settings:
        suffix = f"{request.node.name[:40]}-{os.getpid()}-{next(_counter)}"
        env = {**queue_env(suffix), "TEMPORAL_HOST_PORT": temporal_server.target}
        overrides.setdefault("home", tmp_path / f"lab-{next(_counter)}")
        return Settings.from_env(env, **overrides)

    return make


@pytest.fixture
def lab_factory(lab_settings: Callable[..., Settings]) -> Iterator[Callable[..., Lab]]:
    labs: list[Lab] = []

    def make(**overrides: Any) -> Lab:
        lab = Lab.create(lab_settings(**overrides))
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.stop()


@pytest.fixture
def lab(lab_factory: Callable[..., Lab]) -> Lab:
    """A lab on the shared server with its own queues and history file."""
    return lab_factory()


@pytest.fixture
def cli() -> list[str]:
    """How to invoke the CLI of this interpreter."""
    return [sys.executable, "-m", "stigmer_nb"]
