"""Scope keys: ONE injective encoding of (tenant, agent[, ...]) into the string keys of the log and
of every per-scope table, and the validation of names where they enter (Recorder, API, processors).

Tenant, agent and user are free text in the Avro schemas. Joined with a bare `/`, two different
scopes shared a key: tenant `c/x` + agent `y` and tenant `c` + agent `x/y` had one snapshot
timeline, so a rollback of one emptied the other's recall. `scope_key` percent-encodes `%` and `/`
inside each part before joining, so the parts can always be read back (`parse_scope_key`) and two
different scopes never share a key, while every name without `%` or `/` keeps the key it had:
logs and tables written before stay valid.

    scope_key("acme", "bot")      -> "acme/bot"          (unchanged)
    scope_key("c/x", "y")         -> "c%2Fx/y"
    scope_key("c", "x/y")         -> "c/x%2Fy"

Stores that keep tenant and agent in separate columns or payload fields (ClickHouse, Qdrant, the
recall index's tuple keys) need no encoding; anything that builds ONE string from several names
must call `scope_key`. Pure: no I/O.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from urllib.parse import unquote

from kaizen.errors import KaizenError

#: Longest tenant, agent or user name accepted (characters); longer is a mistake or an attack.
MAX_NAME = 256
#: Tenant names that mean something else: `*` marks cross-tenant records (patterns).
RESERVED_TENANTS = frozenset({"*"})


class InvalidName(KaizenError, ValueError):
    """A tenant, agent or user name that cannot be a scope: says which name and why."""


def encode_part(name: str) -> str:
    """One part of a key with `%` and `/` escaped; the identity for every other name."""
    return name.replace("%", "%25").replace("/", "%2F")


def scope_key(*parts: str) -> str:
    """The key of a scope (tenant, agent, ...): injective, and `a/b` for plain names.

    Parts with no `%` or `/` (nearly all) join as they are, which the joined key shows by
    itself: no `%` in it and a `/` between parts only. The processors build a key for every
    record, and a generator of `encode_part` calls was 5% of folding one."""
    key = "/".join(parts)
    if "%" not in key and key.count("/") == len(parts) - 1:
        return key
    return "/".join(encode_part(p) for p in parts)


def parse_scope_key(key: str) -> tuple[str, ...]:
    """The parts of a `scope_key` back (the encoding only ever writes `%25` and `%2F`)."""
    return tuple(unquote(p) for p in key.split("/"))


def name_problem(kind: str, value: str | None) -> str | None:
    """Why a name cannot be used, or None: empty, too long, control or invisible format chars."""
    if not value:
        return f"{kind} is empty"
    if len(value) > MAX_NAME:
        return f"{kind} is {len(value)} characters long (at most {MAX_NAME})"
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return f"{kind} {value[:40]!r} holds control character U+{ord(ch):04X}"
    if value != value.strip():
        return f"{kind} {value[:40]!r} starts or ends with white space"
    return None


@lru_cache(maxsize=16_384)
def _remembered_problem(kind: str, value: str) -> str | None:
    return name_problem(kind, value)


def check_name(kind: str, value: str) -> str:
    """The name itself, or `InvalidName` with a message naming what is wrong.

    The answer is remembered for names of a valid length: the processors check the tenant,
    agent and user of every record, and a fleet has few of them (a character scan each was 5%
    of episode assembly)."""
    fits = isinstance(value, str) and len(value) <= MAX_NAME
    problem = _remembered_problem(kind, value) if fits else name_problem(kind, value)
    if problem is not None:
        raise InvalidName(problem)
    return value


def check_scope(tenant: str, agent: str, user: str | None = None) -> None:
    """Validate a scope at a boundary; `InvalidName` names the first bad part."""
    check_name("tenant", tenant)
    if tenant in RESERVED_TENANTS:
        raise InvalidName(f"tenant {tenant!r} is reserved")
    check_name("agent", agent)
    if user is not None:
        check_name("user", user)
