"""``oauth2`` and ``oidc`` authentication: access tokens for HTTP calls, fetched once and cached.

``bearer_token(scheme, policy, client)`` turns a policy (the value under ``oauth2:`` or ``oidc:``, secrets
already resolved) into an access token:

1. the token endpoint is ``authority`` joined with ``endpoints.token`` (default ``/oauth2/token``; an
   absolute URL is used as-is), or, for ``oidc`` and for an ``oauth2`` authority that *is* a
   ``/.well-known/...`` document, the ``token_endpoint`` of the discovery document (fetched once per URL);
2. a cached, unexpired token for the same request is returned at once; otherwise one request is sent per
   key (concurrent callers on one event loop share it) with the policy's grant and client authentication;
3. when ``issuers`` is given, the discovery ``issuer`` and the ``iss`` of the returned ``id_token`` (and of
   the access token, when it is a JWT) must be among them.

The policy, as the DSL 1.0 reference spells it::

    authority: https://idp.example.com/realms/demo      # required
    grant: client_credentials | password | refresh_token
           | urn:ietf:params:oauth:grant-type:token-exchange   # required (authorization_code is refused)
    endpoints: {token: /oauth2/token}                    # oauth2 only; revocation/introspection unused
    client:
      id: runtime                                        # required unless authentication is none
      secret: ...
      assertion: <signed JWT>                            # private_key_jwt (or a ready client_secret_jwt)
      authentication: client_secret_post (default with a secret) | client_secret_basic
                      | client_secret_jwt | private_key_jwt | none (default without a secret)
    request: {encoding: application/x-www-form-urlencoded (default) | application/json}
    issuers: [https://idp.example.com/realms/demo]
    scopes: [api]                                        # sent space-joined as ``scope``
    audiences: [runtime]                                 # one ``audience`` parameter each
    username: ...                                        # password grant
    password: ...
    subject: {token: ..., type: urn:ietf:params:oauth:token-type:access_token}   # token exchange;
    actor: {token: ..., type: ...}                       # for grant refresh_token, subject.token is the refresh token

Failures are problems (``effect_error``): a bad policy is ``configuration``; a refused token request is
``authentication`` (status 401); an issuer outside ``issuers`` is ``authorization``; an unreachable or
failing endpoint is ``communication`` (retryable when a retry may cure it). No secret, password or token
ever appears in a problem or a log line: refusals quote only the server's ``error`` code and description,
with any secret of the policy masked.

Signatures of ``id_token``/access-token JWTs are not verified (there is no JWKS handling): the tokens come
straight from the token endpoint over the caller's connection, so the issuer check catches a misconfigured
authority, not a forged token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import quote_plus, urlencode

import httpx
from temporalio.exceptions import ApplicationError

from .activities import effect_error
from .http import redact_url
from .problems import error_kind

__all__ = [
    # tokens
    "SCHEMES",
    "authorization_header",
    "bearer_token",
    # cache control
    "clear_token_cache",
    "forget_token",
    # vocabulary
    "CLIENT_AUTHENTICATIONS",
    "ENCODINGS",
    "GRANTS",
]

SCHEMES = ("oauth2", "oidc")
"""Authentication schemes this module serves."""

CLIENT_CREDENTIALS = "client_credentials"
PASSWORD = "password"
REFRESH_TOKEN = "refresh_token"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
GRANTS = (CLIENT_CREDENTIALS, PASSWORD, REFRESH_TOKEN, TOKEN_EXCHANGE)
"""Grants a token can be obtained with (``authorization_code`` needs a browser, so it is refused)."""

CLIENT_AUTHENTICATIONS = (
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "none",
)
"""Values of ``client.authentication``."""

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
ENCODINGS = (FORM, JSON)
"""Values of ``request.encoding``."""

DEFAULT_TOKEN_PATH = "/oauth2/token"
_WELL_KNOWN = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_TOKEN_TYPE_PREFIX = "urn:ietf:params:oauth:token-type:"

_MAX_TOKENS = 256
_MAX_DISCOVERY = 64
_DISCOVERY_TTL = 3600.0
"""Seconds a discovery document is trusted; an identity provider may move its endpoints."""
_DEFAULT_LIFETIME = 60.0
"""Seconds a token without ``expires_in`` is reused: short, since its real lifetime is unknown."""
_EXPIRY_MARGIN = 30.0
"""A token is renewed this long (at most a tenth of its lifetime) before it expires, so it is never sent stale."""
_MAX_RESPONSE_BYTES = 1024 * 1024
_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_RETRYABLE_STATUS = frozenset({408, 429})
_ERROR_CODE = re.compile(r"[^A-Za-z0-9_.:\-]")

# Keys the cache digest of a policy's secrets: per process, so the digests mean nothing outside it.
_DIGEST_KEY = os.urandom(32)

Clock = Callable[[], float]
_T = TypeVar("_T")
_log = logging.getLogger(__name__)


# --- the policy -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Client:
    id: str | None
    secret: str | None = field(repr=False)
    assertion: str | None = field(repr=False)
    method: str


@dataclass(frozen=True)
class _Policy:
    """A policy checked and normalised."""

    scheme: str
    authority: str
    grant: str
    client: _Client
    encoding: str
    token_path: str | None
    issuers: tuple[str, ...]
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    username: str | None
    # Out of repr, so that a stray log line or traceback shows no secret.
    password: str | None = field(repr=False)
    subject: tuple[str, str] | None = field(repr=False)
    actor: tuple[str, str] | None = field(repr=False)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value in the policy, to mask in whatever a server sends back."""
        values = [self.client.secret, self.client.assertion, self.password]
        values += [token[0] for token in (self.subject, self.actor) if token]
        return tuple(v for v in values if v)


def _parse(scheme: str, policy: Any) -> _Policy:
    if scheme not in SCHEMES:
        raise _config_error(f"authentication scheme {scheme!r} is not one of {', '.join(SCHEMES)}")
    if isinstance(policy, str) or (
        isinstance(policy, Mapping) and "use" in policy and "authority" not in policy
    ):
        name = policy if isinstance(policy, str) else policy["use"]
        raise _config_error(
            f"{scheme} authentication refers to secret {name!r}, which was not resolved",
            title="Unknown authentication",
        )
    if not isinstance(policy, Mapping):
        raise _config_error(f"{scheme} authentication must be an object, got {_kind(policy)}")

    authority = _text(policy, "authority", scheme)
    if authority is None:
        raise _config_error(f"{scheme} authentication needs an authority (the identity provider's URL)")
    authority = _http_url(authority, f"{scheme} authority")

    grant = _text(policy, "grant", scheme)
    if grant is None:
        raise _config_error(f"{scheme} authentication needs a grant: {', '.join(GRANTS)}")
    if grant == "authorization_code":
        raise _config_error(
            f"{scheme} grant authorization_code needs a user at a browser; a workflow cannot use it "
            f"(use {CLIENT_CREDENTIALS}, {PASSWORD}, {REFRESH_TOKEN} or token exchange)"
        )
    if grant not in GRANTS:
        raise _config_error(
            f"{scheme} grant {grant!r} is not one of {', '.join(GRANTS)}{_did_you_mean(grant, GRANTS)}"
        )

    client_map = _section(policy, "client", scheme)
    request_map = _section(policy, "request", scheme)
    endpoints = _section(policy, "endpoints", scheme)
    client = _parse_client(client_map, scheme, grant)

    encoding = (_text(request_map, "encoding", f"{scheme} request") or FORM).lower()
    if encoding not in ENCODINGS:
        raise _config_error(f"{scheme} request.encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")

    username = _text(policy, "username", scheme)
    password = _text(policy, "password", scheme)
    if grant == PASSWORD:
        missing = [name for name, value in (("username", username), ("password", password)) if not value]
        if missing:
            raise _config_error(f"{scheme} grant password needs {' and '.join(missing)}")
    subject = _token_ref(policy, "subject", scheme)
    actor = _token_ref(policy, "actor", scheme)
    if grant == TOKEN_EXCHANGE and subject is None:
        raise _config_error(f"{scheme} token exchange needs subject: {{token, type}}")
    if grant == REFRESH_TOKEN and subject is None:
        raise _config_error(f"{scheme} grant refresh_token needs the refresh token as subject.token")

    return _Policy(
        scheme=scheme,
        authority=authority,
        grant=grant,
        client=client,
        encoding=encoding,
        # The spec gives oidc no endpoints: its token endpoint always comes from discovery.
        token_path=_text(endpoints, "token", f"{scheme} endpoints") if scheme == "oauth2" else None,
        issuers=tuple(_issuer(i) for i in _strings(policy, "issuers", scheme)),
        scopes=_strings(policy, "scopes", scheme),
        audiences=_strings(policy, "audiences", scheme),
        username=username,
        password=password,
        subject=subject,
        actor=actor,
    )


def _parse_client(client: Mapping[str, Any], scheme: str, grant: str) -> _Client:
    where = f"{scheme} client"
    client_id = _text(client, "id", where)
    secret = _text(client, "secret", where)
    assertion = _text(client, "assertion", where)
    # The spec's default is client_secret_post; without a secret that can only mean a public client.
    method = _text(client, "authentication", where) or ("client_secret_post" if secret else "none")
    if method not in CLIENT_AUTHENTICATIONS:
        raise _config_error(
            f"{where}.authentication {method!r} is not one of {', '.join(CLIENT_AUTHENTICATIONS)}"
            + _did_you_mean(method, CLIENT_AUTHENTICATIONS)
        )
    if client_id is None and (method != "none" or grant == CLIENT_CREDENTIALS):
        raise _config_error(
            f"{where} needs an id for grant {grant} with client authentication {method}",
            title="Missing client id",
        )
    if method in ("client_secret_basic", "client_secret_post") and not secret:
        raise _config_error(f"{where}.authentication {method} needs client.secret")
    if method == "client_secret_jwt" and not (secret or assertion):
        raise _config_error(f"{where}.authentication client_secret_jwt needs client.secret (or an assertion)")
    if method == "private_key_jwt" and not assertion:
        raise _config_error(
            f"{where}.authentication private_key_jwt needs client.assertion, a JWT signed with your key"
        )
    return _Client(id=client_id, secret=secret, assertion=assertion, method=method)


def _text(section: Mapping[str, Any], name: str, where: str) -> str | None:
    value = section.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _config_error(f"{where}.{name} must be a string, got {_kind(value)}")
    return str(value).strip() if isinstance(value, str) else str(value)


def _strings(section: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    value = section.get(name)
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in items
    ):
        raise _config_error(f"{where}.{name} must be a list of strings, got {_kind(value)}")
    return tuple(str(v).strip() for v in items if str(v).strip())


def _section(policy: Mapping[str, Any], name: str, scheme: str) -> Mapping[str, Any]:
    value = policy.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _config_error(f"{scheme} {name} must be an object, got {_kind(value)}")
    return value


def _token_ref(policy: Mapping[str, Any], name: str, scheme: str) -> tuple[str, str] | None:
    section = _section(policy, name, scheme)
    if not section:
        return None
    token = _text(section, "token", f"{scheme} {name}")
    kind = _text(section, "type", f"{scheme} {name}")
    if token is None or kind is None:
        raise _config_error(f"{scheme} {name} needs both token and type")
    # A bare name (``access_token``, ``jwt``) stands for RFC 8693's token-type URN.
    return token, kind if ":" in kind else _TOKEN_TYPE_PREFIX + kind


def _http_url(text: str, what: str) -> str:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise _config_error(f"{what} {redact_url(text)!r} is not an absolute http(s) URL")
    return text


def _issuer(text: str) -> str:
    # Issuers are compared as URLs, where a trailing slash is noise that providers add or drop.
    return text.rstrip("/")


# --- public entry points ------------------------------------------------------------------------------


async def bearer_token(
    scheme: str, policy: Mapping[str, Any], client: httpx.AsyncClient, *, clock: Clock = time.monotonic
) -> str:
    """An access token for an ``oauth2`` or ``oidc`` policy, from the cache or the token endpoint.

    ``clock`` (seconds, monotonic) decides expiry; tests pass one they control.
    """
    parsed = _parse(scheme, policy)
    endpoint = await _token_endpoint(parsed, client, clock)
    key = _cache_key(parsed, endpoint)
    token = _cached(key, clock())
    if token is None:
        token = await _shared(("token", key), lambda: _renew(parsed, endpoint, key, client, clock))
    _check_issuers(parsed, token.issuers, "token")
    return token.access_token


async def authorization_header(
    authentication: Mapping[str, Any], client: httpx.AsyncClient, *, clock: Clock = time.monotonic
) -> dict[str, str] | None:
    """``{"Authorization": "Bearer …"}`` for an ``{oauth2: …}`` or ``{oidc: …}`` policy; None for other schemes."""
    for scheme in SCHEMES:
        if scheme in authentication:
            token = await bearer_token(scheme, authentication[scheme], client, clock=clock)
            return {"Authorization": f"Bearer {token}"}
    return None


def forget_token(access_token: str) -> None:
    """Treat a cached token as expired (say, after the API answered 401), so the next call renews it."""
    with _lock:
        found = [key for key, entry in _tokens.items() if entry.access_token == access_token]
        for key in found:
            _tokens[key] = replace(_tokens[key], expires_at=float("-inf"))


def clear_token_cache() -> None:
    """Forget every cached token and discovery document."""
    with _lock:
        _tokens.clear()
        _discovered.clear()


# --- the caches ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    access_token: str = field(repr=False)
    expires_at: float
    """On the caller's clock; at or after it the token is renewed."""
    refresh_token: str | None = field(repr=False)
    issuers: tuple[str, ...]
    """``iss`` claims found in the response's id_token and JWT access token."""


@dataclass(frozen=True)
class _Discovery:
    issuer: str | None
    token_endpoint: str
    expires_at: float


_Key = tuple[Hashable, ...]

# One lock for both caches: a worker may run event loops in several threads; no await happens under it.
_lock = threading.Lock()
_tokens: OrderedDict[_Key, _Token] = OrderedDict()
_discovered: OrderedDict[str, _Discovery] = OrderedDict()
_inflight: dict[tuple[asyncio.AbstractEventLoop, Hashable], asyncio.Task[Any]] = {}


def _cache_key(policy: _Policy, endpoint: str) -> _Key:
    client = policy.client
    # Secrets are part of the key (as a keyed digest, never in clear): a policy with a wrong secret must
    # not be handed the token that the right one obtained.
    material = "\0".join(
        [client.secret or "", client.assertion or "", policy.password or ""]
        + [part for token in (policy.subject, policy.actor) for part in (token or ("", ""))]
    )
    digest = hmac.new(_DIGEST_KEY, material.encode(), hashlib.sha256).hexdigest()
    return (
        policy.scheme,
        policy.authority,
        endpoint,
        client.id,
        client.method,
        policy.grant,
        tuple(sorted(policy.scopes)),
        tuple(sorted(policy.audiences)),
        policy.username,
        policy.encoding,
        digest,
    )


def _cached(key: _Key, now: float) -> _Token | None:
    with _lock:
        entry = _tokens.get(key)
        if entry is None or now >= entry.expires_at:
            return None
        _tokens.move_to_end(key)
        return entry


def _store(key: _Key, token: _Token) -> None:
    with _lock:
        _tokens[key] = token
        _tokens.move_to_end(key)
        while len(_tokens) > _MAX_TOKENS:
            _tokens.popitem(last=False)


async def _shared(key: Hashable, make: Callable[[], Awaitable[_T]]) -> _T:
    """``await make()``, run once for every caller asking for ``key`` on this event loop meanwhile."""
    loop = asyncio.get_running_loop()
    slot = (loop, key)
    with _lock:
        task = _inflight.get(slot)
        if task is None:

            async def run() -> _T:
                return await make()

            task = loop.create_task(run())
            _inflight[slot] = task
            task.add_done_callback(lambda done: _settled(slot, done))
    # Shielded: one caller's cancellation must not cancel the request the others wait for.
    result: _T = await asyncio.shield(task)
    return result


def _settled(slot: tuple[asyncio.AbstractEventLoop, Hashable], task: asyncio.Task[Any]) -> None:
    with _lock:
        if _inflight.get(slot) is task:
            del _inflight[slot]
    if not task.cancelled():
        task.exception()  # marks it retrieved: callers that were cancelled never will


# --- the token endpoint ---------------------------------------------------------------------------------


async def _token_endpoint(policy: _Policy, client: httpx.AsyncClient, clock: Clock) -> str:
    authority = httpx.URL(policy.authority)
    discovers = policy.scheme == "oidc" or (
        policy.token_path is None and authority.path.rstrip("/").endswith(_WELL_KNOWN)
    )
    if not discovers:
        return _join(policy.authority, policy.token_path or DEFAULT_TOKEN_PATH)
    url = _discovery_url(policy.authority)
    document = _cached_discovery(url, clock())
    if document is None:
        document = await _shared(("discovery", url), lambda: _discover(url, client, clock))
    if document.issuer is not None:
        _check_issuers(policy, (document.issuer,), "discovery document")
    return document.token_endpoint


def _join(authority: str, path: str) -> str:
    """``path`` under ``authority`` (its path kept, as Keycloak's ``/realms/x`` needs); absolute URLs as-is."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", path):
        return _http_url(path, "token endpoint")
    base = httpx.URL(authority)
    joined = base.copy_with(path=base.path.rstrip("/") + "/" + path.lstrip("/"), query=None, fragment=None)
    return str(joined)


def _discovery_url(authority: str) -> str:
    url = httpx.URL(authority)
    if url.path.rstrip("/").endswith(_WELL_KNOWN):
        return authority
    return str(url.copy_with(path=url.path.rstrip("/") + _WELL_KNOWN[0], query=None, fragment=None))


def _cached_discovery(url: str, now: float) -> _Discovery | None:
    with _lock:
        entry = _discovered.get(url)
        if entry is None or now >= entry.expires_at:
            return None
        _discovered.move_to_end(url)
        return entry


async def _discover(url: str, client: httpx.AsyncClient, clock: Clock) -> _Discovery:
    status, reason, body = await _exchange(
        client, "GET", url, headers={"Accept": JSON}, content=None, follow_redirects=True
    )
    where = f"GET {redact_url(url)}"
    if status != 200:
        raise _status_problem(status, reason, where, title="Discovery failed")
    document = _json_object(body, where)
    endpoint = document.get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise _config_error(f"the OpenID configuration at {redact_url(url)} has no token_endpoint")
    issuer = document.get("issuer")
    entry = _Discovery(
        issuer=_issuer(issuer) if isinstance(issuer, str) else None,
        token_endpoint=_http_url(endpoint, "discovered token_endpoint"),
        expires_at=clock() + _DISCOVERY_TTL,
    )
    with _lock:
        _discovered[url] = entry
        _discovered.move_to_end(url)
        while len(_discovered) > _MAX_DISCOVERY:
            _discovered.popitem(last=False)
    return entry


async def _renew(
    policy: _Policy, endpoint: str, key: _Key, client: httpx.AsyncClient, clock: Clock
) -> _Token:
    """A fresh token: by the refresh token of the expired one when there is one, else by the policy's grant."""
    with _lock:
        stale = _tokens.get(key)
    token: _Token | None = None
    if stale is not None and stale.refresh_token:
        params = [("grant_type", REFRESH_TOKEN), ("refresh_token", stale.refresh_token)]
        params += [("scope", " ".join(policy.scopes))] if policy.scopes else []
        try:
            token = await _request(policy, endpoint, params, client, clock, secrets=(stale.refresh_token,))
        except ApplicationError as exc:
            # A revoked or expired refresh token: the policy's own grant still works.
            if _kind_of(exc) != "authentication":
                raise
        if token is not None and token.refresh_token is None:
            token = replace(token, refresh_token=stale.refresh_token)
    if token is None:
        token = await _request(policy, endpoint, _grant_params(policy), client, clock, secrets=())
    _store(key, token)
    return token


def _grant_params(policy: _Policy) -> list[tuple[str, str]]:
    params = [("grant_type", policy.grant)]
    if policy.grant == PASSWORD:
        params += [("username", policy.username or ""), ("password", policy.password or "")]
    elif policy.grant == REFRESH_TOKEN and policy.subject:
        params.append(("refresh_token", policy.subject[0]))
    elif policy.grant == TOKEN_EXCHANGE and policy.subject:
        params += [("subject_token", policy.subject[0]), ("subject_token_type", policy.subject[1])]
        if policy.actor:
            params += [("actor_token", policy.actor[0]), ("actor_token_type", policy.actor[1])]
    if policy.scopes:
        params.append(("scope", " ".join(policy.scopes)))
    params += [("audience", audience) for audience in policy.audiences]
    return params


def _client_authentication(policy: _Policy, endpoint: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Headers and body parameters that authenticate the client (RFC 6749 §2.3, RFC 7523)."""
    client = policy.client
    if client.method == "client_secret_basic":
        # RFC 6749 §2.3.1: id and secret are form-encoded before they are joined and base64-encoded.
        pair = f"{quote_plus(client.id or '')}:{quote_plus(client.secret or '')}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}, []
    params = [("client_id", client.id)] if client.id else []
    if client.method == "client_secret_post":
        params.append(("client_secret", client.secret or ""))
    elif client.method in ("client_secret_jwt", "private_key_jwt"):
        assertion = client.assertion or _secret_jwt(client.id or "", client.secret or "", endpoint)
        params += [("client_assertion_type", _JWT_BEARER), ("client_assertion", assertion)]
    return {}, params


def _secret_jwt(client_id: str, secret: str, audience: str) -> str:
    """A ``client_secret_jwt`` assertion: HS256 over RFC 7523's claims, valid for a minute."""
    issued = int(time.time())  # wall-clock time: the server checks iat/exp against its own clock
    claims = {"iss": client_id, "sub": client_id, "aud": audience, "jti": uuid.uuid4().hex}
    claims |= {"iat": issued, "exp": issued + 60}
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64url(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


async def _request(
    policy: _Policy,
    endpoint: str,
    params: list[tuple[str, str]],
    client: httpx.AsyncClient,
    clock: Clock,
    *,
    secrets: tuple[str, ...],
) -> _Token:
    headers, auth_params = _client_authentication(policy, endpoint)
    params = params + auth_params
    headers["Accept"] = JSON
    headers["Content-Type"] = policy.encoding
    content = (
        json.dumps(_json_params(params)).encode() if policy.encoding == JSON else urlencode(params).encode()
    )
    where = f"POST {redact_url(endpoint)}"
    # Redirects are not followed: a 3xx would resend the credentials to wherever it points.
    status, reason, body = await _exchange(
        client, "POST", endpoint, headers=headers, content=content, follow_redirects=False
    )
    if status != 200:
        raise _refusal(status, reason, body, where, policy.secrets() + secrets)
    token = _token_from(_json_object(body, where), where, clock())
    _log.debug(
        "%s token for client %r from %s (reused for %.0f s)",
        policy.scheme,
        policy.client.id,
        where,
        token.expires_at - clock(),
    )
    return token


def _json_params(params: list[tuple[str, str]]) -> dict[str, Any]:
    """Form pairs as a JSON object; a repeated name (``audience``) becomes a list."""
    body: dict[str, Any] = {}
    for name, value in params:
        if name not in body:
            body[name] = value
        elif isinstance(body[name], list):
            body[name].append(value)
        else:
            body[name] = [body[name], value]
    return body


def _token_from(document: Mapping[str, Any], where: str, now: float) -> _Token:
    access_token = document.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise effect_error(
            "authentication",
            f"{where} answered without an access_token",
            status=401,
            title="No access token",
        )
    token_type = document.get("token_type")
    # RFC 8693 answers N_A when the issued token is not an access token; it is still sent as a bearer.
    if isinstance(token_type, str) and token_type.lower() not in ("bearer", "n_a"):
        raise effect_error(
            "authentication",
            f"{where} issued a {_ERROR_CODE.sub('', token_type)[:40]!r} token; only bearer tokens can be sent",
            status=401,
            title="Unsupported token type",
        )
    lifetime = _seconds(document.get("expires_in"))
    lifetime = _DEFAULT_LIFETIME if lifetime is None else max(lifetime, 0.0)
    refresh = document.get("refresh_token")
    issuers = [_claims(document.get("id_token")).get("iss"), _claims(access_token).get("iss")]
    return _Token(
        access_token=access_token,
        expires_at=now + lifetime - min(_EXPIRY_MARGIN, lifetime / 10),
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        issuers=tuple(_issuer(i) for i in issuers if isinstance(i, str)),
    )


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value) if isinstance(value, int | float | str) else None
    except ValueError:
        return None


def _claims(token: Any) -> Mapping[str, Any]:
    """The payload of a JWT, unverified; empty for anything else (opaque tokens, nonsense)."""
    if not isinstance(token, str) or token.count(".") != 2:
        return {}
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _check_issuers(policy: _Policy, found: tuple[str, ...], what: str) -> None:
    if not policy.issuers:
        return
    for issuer in found:
        if issuer not in policy.issuers:
            raise effect_error(
                "authorization",
                f"{policy.scheme} {what} was issued by {issuer!r}, which is not one of issuers "
                f"({', '.join(policy.issuers)})",
                title="Untrusted issuer",
            )


# --- sending and failing ----------------------------------------------------------------------------------


async def _exchange(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    content: bytes | None,
    follow_redirects: bool,
) -> tuple[int, str, bytes]:
    """``(status, reason, body)``; transport failures are ``communication`` problems naming no secret."""
    try:
        async with client.stream(
            method, url, headers=headers, content=content, follow_redirects=follow_redirects, timeout=_TIMEOUT
        ) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > _MAX_RESPONSE_BYTES:
                    raise effect_error(
                        "communication",
                        f"{method} {redact_url(url)}: response is larger than {_MAX_RESPONSE_BYTES} bytes",
                        title="Response too large",
                    )
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise _transport_problem(exc, f"{method} {redact_url(url)}") from None
    return response.status_code, response.reason_phrase, b"".join(chunks)


def _transport_problem(exc: httpx.HTTPError, where: str) -> ApplicationError:
    if isinstance(exc, httpx.TimeoutException):
        detail = f"{where} timed out ({type(exc).__name__})"
    elif isinstance(exc, httpx.ConnectError):
        # The connect error's text is the OS's ("Connection refused"); it cannot hold request data.
        detail = f"{where}: cannot connect: {exc}"
    else:
        # Other exceptions' text may quote the request, credentials included: only the type is shown.
        detail = f"{where} failed ({type(exc).__name__})"
    return effect_error(
        "communication", detail, status=500, title="Token endpoint unreachable", retryable=True
    )


def _refusal(status: int, reason: str, body: bytes, where: str, secrets: tuple[str, ...]) -> ApplicationError:
    """The problem for a token endpoint's non-200 answer: OAuth errors named, secrets masked."""
    code, description = _oauth_error(body, secrets)
    said = (f": {code}" + (f" ({description})" if description else "")) if code else ""
    if status in (400, 401):
        return effect_error(
            "authentication",
            f"{where} refused the token request" + (said or f" with {status} {reason}"),
            status=401,
            title=f"OAuth2 {code}" if code else "Token request refused",
        )
    if status == 403:
        return effect_error(
            "authorization",
            f"{where} refused the token request" + (said or f" with {status} {reason}"),
            status=403,
            title="Token request forbidden",
        )
    return _status_problem(status, reason, where, title="Token request failed", said=said)


def _status_problem(status: int, reason: str, where: str, *, title: str, said: str = "") -> ApplicationError:
    retryable = status in _RETRYABLE_STATUS or (500 <= status < 600 and status != 501)
    hint = " (redirects are not followed)" if 300 <= status < 400 else ""
    return effect_error(
        "communication",
        f"{where} answered {status} {reason}{hint}{said}",
        status=status if status >= 400 else 500,
        title=title,
        retryable=retryable,
    )


def _oauth_error(body: bytes, secrets: tuple[str, ...]) -> tuple[str, str]:
    """RFC 6749 §5.2's ``error`` and ``error_description``, cleaned, shortened and with secrets masked."""
    try:
        document = json.loads(body[:65536])
    except ValueError:
        return "", ""
    if not isinstance(document, dict):
        return "", ""
    code = document.get("error")
    description = document.get("error_description")
    code = _mask(_ERROR_CODE.sub("", code)[:64], secrets) if isinstance(code, str) else ""
    description = _mask(" ".join(description.split()), secrets)[:200] if isinstance(description, str) else ""
    return code, description


def _mask(text: str, secrets: tuple[str, ...]) -> str:
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(secrets, key=len, reverse=True):
        for form in {secret, quote_plus(secret)}:
            text = text.replace(form, "***")
    return text


def _json_object(body: bytes, where: str) -> Mapping[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise effect_error(
            "communication", f"{where} did not answer with a JSON object", title="Bad token endpoint response"
        )
    return document


# --- small helpers ------------------------------------------------------------------------------------------


def _config_error(detail: str, *, title: str = "Bad authentication") -> ApplicationError:
    return effect_error("configuration", detail, title=title)


def _kind_of(exc: ApplicationError) -> str | None:
    from ..temporal.types import FailureDetail

    failure = FailureDetail.of(exc)
    return error_kind(failure.problem.get("type")) if failure is not None else None


def _did_you_mean(word: str, known: tuple[str, ...]) -> str:
    from ..errors import did_you_mean  # only on the error path

    return did_you_mean(word, known)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _kind(value: Any) -> str:
    """How a value reads in a message, without echoing it (it may be a secret)."""
    if value is None:
        return "nothing"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )
