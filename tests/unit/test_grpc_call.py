"""``call: grpc`` against a real loopback ``grpc.aio`` server: proto sources, auth, lookups and problems."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.exceptions import ApplicationError

from stigmer_nb.dsl import grpc as grpc_call
from stigmer_nb.dsl.effects import EffectInput
from stigmer_nb.dsl.grpc import call_grpc, compile_proto
from tests.failures import problem_of as problem
from tests.fixtures.grpc_server import PROTO, Greeter, greeter_server
from tests.httpserver import LoopbackServer, Reply, free_port

ERRORS = "https://serverlessworkflow.io/spec/1.0.0/errors/"

T = TypeVar("T")


# --- the server -------------------------------------------------------------------------------------


def with_server(scenario: Callable[[Greeter], Awaitable[T]]) -> T:
    """Run ``scenario`` against a fresh server, all in one event loop (grpc.aio objects are per loop)."""

    async def main() -> T:
        async with greeter_server() as greeter:
            return await scenario(greeter)

    return asyncio.run(main())


# --- calling ----------------------------------------------------------------------------------------


def grpc_args(
    port: int,
    *,
    proto: Any = None,
    method: str = "SayHello",
    arguments: Any = None,
    name: str = "greeter.Greeter",
    **extra: Any,
) -> dict[str, Any]:
    """A ``with`` for ``call: grpc``; ``service_*`` keys of ``extra`` go into ``service``."""
    service: dict[str, Any] = {"name": name, "host": "127.0.0.1", "port": port}
    service.update({k.removeprefix("service_"): v for k, v in extra.items() if k.startswith("service_")})
    args: dict[str, Any] = {
        "proto": {"endpoint": str(PROTO)} if proto is None else proto,
        "service": service,
        "method": method,
        "arguments": {"name": "Ada"} if arguments is None else arguments,
    }
    args.update({k: v for k, v in extra.items() if not k.startswith("service_")})
    return args


def effect(args: dict[str, Any]) -> Coroutine[Any, Any, Any]:
    return call_grpc(EffectInput(reference="/do/0/call", name="call", args=args))


async def raised(coro: Awaitable[Any]) -> ApplicationError:
    """The ApplicationError ``coro`` raises, with its problem checked for the standard shape."""
    with pytest.raises(ApplicationError) as info:
        await coro
    assert set(problem(info.value)) >= {"type", "status", "title", "detail"}
    return info.value


def failure(args: dict[str, Any]) -> ApplicationError:
    """The problem a call raises when no server is needed to raise it."""
    return asyncio.run(raised(effect(args)))


# --- successful calls ---------------------------------------------------------------------------------


def test_unary_call_from_a_file_path_returns_the_reply_as_a_dict() -> None:
    async def scenario(greeter: Greeter) -> Any:
        return await effect(
            grpc_args(greeter.port, arguments={"name": "Ada", "times": 2, "tags": ["a", "b"]})
        )

    assert with_server(scenario) == {
        "message": "Hello, Ada! Hello, Ada!",
        "tags": ["a", "b"],
        "greeted_count": "2",  # int64 is a string in proto3 JSON
        "sent_at": "2024-01-02T03:04:05Z",  # the well-known Timestamp import resolved and maps to JSON
    }


def test_file_uri_endpoint_object_and_unqualified_service_name() -> None:
    async def scenario(greeter: Greeter) -> list[Any]:
        return [
            await effect(
                grpc_args(greeter.port, proto={"endpoint": {"uri": PROTO.as_uri()}}, name="Greeter")
            ),
            # A bare string works too, and arguments may use the JSON (camelCase) names.
            await effect(
                grpc_args(greeter.port, proto=PROTO.as_uri(), method="GetGreeting", arguments={"id": 1})
            ),
        ]

    first, second = with_server(scenario)
    assert first["message"] == "Hello, Ada!"
    assert second["message"] == "Hello, world!"


def test_proto_fetched_over_http_with_its_own_authentication() -> None:
    with LoopbackServer() as http:
        http.route("GET", "/protos/greeter.proto", Reply(body=PROTO.read_text(), content_type="text/plain"))
        endpoint = {"uri": http.url("/protos/greeter.proto"), "authentication": {"bearer": {"token": "p"}}}

        async def scenario(greeter: Greeter) -> Any:
            return await effect(grpc_args(greeter.port, proto={"endpoint": endpoint}))

        assert with_server(scenario)["message"] == "Hello, Ada!"
        assert http.last().headers["authorization"] == "Bearer p"


def test_bearer_and_basic_authentication_reach_the_server_as_metadata() -> None:
    async def scenario(greeter: Greeter) -> list[dict[str, str]]:
        await effect(grpc_args(greeter.port, service_authentication={"bearer": {"token": "s3cret"}}))
        await effect(grpc_args(greeter.port, authentication={"basic": {"username": "ada", "password": "pw"}}))
        await effect(grpc_args(greeter.port))
        return greeter.metadata

    bearer, basic, anonymous = with_server(scenario)
    assert bearer["authorization"] == "Bearer s3cret"
    assert basic["authorization"] == "Basic " + base64.b64encode(b"ada:pw").decode()
    assert "authorization" not in anonymous


def test_timeout_accepts_seconds_and_dsl_durations() -> None:
    async def scenario(greeter: Greeter) -> list[Any]:
        return [
            await effect(grpc_args(greeter.port, timeout=5)),
            await effect(grpc_args(greeter.port, timeout={"seconds": 5})),
            await effect(grpc_args(greeter.port, timeout="PT5S")),
        ]

    assert all(reply["message"] == "Hello, Ada!" for reply in with_server(scenario))


# --- configuration problems ---------------------------------------------------------------------------


def test_unknown_service_names_the_services_the_proto_defines() -> None:
    error = failure(grpc_args(free_port(), name="greeter.Greter"))
    details = problem(error)
    assert details["type"] == ERRORS + "configuration"
    assert "'greeter.Greter' is not in the proto at file://" in details["detail"]
    assert "which defines greeter.Greeter; did you mean 'greeter.Greeter'?" in details["detail"]
    assert error.non_retryable


def test_unknown_method_names_the_methods_of_the_service() -> None:
    details = problem(failure(grpc_args(free_port(), method="SayHelo")))
    assert details["type"] == ERRORS + "configuration"
    assert details["title"] == "Unknown gRPC method"
    assert "Fail, GetGreeting, SayHello, SayHellos, Wait; did you mean 'SayHello'?" in details["detail"]


def test_streaming_method_is_refused() -> None:
    details = problem(failure(grpc_args(free_port(), method="SayHellos")))
    assert details["type"] == ERRORS + "configuration"
    assert "greeter.Greeter.SayHellos is a server-streaming method" in details["detail"]
    assert "supports only unary methods" in details["detail"]


def test_bad_arguments_name_the_field() -> None:
    unknown = problem(failure(grpc_args(free_port(), arguments={"nme": "Ada"})))
    assert unknown["type"] == ERRORS + "configuration"
    assert "greeter.HelloRequest has no field 'nme'" in unknown["detail"]
    assert "did you mean 'name'?" in unknown["detail"]
    wrong_type = problem(failure(grpc_args(free_port(), arguments={"times": "many"})))
    assert wrong_type["type"] == ERRORS + "configuration"
    assert "arguments do not fit greeter.HelloRequest" in wrong_type["detail"]
    assert "times" in wrong_type["detail"]


def test_proto_that_does_not_compile_reports_protocs_message(tmp_path: Path) -> None:
    bad = tmp_path / "broken.proto"
    bad.write_text('syntax = "proto3";\npackage broken;\nmessage A { strin name = 1; }\n')
    details = problem(failure(grpc_args(free_port(), proto={"endpoint": str(bad)})))
    assert details["type"] == ERRORS + "configuration"
    assert details["title"] == "Bad proto"
    assert 'broken.proto:3:13: "strin" is not defined.' in details["detail"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"service": "greeter.Greeter"}, "needs service: {name, host, port}"),
        ({"service_port": None}, "needs service.port"),
        ({"service_port": 70000}, "service.port must be a port number"),
        ({"service_host": "http://example.com"}, "not a URL"),
        ({"service_authentication": {"oauth2": {"authority": "x"}}}, "oauth2 is not supported by call: grpc"),
        ({"timeout": 0}, "timeout must be more than zero"),
        ({"timeout": "soon"}, "timeout:"),
        (
            {"proto": {"endpoint": "ftp://example.com/greeter.proto"}},
            "not a local path, file:// URI or http(s)",
        ),
        ({"proto": {}}, "call: grpc proto (a path, file:// URI or http(s) URL) needs an endpoint"),
        ({"arguments": ["Ada"]}, "arguments must be an object"),
    ],
)
def test_bad_with_is_a_configuration_problem(change: dict[str, Any], expected: str) -> None:
    args = grpc_args(free_port())
    for key, value in change.items():
        if key.startswith("service_"):
            args["service"][key.removeprefix("service_")] = value
        else:
            args[key] = value
    details = problem(failure(args))
    assert details["type"] == ERRORS + "configuration"
    assert expected in details["detail"]


def test_host_may_carry_the_port() -> None:
    async def scenario(greeter: Greeter) -> Any:
        args = grpc_args(greeter.port, service_host=f"127.0.0.1:{greeter.port}", service_port=None)
        return await effect(args)

    assert with_server(scenario)["message"] == "Hello, Ada!"


# --- communication problems ---------------------------------------------------------------------------


def test_server_status_maps_to_an_http_status() -> None:
    codes = {
        "INVALID_ARGUMENT": 400,
        "UNAUTHENTICATED": 401,
        "PERMISSION_DENIED": 403,
        "ALREADY_EXISTS": 409,
        "INTERNAL": 500,
        "UNIMPLEMENTED": 501,
        "UNAVAILABLE": 503,
    }

    async def scenario(greeter: Greeter) -> list[ApplicationError]:
        errors = [await raised(effect(grpc_args(greeter.port, method="GetGreeting", arguments={"id": 7})))]
        for code in codes:
            args = grpc_args(
                greeter.port, method="Fail", arguments={"code": code, "details": f"it is {code}"}
            )
            errors.append(await raised(effect(args)))
        return errors

    not_found, *others = with_server(scenario)
    details = problem(not_found)
    assert details["type"] == ERRORS + "communication"
    assert details["status"] == 404
    assert details["title"] == "gRPC NOT_FOUND"
    assert details["detail"].endswith("failed with NOT_FOUND: no greeting 7")
    assert "greeter.Greeter/GetGreeting at 127.0.0.1:" in details["detail"]
    assert not_found.non_retryable
    for (code, status), error in zip(codes.items(), others, strict=True):
        assert problem(error)["status"] == status, code
        assert problem(error)["detail"].endswith(f"failed with {code}: it is {code}")
        assert error.non_retryable == (code != "UNAVAILABLE"), code


def test_deadline_exceeded_is_a_504() -> None:
    async def scenario(greeter: Greeter) -> ApplicationError:
        args = grpc_args(greeter.port, method="Wait", arguments={"seconds": 5}, timeout=0.2)
        return await raised(effect(args))

    error = with_server(scenario)
    details = problem(error)
    assert details["type"] == ERRORS + "communication"
    assert details["status"] == 504
    assert "DEADLINE_EXCEEDED" in details["detail"]
    assert error.non_retryable


def test_connection_refused_is_a_retryable_503() -> None:
    error = failure(grpc_args(free_port()))
    details = problem(error)
    assert details["type"] == ERRORS + "communication"
    assert details["status"] == 503
    assert details["title"] == "gRPC UNAVAILABLE"
    assert not error.non_retryable


# --- the compile cache --------------------------------------------------------------------------------


def test_second_call_with_the_same_proto_text_does_not_recompile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Text no other test compiles, so the process-wide cache cannot already hold it.
    proto = tmp_path / "cached.proto"
    proto.write_text(PROTO.read_text() + f"\n// {uuid.uuid4()}\n")
    compile_proto(PROTO.read_text(), file_name=PROTO.name, include=str(PROTO.parent))  # the server's
    runs: list[str] = []
    real = grpc_call._run_protoc

    def counting(text: str, file_name: str, include: str | None) -> bytes:
        runs.append(file_name)
        return real(text, file_name, include)

    monkeypatch.setattr(grpc_call, "_run_protoc", counting)

    async def scenario(greeter: Greeter) -> list[Any]:
        return [await effect(grpc_args(greeter.port, proto={"endpoint": str(proto)})) for _ in range(2)]

    first, second = with_server(scenario)
    assert first == second
    assert runs == ["cached.proto"]
