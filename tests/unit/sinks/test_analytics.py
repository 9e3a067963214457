"""Every analytics query equals an independent plain-Python computation over the same events."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from kaizen.schemas import model
from kaizen.sinks import analytics
from tests.unit.sinks.test_clickhouse_sink import (
    T0,
    episode_events,
    expected_steps,
    fleet_events,
    open_sink,
    write_all,
)

HOUR = 3_600_000
EVENTS = fleet_events(seed=11, episodes=120)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    sink = open_sink(tmp_path_factory.mktemp("ch"))
    write_all(sink, EVENTS)
    write_all(sink, EVENTS[::-1], batch=53)  # a replay must not change any answer
    yield sink.client
    sink.close()


def steps() -> list[dict[str, Any]]:
    return [{"tenant": k[0], "agent": k[1], "episode_id": k[2], "call_id": k[3], **v}
            for k, v in expected_steps(EVENTS).items()]


def results(since: int, until: int) -> list[dict[str, Any]]:
    return [s for s in steps() if s["ok"] is not None and since <= s["result_ms"] < until]


def approx_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: pytest.approx(v) if isinstance(v, float) else v for k, v in r.items()}
            for r in rows]


WINDOWS = [(0, analytics.END_OF_TIME), (T0 + 10 * HOUR, T0 + 30 * HOUR)]


@pytest.mark.parametrize("by", ["tool", "agent", "tenant"])
@pytest.mark.parametrize(("since", "until"), WINDOWS)
def test_failure_rate_by_column(client: Client, by: str, since: int, until: int) -> None:
    calls: dict[str, int] = defaultdict(int)
    failures: dict[str, int] = defaultdict(int)
    for s in results(since, until):
        calls[s[by]] += 1
        failures[s[by]] += not s["ok"]
    want: list[dict[str, Any]] = [{"key": k, "calls": calls[k], "failures": failures[k],
                                   "rate": failures[k] / calls[k]} for k in calls]
    want.sort(key=lambda r: (-r["failures"], r["key"]))
    assert want
    assert analytics.failure_rate(client, by, since, until) == approx_rows(want)  # type: ignore[arg-type]


@pytest.mark.parametrize(("since", "until"), WINDOWS)
def test_failure_rate_by_signature(client: Client, since: int, until: int) -> None:
    window = results(since, until)
    tool_calls: dict[str, int] = defaultdict(int)
    failures: dict[tuple[str, str], int] = defaultdict(int)
    for s in window:
        tool_calls[s["tool"]] += 1
        if not s["ok"]:
            failures[(s["tool"], s["signature"])] += 1
    want: list[dict[str, Any]] = [
        {"key": sig, "tool": tool, "calls": tool_calls[tool], "failures": n,
         "rate": n / tool_calls[tool]} for (tool, sig), n in failures.items()]
    want.sort(key=lambda r: (-r["failures"], r["key"]))
    assert len(want) > 3
    assert analytics.failure_rate(client, "signature", since, until) == approx_rows(want)


def test_failure_rate_rejects_unknown_grouping(client: Client) -> None:
    with pytest.raises(ValueError):
        analytics.failure_rate(client, "user")  # type: ignore[arg-type]


@pytest.mark.parametrize(("hours", "now"), [(1, T0 + 40 * HOUR), (12, T0 + 60 * HOUR),
                                            (1000, T0 + 70 * HOUR), (2, T0 + 5 * HOUR)])
def test_new_signatures(client: Client, hours: int, now: int) -> None:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for s in steps():
        if s["ok"] is False and s["result_ms"] <= now:
            groups[(s["tool"], s["signature"])].append(s)
    want = []
    for (tool, sig), fails in groups.items():
        first = min(f["result_ms"] for f in fails)
        if first >= now - hours * HOUR:
            want.append({"tool": tool, "signature": sig, "first_seen_ms": first,
                         "failures": len(fails),
                         "episodes": len({(f["tenant"], f["agent"], f["episode_id"])
                                          for f in fails}),
                         "tenants": len({f["tenant"] for f in fails}),
                         "agents": len({f["agent"] for f in fails})})
    want.sort(key=lambda r: (-r["first_seen_ms"], r["signature"]))
    assert analytics.new_signatures(client, hours, now) == want


def test_new_signatures_finds_something_in_a_wide_window(client: Client) -> None:
    assert len(analytics.new_signatures(client, 1000, T0 + 70 * HOUR)) > 3


def _learned() -> dict[tuple[str, str, str], int]:
    """(tenant, agent, signature) -> earliest experience time, tenant '*' covering all tenants."""
    learned: dict[tuple[str, str, str], int] = {}
    xps = [e for e in EVENTS if isinstance(e, model.Experience) and e.trigger.signature]
    for tenant in {s["tenant"] for s in steps()}:
        for x in xps:
            if x.tenant in (tenant, "*"):
                key = (tenant, x.agent, x.trigger.signature or "")
                learned[key] = min(learned.get(key, x.occurred_at), x.occurred_at)
    return learned


def _repeat_failures(since: int, until: int) -> list[dict[str, Any]]:
    fails = [dict(s, task=s["task"] or "") for s in steps() if s["ok"] is False]
    learned, out = _learned(), []
    for f in fails:
        at = learned.get((f["tenant"], f["agent"], f["signature"]))
        if at is None or not (f["result_ms"] > at and since <= f["result_ms"] < until):
            continue
        same_user = same_task = False
        for p in fails:
            if ((p["tenant"], p["agent"], p["signature"]) != (f["tenant"], f["agent"],
                                                               f["signature"])
                    or p["result_ms"] >= f["result_ms"] or p["episode_id"] == f["episode_id"]):
                continue
            same_user |= f["user"] is not None and p["user"] == f["user"]
            same_task |= f["task"] != "" and p["task"] == f["task"]
        if same_user or same_task:
            out.append({k: f[k] for k in ("tenant", "agent", "signature", "episode_id",
                                          "call_id", "user", "task")}
                       | {"failed_ms": f["result_ms"], "learned_ms": at,
                          "same_user": same_user, "same_task": same_task})
    out.sort(key=lambda r: (r["failed_ms"], r["tenant"], r["agent"], r["episode_id"],
                            r["call_id"]))
    return out


@pytest.mark.parametrize(("since", "until"), WINDOWS)
def test_repeat_failures(client: Client, since: int, until: int) -> None:
    want = _repeat_failures(since, until)
    assert want, "the generated fleet should contain repeat failures"
    assert analytics.repeat_failures(client, since, until) == want


def _episodes() -> dict[tuple[str, str, str], dict[str, Any]]:
    eps: dict[tuple[str, str, str], dict[str, Any]] = {}
    for e in episode_events(EVENTS):
        if isinstance(e.payload, model.EpisodeStarted | model.EpisodeEnded):
            row = eps.setdefault((e.tenant, e.agent, e.episode_id),
                                 {"agent": e.agent, "tenant": e.tenant, "outcome": None,
                                  "ended_ms": None, "snapshot_id": e.snapshot_id or ""})
            if isinstance(e.payload, model.EpisodeEnded):
                row.update(outcome=e.payload.outcome, ended_ms=e.occurred_at)
    return eps


def test_outcomes_by_snapshot(client: Client) -> None:
    by_snapshot: dict[str, list[str]] = defaultdict(list)
    for ep in _episodes().values():
        if ep["outcome"] is not None:
            by_snapshot[ep["snapshot_id"]].append(ep["outcome"])
    want = [{"snapshot_id": snap, "episodes": len(outs), "successes": outs.count("success"),
             "failures": outs.count("failure"), "abandoned": outs.count("abandoned"),
             "success_rate": outs.count("success") / len(outs)}
            for snap, outs in sorted(by_snapshot.items())]
    assert len(want) == 3
    assert analytics.outcomes_by_snapshot(client) == approx_rows(want)


@pytest.mark.parametrize(("agent", "bucket_s", "tenant"),
                         [("support-bot", 3600, None), ("sales-bot", 6 * 3600, None),
                          ("support-bot", 4 * 3600, "acme"), ("nobody", 3600, None)])
def test_learning_curve(client: Client, agent: str, bucket_s: int, tenant: str | None) -> None:
    buckets: dict[int, list[str]] = defaultdict(list)
    for ep in _episodes().values():
        if ep["agent"] == agent and ep["outcome"] and tenant in (None, ep["tenant"]):
            bucket_ms = bucket_s * 1000
            buckets[ep["ended_ms"] // bucket_ms * bucket_ms].append(ep["outcome"])
    want = [{"bucket_ms": b, "episodes": len(outs), "successes": outs.count("success"),
             "success_rate": outs.count("success") / len(outs)}
            for b, outs in sorted(buckets.items())]
    assert analytics.learning_curve(client, agent, bucket_s, tenant) == approx_rows(want)


def test_learning_curve_rejects_empty_buckets(client: Client) -> None:
    with pytest.raises(ValueError):
        analytics.learning_curve(client, "support-bot", 0)


def _only(tenant: str) -> list[model.Event]:
    """The fleet as a store holding one tenant (and the cross-tenant lessons) would see it."""
    return [e for e in EVENTS if getattr(e, "tenant", None) in (tenant, "*")]


@pytest.mark.parametrize("tenant", ["acme", "globex"])
def test_tenant_scoped_analytics_equal_the_answers_over_that_tenant_alone(
        client: Client, tenant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the API shows a reader of one tenant: every query as if the store held only it."""
    scoped = frozenset({tenant})
    since, until = WINDOWS[0]
    monkeypatch.setattr(__import__(__name__, fromlist=["EVENTS"]), "EVENTS", _only(tenant))
    assert {r["key"] for r in analytics.failure_rate(client, "tenant", tenants=scoped)} == {tenant}
    for by in ("tool", "agent"):
        calls: dict[str, int] = defaultdict(int)
        for s in results(since, until):
            calls[s[by]] += 1
        got = analytics.failure_rate(client, by, tenants=scoped)  # type: ignore[arg-type]
        assert {r["key"]: r["calls"] for r in got} == dict(calls)
    assert all(r["tenants"] == 1 for r in analytics.new_signatures(
        client, 1000, T0 + 70 * HOUR, tenants=scoped))
    assert analytics.repeat_failures(client, since, until, tenants=scoped) == _repeat_failures(
        since, until)
    outcomes = analytics.outcomes_by_snapshot(client, tenants=scoped)
    assert sum(r["episodes"] for r in outcomes) == sum(
        1 for ep in _episodes().values() if ep["outcome"] is not None)
    assert analytics.failure_rate(client, "tool", tenants=frozenset()) == []


def test_signature_windows_anchor_to_the_data(client: Client) -> None:
    """Imported history is old: `--since` and the latest event anchor the window, not now."""
    latest = analytics.latest_event_ms(client)
    assert latest == max(s["result_ms"] for s in steps() if s["result_ms"] is not None)
    far_future = latest + 1000 * HOUR
    assert analytics.new_signatures(client, 24, far_future) == []  # wall-clock style: nothing
    anchored = analytics.new_signatures(client, 1000, latest)
    assert anchored == analytics.new_signatures(client, 1000, latest + 0)
    since = analytics.new_signatures(client, 1, far_future, since_ms=T0)
    assert since == analytics.new_signatures(client, 10**6, far_future)
    assert len(since) > 3
