"""``run: shell`` and ``run: script``: return modes, failures, environment, stdin, caps and cancellation."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from stigmer_nb.dsl import processes
from stigmer_nb.dsl.activities import EffectActivities, Registry
from stigmer_nb.dsl.effects import EffectInput
from stigmer_nb.dsl.processes import run_script, run_shell
from tests.failures import problem_of
from tests.httpserver import LoopbackServer, Reply

ERRORS = "https://serverlessworkflow.io/spec/1.0.0/errors/"
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def effect(args: dict[str, Any], data: Any = None) -> EffectInput:
    return EffectInput(reference="/do/0/run", name="run", args=args, input=data)


def shell(args: dict[str, Any]) -> Any:
    return asyncio.run(run_shell(effect(args)))


def script(args: dict[str, Any], data: Any = None) -> Any:
    return asyncio.run(run_script(effect(args, data)))


def failure(coro: Coroutine[Any, Any, Any]) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        asyncio.run(coro)
    assert set(problem_of(info.value)) >= {"type", "status", "title", "detail"}
    return info.value


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


# --- return modes ------------------------------------------------------------------------------------


def test_stdout_is_the_default_without_one_trailing_newline() -> None:
    assert shell({"command": "printf 'a\\n\\n'"}) == "a\n"
    assert shell({"command": "echo hello"}) == "hello"


def test_return_modes() -> None:
    command = "echo out; echo err >&2; exit 0"
    assert shell({"command": command, "return": "stderr"}) == "err"
    assert shell({"command": command, "return": "code"}) == 0
    assert shell({"command": command, "return": "all"}) == {"code": 0, "stdout": "out", "stderr": "err"}
    assert shell({"command": command, "return": "none"}) is None


def test_code_and_all_report_a_failure_instead_of_raising() -> None:
    command = "echo partial; echo oops >&2; exit 3"
    assert shell({"command": command, "return": "code"}) == 3
    assert shell({"command": command, "return": "all"}) == {"code": 3, "stdout": "partial", "stderr": "oops"}


@pytest.mark.parametrize("mode", ["stdout", "stderr", "none"])
def test_non_zero_exit_is_a_runtime_problem(mode: str) -> None:
    err = failure(run_shell(effect({"command": "echo some detail >&2; exit 7", "return": mode})))
    problem = problem_of(err)
    assert problem["type"] == ERRORS + "runtime"
    assert problem["status"] == 500
    assert "shell command 'echo' exited with code 7" in problem["detail"]
    assert "some detail" in problem["detail"]
    assert err.non_retryable


def test_killed_by_a_signal() -> None:
    err = failure(run_shell(effect({"command": "kill -9 $$"})))
    assert "killed by SIGKILL" in problem_of(err)["detail"]


def test_bad_return_is_a_configuration_problem() -> None:
    err = failure(run_shell(effect({"command": "true", "return": "stdot"})))
    assert problem_of(err)["type"] == ERRORS + "configuration"
    assert "did you mean 'stdout'" in problem_of(err)["detail"]


def test_missing_command() -> None:
    err = failure(run_shell(effect({"command": ""})))
    assert problem_of(err)["type"] == ERRORS + "configuration"


# --- arguments, environment, stdin ----------------------------------------------------------------------


def test_list_arguments_are_quoted() -> None:
    assert shell({"command": "printf '%s|'", "arguments": ["a b", "$HOME", "it's", 3, True]}) == (
        "a b|$HOME|it's|3|true|"
    )


def test_map_arguments_are_key_value_words() -> None:
    assert shell({"command": "printf '%s|'", "arguments": {"--name": "Ada Lovelace", "-v": None}}) == (
        "--name=Ada Lovelace|-v|"
    )


def test_environment_is_minimal_plus_the_given_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_SECRET", "do-not-leak")
    out = shell({"command": "env", "environment": {"GREETING": "hi", "N": 2}})
    names = {line.split("=", 1)[0] for line in out.splitlines()}
    assert "WORKER_SECRET" not in names
    assert "do-not-leak" not in out
    assert "GREETING=hi" in out.splitlines()
    assert "N=2" in out.splitlines()
    assert "PATH" in names


def test_stdin() -> None:
    assert shell({"command": "tr a-z A-Z", "stdin": "hello"}) == "HELLO"
    assert shell({"command": "cat", "stdin": {"a": 1}}) == '{"a": 1}'


def test_stdin_the_command_never_reads() -> None:
    assert shell({"command": "echo done", "stdin": "x" * (1 << 20)}) == "done"


def test_output_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "MAX_OUTPUT_BYTES", 1000)
    out = shell({"command": "head -c 5000 /dev/zero | tr '\\0' x"})
    assert out.startswith("x" * 1000)
    assert out.endswith("[output truncated: 4000 more bytes]")


def test_children_left_running_do_not_hold_the_task(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    out = shell({"command": f"sleep 30 & echo $! > {pidfile}; echo started"})
    assert out == "started"
    assert time.monotonic() - started < 10
    assert wait_gone(int(pidfile.read_text()))


# --- cancellation and heartbeats ----------------------------------------------------------------------


def test_cancellation_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"

    async def scenario() -> float:
        task = asyncio.create_task(run_shell(effect({"command": f"sleep 30 & echo $! > {pidfile}; wait"})))
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 1.0
    assert wait_gone(int(pidfile.read_text()))


def test_activity_cancellation_kills_the_child(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    acts = EffectActivities(Registry(), client=None, allow_shell=True)  # type: ignore[arg-type]
    env = ActivityEnvironment()

    async def scenario() -> None:
        task = asyncio.create_task(
            env.run(acts.run_shell, effect({"command": f"echo $$ > {pidfile}; exec sleep 30"}))
        )
        await asyncio.sleep(0.3)
        env.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=1.0)

    asyncio.run(scenario())
    assert wait_gone(int(pidfile.read_text()))


def test_heartbeats_while_running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "_HEARTBEAT_SECONDS", 0.05)
    acts = EffectActivities(Registry(), client=None, allow_shell=True)  # type: ignore[arg-type]
    env = ActivityEnvironment()
    beats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    assert asyncio.run(env.run(acts.run_shell, effect({"command": "sleep 0.5; echo ok"}))) == "ok"
    assert len(beats) >= 3


# --- scripts -------------------------------------------------------------------------------------------


def test_python_script_arguments_environment_stdin() -> None:
    code = "import os, sys\nprint(sys.argv[1:], os.environ['GREETING'], sys.stdin.read())"
    out = script(
        {
            "language": "python",
            "code": code,
            "arguments": ["a", "-b"],
            "environment": {"GREETING": "hi"},
            "stdin": "in",
        }
    )
    assert out == "['a', '-b'] hi in"


def test_python_script_runs_with_this_interpreter() -> None:
    assert script({"language": "python", "code": "import sys; print(sys.executable)"}) == sys.executable


def test_failing_script_reports_the_traceback_tail() -> None:
    err = failure(run_script(effect({"language": "python", "code": "raise ValueError('bad thing')"})))
    problem = problem_of(err)
    assert problem["type"] == ERRORS + "runtime"
    assert "python script exited with code 1" in problem["detail"]
    assert "ValueError: bad thing" in problem["detail"]


def test_long_python_code_runs_from_a_file() -> None:
    code = "x = 1\n" * 40_000 + "print(x)"
    assert script({"language": "python", "code": code}) == "1"


def test_script_source_from_an_endpoint() -> None:
    with LoopbackServer() as server:
        server.route("GET", "/scripts/hello.py", Reply(body="import sys\nprint('hello', *sys.argv[1:])"))
        out = script(
            {
                "language": "python",
                "source": {"endpoint": server.base + "/scripts/{name}"},
                "arguments": ["x"],
            },
            {"name": "hello.py"},
        )
        assert out == "hello x"
        err = failure(
            run_script(effect({"language": "python", "source": {"endpoint": server.url("/missing.py")}}))
        )
        assert problem_of(err)["type"] == ERRORS + "communication"
        assert problem_of(err)["status"] == 404


def test_script_source_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "s.py"
    path.write_text("print('from file')")
    assert script({"language": "python", "source": {"endpoint": {"uri": path.as_uri()}}}) == "from file"


def test_script_source_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "MAX_SOURCE_BYTES", 100)
    path = tmp_path / "big.py"
    path.write_text("#" * 1000)
    err = failure(run_script(effect({"language": "python", "source": {"endpoint": path.as_uri()}})))
    assert problem_of(err)["title"] == "Response too large"


@needs_node
def test_javascript_script() -> None:
    code = "let input = ''; process.stdin.on('data', d => input += d).on('end', () =>"
    code += " console.log(process.argv.slice(2).join(','), process.env.GREETING, input))"
    out = script(
        {
            "language": "javascript",
            "code": code,
            "arguments": ["a", "b"],
            "environment": {"GREETING": "hi"},
            "stdin": "in",
        }
    )
    assert out == "a,b hi in"


def test_javascript_without_node_is_a_configuration_problem(tmp_path: Path) -> None:
    err = failure(
        run_script(effect({"language": "javascript", "code": "1", "environment": {"PATH": str(tmp_path)}}))
    )
    assert problem_of(err)["type"] == ERRORS + "configuration"
    assert "needs Node.js" in problem_of(err)["detail"]


@pytest.mark.parametrize(
    ("args", "title"),
    [
        ({"language": "ruby", "code": "puts 1"}, "Unsupported language"),
        ({"language": "python"}, "Missing code"),
        ({"language": "python", "code": "1", "arguments": "a b"}, "Bad arguments"),
        ({"language": "python", "code": "1", "environment": ["A=1"]}, "Bad environment"),
    ],
)
def test_bad_script_is_a_configuration_problem(args: dict[str, Any], title: str) -> None:
    err = failure(run_script(effect(args)))
    assert problem_of(err)["type"] == ERRORS + "configuration"
    assert problem_of(err)["title"] == title


# --- through the activity ------------------------------------------------------------------------------


@pytest.fixture
def activities() -> Iterator[EffectActivities]:
    yield EffectActivities(Registry(), client=None, allow_shell=True)  # type: ignore[arg-type]


def test_activities_run_shell_and_script(activities: EffectActivities) -> None:
    env = ActivityEnvironment()
    assert asyncio.run(env.run(activities.run_shell, effect({"command": "echo hi", "return": "all"}))) == {
        "code": 0,
        "stdout": "hi",
        "stderr": "",
    }
    assert (
        asyncio.run(env.run(activities.run_script, effect({"language": "python", "code": "print(2 + 2)"})))
        == "4"
    )
    err = failure(env.run(activities.run_shell, effect({"command": "exit 4"})))
    assert problem_of(err)["type"] == ERRORS + "runtime"
    assert err.non_retryable


def test_activities_refuse_without_opt_in() -> None:
    acts = EffectActivities(Registry(), client=None)  # type: ignore[arg-type]
    err = failure(ActivityEnvironment().run(acts.run_shell, effect({"command": "echo hi"})))
    assert problem_of(err)["type"] == ERRORS + "configuration"
    assert problem_of(err)["title"] == "Not allowed"
