"""Every document under examples/dsl runs end to end through the lab and matches its metadata.

Each example carries what it should do in ``document.metadata.example``: the input, the expected
output (or phase and error), events to send, and what it needs (shell opt-in, Python functions).
``needs`` names the services it calls; each adds to the input where to reach it (see ``NEEDS``), and
each service starts, once for this module, only when an example selected to run needs it.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import yaml

from stigmer_nb.dsl.parse import parse_workflow
from stigmer_nb.lab import Lab
from stigmer_nb.settings import Settings
from stigmer_nb.temporal.server import EmbeddedServer

from ..conftest import assert_eventually, queue_env
from ..fixtures.grpc_server import PROTO
from ..fixtures.serving import FIXTURES, serving
from ..httpserver import LoopbackServer, Recorded, Reply, free_port

pytestmark = pytest.mark.integration

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "dsl").glob("*.yaml"))
_ids = itertools.count()


def add(a: int, b: int) -> int:
    return a + b


def echo(message: str) -> dict[str, str]:
    return {"reply": f"echo: {message}"}


def _lab(server: EmbeddedServer, home: Path, **options: Any) -> Lab:
    env = {**queue_env(f"examples-{os.getpid()}-{next(_ids)}"), "TEMPORAL_HOST_PORT": server.target}
    lab = Lab.create(Settings.from_env(env, home=home, time_skipping=True, **options))
    lab.register_function("add", add)
    lab.register_agent("echo", echo)
    for path in EXAMPLES:  # run: workflow finds its targets among the lab's workflows
        document, spec = parse_workflow(path)
        lab._check().call(lab.service.apply_workflow(document, spec=spec))
    return lab


@pytest.fixture(scope="module")
def labs(
    temporal_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Lab]]:
    plain = _lab(temporal_server, tmp_path_factory.mktemp("plain"))
    shell = _lab(temporal_server, tmp_path_factory.mktemp("shell"), allow_shell=True)
    yield {"plain": plain, "shell": shell}
    plain.stop()
    shell.stop()


PETS = {1: {"id": 1, "name": "Rex", "species": "dog"}, 2: {"id": 2, "name": "Tom", "species": "cat"}}
PETSTORE = {
    "openapi": "3.0.3",
    "info": {"title": "Pets", "version": "1"},
    "servers": [{"url": "/"}],
    "paths": {
        "/pets/{petId}": {
            "get": {
                "operationId": "getPetById",
                "parameters": [
                    {"name": "petId", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "responses": {"200": {"description": "a pet"}},
            }
        }
    },
}


@pytest.fixture(scope="module")
def pets() -> Iterator[LoopbackServer]:
    """A small pet store on loopback for the call: http / openapi examples."""
    with LoopbackServer() as server:
        for pid, pet in PETS.items():
            server.route("GET", f"/pets/{pid}", Reply(body=pet))

        def add_pet(req: Recorded) -> Reply:
            assert (
                req.query == {"notify": ["true"]} and req.headers["x-request-source"] == "stigmer-nb-example"
            )
            return Reply(status=201, body={"id": 3, **req.json()})

        def vet(req: Recorded) -> Reply:
            expected = (
                "Basic " + base64.b64encode(f"keeper:{SECRET_FIXTURES['vet_password']}".encode()).decode()
            )
            if req.headers.get("authorization") != expected:
                return Reply(status=401, body={"error": "who are you?"})
            return Reply(body={"vet": "Dr. Who", "checkedBy": "keeper"})

        busy: dict[str, int] = {}

        def flaky(req: Recorded) -> Reply:
            # Busy twice per caller (the `key` query), then fine: for the attempts example.
            key = req.query.get("key", [""])[0]
            busy[key] = busy.get(key, 0) + 1
            if busy[key] <= 2:
                return Reply(status=503, body={"busy": busy[key]})
            return Reply(body={"served": True, "attempt": busy[key]})

        server.route("POST", "/pets", add_pet)
        server.route("GET", "/vet", vet)
        server.route("GET", "/flaky", flaky)
        server.openapi("/openapi.json", PETSTORE)
        yield server


CLINIC_CLIENT = "pet-clinic"
"""The one client the identity provider knows; its secret is ``SECRET_FIXTURES["clinic_secret"]``."""


@dataclass
class IdentityProvider:
    """An OAuth2 / OpenID Connect token endpoint, and a route that wants one of its tokens."""

    issued: dict[str, dict[str, str]] = field(default_factory=dict)
    """Each access token issued, with the scope and the token endpoint it came from."""

    def token(self, req: Recorded) -> Reply:
        """``client_credentials`` with ``client_secret_post`` (the DSL's default client authentication)."""
        form = {k: v[0] for k, v in parse_qs(req.text()).items()}
        if form.get("grant_type") != "client_credentials":
            return Reply(status=400, body={"error": "unsupported_grant_type"})
        client = (form.get("client_id"), form.get("client_secret"))
        if client != (CLINIC_CLIENT, SECRET_FIXTURES["clinic_secret"]):
            return Reply(status=401, body={"error": "invalid_client"})
        token = secrets.token_urlsafe(24)
        self.issued[token] = {"scope": form.get("scope", ""), "endpoint": req.path}
        return Reply(body={"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def records(self, req: Recorded) -> Reply:
        """Rex's medical records, for a bearer token issued here."""
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        grant = self.issued.get(token) if scheme.lower() == "bearer" else None
        if grant is None:
            return Reply(status=401, body={"error": "invalid_token"}, headers={"WWW-Authenticate": "Bearer"})
        return Reply(
            body={"pet": "Rex", "vaccinated": True, "scope": grant["scope"], "tokenFrom": grant["endpoint"]}
        )


@pytest.fixture(scope="module")
def identity_provider(pets: LoopbackServer) -> IdentityProvider:
    """On the pet store: ``/oauth2/token``, ``/oidc/token`` (named by discovery) and the protected records."""
    idp = IdentityProvider()
    pets.route("POST", "/oauth2/token", idp.token)
    pets.route("POST", "/oidc/token", idp.token)
    pets.route(
        "GET",
        "/.well-known/openid-configuration",
        Reply(body={"issuer": pets.base, "token_endpoint": pets.url("/oidc/token")}),
    )
    pets.route("GET", "/pets/1/records", idp.records)
    return idp


@pytest.fixture(scope="module")
def greeter() -> Iterator[int]:
    """The gRPC Greeter (tests/fixtures/grpc_server.py) as a process; its port."""
    port = free_port()
    with serving("grpc_server.py", str(port), port=port):
        yield port


@pytest.fixture(scope="module")
def mcp_http() -> Iterator[str]:
    """The MCP test server over streamable HTTP as a process; its URL."""
    port = free_port()
    with serving("mcp_server.py", "http", str(port), port=port):
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.fixture(scope="module")
def a2a_agent() -> Iterator[str]:
    """The A2A echo agent as a process; its base URL (the agent card is under it)."""
    port = free_port()
    with serving("a2a_server.py", str(port), port=port):
        yield f"http://127.0.0.1:{port}"


NEEDS = ("http", "oauth", "grpc", "mcp", "mcp-http", "a2a")
"""Values of ``metadata.example.needs`` beyond the lab's own (shell, functions)."""


def _needs(need: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """What ``needs: [need]`` adds to an example's input, starting the service it names if not yet up."""
    if need == "http":
        pets: LoopbackServer = request.getfixturevalue("pets")
        return {"base": pets.base, "port": pets.port}
    if need == "oauth":  # the identity provider lives on the pet store: its authority is `base`
        request.getfixturevalue("identity_provider")
        return _needs("http", request)
    if need == "grpc":
        return {"grpcPort": request.getfixturevalue("greeter"), "protoPath": str(PROTO)}
    if need == "mcp":  # stdio: the engine starts the server itself, once per call
        return {"python": sys.executable, "mcpServer": str(FIXTURES / "mcp_server.py")}
    if need == "mcp-http":
        return {"mcpUrl": request.getfixturevalue("mcp_http")}
    if need == "a2a":
        return {"a2aUrl": request.getfixturevalue("a2a_agent")}
    raise AssertionError(f"unknown need {need!r}; one of {', '.join(NEEDS)}")


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _subset(v, actual[k]) for k, v in expected.items()
        )
    return bool(expected == actual)


def test_there_are_at_least_forty_examples() -> None:
    assert len(EXAMPLES) >= 40


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example(path: Path, labs: dict[str, Lab], request: pytest.FixtureRequest) -> None:
    meta = yaml.safe_load(path.read_text())["document"]["metadata"]["example"]
    lab = labs["shell" if meta.get("allow_shell") else "plain"]
    data = meta.get("input")
    for need in meta.get("needs", []):
        data = {**data, **_needs(need, request)}
    started = time.monotonic()
    runtime_env = _runtime_env(meta.get("runtime_env"))
    if "schedule_runs" in meta:
        _run_schedule(lab, path, data, meta["schedule_runs"], meta.get("send_events", []))
        return
    execution = lab.run(path, input=data, runtime_env=runtime_env)
    if meta.get("send_events"):
        # An event counts for a listen that is waiting, or that begins within the lab's event
        # window after it came: `send_events_early` sends once the run is running, else once the
        # listen task has started.
        early = meta.get("send_events_early", False)
        assert_eventually(
            lambda: any(early or t.kind == "listen" for t in lab.service.snapshot(execution.id).tasks),
            timeout=30,
        )
        for event in meta["send_events"]:
            assert lab.send_event(event) >= 1
    execution.wait(60)
    record = execution.record
    assert record.phase.name == meta.get("phase", "EXECUTION_COMPLETED"), record.error
    if "output" in meta:
        assert record.output == meta["output"]
    if "output_subset" in meta:
        assert _subset(meta["output_subset"], record.output), record.output
    if "output_types" in meta:
        assert [e["type"] for e in record.output] == meta["output_types"]
    if "error" in meta:
        assert _subset(meta["error"], record.error), record.error
    if "task_runs" in meta:
        counts = execution.tasks["name"].value_counts().to_dict()
        assert {k: counts.get(k, 0) for k in meta["task_runs"]} == meta["task_runs"]
    if "attempts" in meta:
        attempts = execution.tasks.set_index("name")["attempt"].to_dict()
        assert {k: attempts.get(k) for k in meta["attempts"]} == meta["attempts"]
    if "min_duration_ms" in meta:
        assert (record.completed_at - record.started_at).total_seconds() * 1000 >= meta["min_duration_ms"]
    assert time.monotonic() - started < 30
    # Every transition was recorded once, in order, and each task run ended.
    updates = execution.updates
    assert list(updates["seq"]) == sorted(set(updates["seq"]))
    assert execution.tasks["completed_at"].notna().all()
    kept_out = [v["value"] for v in (runtime_env or {}).values() if v.get("is_secret")]
    if "oauth" in meta.get("needs", []):  # access tokens are as secret as the credentials behind them
        kept_out += list(request.getfixturevalue("identity_provider").issued)
    for secret in kept_out:
        for table in ("workflows", "workflow_instances", "workflow_executions", "task_updates"):
            assert secret not in json.dumps(lab.sql(f"SELECT * FROM {table}").to_dict("records"), default=str)


def _run_schedule(lab: Lab, path: Path, data: Any, runs: int, events: list[dict[str, Any]]) -> None:
    """``schedule_runs: N``: start the document's schedule (and send its events), see N runs
    complete, remove it."""
    schedule_id = lab.schedule(path, input=data)
    assert schedule_id in set(lab.schedules()["schedule_id"])
    for event in events:
        assert lab.send_event(event) >= 1

    def completed() -> int:
        frame = lab.sql(
            "SELECT count(*) AS n FROM workflow_executions WHERE trigger_message = ? AND phase = 'EXECUTION_COMPLETED'",
            params=[f"schedule {schedule_id}"],
        )
        return int(frame["n"].iloc[0])

    assert_eventually(lambda: completed() >= runs, timeout=60)
    lab.unschedule(schedule_id)
    assert schedule_id not in set(lab.schedules()["schedule_id"])


SECRET_FIXTURES = {
    "api_token": "s3cr3t-value",
    "vet_password": "open-sesame",
    "clinic_secret": "clinic-s3cret",
}
"""Secret values for the examples' ``runtime_env`` (``{fixture: NAME}``): kept out of the documents."""


def _runtime_env(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{fixture: NAME}`` entries get their value from ``SECRET_FIXTURES``."""
    if not spec:
        return spec
    return {
        key: {"value": SECRET_FIXTURES[entry["fixture"]], "is_secret": entry.get("is_secret", False)}
        if isinstance(entry, dict) and "fixture" in entry
        else entry
        for key, entry in spec.items()
    }
