"""``call: mcp`` against a real MCP server (tests/fixtures/mcp_server.py) over stdio and streamable HTTP."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from stigmer_nb.dsl.effects import EffectInput
from stigmer_nb.dsl.mcp import call_mcp
from tests.conftest import assert_eventually
from tests.failures import problem_of
from tests.fixtures.serving import FIXTURES, alive, serving
from tests.httpserver import LoopbackServer, Reply, free_port

ERRORS = "https://serverlessworkflow.io/spec/1.0.0/errors/"
STDIO = {"stdio": {"command": sys.executable, "arguments": [str(FIXTURES / "mcp_server.py"), "stdio"]}}
ADD = {"name": "add", "arguments": {"a": 2, "b": 3}}


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    """The fixture server over streamable HTTP, shared by this module's tests."""
    port = free_port()
    with serving("mcp_server.py", "http", str(port), port=port):
        yield f"http://127.0.0.1:{port}/mcp"


def call(args: dict[str, Any]) -> Any:
    return asyncio.run(call_mcp(EffectInput(reference="/do/0/t", name="t", args=args)))


def failure(args: dict[str, Any]) -> dict[str, Any]:
    """The problem ``call: mcp`` raises for ``args`` (its detail is always one line)."""
    with pytest.raises(ApplicationError) as info:
        call(args)
    problem = problem_of(info.value)
    assert set(problem) >= {"type", "status", "title", "detail"}
    assert "\n" not in problem["detail"] and "Traceback" not in problem["detail"]
    return problem


def with_pidfile(path: Path) -> dict[str, Any]:
    """The stdio transport, with the server writing its PID to ``path``."""
    return {"stdio": {**STDIO["stdio"], "environment": {"MCP_TEST_PIDFILE": str(path)}}}


def server_pid(path: Path) -> int:
    return int(assert_eventually(lambda: path.exists() and path.read_text().strip(), timeout=15))


# --- stdio ------------------------------------------------------------------------------------------


def test_tools_list_over_stdio() -> None:
    out = call({"method": "tools/list", "transport": STDIO})
    assert {tool["name"] for tool in out["tools"]} == {"add", "fail", "getenv", "sleep"}
    assert out["tools"][0]["inputSchema"]["type"] == "object"  # wire names, not Python ones


def test_tools_call_over_stdio_returns_the_jsonrpc_result(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    out = call({"method": "tools/call", "parameters": ADD, "transport": with_pidfile(pidfile)})
    assert out == {
        "content": [{"type": "text", "text": "5"}],
        "isError": False,
        "structuredContent": {"result": 5},
    }
    # The server does not outlive the call.
    assert_eventually(lambda: not alive(server_pid(pidfile)), timeout=5)


def test_environment_reaches_the_server_and_the_worker_environment_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STIGMER_WORKER_SECRET", "hunter2")
    transport = {"stdio": {**STDIO["stdio"], "environment": {"GREETING": "hello", "COUNT": 3}}}
    names = ["GREETING", "COUNT", "STIGMER_WORKER_SECRET"]
    out = call(
        {
            "method": "tools/call",
            "parameters": {"name": "getenv", "arguments": {"names": names}},
            "transport": transport,
        }
    )
    assert out["structuredContent"] == {"GREETING": "hello", "COUNT": "3", "STIGMER_WORKER_SECRET": ""}


def test_a_tool_error_is_a_runtime_problem_with_the_tools_text() -> None:
    problem = failure(
        {
            "method": "tools/call",
            "parameters": {"name": "fail", "arguments": {"reason": "disk full"}},
            "transport": STDIO,
        }
    )
    assert problem["type"] == ERRORS + "runtime"
    assert problem["status"] == 500
    assert "'fail'" in problem["detail"] and "disk full" in problem["detail"]


def test_an_unknown_tool_is_a_runtime_problem() -> None:
    problem = failure({"method": "tools/call", "parameters": {"name": "nope"}, "transport": STDIO})
    assert problem["type"] == ERRORS + "runtime"
    assert "nope" in problem["detail"]


def test_an_unknown_method_is_a_runtime_problem_with_a_suggestion() -> None:
    problem = failure({"method": "tool/list", "transport": STDIO})
    assert problem["type"] == ERRORS + "runtime"
    assert "-32601" in problem["detail"]
    assert "did you mean 'tools/list'" in problem["detail"]


def test_a_command_that_does_not_exist_fails_fast() -> None:
    started = time.monotonic()
    problem = failure(
        {"method": "tools/list", "transport": {"stdio": {"command": "/nonexistent/mcp-server"}}}
    )
    assert time.monotonic() - started < 2
    assert problem["type"] == ERRORS + "runtime"
    assert problem["detail"] == "cannot start MCP server '/nonexistent/mcp-server': No such file or directory"


def test_a_command_with_its_arguments_inline_gets_a_hint() -> None:
    problem = failure({"method": "tools/list", "transport": {"stdio": {"command": "no-such-tool --stdio"}}})
    assert "put its arguments under arguments" in problem["detail"]


def test_a_server_that_exits_at_once_is_explained_by_its_stderr() -> None:
    script = "import sys; print('missing API key', file=sys.stderr); sys.exit(2)"
    problem = failure(
        {
            "method": "tools/list",
            "transport": {"stdio": {"command": sys.executable, "arguments": ["-c", script]}},
        }
    )
    assert problem["type"] == ERRORS + "runtime"
    assert "closed the connection during initialize" in problem["detail"]
    assert problem["detail"].endswith("stderr: missing API key")


def test_a_prompt_over_stdio() -> None:
    prompt = call(
        {
            "method": "prompts/get",
            "parameters": {"name": "greet", "arguments": {"name": "Ada"}},
            "transport": STDIO,
        }
    )
    assert prompt["messages"] == [{"role": "user", "content": {"type": "text", "text": "Say hello to Ada."}}]


def test_method_initialize_returns_the_handshake() -> None:
    out = call({"method": "initialize", "transport": STDIO, "client": {"name": "tester", "version": "9"}})
    assert out["protocolVersion"] == "2025-06-18"
    assert out["serverInfo"]["name"] == "stigmer-test"


# --- time limits and cancellation ----------------------------------------------------------------


def test_a_call_that_outlasts_its_timeout_is_a_timeout_problem_and_stops_the_server(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    problem = failure(
        {
            "method": "tools/call",
            "parameters": {"name": "sleep", "arguments": {"seconds": 60}},
            "transport": with_pidfile(pidfile),
            "timeout": "PT2S",
        }
    )
    assert time.monotonic() - started < 10
    assert problem["type"] == ERRORS + "timeout"
    assert problem["status"] == 408
    assert "within 2 s" in problem["detail"]
    assert_eventually(lambda: not alive(server_pid(pidfile)), timeout=5)


def test_cancelling_the_call_stops_the_server(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    args = {
        "method": "tools/call",
        "parameters": {"name": "sleep", "arguments": {"seconds": 60}},
        "transport": with_pidfile(pidfile),
    }

    async def cancel_midway() -> int:
        task = asyncio.ensure_future(call_mcp(EffectInput(reference="/do/0/t", name="t", args=args)))
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # well into the tool call
        task.cancel()  # natively, as Temporal cancels an activity
        with pytest.raises(asyncio.CancelledError):
            await task
        return int(pidfile.read_text())

    pid = asyncio.run(cancel_midway())
    assert not alive(pid)


# --- streamable HTTP ------------------------------------------------------------------------------


def test_tools_list_and_call_over_http(http_url: str) -> None:
    transport = {"http": {"endpoint": http_url}}
    listed = call({"method": "tools/list", "transport": transport})
    assert "add" in {tool["name"] for tool in listed["tools"]}
    out = call(
        {"method": "tools/call", "parameters": ADD, "transport": {"http": {"endpoint": {"uri": http_url}}}}
    )
    assert out["structuredContent"] == {"result": 5}


def test_resources_over_http(http_url: str) -> None:
    transport = {"http": {"endpoint": http_url}}
    listed = call({"method": "resources/list", "transport": transport})
    assert [r["uri"] for r in listed["resources"]] == ["memo://hello"]
    read = call({"method": "resources/read", "parameters": {"uri": "memo://hello"}, "transport": transport})
    assert read["contents"][0]["text"] == "hello, world"


def test_a_tool_error_over_http(http_url: str) -> None:
    problem = failure(
        {
            "method": "tools/call",
            "parameters": {"name": "fail"},
            "transport": {"http": {"endpoint": http_url}},
        }
    )
    assert problem["type"] == ERRORS + "runtime"
    assert "it failed" in problem["detail"]


def test_connection_refused_is_a_retryable_runtime_problem() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    with pytest.raises(ApplicationError) as info:
        call({"method": "tools/list", "transport": {"http": {"endpoint": url}}})
    assert problem_of(info.value)["type"] == ERRORS + "runtime"
    assert problem_of(info.value)["detail"].startswith(f"cannot connect to MCP server at {url}")
    assert not info.value.non_retryable


def test_http_headers_and_authentication_are_sent() -> None:
    with LoopbackServer() as server:
        server.route("POST", "/mcp", Reply(status=404, body="no"))
        problem = failure(
            {
                "method": "tools/list",
                "transport": {
                    "http": {
                        "endpoint": {
                            "uri": server.url("/mcp"),
                            "authentication": {"bearer": {"token": "s3cret"}},
                        },
                        "headers": {"X-Tenant": "acme", "Authorization": "Basic ignored"},
                    }
                },
            }
        )
        sent = server.received("/mcp")[0]
    assert sent.headers["authorization"] == "Bearer s3cret"
    assert sent.headers["x-tenant"] == "acme"
    assert sent.json()["method"] == "initialize"
    assert sent.json()["params"]["protocolVersion"] == "2025-06-18"
    assert problem["type"] == ERRORS + "runtime"
    assert "s3cret" not in problem["detail"]


# --- with ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"transport": STDIO}, "needs a method"),
        ({"method": "tools/list"}, "needs transport"),
        ({"method": "tools/list", "transport": {**STDIO, "http": {"endpoint": "http://x"}}}, "exactly one"),
        ({"method": "tools/list", "transport": {"stdio": {}}}, "needs a command"),
        (
            {"method": "tools/list", "transport": {"http": {"endpoint": "ftp://x"}}},
            "not an absolute http/https URL",
        ),
        (
            {"method": "tools/list", "transport": STDIO, "protocolVersion": "1999-01-01"},
            "is not one this runtime speaks",
        ),
        ({"method": "tools/call", "transport": STDIO, "parameters": [1]}, "parameters must be an object"),
        ({"method": "tools/list", "transport": STDIO, "timeout": "soon"}, "timeout"),
        ({"method": "tools/list", "transport": STDIO, "client": {"name": "x"}}, "name and a version"),
    ],
)
def test_a_bad_with_is_a_configuration_problem(args: dict[str, Any], words: str) -> None:
    problem = failure(args)
    assert problem["type"] == ERRORS + "configuration"
    assert words in problem["detail"]
