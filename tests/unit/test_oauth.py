"""``oauth2``/``oidc`` bearer tokens against a loopback identity provider: grants, client auth, cache, problems."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Coroutine, Iterator
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from stigmer_nb.dsl import oauth
from stigmer_nb.dsl.oauth import authorization_header, bearer_token, clear_token_cache, forget_token
from tests.failures import problem_of
from tests.httpserver import LoopbackServer, Recorded, Reply, free_port

ERRORS = "https://serverlessworkflow.io/spec/1.0.0/errors/"
CLIENT_ID = "runtime"
SECRET = "s3cret-Value+/="
PASSWORD = "hunter2-pa55"
SUBJECT = "subject-token-abc"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


class IdentityProvider:
    """Token endpoints at ``/oauth2/token`` and ``/oidc/token``, and an OpenID discovery document."""

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self.expires_in: Any = 3600
        self.delay = 0.0
        self.issued = 0
        self.id_token_issuer: str | None = None
        self.refresh_token: str | None = None
        self.reply: Reply | None = None
        """A fixed answer instead of a token, when set."""
        for path in ("/oauth2/token", "/oidc/token", "/realms/demo/oauth2/token", "/custom/token"):
            server.route("POST", path, self.token)
        server.route(
            "GET",
            "/.well-known/openid-configuration",
            Reply(body={"issuer": server.base + "/", "token_endpoint": server.url("/oidc/token")}),
        )

    def token(self, req: Recorded) -> Reply:
        if self.reply is not None:
            return Reply(status=self.reply.status, body=self.reply.body, delay=self.delay)
        params = self.params(req)
        client_id, secret = self.client_credentials(req, params)
        if params.get("client_assertion_type"):
            client_id, secret = CLIENT_ID, SECRET  # assertions are checked by the tests themselves
        if client_id != CLIENT_ID or (secret is not None and secret != SECRET):
            return Reply(
                status=401,
                body={"error": "invalid_client", "error_description": f"client secret {secret} is wrong"},
            )
        grant = params.get("grant_type")
        if grant == "password" and (params.get("username"), params.get("password")) != ("ada", PASSWORD):
            return Reply(status=400, body={"error": "invalid_grant", "error_description": "bad credentials"})
        if grant == "refresh_token" and params.get("refresh_token") == "revoked":
            return Reply(status=400, body={"error": "invalid_grant"})
        self.issued += 1
        body: dict[str, Any] = {"access_token": f"token-{self.issued}", "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if self.id_token_issuer:
            body["id_token"] = _jwt({"iss": self.id_token_issuer, "sub": "ada"})
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        return Reply(body=body, delay=self.delay)

    @staticmethod
    def params(req: Recorded) -> dict[str, Any]:
        if req.headers.get("content-type", "").startswith("application/json"):
            return dict(req.json())
        return {k: v[0] if len(v) == 1 else v for k, v in parse_qs(req.text()).items()}

    @staticmethod
    def client_credentials(req: Recorded, params: dict[str, Any]) -> tuple[str | None, str | None]:
        auth = req.headers.get("authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return unquote_plus(user), unquote_plus(password)
        return params.get("client_id"), params.get("client_secret")

    def token_requests(self) -> list[Recorded]:
        return [r for r in self.server.received() if r.path.endswith("/token")]


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_token_cache()
    yield
    clear_token_cache()


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    with LoopbackServer() as server:
        yield IdentityProvider(server)


def policy(idp: IdentityProvider, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "authority": idp.server.base,
        "grant": "client_credentials",
        "client": {"id": CLIENT_ID, "secret": SECRET},
    }
    base.update(fields)
    return base


def token(scheme: str, value: Any, clock: Clock | None = None) -> str:
    async def go() -> str:
        async with httpx.AsyncClient() as client:
            return await bearer_token(scheme, value, client, clock=clock or Clock())

    return asyncio.run(go())


def failure(coro: Coroutine[Any, Any, Any]) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        asyncio.run(coro)
    assert set(problem_of(info.value)) >= {"type", "status", "title", "detail"}
    return info.value


def token_failure(scheme: str, value: Any) -> ApplicationError:
    async def go() -> str:
        async with httpx.AsyncClient() as client:
            return await bearer_token(scheme, value, client, clock=Clock())

    return failure(go())


def problem(error: ApplicationError) -> dict[str, Any]:
    return problem_of(error)


# --- grants and client authentication -----------------------------------------------------------------


def test_client_credentials_with_client_secret_post_is_the_default(idp: IdentityProvider) -> None:
    assert token("oauth2", policy(idp, scopes=["api", "read"], audiences=["runtime", "other"])) == "token-1"
    req = idp.token_requests()[0]
    assert req.path == "/oauth2/token"
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in req.headers
    form = parse_qs(req.text())
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_id"] == [CLIENT_ID] and form["client_secret"] == [SECRET]
    assert form["scope"] == ["api read"]
    assert form["audience"] == ["runtime", "other"]


def test_client_secret_basic_sends_the_secret_in_the_header_only(idp: IdentityProvider) -> None:
    value = policy(idp, client={"id": CLIENT_ID, "secret": SECRET, "authentication": "client_secret_basic"})
    assert token("oauth2", value) == "token-1"
    req = idp.token_requests()[0]
    assert req.headers["authorization"].startswith("Basic ")
    form = parse_qs(req.text())
    assert "client_secret" not in form and "client_id" not in form
    # RFC 6749 §2.3.1: the secret is form-encoded before base64 ("+" and "/" would otherwise be ambiguous).
    raw = base64.b64decode(req.headers["authorization"][6:]).decode()
    assert raw == "runtime:s3cret-Value%2B%2F%3D"


def test_password_grant(idp: IdentityProvider) -> None:
    value = policy(idp, grant="password", username="ada", password=PASSWORD)
    assert token("oauth2", value) == "token-1"
    form = parse_qs(idp.token_requests()[0].text())
    assert form["grant_type"] == ["password"]
    assert (form["username"], form["password"]) == (["ada"], [PASSWORD])


def test_password_grant_refused_is_an_authentication_problem_without_the_password(
    idp: IdentityProvider,
) -> None:
    value = policy(idp, grant="password", username="ada", password="wrong-password-xyz")
    error = token_failure("oauth2", value)
    details = problem(error)
    assert details["type"] == ERRORS + "authentication"
    assert details["status"] == 401
    assert "invalid_grant" in details["detail"] and "bad credentials" in details["detail"]
    assert "wrong-password-xyz" not in str(details) and "wrong-password-xyz" not in str(error)
    assert error.non_retryable


def test_public_client_sends_only_its_id(idp: IdentityProvider) -> None:
    value = policy(idp, grant="password", username="ada", password=PASSWORD, client={"id": CLIENT_ID})
    assert token("oauth2", value) == "token-1"
    form = parse_qs(idp.token_requests()[0].text())
    assert form["client_id"] == [CLIENT_ID] and "client_secret" not in form


def test_json_encoding(idp: IdentityProvider) -> None:
    value = policy(idp, request={"encoding": "application/json"}, scopes=["api"], audiences=["a", "b"])
    assert token("oauth2", value) == "token-1"
    req = idp.token_requests()[0]
    assert req.headers["content-type"] == "application/json"
    assert req.json() == {
        "grant_type": "client_credentials",
        "scope": "api",
        "audience": ["a", "b"],
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
    }


def test_token_exchange_sends_subject_and_actor(idp: IdentityProvider) -> None:
    value = policy(
        idp,
        grant="urn:ietf:params:oauth:grant-type:token-exchange",
        subject={"token": SUBJECT, "type": "access_token"},
        actor={"token": "actor-token", "type": "urn:ietf:params:oauth:token-type:jwt"},
    )
    assert token("oauth2", value) == "token-1"
    form = parse_qs(idp.token_requests()[0].text())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:token-exchange"]
    assert form["subject_token"] == [SUBJECT]
    assert form["subject_token_type"] == ["urn:ietf:params:oauth:token-type:access_token"]
    assert form["actor_token"] == ["actor-token"]
    assert form["actor_token_type"] == ["urn:ietf:params:oauth:token-type:jwt"]


def test_refresh_token_grant_takes_the_refresh_token_from_subject(idp: IdentityProvider) -> None:
    value = policy(idp, grant="refresh_token", subject={"token": "refresh-1", "type": "refresh_token"})
    assert token("oauth2", value) == "token-1"
    form = parse_qs(idp.token_requests()[0].text())
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["refresh-1"]


def test_client_secret_jwt_signs_an_assertion_with_the_secret(idp: IdentityProvider) -> None:
    value = policy(idp, client={"id": CLIENT_ID, "secret": SECRET, "authentication": "client_secret_jwt"})
    assert token("oauth2", value) == "token-1"
    form = parse_qs(idp.token_requests()[0].text())
    assert form["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
    assert "client_secret" not in form
    header, payload, signature = form["client_assertion"][0].split(".")
    expected = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == idp.server.url("/oauth2/token")
    assert claims["exp"] > claims["iat"]


def test_private_key_jwt_sends_the_given_assertion(idp: IdentityProvider) -> None:
    value = policy(
        idp, client={"id": CLIENT_ID, "assertion": "signed.jwt.here", "authentication": "private_key_jwt"}
    )
    assert token("oauth2", value) == "token-1"
    form = parse_qs(idp.token_requests()[0].text())
    assert form["client_assertion"] == ["signed.jwt.here"] and form["client_id"] == [CLIENT_ID]


# --- token endpoint resolution ------------------------------------------------------------------------


def test_token_path_is_relative_to_the_authority_path(idp: IdentityProvider) -> None:
    value = policy(idp, authority=idp.server.url("/realms/demo/"))
    assert token("oauth2", value) == "token-1"
    assert idp.token_requests()[0].path == "/realms/demo/oauth2/token"


def test_token_endpoint_may_be_relative_or_absolute(idp: IdentityProvider) -> None:
    token("oauth2", policy(idp, endpoints={"token": "custom/token"}))
    token(
        "oauth2",
        policy(idp, authority="http://127.0.0.1:1/x", endpoints={"token": idp.server.url("/oidc/token")}),
    )
    assert [r.path for r in idp.token_requests()] == ["/custom/token", "/oidc/token"]


def test_oidc_discovers_the_token_endpoint_once(idp: IdentityProvider) -> None:
    assert token("oidc", policy(idp, scopes=["a"])) == "token-1"
    # The spec's examples give the discovery document's own URL as the authority.
    well_known = idp.server.url("/.well-known/openid-configuration")
    assert token("oidc", policy(idp, authority=well_known, scopes=["b"])) == "token-2"
    assert token("oidc", policy(idp, scopes=["c"])) == "token-3"
    assert [r.path for r in idp.token_requests()] == ["/oidc/token"] * 3
    # Both authorities name the same document, which is fetched once.
    assert len(idp.server.received("/.well-known/openid-configuration")) == 1


def test_oauth2_authority_that_is_a_discovery_document_is_discovered(idp: IdentityProvider) -> None:
    value = policy(idp, authority=idp.server.url("/.well-known/openid-configuration"))
    assert token("oauth2", value) == "token-1"
    assert idp.token_requests()[0].path == "/oidc/token"


def test_issuers_accept_the_discovered_issuer(idp: IdentityProvider) -> None:
    assert token("oidc", policy(idp, issuers=[idp.server.base])) == "token-1"


def test_discovered_issuer_outside_issuers_is_an_authorization_problem(idp: IdentityProvider) -> None:
    details = problem(token_failure("oidc", policy(idp, issuers=["https://idp.example.com"])))
    assert details["type"] == ERRORS + "authorization"
    assert details["status"] == 403
    assert "https://idp.example.com" in details["detail"]
    assert idp.token_requests() == []  # refused before any credentials were sent


def test_id_token_issuer_outside_issuers_is_an_authorization_problem(idp: IdentityProvider) -> None:
    idp.id_token_issuer = "https://evil.example.com"
    details = problem(token_failure("oauth2", policy(idp, issuers=["https://idp.example.com/"])))
    assert details["type"] == ERRORS + "authorization"
    assert "evil.example.com" in details["detail"]
    idp.id_token_issuer = "https://idp.example.com"
    clear_token_cache()
    assert token("oauth2", policy(idp, issuers=["https://idp.example.com/"])) == "token-2"


# --- the cache ----------------------------------------------------------------------------------------


def test_cached_token_is_reused_until_shortly_before_it_expires(idp: IdentityProvider) -> None:
    idp.expires_in = 100
    clock = Clock()
    value = policy(idp)
    assert token("oauth2", value, clock) == "token-1"
    clock.now += 80
    assert token("oauth2", value, clock) == "token-1"
    assert len(idp.token_requests()) == 1
    clock.now += 11  # past expires_in less the margin (a tenth of the lifetime here)
    assert token("oauth2", value, clock) == "token-2"
    assert len(idp.token_requests()) == 2


def test_cache_key_covers_scopes_audiences_grant_and_secrets(idp: IdentityProvider) -> None:
    assert token("oauth2", policy(idp, scopes=["a", "b"])) == "token-1"
    assert token("oauth2", policy(idp, scopes=["b", "a"])) == "token-1"  # same set of scopes
    assert token("oauth2", policy(idp, scopes=["a"])) == "token-2"
    assert token("oauth2", policy(idp, scopes=["a"], audiences=["x"])) == "token-3"
    assert token("oidc", policy(idp, scopes=["a"])) == "token-4"
    # A wrong secret is never handed the token the right one obtained.
    wrong = policy(idp, client={"id": CLIENT_ID, "secret": "not-the-secret"})
    assert problem(token_failure("oauth2", wrong))["type"] == ERRORS + "authentication"


def test_token_without_expires_in_is_reused_briefly(idp: IdentityProvider) -> None:
    idp.expires_in = None
    clock = Clock()
    assert token("oauth2", policy(idp), clock) == "token-1"
    clock.now += 30
    assert token("oauth2", policy(idp), clock) == "token-1"
    clock.now += 30
    assert token("oauth2", policy(idp), clock) == "token-2"


def test_expired_token_is_renewed_with_its_refresh_token(idp: IdentityProvider) -> None:
    idp.expires_in, idp.refresh_token = 100, "refresh-1"
    clock = Clock()
    value = policy(idp, grant="password", username="ada", password=PASSWORD)
    assert token("oauth2", value, clock) == "token-1"
    clock.now += 100
    assert token("oauth2", value, clock) == "token-2"
    form = parse_qs(idp.token_requests()[1].text())
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["refresh-1"]
    assert "password" not in form


def test_revoked_refresh_token_falls_back_to_the_grant(idp: IdentityProvider) -> None:
    idp.expires_in, idp.refresh_token = 100, "revoked"
    clock = Clock()
    value = policy(idp, grant="password", username="ada", password=PASSWORD)
    assert token("oauth2", value, clock) == "token-1"
    clock.now += 100
    assert token("oauth2", value, clock) == "token-2"
    grants = [parse_qs(r.text())["grant_type"][0] for r in idp.token_requests()]
    assert grants == ["password", "refresh_token", "password"]


def test_concurrent_calls_share_one_token_request(idp: IdentityProvider) -> None:
    idp.delay = 0.3
    value = policy(idp)

    async def go() -> list[str]:
        async with httpx.AsyncClient() as client:
            calls = [bearer_token("oauth2", value, client, clock=Clock()) for _ in range(5)]
            return list(await asyncio.gather(*calls))

    assert asyncio.run(go()) == ["token-1"] * 5
    assert len(idp.token_requests()) == 1


def test_a_cancelled_caller_does_not_cancel_the_shared_request(idp: IdentityProvider) -> None:
    idp.delay = 0.3
    value = policy(idp)

    async def go() -> str:
        async with httpx.AsyncClient() as client:
            first = asyncio.create_task(bearer_token("oauth2", value, client))
            second = asyncio.create_task(bearer_token("oauth2", value, client))
            await asyncio.sleep(0.1)
            first.cancel()
            return await second

    assert asyncio.run(go()) == "token-1"
    assert len(idp.token_requests()) == 1


def test_concurrent_failures_reach_every_caller(idp: IdentityProvider) -> None:
    idp.delay = 0.2
    idp.reply = Reply(status=401, body={"error": "invalid_client"})

    async def go() -> list[Any]:
        async with httpx.AsyncClient() as client:
            calls = [bearer_token("oauth2", policy(idp), client) for _ in range(3)]
            return list(await asyncio.gather(*calls, return_exceptions=True))

    results = asyncio.run(go())
    assert all(isinstance(r, ApplicationError) for r in results)
    assert len(idp.token_requests()) == 1


def test_forget_token_makes_the_next_call_renew(idp: IdentityProvider) -> None:
    assert token("oauth2", policy(idp)) == "token-1"
    forget_token("token-1")
    assert token("oauth2", policy(idp)) == "token-2"


def test_cache_is_bounded(idp: IdentityProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oauth, "_MAX_TOKENS", 2)
    for scope in ("a", "b", "c"):
        token("oauth2", policy(idp, scopes=[scope]))
    assert len(oauth._tokens) == 2
    assert token("oauth2", policy(idp, scopes=["c"])) == "token-3"
    assert token("oauth2", policy(idp, scopes=["a"])) == "token-4"  # evicted first


def test_authorization_header(idp: IdentityProvider) -> None:
    async def go() -> tuple[Any, Any]:
        async with httpx.AsyncClient() as client:
            header = await authorization_header({"oauth2": policy(idp)}, client)
            other = await authorization_header({"basic": {"username": "u", "password": "p"}}, client)
            return header, other

    assert asyncio.run(go()) == ({"Authorization": "Bearer token-1"}, None)


# --- problems -----------------------------------------------------------------------------------------


def test_invalid_client_is_an_authentication_problem_that_never_shows_the_secret(
    idp: IdentityProvider,
) -> None:
    wrong = "Wrong-Secret-123"
    error = token_failure("oauth2", policy(idp, client={"id": CLIENT_ID, "secret": wrong}))
    details = problem(error)
    assert details["type"] == ERRORS + "authentication"
    assert details["status"] == 401
    assert details["title"] == "OAuth2 invalid_client"
    assert "invalid_client" in details["detail"]
    # The server echoed the secret in its description; it is masked.
    assert "client secret *** is wrong" in details["detail"]
    assert wrong not in str(details) and wrong not in str(error)


def test_response_without_access_token_is_an_authentication_problem(idp: IdentityProvider) -> None:
    idp.reply = Reply(body={"token_type": "Bearer"})
    details = problem(token_failure("oauth2", policy(idp)))
    assert details["type"] == ERRORS + "authentication"
    assert "access_token" in details["detail"]


def test_unreachable_token_endpoint_is_a_retryable_communication_problem() -> None:
    value = {
        "authority": f"http://127.0.0.1:{free_port()}",
        "grant": "client_credentials",
        "client": {"id": CLIENT_ID, "secret": SECRET},
    }
    error = token_failure("oauth2", value)
    assert problem(error)["type"] == ERRORS + "communication"
    assert not error.non_retryable
    assert SECRET not in str(problem(error))


def test_server_error_is_retryable_and_client_error_is_not(idp: IdentityProvider) -> None:
    idp.reply = Reply(status=503, body="down")
    error = token_failure("oauth2", policy(idp))
    assert problem(error)["type"] == ERRORS + "communication" and not error.non_retryable
    assert problem(error)["status"] == 503
    idp.reply = Reply(status=404, body="nope")
    error = token_failure("oauth2", policy(idp))
    assert problem(error)["type"] == ERRORS + "communication" and error.non_retryable


def test_failed_discovery_is_a_communication_problem(idp: IdentityProvider) -> None:
    value = policy(idp, authority=idp.server.url("/nowhere"))
    details = problem(token_failure("oidc", value))
    assert details["type"] == ERRORS + "communication"
    assert details["status"] == 404


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"grant": "client_credentials", "client": {"id": "x", "secret": "y"}}, "needs an authority"),
        ({"authority": "not a url", "grant": "client_credentials"}, "not an absolute http(s) URL"),
        ({"authority": "https://idp", "client": {"id": "x"}}, "needs a grant"),
        ({"authority": "https://idp", "grant": "client_credential"}, "did you mean 'client_credentials'"),
        ({"authority": "https://idp", "grant": "authorization_code"}, "browser"),
        ({"authority": "https://idp", "grant": "client_credentials"}, "needs an id"),
        (
            {"authority": "https://idp", "grant": "client_credentials", "client": {"secret": "s"}},
            "needs an id",
        ),
        ({"authority": "https://idp", "grant": "password", "client": {"id": "x"}}, "username and password"),
        (
            {"authority": "https://idp", "grant": "password", "username": "u", "client": {"id": "x"}},
            "needs password",
        ),
        (
            {
                "authority": "https://idp",
                "grant": "client_credentials",
                "client": {"id": "x", "authentication": "client_secret_basic"},
            },
            "needs client.secret",
        ),
        (
            {
                "authority": "https://idp",
                "grant": "client_credentials",
                "client": {"id": "x", "authentication": "private_key_jwt"},
            },
            "needs client.assertion",
        ),
        (
            {
                "authority": "https://idp",
                "grant": "client_credentials",
                "client": {"id": "x", "authentication": "magic"},
            },
            "is not one of",
        ),
        (
            {
                "authority": "https://idp",
                "grant": "client_credentials",
                "client": {"id": "x"},
                "request": {"encoding": "text/xml"},
            },
            "request.encoding",
        ),
        (
            {
                "authority": "https://idp",
                "grant": "urn:ietf:params:oauth:grant-type:token-exchange",
                "client": {"id": "x"},
            },
            "subject",
        ),
        (
            {
                "authority": "https://idp",
                "grant": "client_credentials",
                "client": {"id": "x"},
                "scopes": {"a": 1},
            },
            "scopes must be a list of strings",
        ),
        (
            {"authority": "https://idp", "grant": "client_credentials", "client": "x"},
            "client must be an object",
        ),
        ("my-oauth2-secret", "was not resolved"),
        ({"use": "my-oauth2-secret"}, "was not resolved"),
        (["nope"], "must be an object"),
    ],
)
def test_bad_policies_are_configuration_problems(value: Any, fragment: str) -> None:
    details = problem(token_failure("oauth2", value))
    assert details["type"] == ERRORS + "configuration"
    assert fragment in details["detail"]


def test_configuration_problems_never_echo_secrets() -> None:
    value = {"authority": "https://idp", "grant": "password", "username": "u", "client": {"secret": SECRET}}
    details = problem(token_failure("oauth2", value))
    assert details["type"] == ERRORS + "configuration"
    assert SECRET not in str(details)


def test_unknown_scheme_is_a_configuration_problem() -> None:
    assert problem(token_failure("saml", {}))["type"] == ERRORS + "configuration"
