"""Out-of-process jq: every runtime expression runs in a child process with a time and memory limit.

jq runs in C and holds the GIL for a whole evaluation. In-process, one runaway expression
(``[range(1e9)]``, ``def f: f; f``) froze every worker of the lab, ignored Ctrl-C and could take the
machine's memory. A child process can be given an address-space limit and killed at a deadline, and
the caller waits on a pipe with the GIL released, so the other workflows keep running.

Protocol (binary, over the child's stdin/stdout): a request is a 4-byte big-endian length, then a
JSON header line ``{"e": expression, "n": [names], "m": memory bytes, "b": result bytes}`` and the
input as JSON text. A reply is a length, then one status byte (``o`` ok, ``e`` expression error,
``l`` limit) and the payload: jq's output values, one JSON text per line, or a message.
"""

from __future__ import annotations

import atexit
import os
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "JqLimitError",
    "JqLimits",
    "JqRuntimeError",
    "compile_remote",
    "dumps",
    "evaluate_remote",
    "shutdown",
]

_HEADER = struct.Struct(">I")
_MAX_CHILDREN = 4
"""Evaluator processes at most (temporalio runs up to 500 activations at once, on threads); a
caller finding all of them busy waits for one, within its own deadline."""


@dataclass(frozen=True)
class JqLimits:
    """What one evaluation may use."""

    timeout: float = 1.0
    """Seconds of wall time before the child is killed."""
    memory_bytes: int = 1024 * 1024 * 1024
    """Address space of the child while it evaluates."""
    max_bytes: int = 8 * 1024 * 1024
    """Largest result, as JSON text."""


class JqLimitError(Exception):
    """An evaluation ran out of time, memory or result size."""


class JqRuntimeError(Exception):
    """jq refused the program or failed while running it (the message is jq's)."""


def dumps(value: Any) -> bytes:
    """``value`` as compact JSON (integers past 64 bits included)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        # orjson refuses integers past 64 bits; the standard library writes them (jq rounds them).
        import json

        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


class _Child:
    """One evaluator process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stigmer_nb.dsl.jqpool"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # jq's "cannot allocate memory" must not reach a cell
            bufsize=0,
            close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin
        self._out = self.proc.stdout.fileno()

    def call(self, request: bytes, timeout: float) -> bytes:
        """Send one request and wait for its reply; raise ``JqLimitError`` at the deadline."""
        deadline = time.monotonic() + timeout
        self._in.write(_HEADER.pack(len(request)) + request)
        header = self._read(_HEADER.size, deadline)
        return self._read(_HEADER.unpack(header)[0], deadline)

    def _read(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        missing = size
        while missing:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(self._out, min(missing, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        """Stop the process now and reap it."""
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


class _Pool:
    """Idle children, started on demand, one per concurrent caller."""

    def __init__(self) -> None:
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._starting = 0
        self._free = threading.Condition()
        self._pid = os.getpid()

    def take(self, timeout: float) -> _Child:
        """An idle child, a new one while there are fewer than ``_MAX_CHILDREN``, or the first
        one given back; ``TimeoutError`` when none is free within ``timeout`` seconds."""
        with self._free:
            if self._pid != os.getpid():  # a forked copy must not share its parent's pipes
                self._idle, self._busy, self._starting, self._pid = [], set(), 0, os.getpid()
            deadline = time.monotonic() + timeout
            while True:
                while self._idle:
                    child = self._idle.pop()
                    if child.proc.poll() is None:
                        self._busy.add(child)
                        return child
                    child.kill()
                if len(self._busy) + self._starting < _MAX_CHILDREN:
                    self._starting += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0 or not self._free.wait(left):
                    raise TimeoutError
        try:
            child = _Child()
        finally:
            with self._free:
                self._starting -= 1
        with self._free:
            self._busy.add(child)
        return child

    def give(self, child: _Child, *, healthy: bool) -> None:
        with self._free:
            retired = child not in self._busy  # the pool was shut down while it worked
            self._busy.discard(child)
            keep = healthy and not retired
            if keep:
                self._idle.append(child)
            self._free.notify()
        if not keep:
            child.kill()

    def shutdown(self) -> None:
        """Stop the idle children now; one at work (another lab's evaluation) when it is given back."""
        with self._free:
            idle, self._idle = self._idle, []
            self._busy = set()
        for child in idle:
            child.kill()


_pool = _Pool()
atexit.register(_pool.shutdown)


def shutdown() -> None:
    """Stop every evaluator process of this process (started again on the next evaluation)."""
    _pool.shutdown()


def _exchange(header: dict[str, Any], data: bytes, limits: JqLimits) -> bytes:
    """One request to a free child and its reply; ``JqLimitError`` past the deadline or memory."""
    line = orjson.dumps({**header, "m": limits.memory_bytes, "b": limits.max_bytes, "t": limits.timeout})
    request = line + b"\n" + data
    if len(data) > limits.max_bytes:
        raise JqLimitError(
            f"its input is {len(data):,} bytes of JSON; at most {limits.max_bytes:,} are allowed"
        )
    started = time.monotonic()
    try:
        child = _pool.take(limits.timeout)
    except TimeoutError:
        raise JqLimitError(f"no jq evaluator was free within {limits.timeout:g} s") from None
    except OSError as exc:  # no process to be had (file descriptors, memory): nothing to retry
        raise JqLimitError(f"no jq evaluator process could be started ({exc.strerror or exc})") from None
    healthy = False
    try:
        reply = child.call(request, max(limits.timeout - (time.monotonic() - started), 0.001))
        healthy = True
    except TimeoutError:
        raise JqLimitError(f"it ran longer than {limits.timeout:g} s") from None
    except (EOFError, BrokenPipeError):
        raise JqLimitError(
            f"it used more than {limits.memory_bytes // (1024 * 1024):,} MB of memory"
        ) from None
    finally:
        _pool.give(child, healthy=healthy)
    if reply[:1] == b"l":
        raise JqLimitError(reply[1:].decode())
    return reply


def evaluate_remote(expression: str, names: tuple[str, ...], data: Any, limits: JqLimits) -> list[Any]:
    """Every output of ``expression`` run on ``data`` in a child; ``names`` are bound from ``data[1]``.

    Raises ``JqRuntimeError`` with jq's message, ``JqLimitError`` past a limit, ``TypeError`` for
    data that is not JSON.
    """
    reply = _exchange({"e": expression, "n": list(names)}, dumps(data), limits)
    status, payload = reply[:1], reply[1:]
    if status == b"o":
        text = b"[" + payload.replace(b"\n", b",") + b"]"
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:  # integers past 64 bits
            import json

            return json.loads(text)
    raise JqRuntimeError(payload.decode())


def compile_remote(source: str, args: tuple[str, ...], limits: JqLimits) -> str | None:
    """jq's first error compiling ``source`` (with ``args`` as variables) in a child, or None."""
    reply = _exchange({"e": source, "n": [], "c": list(args)}, b"", limits)
    return None if reply[:1] == b"o" else reply[1:].decode()


# --- the child ----------------------------------------------------------------------------------


def _read_exact(stream: Any, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _under(value: int, hard: int) -> int:
    import resource

    return value if hard == resource.RLIM_INFINITY else min(value, hard)


class _Done(Exception):
    """The reply is ready."""


def _serve() -> None:
    import math
    import resource

    import jq

    from .expressions import compile_message, first_line, program_source

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    as_soft, as_hard = resource.getrlimit(resource.RLIMIT_AS)
    cpu_soft, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    programs: dict[tuple[str, tuple[str, ...]], Any] = {}
    while True:
        header = _read_exact(stdin, _HEADER.size)
        if header is None:
            return
        body = _read_exact(stdin, _HEADER.unpack(header)[0])
        if body is None:
            return
        line, _, data = body.partition(b"\n")
        request = orjson.loads(line)
        names = tuple(request["n"])
        key = (request["e"], names)
        # Soft limits only, under the hard ones inherited (a `ulimit -v` shell may have set them).
        resource.setrlimit(resource.RLIMIT_AS, (_under(request["m"], as_hard), as_hard))
        # The parent kills a child at the deadline; should the parent die first (a killed kernel),
        # the CPU limit ends the runaway on its own (SIGXCPU), a couple of seconds later.
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = math.ceil(used.ru_utime + used.ru_stime + request["t"]) + 2
        resource.setrlimit(resource.RLIMIT_CPU, (_under(cpu, cpu_hard), cpu_hard))
        try:
            if "c" in request:  # compile only: jq folds constants at compile time ("x" * 1e9)
                jq.compile(request["e"], args=dict.fromkeys(request["c"])) if request["c"] else jq.compile(
                    request["e"]
                )
                reply = b"o"
                raise _Done
            program = programs.get(key)
            if program is None:
                if len(programs) > 1024:
                    programs.clear()
                try:
                    program = jq.compile(program_source(*key))
                except ValueError as exc:
                    raise ValueError(compile_message(request["e"], names, str(exc))) from None
                programs[key] = program
            text = program.input_text(data.decode()).text().encode()
            if len(text) > request["b"]:
                reply = (
                    b"l"
                    + f"its result is {len(text):,} bytes of JSON; at most {request['b']:,} are allowed".encode()
                )
            else:
                reply = b"o" + text
        except _Done:
            pass
        except MemoryError:
            reply = b"l" + f"it used more than {request['m'] // (1024 * 1024):,} MB of memory".encode()
        except ValueError as exc:
            reply = b"e" + first_line(str(exc)).encode()
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (as_soft, as_hard))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_soft, cpu_hard))
        stdout.write(_HEADER.pack(len(reply)) + reply)
        stdout.flush()


if __name__ == "__main__":
    _serve()
