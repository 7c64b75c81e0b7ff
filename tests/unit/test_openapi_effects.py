"""``call: openapi`` with a petstore-like document served on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from stigmer_nb.dsl import openapi
from stigmer_nb.dsl.activities import EffectActivities, Registry
from stigmer_nb.dsl.effects import EffectInput
from stigmer_nb.dsl.openapi import call_openapi
from tests.failures import problem_of
from tests.httpserver import LoopbackServer, Reply

ERRORS = "https://serverlessworkflow.io/spec/1.0.0/errors/"

PETSTORE: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Petstore", "version": "1.0.0"},
    "servers": [{"url": "/api/v1"}],
    "paths": {
        "/pets": {
            "get": {
                "operationId": "listPets",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    {"$ref": "#/components/parameters/TraceId"},
                ],
            },
            "post": {
                "operationId": "createPet",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}},
                },
            },
        },
        "/pets/{petId}": {
            "parameters": [{"name": "petId", "in": "path", "required": True}],
            "get": {"operationId": "getPetById"},
            "delete": {
                "operationId": "deletePet",
                "parameters": [{"name": "api_key", "in": "header"}, {"name": "session", "in": "cookie"}],
            },
        },
        "/pets/{petId}/photo": {
            "post": {
                "operationId": "uploadPhoto",
                "parameters": [{"name": "petId", "in": "path", "required": True}],
                "requestBody": {"content": {"application/x-www-form-urlencoded": {}}},
            }
        },
    },
    "components": {
        "parameters": {"TraceId": {"name": "X-Trace-Id", "in": "header"}},
        "schemas": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}}}},
    },
}


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    openapi.clear_cache()  # ports are reused across tests; so would be cached documents
    with LoopbackServer() as srv:
        srv.echo("/api/v1/pets")
        srv.echo("/api/v1/pets/42")
        srv.echo("/api/v1/pets/42/photo")
        yield srv
    openapi.clear_cache()


@pytest.fixture
def doc(server: LoopbackServer) -> str:
    return server.openapi("/openapi.json", PETSTORE)


def invoke(args: dict[str, Any], data: Any = None) -> Coroutine[Any, Any, Any]:
    return call_openapi(EffectInput(reference="/do/0/call", name="call", args=args, input=data))


def call(args: dict[str, Any], data: Any = None) -> Any:
    return asyncio.run(invoke(args, data))


def failure(coro: Coroutine[Any, Any, Any]) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        asyncio.run(coro)
    assert set(problem_of(info.value)) >= {"type", "status", "title", "detail"}
    return info.value


def test_query_and_header_parameters(server: LoopbackServer, doc: str) -> None:
    out = call(
        {
            "document": {"endpoint": doc},
            "operationId": "listPets",
            "parameters": {"limit": 2, "X-Trace-Id": "t-1"},
        }
    )
    assert out["method"] == "GET"
    assert out["path"] == "/api/v1/pets"
    assert out["query"] == {"limit": ["2"]}
    assert out["headers"]["x-trace-id"] == "t-1"


def test_path_parameter(doc: str) -> None:
    out = call({"document": {"endpoint": doc}, "operationId": "getPetById", "parameters": {"petId": 42}})
    assert out["path"] == "/api/v1/pets/42"


def test_header_and_cookie_parameters(server: LoopbackServer, doc: str) -> None:
    call(
        {
            "document": {"endpoint": doc},
            "operationId": "deletePet",
            "parameters": {"petId": 42, "api_key": "k", "session": "abc"},
        }
    )
    seen = server.last()
    assert seen.method == "DELETE"
    assert seen.headers["api_key"] == "k"
    assert seen.headers["cookie"] == "session=abc"


def test_remaining_parameters_become_the_json_body(server: LoopbackServer, doc: str) -> None:
    call(
        {
            "document": {"endpoint": doc},
            "operationId": "createPet",
            "parameters": {"name": "Rex", "tag": "dog"},
        }
    )
    seen = server.last()
    assert seen.method == "POST"
    assert seen.json() == {"name": "Rex", "tag": "dog"}
    assert seen.headers["content-type"] == "application/json"


def test_parameter_named_body_is_the_body(server: LoopbackServer, doc: str) -> None:
    call({"document": {"endpoint": doc}, "operationId": "createPet", "parameters": {"body": [{"name": "A"}]}})
    assert server.last().json() == [{"name": "A"}]


def test_form_request_body(server: LoopbackServer, doc: str) -> None:
    call(
        {
            "document": {"endpoint": doc},
            "operationId": "uploadPhoto",
            "parameters": {"petId": 42, "caption": "cute", "tags": ["a", "b"]},
        }
    )
    seen = server.last()
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert seen.text() == "caption=cute&tags=a&tags=b"


@pytest.mark.parametrize("shape", ["endpoint-string", "endpoint-object", "uri", "plain-string"])
def test_document_reference_shapes(doc: str, shape: str) -> None:
    document: Any = {
        "endpoint-string": {"endpoint": doc},
        "endpoint-object": {"endpoint": {"uri": doc}},
        "uri": {"uri": doc},
        "plain-string": doc,
    }[shape]
    assert call({"document": document, "operationId": "getPetById", "parameters": {"petId": 42}})["path"] == (
        "/api/v1/pets/42"
    )


def test_document_is_fetched_once_per_url(server: LoopbackServer, doc: str) -> None:
    for _ in range(3):
        call({"document": {"endpoint": doc}, "operationId": "listPets"})
    assert len(server.received("/openapi.json")) == 1
    assert len(server.received("/api/v1/pets")) == 3


def test_yaml_document_without_servers_uses_its_origin(server: LoopbackServer) -> None:
    document = {key: value for key, value in PETSTORE.items() if key != "servers"}
    url = server.openapi("/specs/petstore.yaml", document, as_yaml=True)
    server.echo("/pets/42")
    out = call({"document": {"endpoint": url}, "operationId": "getPetById", "parameters": {"petId": 42}})
    assert out["path"] == "/pets/42"


def test_absolute_server_with_variables(server: LoopbackServer) -> None:
    document = {
        **PETSTORE,
        "servers": [
            {
                "url": "http://127.0.0.1:{port}/{base}",
                "variables": {"port": {"default": str(server.port)}, "base": {"default": "api/v1"}},
            }
        ],
    }
    url = server.openapi("/other.json", document)
    out = call({"document": {"endpoint": url}, "operationId": "getPetById", "parameters": {"petId": 42}})
    assert out["path"] == "/api/v1/pets/42"


def test_swagger_2_base_path(server: LoopbackServer) -> None:
    document = {
        "swagger": "2.0",
        "basePath": "/api/v1",
        "paths": {
            "/pets": {"post": {"operationId": "addPet", "parameters": [{"name": "pet", "in": "body"}]}}
        },
    }
    url = server.openapi("/swagger.json", document)
    call({"document": {"endpoint": url}, "operationId": "addPet", "parameters": {"pet": {"name": "Rex"}}})
    assert server.last().path == "/api/v1/pets"
    assert server.last().json() == {"name": "Rex"}


def test_local_file_document(server: LoopbackServer, tmp_path: Path) -> None:
    document = {**PETSTORE, "servers": [{"url": server.url("/api/v1")}]}
    path = tmp_path / "petstore.json"
    path.write_text(json.dumps(document))
    out = call(
        {"document": {"endpoint": path.as_uri()}, "operationId": "getPetById", "parameters": {"petId": 42}}
    )
    assert out["path"] == "/api/v1/pets/42"


def test_authentication_and_output(server: LoopbackServer, doc: str) -> None:
    out = call(
        {
            "document": {"endpoint": doc},
            "operationId": "getPetById",
            "parameters": {"petId": 42},
            "authentication": {"bearer": {"token": "tok"}},
            "output": "response",
        }
    )
    assert out["statusCode"] == 200
    assert out["request"]["headers"]["authorization"] == "***"
    assert server.last().headers["authorization"] == "Bearer tok"


# --- problems ----------------------------------------------------------------------------------------


def test_unknown_operation_suggests_the_closest(doc: str) -> None:
    err = failure(invoke({"document": {"endpoint": doc}, "operationId": "getPetByID"}))
    problem = problem_of(err)
    assert problem["type"] == ERRORS + "configuration"
    assert problem["status"] == 400
    assert problem["title"] == "Unknown operation"
    assert "did you mean 'getPetById'" in problem["detail"]
    assert err.non_retryable


def test_missing_path_parameter(doc: str) -> None:
    err = failure(
        invoke({"document": {"endpoint": doc}, "operationId": "getPetById", "parameters": {"petid": 1}})
    )
    assert "needs parameter petId (in path)" in problem_of(err)["detail"]
    assert "did you mean 'petid'" in problem_of(err)["detail"]


def test_unknown_parameter_without_request_body(doc: str) -> None:
    err = failure(
        invoke({"document": {"endpoint": doc}, "operationId": "listPets", "parameters": {"limti": 1}})
    )
    assert "has no parameter 'limti'; did you mean 'limit'?" in problem_of(err)["detail"]


def test_missing_required_body(doc: str) -> None:
    err = failure(invoke({"document": {"endpoint": doc}, "operationId": "createPet"}))
    assert "needs a request body" in problem_of(err)["detail"]


def test_operation_failure_is_a_communication_problem(server: LoopbackServer, doc: str) -> None:
    server.route("GET", "/api/v1/pets/404", Reply(status=404, body={"message": "not found"}))
    err = failure(
        invoke({"document": {"endpoint": doc}, "operationId": "getPetById", "parameters": {"petId": 404}})
    )
    assert problem_of(err)["type"] == ERRORS + "communication"
    assert problem_of(err)["status"] == 404
    assert err.non_retryable


def test_missing_document_is_a_communication_problem(server: LoopbackServer) -> None:
    err = failure(invoke({"document": {"endpoint": server.url("/nope.json")}, "operationId": "x"}))
    assert problem_of(err)["type"] == ERRORS + "communication"
    assert problem_of(err)["status"] == 404


def test_not_an_openapi_document(server: LoopbackServer) -> None:
    server.route("GET", "/notes.txt", Reply(body="just: [text"))
    server.route("GET", "/list.json", Reply(body=[1, 2]))
    for path in ("/notes.txt", "/list.json"):
        err = failure(invoke({"document": {"endpoint": server.url(path)}, "operationId": "x"}))
        assert problem_of(err)["type"] == ERRORS + "configuration"
        assert problem_of(err)["title"] == "Bad OpenAPI document"


def test_missing_operation_id(doc: str) -> None:
    err = failure(invoke({"document": {"endpoint": doc}}))
    assert problem_of(err)["title"] == "Missing operationId"


# --- through the activity ------------------------------------------------------------------------------


def test_activity(doc: str) -> None:
    acts = EffectActivities(Registry(), client=None, allow_shell=True)  # type: ignore[arg-type]
    env = ActivityEnvironment()
    ok = EffectInput(
        reference="/do/0/get",
        name="get",
        args={"document": {"endpoint": doc}, "operationId": "getPetById", "parameters": {"petId": 42}},
    )
    assert asyncio.run(env.run(acts.call_openapi, ok))["path"] == "/api/v1/pets/42"
    bad = EffectInput(
        reference="/do/0/get", name="get", args={"document": {"endpoint": doc}, "operationId": "nope"}
    )
    err = failure(env.run(acts.call_openapi, bad))
    assert problem_of(err)["type"] == ERRORS + "configuration"
    assert err.non_retryable
