"""The embedded server when a port it was given is taken before it binds (the real binary)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer_nb.errors import ServerStartError
from stigmer_nb.settings import Settings
from stigmer_nb.temporal.server import EmbeddedServer

pytestmark = pytest.mark.integration


@pytest.fixture
def taken_port() -> Iterator[socket.socket]:
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def _settings(home: Path) -> Settings:
    return Settings.from_env({}, home=home, durable=False, ui=False)


def test_a_port_taken_for_a_moment_costs_a_relaunch_not_the_start(
    tmp_path: Path, taken_port: socket.socket
) -> None:
    port = taken_port.getsockname()[1]
    server = EmbeddedServer.launch(_settings(tmp_path), extra_args=["--http-port", str(port)])

    async def free_it_once_refused() -> None:
        # Frees the port once the first launch has died of it: the relaunch then binds it.
        while "address already in use" not in server.log_path.read_text(errors="replace"):
            await asyncio.sleep(0.02)
        taken_port.close()

    async def start() -> None:
        await asyncio.gather(server.wait_ready(), free_it_once_refused())

    first_pid = server.pid
    try:
        asyncio.run(start())
        assert server.pid != first_pid
        assert server.process.poll() is None
    finally:
        server.stop_blocking()
    assert server.log_path.read_text().count("\n--- ") >= 2  # relaunched (maybe twice: a race)


def test_a_port_that_stays_taken_is_one_clear_error(tmp_path: Path, taken_port: socket.socket) -> None:
    port = taken_port.getsockname()[1]
    server = EmbeddedServer.launch(_settings(tmp_path), extra_args=["--http-port", str(port)])
    try:
        with pytest.raises(
            ServerStartError, match=rf"exited with code \d+: .*{port}: bind: address already in use"
        ):
            asyncio.run(server.wait_ready())
    finally:
        server.stop_blocking()
    assert server.log_path.read_text().count("\n--- ") == 4  # the launch and three relaunches


def test_a_clash_buried_under_a_panic_still_costs_only_a_relaunch(tmp_path: Path) -> None:
    # Seen in CI: an internal service of the dev server lost its port, logged the clash, and the
    # server died in a Go panic whose stack filled the log's last lines.
    import os
    import stat
    import sys

    real = Path(sys.executable).parent / "temporal"
    marker = tmp_path / "launched-once"
    fake = tmp_path / "temporal"
    fake.write_text(
        "#!/bin/sh\n"
        f'if [ ! -e "{marker}" ]; then\n'
        f'  touch "{marker}"\n'
        '  echo \'time=now level=ERROR msg="Failed to start gRPC listener" error="listen tcp 127.0.0.1:1: '
        "bind: address already in use\" service=worker'\n"
        "  echo 'panic: runtime error: invalid memory address or nil pointer dereference'\n"
        '  for i in 1 2 3 4 5 6 7 8 9 10; do echo "	/go/pkg/mod/server.go:$i +0x14c"; done\n'
        "  exit 2\n"
        "fi\n"
        f'exec "{real}" "$@"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    settings = Settings.from_env({}, home=tmp_path / "home", durable=False, ui=False, temporal_binary=fake)
    server = EmbeddedServer.launch(settings)
    try:
        asyncio.run(server.wait_ready())
        assert server.process.poll() is None
    finally:
        server.stop_blocking()
    assert marker.exists() and os.path.exists(server.log_path)
