"""Who may do what on which tenant: tokens, roles, tenants, CSRF, and secrets kept secret."""

from __future__ import annotations

import hashlib
import json

import pytest

from kaizen.service import auth
from kaizen.service.auth import ANONYMOUS, AuthPolicy, TokenTable, authorize, readable_tenants
from kaizen.settings import load_settings

READER = "reader-token-0123456789"
OPERATOR = "operator-token-0123456789"
INGEST = "ingest-token-0123456789"
TOKENS = json.dumps({
    READER: {"identity": "rita", "roles": ["reader"], "tenants": ["acme"]},
    OPERATOR: {"identity": "otto", "roles": ["operator"], "tenants": ["acme", "globex"]},
    "sha256:" + hashlib.sha256(INGEST.encode()).hexdigest():
        {"identity": "otlp", "roles": ["ingest"], "tenants": "*"},
})
JSON = {"Content-Type": "application/json", "Host": "kaizen.example:8765"}


def policy(required: bool = True) -> AuthPolicy:
    return AuthPolicy(TokenTable.parse(TOKENS), required)


def bearer(token: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Host": "kaizen.example:8765", **more}


def test_no_token_is_401_where_tokens_are_required() -> None:
    decision = authorize(policy(), "GET", {"Host": "kaizen.example"}, "reader")
    assert (decision.status, decision.principal) == (401, None)


def test_an_unknown_token_is_401_even_where_tokens_are_optional() -> None:
    assert authorize(policy(False), "GET", bearer("not-a-known-token-at-all"), "reader"
                     ).status == 401


def test_wrong_tenant_is_403_and_the_own_tenant_is_allowed() -> None:
    assert authorize(policy(), "GET", bearer(READER), "reader", "globex").status == 403
    allowed = authorize(policy(), "GET", bearer(READER), "reader", "acme")
    assert allowed.ok and allowed.principal is not None and allowed.principal.identity == "rita"


def test_a_reader_cannot_approve_and_an_operator_reads_its_tenants() -> None:
    refused = authorize(policy(), "POST", bearer(READER, **JSON), "operator", "acme")
    assert refused.status == 403 and "operator" in refused.reason
    assert authorize(policy(), "POST", bearer(OPERATOR, **JSON), "operator", "globex").ok
    assert authorize(policy(), "GET", bearer(OPERATOR), "reader", "acme").ok
    assert authorize(policy(), "GET", bearer(OPERATOR), "reader", "initech").status == 403


def test_ingest_tokens_may_ingest_only_and_hashed_tokens_work() -> None:
    assert authorize(policy(), "POST", bearer(INGEST, **JSON), "ingest", "any").ok
    assert authorize(policy(), "GET", bearer(INGEST), "reader").status == 403


@pytest.mark.parametrize(("headers", "status"), [
    ({"Content-Type": "text/plain"}, 415),
    ({}, 415),
    ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ({**JSON, "Origin": "https://evil.example"}, 403),
    ({**JSON, "Origin": "null"}, 403),
    ({**JSON, "Sec-Fetch-Site": "cross-site"}, 403),
    ({**JSON, "Origin": "http://kaizen.example:8765"}, 200),
    ({**JSON, "Content-Type": "application/json; charset=utf-8"}, 200),
    (JSON, 200),  # CLI and agents send no Origin
])
def test_state_changing_requests_must_be_same_origin_json(headers: dict[str, str],
                                                          status: int) -> None:
    sent = {**bearer(OPERATOR), **headers}
    assert authorize(policy(), "POST", sent, "operator", "acme").status == status


def test_csrf_checks_hold_in_the_open_loopback_mode_too() -> None:
    local = {"Host": "127.0.0.1:8765", "Content-Type": "text/plain"}
    assert authorize(policy(False), "POST", local, "operator").status == 415
    cross = {**local, "Content-Type": "application/json", "Origin": "http://evil.example"}
    assert authorize(policy(False), "POST", cross, "operator").status == 403


def test_the_open_loopback_mode_keeps_todays_behaviour_for_loopback_hosts_only() -> None:
    for host in ("127.0.0.1:8765", "localhost:1", "[::1]:8765", "127.0.0.1"):
        decision = authorize(policy(False), "GET", {"Host": host}, "operator", "anyone")
        assert decision.ok and decision.principal is ANONYMOUS
    # a DNS-rebinding page reaches 127.0.0.1 under its own name: refused
    assert authorize(policy(False), "GET", {"Host": "evil.example:8765"}, "reader").status == 403


def test_public_routes_need_nothing() -> None:
    assert authorize(policy(), "GET", {}, None).ok


def test_tokens_are_required_beyond_loopback_and_serve_refuses_to_start_without() -> None:
    with pytest.raises(ValueError, match="KAIZEN_API_TOKENS"):
        AuthPolicy.for_bind("0.0.0.0", TokenTable(), require_on_loopback=False)  # noqa: S104
    with pytest.raises(ValueError, match="KAIZEN_API_REQUIRE_TOKENS"):
        AuthPolicy.for_bind("127.0.0.1", TokenTable(), require_on_loopback=True)
    assert not AuthPolicy.for_bind("127.0.0.1", TokenTable(), False).required
    assert AuthPolicy.for_bind("10.0.0.5", TokenTable.parse(TOKENS), False).required
    assert AuthPolicy.for_bind("::1", TokenTable.parse(TOKENS), True).required


def test_reads_are_scoped_to_the_tokens_tenants() -> None:
    rita = TokenTable.parse(TOKENS).lookup(READER)
    assert rita is not None
    assert readable_tenants(rita, None) == (frozenset({"acme"}), None)
    assert readable_tenants(rita, "acme") == (frozenset({"acme"}), None)
    assert readable_tenants(rita, "globex")[1] is not None
    assert readable_tenants(ANONYMOUS, None) == (None, None)


@pytest.mark.parametrize(("spec", "message"), [
    ({"identity": "x", "roles": ["admin"], "tenants": "*"}, "roles must be"),
    ({"identity": "x", "roles": ["reader"]}, "tenants must be"),
    ({"identity": "", "roles": ["reader"], "tenants": "*"}, "identity"),
    ({"identity": "x", "roles": ["reader"], "tenants": ["a\x00"]}, "tenants must be"),
])
def test_bad_token_entries_are_refused_without_quoting_the_token(spec: object,
                                                                 message: str) -> None:
    secret = "a-secret-that-must-never-show-0123"
    with pytest.raises(ValueError, match=message) as error:
        TokenTable.parse(json.dumps({secret: spec}))
    assert secret not in str(error.value)


def test_short_tokens_are_refused_and_never_quoted() -> None:
    with pytest.raises(ValueError, match="shorter than") as error:
        TokenTable.parse(json.dumps({"short": {"identity": "x", "roles": ["reader"],
                                               "tenants": "*"}}))
    assert "short" not in str(error.value).replace("shorter", "")


def test_secrets_never_show_in_reprs_or_settings() -> None:
    table = TokenTable.parse(TOKENS)
    settings = load_settings(api_tokens=TOKENS, api_token=OPERATOR)
    for text in (repr(table), repr(settings), str(settings), settings.model_dump_json()):
        assert READER not in text and OPERATOR not in text


def test_the_bearer_header_is_parsed_strictly() -> None:
    assert auth.bearer_token("Bearer abc") == "abc"
    assert auth.bearer_token("bearer  abc ") == "abc"
    assert auth.bearer_token("Basic abc") is None
    assert auth.bearer_token("Bearer ") is None
    assert auth.bearer_token(None) is None


def test_the_policy_reads_env_json_and_a_file_together(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "tokens.json"  # type: ignore[operator]
    path.write_text(json.dumps({"file-token-0123456789": {"identity": "f", "roles": ["reader"],
                                                           "tenants": "*"}}))
    merged = auth.load_policy("0.0.0.0", TOKENS, path, False)  # noqa: S104
    assert merged.required and len(merged.tokens) == 4
    with pytest.raises(ValueError, match="KAIZEN_API_TOKENS_FILE"):
        auth.load_policy("127.0.0.1", None, path.parent / "missing.json", False)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="KAIZEN_API_TOKENS_FILE .*not JSON"):
        auth.load_policy("127.0.0.1", None, path, False)


APP_ALICE = "app-alice-token-0123456789"
BOUND = json.dumps({
    APP_ALICE: {"identity": "app-alice", "roles": ["recall"], "tenants": ["acme"],
                "user": "alice"},
    READER: {"identity": "rita", "roles": ["reader"], "tenants": ["acme"]},
})


def test_a_user_bound_token_recalls_as_its_user_only_and_reads_nothing_else() -> None:
    bound = AuthPolicy(TokenTable.parse(BOUND), True)
    allowed = authorize(bound, "POST", bearer(APP_ALICE, **JSON), "recall", "acme")
    assert allowed.ok and allowed.principal is not None
    alice = allowed.principal
    assert auth.recall_user(alice, None) == ("alice", None)  # no user named: its own
    assert auth.recall_user(alice, "alice") == ("alice", None)
    user, refused = auth.recall_user(alice, "bob")
    assert user is None and refused is not None and refused.status == 403
    assert authorize(bound, "POST", bearer(APP_ALICE, **JSON), "recall", "globex").status == 403
    for role in ("reader", "operator", "ingest"):  # no tenant-wide reads, no actions
        assert authorize(bound, "GET", bearer(APP_ALICE), role, "acme").status == 403  # type: ignore[arg-type]


def test_a_tenant_token_recalls_for_any_user_of_its_tenants() -> None:
    """The agent's back end serves many users and names the one it serves (README, Security)."""
    rita = authorize(AuthPolicy(TokenTable.parse(BOUND), True), "POST", bearer(READER, **JSON),
                     "recall", "acme").principal
    assert rita is not None and auth.recall_user(rita, "bob") == ("bob", None)
    assert auth.recall_user(ANONYMOUS, "bob") == ("bob", None)


@pytest.mark.parametrize("spec", [
    {"identity": "x", "roles": ["reader"], "tenants": ["acme"], "user": "alice"},  # reads all
    {"identity": "x", "roles": ["recall"], "tenants": "*", "user": "alice"},  # every tenant
    {"identity": "x", "roles": ["recall"], "tenants": ["acme"], "user": ""},
    {"identity": "x", "roles": ["recall"], "tenants": ["acme"], "user": 7},
])
def test_a_user_bound_token_needs_the_recall_role_alone_a_tenant_list_and_a_name(
        spec: object) -> None:
    with pytest.raises(ValueError, match="user-bound"):
        TokenTable.parse(json.dumps({APP_ALICE: spec}))
