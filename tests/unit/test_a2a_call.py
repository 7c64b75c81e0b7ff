"""``call: a2a`` against a real A2A agent (tests/fixtures/a2a_server.py, built with a2a-sdk) on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from stigmer_nb.dsl.a2a import call_a2a
from stigmer_nb.dsl.effects import EffectInput
from tests.failures import problem_of
from tests.fixtures.serving import serving
from tests.httpserver import LoopbackServer, Reply, free_port

ERRORS = "https://serverlessworkflow.io/spec/1.0.0/errors/"


def say(text: str) -> dict[str, Any]:
    """``parameters`` for message/send with one text part (messageId and role left to the defaults)."""
    return {"message": {"parts": [{"kind": "text", "text": text}]}}


@pytest.fixture(scope="module")
def agent() -> Iterator[str]:
    """The echo agent's base URL, shared by this module's tests."""
    port = free_port()
    with serving("a2a_server.py", str(port), port=port):
        yield f"http://127.0.0.1:{port}"


def call(args: dict[str, Any]) -> Any:
    return asyncio.run(call_a2a(EffectInput(reference="/do/0/t", name="t", args=args)))


def failure(args: dict[str, Any]) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        call(args)
    problem = problem_of(info.value)
    assert set(problem) >= {"type", "status", "title", "detail"}
    assert "\n" not in problem["detail"]
    return info.value


# --- finding the agent -----------------------------------------------------------------------------


def test_message_send_through_agent_card_discovery(agent: str) -> None:
    out = call({"method": "message/send", "agentCard": {"endpoint": agent}, "parameters": say("hi")})
    assert out["kind"] == "message"
    assert out["role"] == "agent"
    assert out["parts"] == [{"kind": "text", "text": "echo: hi"}]


def test_agent_card_named_in_full(agent: str) -> None:
    card = {"endpoint": {"uri": f"{agent}/.well-known/agent-card.json"}}
    out = call({"method": "message/send", "agentCard": card, "parameters": say("again")})
    assert out["parts"][0]["text"] == "echo: again"


def test_a_missing_agent_card_is_a_runtime_problem(agent: str) -> None:
    problem = problem_of(failure({"method": "message/send", "agentCard": {"endpoint": f"{agent}/elsewhere"}}))
    assert problem["type"] == ERRORS + "runtime"
    assert problem["detail"] == (
        f"no A2A agent card found (tried {agent}/elsewhere/.well-known/agent-card.json, "
        f"{agent}/elsewhere/.well-known/agent.json)"
    )


def test_the_older_well_known_card_name_is_tried_too() -> None:
    with LoopbackServer() as server:
        rpc = server.url("/rpc")
        server.route(
            "GET", "/.well-known/agent.json", Reply(body={"name": "old", "url": rpc, "version": "1"})
        )
        server.route("POST", "/rpc", Reply(body={"jsonrpc": "2.0", "id": "1", "result": {"kind": "message"}}))
        out = call({"method": "message/send", "agentCard": server.base, "parameters": say("hi")})
        sent = server.received("/rpc")[0].json()
    assert out == {"kind": "message"}
    assert sent["jsonrpc"] == "2.0" and sent["method"] == "message/send"
    # The DSL's defaults for the message.
    assert sent["params"]["message"]["role"] == "user"
    assert len(sent["params"]["message"]["messageId"]) == 36


def test_a_card_without_a_jsonrpc_interface_is_a_runtime_problem() -> None:
    card = {
        "name": "grpc-only",
        "version": "1",
        "supportedInterfaces": [{"url": "grpc://x:1", "protocolBinding": "GRPC", "protocolVersion": "1.0"}],
    }
    with LoopbackServer() as server:
        server.route("GET", "/.well-known/agent-card.json", Reply(body=card))
        problem = problem_of(failure({"method": "message/send", "agentCard": server.base}))
    assert problem["type"] == ERRORS + "runtime"
    assert "offers no JSON-RPC interface (only GRPC)" in problem["detail"]


def test_a_card_that_is_not_json_is_a_runtime_problem() -> None:
    with LoopbackServer() as server:
        card = server.url("/card.json")
        server.route("GET", "/card.json", Reply(body="<html>hello</html>", content_type="text/html"))
        problem = problem_of(failure({"method": "message/send", "agentCard": card}))
    assert problem["type"] == ERRORS + "runtime"
    assert problem["detail"] == f"A2A agent card at {card} is not a valid agent card"


# --- methods and results -------------------------------------------------------------------------


def test_a_task_can_be_sent_then_fetched_through_server(agent: str) -> None:
    server = {"uri": f"{agent}/rpc"}
    task = call({"method": "message/send", "server": server, "parameters": say("task one")})
    assert task["kind"] == "task"
    assert task["status"]["state"] == "completed"
    assert task["artifacts"][0]["parts"] == [{"kind": "text", "text": "echo: task one"}]
    fetched = call({"method": "tasks/get", "server": f"{agent}/rpc", "parameters": {"id": task["id"]}})
    assert fetched["id"] == task["id"]


def test_message_stream_outputs_every_result_in_order(agent: str) -> None:
    out = call({"method": "message/stream", "agentCard": {"endpoint": agent}, "parameters": say("task two")})
    assert [event["kind"] for event in out] == ["task", "artifact-update", "status-update"]
    assert out[-1]["status"]["state"] == "completed"


def test_a_jsonrpc_error_is_a_runtime_problem_with_code_and_message(agent: str) -> None:
    problem = problem_of(
        failure({"method": "tasks/get", "server": f"{agent}/rpc", "parameters": {"id": "nope"}})
    )
    assert problem["type"] == ERRORS + "runtime"
    assert problem["status"] == 500
    assert (
        problem["detail"] == f"A2A agent at {agent}/rpc answered tasks/get with error -32001: Task not found"
    )


def test_an_unknown_method_gets_a_suggestion(agent: str) -> None:
    problem = problem_of(
        failure({"method": "message/sned", "server": f"{agent}/rpc", "parameters": say("x")})
    )
    assert "error -32601" in problem["detail"]
    assert "did you mean 'message/send'" in problem["detail"]


def test_a2a_1_0_methods_go_as_written(agent: str) -> None:
    out = call(
        {
            "method": "SendMessage",
            "server": f"{agent}/rpc",
            "parameters": {"message": {"parts": [{"text": "v1"}]}},
        }
    )
    assert out["message"]["parts"] == [{"text": "echo: v1"}]
    assert out["message"]["role"] == "ROLE_AGENT"


def test_an_http_error_without_jsonrpc_is_a_runtime_problem(agent: str) -> None:
    problem = problem_of(
        failure({"method": "message/send", "server": f"{agent}/nothing-here", "parameters": say("x")})
    )
    assert problem["detail"] == f"A2A agent at {agent}/nothing-here answered HTTP 404 Not Found"


def test_connection_refused_is_a_retryable_runtime_problem() -> None:
    url = f"http://127.0.0.1:{free_port()}/rpc"
    error = failure({"method": "message/send", "server": url, "parameters": say("x")})
    assert problem_of(error)["type"] == ERRORS + "runtime"
    assert problem_of(error)["detail"].startswith(f"cannot connect to A2A agent at {url}")
    assert not error.non_retryable


def test_authentication_is_sent_and_never_echoed() -> None:
    with LoopbackServer() as server:
        server.route("POST", "/rpc", Reply(status=401, body="who are you?"))
        endpoint = {"uri": server.url("/rpc"), "authentication": {"bearer": {"token": "s3cret"}}}
        problem = problem_of(failure({"method": "tasks/get", "server": endpoint, "parameters": {"id": "1"}}))
        sent = server.received("/rpc")[0]
    assert sent.headers["authorization"] == "Bearer s3cret"
    assert problem["detail"].endswith("answered HTTP 401 Unauthorized")
    assert "s3cret" not in problem["detail"]


def test_a_slow_agent_is_a_timeout_problem() -> None:
    with LoopbackServer() as server:
        server.route("POST", "/rpc", Reply(body={"jsonrpc": "2.0", "id": "1", "result": {}}, delay=3))
        problem = problem_of(
            failure({"method": "tasks/get", "server": server.url("/rpc"), "timeout": "PT1S"})
        )
    assert problem["type"] == ERRORS + "timeout"
    assert problem["status"] == 408


# --- with ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"server": "http://127.0.0.1:1/rpc"}, "needs a method"),
        ({"method": "message/send"}, "needs agentCard or server"),
        ({"method": "message/send", "server": "ftp://x"}, "not an absolute http/https URL"),
        (
            {"method": "message/send", "server": "http://x", "parameters": "hi"},
            "parameters must be an object",
        ),
        ({"method": "message/send", "server": "http://x", "timeout": "later"}, "timeout"),
    ],
)
def test_a_bad_with_is_a_configuration_problem(args: dict[str, Any], words: str) -> None:
    problem = problem_of(failure(args))
    assert problem["type"] == ERRORS + "configuration"
    assert words in problem["detail"]
