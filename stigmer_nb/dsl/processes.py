"""``run: shell`` and ``run: script``: child processes with a minimal environment, capped output, heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from temporalio import activity

from .activities import effect_error
from .effects import EffectInput
from .http import fetch, resolve_endpoint, scalar_text

__all__ = [
    "LANGUAGES",
    "MAX_OUTPUT_BYTES",
    "MAX_SOURCE_BYTES",
    "RETURNS",
    "run_script",
    "run_shell",
]

MAX_OUTPUT_BYTES = 1024 * 1024
"""Most of stdout (and of stderr) kept; the rest is read and dropped, with a marker."""

MAX_SOURCE_BYTES = 10 * 1024 * 1024
"""Largest script ``source`` fetched."""

RETURNS = ("stdout", "stderr", "code", "all", "none")
"""What ``run.return`` may ask for."""

LANGUAGES = {"python": "python", "py": "python", "javascript": "javascript", "js": "javascript"}
"""Script languages (and accepted spellings)."""

_HEARTBEAT_SECONDS = 2.0
_POLL_SECONDS = 0.05
# After the command exits, how long children it left behind may keep our pipes open.
_DRAIN_SECONDS = 1.0
# One argv entry is capped at 128 KiB on Linux; longer code goes through a temporary file.
_INLINE_CODE_BYTES = 100 * 1024
_CHUNK = 64 * 1024
_TAIL_CHARS = 500
# All a child gets from the worker's environment: the worker's own may hold secrets.
_INHERITED_ENV = ("PATH", "HOME", "LANG")


@dataclass(frozen=True)
class _Finished:
    code: int
    stdout: str
    stderr: str


# --- the effects --------------------------------------------------------------------------------------


async def run_shell(inp: EffectInput) -> Any:
    """``run: shell``: ``command`` (plus quoted ``arguments``) through ``/bin/sh -c``; output per ``return``."""
    args = inp.args
    mode = _return_mode(args.get("return"))
    command = args.get("command")
    if not isinstance(command, str) or not command.strip():
        raise effect_error("configuration", "run: shell needs a command", title="Missing command")
    line = " ".join([command, *(shlex.quote(a) for a in _arguments(args.get("arguments")))])
    finished = await _run(
        ["/bin/sh", "-c", line], env=_environment(args.get("environment")), stdin=args.get("stdin")
    )
    return _returned(finished, mode, f"shell command {_program(command)!r}")


async def run_script(inp: EffectInput, client: httpx.AsyncClient | None = None) -> Any:
    """``run: script``: python (this interpreter) or javascript (``node``) ``code`` or ``source``."""
    args = inp.args
    mode = _return_mode(args.get("return"))
    language = _language(args.get("language"))
    env = _environment(args.get("environment"))
    interpreter = _interpreter(language, env)
    argv = _arguments(args.get("arguments"))
    code = await _script_code(args, inp.input, client)
    with _program_args(language, code) as program:
        finished = await _run([*interpreter, *program, *argv], env=env, stdin=args.get("stdin"))
    return _returned(finished, mode, f"{language} script")


# --- reading run.* --------------------------------------------------------------------------------------


def _return_mode(value: Any) -> str:
    if value is None:
        return "stdout"
    if value in RETURNS:
        return str(value)
    from ..errors import did_you_mean

    raise effect_error(
        "configuration",
        f"return {value!r} is not one of {', '.join(RETURNS)}{did_you_mean(str(value), RETURNS)}",
        title="Bad return",
    )


def _language(value: Any) -> str:
    language = LANGUAGES.get(str(value or "").strip().lower())
    if language is None:
        from ..errors import did_you_mean

        raise effect_error(
            "configuration",
            f"script language {value!r} is not supported; use python or javascript"
            f"{did_you_mean(str(value), LANGUAGES)}",
            title="Unsupported language",
        )
    return language


def _arguments(value: Any) -> list[str]:
    """A list as-is; a map as ``key=value`` words (``key`` alone for null), as sdk-java renders it."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [_text(v) for v in value]
    if isinstance(value, Mapping):
        return [str(k) if v is None else f"{k}={_text(v)}" for k, v in value.items()]
    raise effect_error("configuration", "arguments must be a list or a map", title="Bad arguments")


def _environment(value: Any) -> dict[str, str]:
    """PATH, HOME and LANG from the worker, plus the task's ``environment`` (null removes a variable)."""
    env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
    env.setdefault("PATH", os.defpath)
    env.setdefault("LANG", "C.UTF-8")
    if value is None:
        return env
    if not isinstance(value, Mapping):
        raise effect_error("configuration", "environment must be a map", title="Bad environment")
    for name, setting in value.items():
        if setting is None:
            env.pop(str(name), None)
        else:
            env[str(name)] = _text(setting)
    return env


def _text(value: Any) -> str:
    """Scalars as on a command line; objects and arrays as JSON."""
    return json.dumps(value) if isinstance(value, Mapping | list | tuple) else scalar_text(value)


def _stdin_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    return (value if isinstance(value, str) else json.dumps(value)).encode()


def _program(command: str) -> str:
    """The first word of a command: enough to name it in errors without echoing its arguments."""
    words = command.split()
    return words[0] if words else command


async def _script_code(args: Mapping[str, Any], variables: Any, client: httpx.AsyncClient | None) -> str:
    code = args.get("code")
    if isinstance(code, str):
        return code
    source = args.get("source")
    if source is None:
        raise effect_error("configuration", "run: script needs code or a source", title="Missing code")
    endpoint = source.get("endpoint", source.get("uri")) if isinstance(source, Mapping) else source
    url, authentication = resolve_endpoint(
        endpoint, variables, what="run: script source", schemes=("http", "https", "file")
    )
    body, _ = await fetch(url, authentication=authentication, max_bytes=MAX_SOURCE_BYTES, client=client)
    return body.decode("utf-8", errors="replace")


def _interpreter(language: str, env: Mapping[str, str]) -> list[str]:
    if language == "python":
        return [sys.executable]
    node = shutil.which("node", path=env.get("PATH"))
    if node is None:
        raise effect_error(
            "configuration",
            "run: script in javascript needs Node.js: install `node` on the worker's PATH",
            title="Node.js required",
        )
    return [node]


@contextlib.contextmanager
def _program_args(language: str, code: str) -> Iterator[list[str]]:
    """``-c code`` for short python; otherwise a temporary file, removed afterwards.

    Javascript always runs from a file so ``process.argv.slice(2)`` holds the arguments, as usual in node.
    """
    if language == "python" and len(code.encode()) <= _INLINE_CODE_BYTES:
        yield ["-c", code]
        return
    suffix = ".py" if language == "python" else ".js"
    with tempfile.TemporaryDirectory(prefix="stigmer-script-") as folder:
        path = Path(folder) / f"script{suffix}"
        path.write_text(code, encoding="utf-8")
        yield [str(path)]


# --- running --------------------------------------------------------------------------------------------


class _Capture:
    """One output stream: the first MAX_OUTPUT_BYTES kept, the rest counted and dropped."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.dropped = 0

    async def read(self, stream: asyncio.StreamReader) -> None:
        # Keep reading past the cap: a child blocked on a full pipe would never exit.
        while chunk := await stream.read(_CHUNK):
            room = MAX_OUTPUT_BYTES - len(self.data)
            self.data += chunk[:room]
            self.dropped += max(0, len(chunk) - room)

    def text(self) -> str:
        text = self.data.decode(errors="replace")
        if self.dropped:
            text += f"\n[output truncated: {self.dropped} more bytes]"
        return text


async def _run(command: list[str], *, env: dict[str, str], stdin: Any) -> _Finished:
    """Run ``command`` in its own process group; on cancellation kill the whole group and re-raise."""
    data = _stdin_bytes(stdin)
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE if data is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except (OSError, ValueError) as exc:
        raise effect_error(
            "configuration", f"cannot start {Path(command[0]).name}: {exc}", title="Cannot start process"
        ) from None
    assert proc.stdout is not None and proc.stderr is not None
    out, err = _Capture(), _Capture()
    readers = [asyncio.create_task(out.read(proc.stdout)), asyncio.create_task(err.read(proc.stderr))]
    helpers = [asyncio.create_task(_heartbeat())]
    if data is not None and proc.stdin is not None:
        helpers.append(asyncio.create_task(_feed(proc.stdin, data)))
    try:
        code = await _exited(proc)
        await _drain(readers, proc.pid)
    except BaseException:
        # Cancelled (the activity's timeout or a workflow cancel): nothing the task started may outlive it.
        _kill_group(proc.pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_exited(proc), timeout=_DRAIN_SECONDS)
        raise
    finally:
        for task in (*helpers, *readers):
            task.cancel()
        await asyncio.gather(*helpers, *readers, return_exceptions=True)
    return _Finished(code=code, stdout=out.text(), stderr=err.text())


async def _exited(proc: asyncio.subprocess.Process) -> int:
    """The exit code, as soon as the process exits.

    ``Process.wait()`` also waits for the output pipes to close, which children left running may hold open.
    """
    while proc.returncode is None:
        await asyncio.sleep(_POLL_SECONDS)
    return proc.returncode


async def _drain(readers: list[asyncio.Task[None]], group: int) -> None:
    """Wait for the output pipes to close; kill children that keep them open past a grace period."""
    _, pending = await asyncio.wait(readers, timeout=_DRAIN_SECONDS)
    if pending:
        # Children left running still hold our pipes; once we stop reading they would write to no one.
        _kill_group(group)
        await asyncio.wait(pending, timeout=_DRAIN_SECONDS)


async def _feed(pipe: asyncio.StreamWriter, data: bytes) -> None:
    try:
        pipe.write(data)
        await pipe.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the child exited or closed stdin without reading it all
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


async def _heartbeat() -> None:
    """Tell Temporal the child is alive, so a long command is not mistaken for a lost worker."""
    if not activity.in_activity():
        return
    while True:
        await asyncio.sleep(_HEARTBEAT_SECONDS)
        activity.heartbeat()


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


# --- the result -----------------------------------------------------------------------------------------


def _returned(finished: _Finished, mode: str, what: str) -> Any:
    """The task's output per ``return``; a failed command is a ``runtime`` problem unless code is asked for."""
    if finished.code != 0 and mode not in ("code", "all"):
        raise effect_error("runtime", _failure(finished, what), status=500, title="Process failed")
    stdout, stderr = _chomp(finished.stdout), _chomp(finished.stderr)
    if mode == "stdout":
        return stdout
    if mode == "stderr":
        return stderr
    if mode == "code":
        return finished.code
    if mode == "all":
        return {"code": finished.code, "stdout": stdout, "stderr": stderr}
    return None


def _failure(finished: _Finished, what: str) -> str:
    if finished.code < 0:
        try:
            how = f"was killed by {signal.Signals(-finished.code).name}"
        except ValueError:
            how = f"was killed by signal {-finished.code}"
    else:
        how = f"exited with code {finished.code}"
    tail = finished.stderr.strip()[-_TAIL_CHARS:]
    return f"{what} {how}" + (f"; stderr: {tail}" if tail else " (nothing on stderr)")


def _chomp(text: str) -> str:
    """Drop one trailing newline, as shells do for ``$(...)``-style captures (only one)."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text
