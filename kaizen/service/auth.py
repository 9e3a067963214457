"""Who may do what on which tenant: the pure authorization decisions of the HTTP API.

Tokens carry an identity, roles and tenants. Roles:

    recall    POST /recall, for any user of the token's tenants (an agent's back end serves
              many users and names the one it serves)
    reader    GET the dashboard data, /experiences, /analytics/*, /snapshots (and recall)
    operator  approve / reject / activate / roll back snapshots (and read: an operator must see
              what they approve)
    ingest    send episodes over HTTP (OTLP /v1/traces)

A token may be bound to one user (`"user": "alice"`, recall role only): a client that acts for
that user alone (a user's own app or browser). It recalls as that user whether or not the body
names one, and naming anyone else is refused (403): it cannot claim another user's preferences.

Every role holds only for the token's tenants (`"*"`: every tenant). Tokens are configured as
JSON, in `KAIZEN_API_TOKENS` or the file `KAIZEN_API_TOKENS_FILE`:

    {"<token>": {"identity": "alice", "roles": ["operator"], "tenants": ["acme"]},
     "sha256:<hex of the token's sha256>": {"identity": "bot", "roles": ["ingest"],
                                             "tenants": "*"},
     "<token>": {"identity": "app-alice", "roles": ["recall"], "tenants": ["acme"],
                 "user": "alice"}}

Only digests are kept in memory and compared; no token ever appears in a message, a repr or a
log line. Tokens are required when `serve` binds beyond loopback (refusing to start without any)
and optional on loopback, where a request without a token is `ANONYMOUS` (every role, every
tenant: the behaviour before tokens existed) unless `KAIZEN_API_REQUIRE_TOKENS` is set.

State-changing requests must also be same-origin JSON (`check_post`): a browser cannot send
`application/json` cross-site without a preflight this server never answers, and Origin /
Sec-Fetch-Site tell a cross-site form apart. Anonymous mode also checks the Host header against
loopback names, so a DNS-rebinding page cannot reach the open API through the user's browser.

Pure: no sockets, no settings object; `kaizen.service.http_api` calls `authorize` once per route.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from kaizen.schemas.scope import name_problem

Role = Literal["recall", "reader", "operator", "ingest"]


class Headers(Protocol):
    """Request headers: a dict, or the stdlib server's `email.message.Message`."""

    def get(self, name: str, /) -> Any: ...


ROLES: tuple[Role, ...] = ("recall", "reader", "operator", "ingest")
#: Roles a role brings with it.
IMPLIED: dict[str, frozenset[str]] = {"reader": frozenset({"recall"}),
                                      "operator": frozenset({"reader", "recall"})}
#: Shortest token accepted: a guessable token is no authentication.
MIN_TOKEN_CHARS = 16
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent a request: the actor of anything it does, with its roles and tenants."""

    identity: str
    roles: frozenset[str]
    tenants: frozenset[str] | None  # None: every tenant
    user: str | None = None  # bound to one user: recalls as that user only

    def has(self, role: str) -> bool:
        return role in self.roles

    def may_access(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants


#: A request without a token where tokens are optional: today's open loopback API.
ANONYMOUS = Principal("api", frozenset(ROLES), None)


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed (status 200, with the principal) or refused with an HTTP status and a reason."""

    status: int
    reason: str = ""
    principal: Principal | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    """Token digests -> principals. Its repr counts tokens and never shows one."""

    def __init__(self, entries: Mapping[bytes, Principal] | None = None) -> None:
        self._entries = dict(entries or {})

    def __repr__(self) -> str:
        return f"TokenTable({len(self._entries)} tokens)"

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def parse(cls, text: str) -> TokenTable:
        """Read the JSON described in the module docstring; ValueError names the entry's
        identity (or its position), never the token."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"API tokens are not JSON: {error.msg} at line {error.lineno}"
                             ) from None
        if not isinstance(raw, dict):
            raise ValueError("API tokens must be a JSON object: token -> identity, roles, tenants")
        entries: dict[bytes, Principal] = {}
        for position, (token, spec) in enumerate(raw.items(), 1):
            principal = _principal(spec, position)
            entries[_token_digest(token, principal.identity)] = principal
        return cls(entries)

    def lookup(self, token: str) -> Principal | None:
        digest = _digest(token)
        for known, principal in self._entries.items():  # constant time per comparison
            if hmac.compare_digest(known, digest):
                return principal
        return None


def _token_digest(token: str, identity: str) -> bytes:
    if token.startswith("sha256:"):
        try:
            digest = bytes.fromhex(token.removeprefix("sha256:"))
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise ValueError(f"API token of {identity!r}: sha256: needs 64 hex digits")
        return digest
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"API token of {identity!r} is shorter than {MIN_TOKEN_CHARS} characters")
    return _digest(token)


def _principal(spec: Any, position: int) -> Principal:
    where = f"API token #{position}"
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected an object with identity, roles, tenants")
    identity = spec.get("identity")
    if not isinstance(identity, str) or name_problem("identity", identity):
        raise ValueError(f"{where}: identity must be a non-empty name")
    roles = spec.get("roles")
    if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
        raise ValueError(f"API token of {identity!r}: roles must be a list of {', '.join(ROLES)}")
    tenants = spec.get("tenants")
    if tenants == "*":
        allowed = None
    elif isinstance(tenants, list) and tenants and all(
            isinstance(t, str) and not name_problem("tenant", t) for t in tenants):
        allowed = frozenset(tenants)
    else:
        raise ValueError(f"API token of {identity!r}: tenants must be \"*\" or a list of names")
    user = spec.get("user")
    if user is not None and (not isinstance(user, str) or name_problem("user", user)
                             or roles != ["recall"] or allowed is None):
        raise ValueError(f"API token of {identity!r}: a user-bound token needs a user name, "
                         "roles [\"recall\"] and a list of tenants")
    granted = set(roles)
    for role in roles:
        granted |= IMPLIED.get(role, frozenset())
    return Principal(identity, frozenset(granted), allowed, user)


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """How the API authenticates: the tokens, and whether a request may come without one."""

    tokens: TokenTable
    required: bool

    @classmethod
    def for_bind(cls, host: str, tokens: TokenTable, require_on_loopback: bool) -> AuthPolicy:
        """Tokens are required beyond loopback; ValueError if required and none configured."""
        required = require_on_loopback or not is_loopback(host)
        if required and not len(tokens):
            where = f"binds {host!r}, beyond loopback" if not is_loopback(host) else (
                "requires tokens (KAIZEN_API_REQUIRE_TOKENS)")
            raise ValueError(f"kaizen serve {where}: set KAIZEN_API_TOKENS or "
                             "KAIZEN_API_TOKENS_FILE (see README, Security)")
        return cls(tokens, required)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; an empty host or 0.0.0.0 listens everywhere."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def authenticate(policy: AuthPolicy, headers: Headers) -> Decision:
    """The principal behind a request, or 401 (no token where one is required, unknown token)."""
    token = bearer_token(headers.get("Authorization"))
    if token is None:
        if policy.required:
            return Decision(401, "this API needs a token: Authorization: Bearer <token>")
        if not _loopback_host(headers.get("Host")):
            return Decision(403, "the open (tokenless) API answers only to a loopback Host")
        return Decision(200, principal=ANONYMOUS)
    principal = policy.tokens.lookup(token)
    if principal is None:
        return Decision(401, "unknown token")
    return Decision(200, principal=principal)


def _loopback_host(host: str | None) -> bool:
    if not host:
        return True  # HTTP/1.0 clients; browsers always send Host
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name.lower() in LOOPBACK_NAMES or is_loopback(name)


def permit(principal: Principal, role: Role, tenant: str | None = None) -> Decision:
    """May `principal` act as `role` (on `tenant`, when the request names one)? 403 if not."""
    if not principal.has(role):
        return Decision(403, f"{principal.identity!r} lacks the {role} role", principal)
    if tenant is not None and not principal.may_access(tenant):
        return Decision(403, f"{principal.identity!r} has no access to tenant {tenant!r}",
                        principal)
    return Decision(200, principal=principal)


def recall_user(principal: Principal, requested: str | None) -> tuple[str | None,
                                                                    Decision | None]:
    """The user a recall is for: the requested one, or the token's own user for a user-bound
    token, which may not name anyone else (403)."""
    if principal.user is None:
        return requested, None
    if requested is not None and requested != principal.user:
        return None, Decision(403, f"{principal.identity!r} may recall only as its own user",
                              principal)
    return principal.user, None


def check_post(headers: Headers) -> Decision | None:
    """Refuse a state-changing request that is not same-origin JSON (CSRF); None if fine."""
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return Decision(415, "POST needs Content-Type: application/json")
    if (headers.get("Sec-Fetch-Site") or "").lower() == "cross-site":
        return Decision(403, "cross-site request refused")
    origin = headers.get("Origin")
    if origin is not None and not _same_origin(origin, headers.get("Host")):
        return Decision(403, f"cross-origin request refused (Origin {origin[:80]!r})")
    return None


def _same_origin(origin: str, host: str | None) -> bool:
    if origin == "null" or host is None:
        return False
    _, _, authority = origin.partition("://")
    return authority.rstrip("/").lower() == host.lower()


def authorize(policy: AuthPolicy, method: str, headers: Headers, role: Role | None,
              tenant: str | None = None) -> Decision:
    """The one check per route: CSRF for POST, then the token, then the role on the tenant.

    `role` None is a public route (the dashboard page, /health): always allowed.
    """
    if role is None:
        return Decision(200, principal=ANONYMOUS)
    if method == "POST":
        refused = check_post(headers)
        if refused is not None:
            return refused
    who = authenticate(policy, headers)
    if not who.ok or who.principal is None:
        return who
    return permit(who.principal, role, tenant)


def readable_tenants(principal: Principal, requested: str | None
                     ) -> tuple[frozenset[str] | None, Decision | None]:
    """The tenants a read may return: the requested one if allowed (else 403), or all the
    principal's (None = every tenant)."""
    if requested is not None:
        if not principal.may_access(requested):
            return frozenset(), Decision(403, f"{principal.identity!r} has no access to tenant "
                                         f"{requested!r}", principal)
        return frozenset({requested}), None
    return principal.tenants, None


def load_policy(host: str, tokens: str | None, tokens_file: Path | None,
                require_on_loopback: bool) -> AuthPolicy:
    """The policy of a server bound to `host`, from the token JSON and/or file (both merge).

    ValueError names what to fix and never quotes a token.
    """
    table: dict[bytes, Principal] = {}
    sources = [("KAIZEN_API_TOKENS", tokens)]
    if tokens_file is not None:
        try:
            sources.append((f"KAIZEN_API_TOKENS_FILE {tokens_file}", tokens_file.read_text()))
        except OSError as error:
            raise ValueError(f"KAIZEN_API_TOKENS_FILE {tokens_file}: {error.strerror}") from None
    for name, text in sources:
        if text:
            try:
                table.update(TokenTable.parse(text)._entries)
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from None
    return AuthPolicy.for_bind(host, TokenTable(table), require_on_loopback)
