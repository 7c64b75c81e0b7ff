"""One pooled HTTP client per worker: shared by every call, injectable transport, no cookies kept."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from stigmer_nb.dsl.activities import EffectActivities, Registry
from stigmer_nb.dsl.effects import EffectInput
from tests.failures import problem_of
from tests.httpserver import LoopbackServer, Reply


def _effects(transport: httpx.AsyncBaseTransport | None = None) -> EffectActivities:
    # The Temporal client is not used by the HTTP effects.
    return EffectActivities(Registry(), client=None, http_transport=transport)  # type: ignore[arg-type]


def _get(url: str) -> EffectInput:
    return EffectInput(reference="/do/0/get", name="get", args={"method": "get", "endpoint": url})


def test_every_call_of_a_worker_goes_through_its_one_client_and_transport() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"n": len(seen)})

    effects = _effects(httpx.MockTransport(answer))

    async def go() -> list[Any]:
        client = effects.http
        out = [await effects.call_http(_get(f"http://api.example/{i}")) for i in range(3)]
        assert effects.http is client  # one client for the worker's lifetime
        await effects.close()
        assert client.is_closed
        return out

    assert asyncio.run(go()) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert seen == [f"http://api.example/{i}" for i in range(3)]


def test_openapi_documents_go_through_the_worker_client_too() -> None:
    spec = {
        "openapi": "3.0.0",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "http://api.example"}],
        "paths": {"/pets": {"get": {"operationId": "listPets", "responses": {"200": {"description": "ok"}}}}},
    }
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json=spec if request.url.path == "/openapi.json" else [1, 2])

    effects = _effects(httpx.MockTransport(answer))
    args = {"document": {"endpoint": "http://api.example/openapi.json"}, "operationId": "listPets"}

    async def go() -> Any:
        try:
            return await effects.call_openapi(EffectInput(reference="/do/0/list", name="list", args=args))
        finally:
            await effects.close()

    assert asyncio.run(go()) == [1, 2]
    assert seen == ["/openapi.json", "/pets"]


def test_a_cookie_set_for_one_workflow_is_never_sent_with_another_request() -> None:
    with LoopbackServer() as server:
        server.route("GET", "/login", Reply(body={"ok": True}, headers={"Set-Cookie": "session=abc; Path=/"}))
        server.route("GET", "/data", Reply(body={"ok": True}))
        effects = _effects()

        async def go() -> None:
            await effects.call_http(_get(server.url("/login")))
            await effects.call_http(_get(server.url("/data")))
            await effects.close()

        asyncio.run(go())
        assert "cookie" not in server.requests[-1].headers


@pytest.mark.parametrize(
    ("call", "modules", "extra"),
    [
        ("call_grpc", ("grpc", "stigmer_nb.dsl.grpc"), "grpc"),
        ("call_mcp", ("mcp", "stigmer_nb.dsl.mcp"), "mcp"),
        ("call_a2a", ("a2a", "stigmer_nb.dsl.a2a"), "a2a"),
    ],
)
def test_a_call_whose_client_library_is_missing_names_the_extra_to_install(
    call: str, modules: tuple[str, ...], extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    library, module = modules
    monkeypatch.setitem(sys.modules, library, None)  # as on a worker installed without the extra
    monkeypatch.delitem(sys.modules, module, raising=False)
    effects = _effects()
    with pytest.raises(ApplicationError) as info:
        asyncio.run(getattr(effects, call)(EffectInput(reference="/do/0/c", name="c", args={})))
    problem = problem_of(info.value)
    assert problem["title"] == "Not installed"
    assert f"pip install 'stigmer-nb[{extra}]'" in problem["detail"]
