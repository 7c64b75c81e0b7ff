"""``call: http`` against a loopback server: outputs, templates, bodies, auth, redirects and problems."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Coroutine, Iterator
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from stigmer_nb.dsl import http
from stigmer_nb.dsl.activities import EffectActivities, Registry
from stigmer_nb.dsl.effects import EffectInput
from stigmer_nb.dsl.http import call_http, expand_template, redact_url
from tests.failures import problem_of
from tests.httpserver import LoopbackServer, Reply, free_port

ERRORS = "https://serverlessworkflow.io/spec/1.0.0/errors/"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


def call(args: dict[str, Any], data: Any = None) -> Any:
    return asyncio.run(call_http(EffectInput(reference="/do/0/call", name="call", args=args, input=data)))


def failure(coro: Coroutine[Any, Any, Any]) -> ApplicationError:
    """The ApplicationError ``coro`` raises, with its problem checked for the standard shape."""
    with pytest.raises(ApplicationError) as info:
        asyncio.run(coro)
    details = problem_of(info.value)
    assert set(details) >= {"type", "status", "title"}
    return info.value


def http_failure(args: dict[str, Any], data: Any = None) -> ApplicationError:
    return failure(call_http(EffectInput(reference="/do/0/call", name="call", args=args, input=data)))


# --- outputs ---------------------------------------------------------------------------------------


def test_content_is_decoded_json_by_default(server: LoopbackServer) -> None:
    server.route("GET", "/pets", Reply(body=[{"id": 1, "name": "Rex"}]))
    assert call({"method": "get", "endpoint": server.url("/pets")}) == [{"id": 1, "name": "Rex"}]


def test_content_is_text_when_the_response_is_not_json(server: LoopbackServer) -> None:
    server.route("GET", "/hello", Reply(body="hello\n"))
    server.route("GET", "/json-ish", Reply(body='{"a": 1}', content_type="application/problem+json"))
    server.route("GET", "/empty", Reply(status=204))
    assert call({"method": "GET", "endpoint": server.url("/hello")}) == "hello\n"
    assert call({"method": "GET", "endpoint": server.url("/json-ish")}) == {"a": 1}
    assert call({"method": "GET", "endpoint": server.url("/empty")}) is None


def test_response_output_describes_request_and_response(server: LoopbackServer) -> None:
    server.route("POST", "/pets", Reply(status=201, body={"id": 7}, headers={"X-Total": "1"}))
    out = call(
        {
            "method": "post",
            "endpoint": {"uri": server.url("/pets"), "authentication": {"bearer": {"token": "s3cret"}}},
            "headers": {"X-Request": "abc"},
            "query": {"page": 2},
            "body": {"name": "Rex"},
            "output": "response",
        }
    )
    assert out["statusCode"] == 201
    assert out["content"] == {"id": 7}
    assert out["headers"]["x-total"] == "1"
    assert out["headers"]["content-type"] == "application/json"
    assert out["request"]["method"] == "POST"
    assert out["request"]["uri"] == server.url("/pets?page=2")
    assert out["request"]["headers"]["x-request"] == "abc"
    # The token reached the server but is never echoed into the workflow's data.
    assert out["request"]["headers"]["authorization"] == "***"
    assert "s3cret" not in repr(out)
    assert server.last().headers["authorization"] == "Bearer s3cret"


def test_raw_output_is_base64_of_the_body(server: LoopbackServer) -> None:
    payload = bytes(range(256))
    server.route("GET", "/blob", Reply(body=payload))
    out = call({"method": "get", "endpoint": server.url("/blob"), "output": "raw"})
    assert base64.b64decode(out) == payload


def test_unknown_output_is_a_configuration_problem(server: LoopbackServer) -> None:
    err = http_failure({"method": "get", "endpoint": server.url("/x"), "output": "contents"})
    assert problem_of(err)["type"] == ERRORS + "configuration"
    assert "did you mean 'content'" in problem_of(err)["detail"]
    assert server.received() == []  # checked before anything is sent


# --- endpoints and templates -------------------------------------------------------------------------


def test_template_variables_come_from_top_level_input_keys(server: LoopbackServer) -> None:
    server.echo("/pets/42/toys/true")
    out = call(
        {"method": "get", "endpoint": server.base + "/pets/{petId}/toys/{flag}"},
        {"petId": 42, "flag": True, "other": {"x": 1}},
    )
    assert out["path"] == "/pets/42/toys/true"


def test_template_values_are_percent_encoded_and_missing_ones_empty() -> None:
    data = {"name": "a b/c", "pet.id": "9", "none": None}
    assert expand_template("http://h/{name}/{pet.id}/{missing}/{none}", data) == "http://h/a%20b%2Fc/9//"
    assert expand_template("http://h/{x}", ["not", "a", "map"]) == "http://h/"


def test_non_scalar_template_value_is_an_expression_problem(server: LoopbackServer) -> None:
    err = http_failure({"method": "get", "endpoint": server.base + "/pets/{pet}"}, {"pet": {"id": 1}})
    assert problem_of(err)["type"] == ERRORS + "expression"
    assert problem_of(err)["status"] == 400
    assert err.non_retryable


def test_uri_under_with_and_endpoint_object_are_accepted(server: LoopbackServer) -> None:
    server.route("GET", "/a/1", Reply(body={"ok": "uri"}))
    assert call({"method": "get", "uri": server.base + "/a/{id}"}, {"id": 1}) == {"ok": "uri"}
    assert call({"method": "get", "endpoint": {"uri": server.base + "/a/{id}"}}, {"id": 1}) == {"ok": "uri"}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"endpoint": "http://127.0.0.1/"}, "needs a method"),
        ({"method": "get"}, "needs an endpoint"),
        ({"method": "get", "endpoint": "/relative/path"}, "not an absolute http/https URL"),
        ({"method": "get", "endpoint": "ftp://example.org/x"}, "not an absolute http/https URL"),
        ({"method": "get", "endpoint": "http://127.0.0.1/", "headers": "x"}, "headers must be a map"),
        ({"method": "get", "endpoint": "http://127.0.0.1/", "query": [1]}, "query must be a map"),
    ],
)
def test_bad_with_is_a_configuration_problem(args: dict[str, Any], fragment: str) -> None:
    err = http_failure(args)
    assert problem_of(err)["type"] == ERRORS + "configuration"
    assert fragment in problem_of(err)["detail"]
    assert err.non_retryable


# --- requests ----------------------------------------------------------------------------------------


def test_query_is_appended_and_merged(server: LoopbackServer) -> None:
    server.echo()
    out = call(
        {
            "method": "get",
            "endpoint": server.url("/echo?fixed=1"),
            "query": {"tag": ["a", "b"], "on": True, "skip": None},
        }
    )
    assert out["query"] == {"fixed": ["1"], "tag": ["a", "b"], "on": ["true"]}


def test_json_body_and_headers(server: LoopbackServer) -> None:
    server.echo()
    call({"method": "PuT", "endpoint": server.url("/echo"), "headers": {"X-Count": 3}, "body": {"a": [1, 2]}})
    seen = server.last()
    assert seen.method == "PUT"
    assert seen.json() == {"a": [1, 2]}
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["x-count"] == "3"


def test_non_ascii_header_values_go_as_utf8(server: LoopbackServer) -> None:
    server.echo()
    call({"method": "get", "endpoint": server.url("/echo"), "headers": {"X-Name": "café 中"}})
    # http.server decodes header bytes as latin-1; undo that to see what went on the wire.
    assert server.last().headers["x-name"].encode("latin-1").decode() == "café 中"


@pytest.mark.parametrize(
    "headers", [{"X-Token": "a\r\nInjected: secret-value"}, {"bad name": "secret-value"}]
)
def test_malformed_headers_are_refused_without_echoing_values(
    server: LoopbackServer, headers: dict[str, str]
) -> None:
    err = http_failure({"method": "get", "endpoint": server.url("/echo"), "headers": headers})
    assert problem_of(err)["type"] == ERRORS + "configuration"
    assert "secret-value" not in repr(err.details) + str(err)
    assert server.received() == []


def test_authentication_replaces_a_hand_written_authorization_header(server: LoopbackServer) -> None:
    server.echo()
    call(
        {
            "method": "get",
            "endpoint": server.url("/echo"),
            "headers": {"authorization": "Basic old"},
            "authentication": {"bearer": {"token": "new"}},
        }
    )
    assert server.last().headers["authorization"] == "Bearer new"


def test_string_body_is_sent_as_is(server: LoopbackServer) -> None:
    server.echo()
    call(
        {
            "method": "post",
            "endpoint": server.url("/echo"),
            "body": "plain {text}",
            "headers": {"Content-Type": "text/plain"},
        }
    )
    assert server.last().text() == "plain {text}"
    assert server.last().headers["content-type"] == "text/plain"


def test_form_body_when_content_type_says_so(server: LoopbackServer) -> None:
    server.echo()
    call(
        {
            "method": "post",
            "endpoint": server.url("/echo"),
            "headers": {"content-type": "application/x-www-form-urlencoded"},
            "body": {"grant_type": "client_credentials", "scope": ["a", "b"]},
        }
    )
    assert server.last().text() == "grant_type=client_credentials&scope=a&scope=b"


def test_basic_authentication(server: LoopbackServer) -> None:
    server.echo()
    auth = {"basic": {"username": "ada", "password": "p@ss:word"}}
    call({"method": "get", "endpoint": {"uri": server.url("/echo"), "authentication": auth}})
    expected = "Basic " + base64.b64encode(b"ada:p@ss:word").decode()
    assert server.last().headers["authorization"] == expected


def test_bearer_authentication_under_with(server: LoopbackServer) -> None:
    server.echo()
    call({"method": "get", "endpoint": server.url("/echo"), "authentication": {"bearer": {"token": "tok"}}})
    assert server.last().headers["authorization"] == "Bearer tok"


@pytest.mark.parametrize(
    ("authentication", "fragment"),
    [
        ("petStoreAuth", "'petStoreAuth' was not resolved"),
        ({"use": "petStoreAuth"}, "'petStoreAuth' was not resolved"),
        ({"basic": {"use": "creds"}}, "secret 'creds'"),
        ({"basic": {"username": "x"}}, "needs password"),
        ({"oauth2": {"authority": "http://x"}}, "needs a grant"),
        ({"digest": {"username": "x", "password": "y"}}, "digest is not supported"),
    ],
)
def test_unusable_authentication_is_a_configuration_problem(
    server: LoopbackServer, authentication: Any, fragment: str
) -> None:
    err = http_failure(
        {"method": "get", "endpoint": {"uri": server.url("/x"), "authentication": authentication}}
    )
    assert problem_of(err)["type"] == ERRORS + "configuration"
    assert fragment in problem_of(err)["detail"]
    assert server.received() == []


# --- redirects ---------------------------------------------------------------------------------------


def test_redirects_are_errors_and_not_followed_by_default(server: LoopbackServer) -> None:
    server.route("GET", "/old", Reply(status=302, headers={"Location": "/new"}))
    server.route("GET", "/new", Reply(body={"moved": True}))
    err = http_failure({"method": "get", "endpoint": server.url("/old")})
    problem = problem_of(err)
    assert problem["type"] == ERRORS + "communication"
    assert problem["status"] == 302
    assert "redirect: true" in problem["detail"]
    assert server.received("/new") == []


def test_redirect_true_follows(server: LoopbackServer) -> None:
    server.route("GET", "/old", Reply(status=301, headers={"Location": "/new"}))
    server.route("GET", "/new", Reply(body={"moved": True}))
    assert call({"method": "get", "endpoint": server.url("/old"), "redirect": True}) == {"moved": True}


def test_redirect_true_accepts_3xx_it_cannot_follow(server: LoopbackServer) -> None:
    server.route("GET", "/cached", Reply(status=304))
    out = call({"method": "get", "endpoint": server.url("/cached"), "redirect": True, "output": "response"})
    assert out["statusCode"] == 304


# --- problems ----------------------------------------------------------------------------------------


def test_404_is_a_non_retryable_communication_problem(server: LoopbackServer) -> None:
    server.route("GET", "/pets/9", Reply(status=404, body={"message": "no pet 9"}))
    err = http_failure({"method": "get", "endpoint": server.url("/pets/9")})
    problem = problem_of(err)
    assert problem["type"] == ERRORS + "communication"
    assert problem["status"] == 404
    assert problem["title"] == "HTTP 404 Not Found"
    assert problem["detail"].startswith(f"GET {server.url('/pets/9')} answered 404 Not Found")
    assert "no pet 9" in problem["detail"]
    assert err.non_retryable


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (408, True), (429, True), (500, True), (501, False), (503, True)],
)
def test_which_statuses_are_retryable(server: LoopbackServer, status: int, retryable: bool) -> None:
    server.route("GET", "/flaky", Reply(status=status, body="try later"))
    err = http_failure({"method": "get", "endpoint": server.url("/flaky")})
    assert problem_of(err)["status"] == status
    assert err.non_retryable is not retryable


def test_long_error_bodies_are_cut_short(server: LoopbackServer) -> None:
    server.route("GET", "/boom", Reply(status=500, body="x" * 5000))
    detail = problem_of(http_failure({"method": "get", "endpoint": server.url("/boom")}))["detail"]
    assert len(detail) < 400
    assert detail.endswith("…")


def test_connection_refused_is_a_retryable_communication_problem() -> None:
    err = http_failure({"method": "get", "endpoint": f"http://127.0.0.1:{free_port()}/x"})
    problem = problem_of(err)
    assert problem["type"] == ERRORS + "communication"
    assert problem["status"] == 500
    assert problem["title"] == "Connection failed"
    assert not err.non_retryable


def test_timeout_is_a_retryable_communication_problem(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "_TIMEOUT", httpx.Timeout(0.2))
    server.route("GET", "/slow", Reply(body={}, delay=1.0))
    err = http_failure({"method": "get", "endpoint": server.url("/slow")})
    assert problem_of(err)["status"] == 500
    assert problem_of(err)["title"] == "HTTP timeout"
    assert not err.non_retryable


def test_oversized_response_fails(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "MAX_BODY_BYTES", 1000)
    server.route("GET", "/big", Reply(body="y" * 5000))
    err = http_failure({"method": "get", "endpoint": server.url("/big")})
    assert problem_of(err)["title"] == "Response too large"


def test_errors_never_echo_secrets(server: LoopbackServer) -> None:
    server.route("GET", "/secure", Reply(status=403, body="forbidden"))
    err = http_failure(
        {
            "method": "get",
            "endpoint": {"uri": server.url("/secure"), "authentication": {"bearer": {"token": "tok-123"}}},
            "query": {"api_key": "key-456"},
            "headers": {"X-Api-Key": "hdr-789"},
        }
    )
    text = repr(err.details) + str(err)
    for secret in ("tok-123", "key-456", "hdr-789"):
        assert secret not in text
    assert "api_key=***" in problem_of(err)["detail"]


def test_redact_url() -> None:
    assert redact_url("https://u:pw@h.example/p?a=1&b=&c") == "https://u:***@h.example/p?a=***&b=***&c=***"
    assert redact_url("http://h/p") == "http://h/p"


# --- through the activity ------------------------------------------------------------------------------


def test_activity_returns_content_and_raises_problems(server: LoopbackServer) -> None:
    server.route("GET", "/ok", Reply(body={"ok": True}))
    server.route("GET", "/gone", Reply(status=404, body="gone"))
    acts = EffectActivities(Registry(), client=None, allow_shell=True)  # type: ignore[arg-type]
    env = ActivityEnvironment()

    def inp(path: str) -> EffectInput:
        return EffectInput(
            reference="/do/0/get", name="get", args={"method": "get", "endpoint": server.url(path)}
        )

    assert asyncio.run(env.run(acts.call_http, inp("/ok"))) == {"ok": True}
    err = failure(env.run(acts.call_http, inp("/gone")))
    assert problem_of(err)["status"] == 404
    assert problem_of(err)["type"] == ERRORS + "communication"
    assert err.non_retryable
