"""Failure analytics over the tables that `ClickHouseSink` writes: SQL first, Python second.

Every function runs one SQL statement (shown in its docstring, with `{name:Type}` query
parameters) and returns its rows as a list of dicts. The SQL reads the deduplicating views from
`sinks/ddl.py` (`steps_final_v1`, `episodes_final_v1`, `outcomes_by_snapshot_v1`), so a user can
paste it into `clickhouse client` or chdb and get the same answer; replays never double-count.

Every function takes `tenants` (None: all): the same SQL over those tenants' rows only, which is
how the HTTP API scopes a reader's analytics to the tenants of its token (`for_tenants`).

Times are UTC epoch milliseconds, windows half-open: `since_ms <= t < until_ms`. A step's time is
the time of its tool result (a call without a result has no outcome and is not counted).

    from kaizen.sinks.clickhouse import connect
    from kaizen.sinks import analytics
    client = connect("chdb:///var/lib/kaizen/ch")
    analytics.failure_rate(client, "tool", since_ms=0, until_ms=2**62)
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any, Literal

from clickhouse_connect.driver.client import Client

from kaizen.sinks.ddl import VIEWS

Rows = list[dict[str, Any]]
GroupBy = Literal["tool", "signature", "agent", "tenant"]
END_OF_TIME = 2**62
HOUR_MS = 3_600_000

_FAILURE_RATE = """
SELECT {key} AS key, count() AS calls, countIf(NOT ok) AS failures, failures / calls AS rate
FROM steps_final_v1
WHERE ok IS NOT NULL AND result_ms >= {{since:Int64}} AND result_ms < {{until:Int64}}
GROUP BY key
ORDER BY failures DESC, key"""

_FAILURE_RATE_BY_SIGNATURE = """
SELECT f.signature AS key, f.tool AS tool, t.calls AS calls, f.failures AS failures,
       f.failures / t.calls AS rate
FROM (
    SELECT tool, signature, count() AS failures FROM steps_final_v1
    WHERE ok = false AND result_ms >= {since:Int64} AND result_ms < {until:Int64}
    GROUP BY tool, signature
) AS f
INNER JOIN (
    SELECT tool, count() AS calls FROM steps_final_v1
    WHERE ok IS NOT NULL AND result_ms >= {since:Int64} AND result_ms < {until:Int64}
    GROUP BY tool
) AS t ON f.tool = t.tool
ORDER BY failures DESC, key"""

_NEW_SIGNATURES = """
SELECT tool, signature, min(result_ms) AS first_seen_ms, count() AS failures,
       uniqExact(tenant, agent, episode_id) AS episodes, uniqExact(tenant) AS tenants,
       uniqExact(agent) AS agents
FROM steps_final_v1
WHERE ok = false AND result_ms <= {now:Int64}
GROUP BY tool, signature
HAVING first_seen_ms >= {start:Int64}
ORDER BY first_seen_ms DESC, signature"""

_LATEST_EVENT = "SELECT max(result_ms) AS latest FROM steps_final_v1"

_REPEAT_FAILURES = """
WITH fails AS (
    SELECT tenant, agent, episode_id, call_id, signature, user, ifNull(task, '') AS task,
           result_ms
    FROM steps_final_v1 WHERE ok = false
),
learned AS (
    SELECT f.tenant AS tenant, f.agent AS agent, f.signature AS signature,
           min(x.occurred_ms) AS learned_ms
    FROM (SELECT DISTINCT tenant, agent, signature FROM fails) AS f
    INNER JOIN (
        SELECT tenant, agent, trigger_signature AS signature, occurred_ms
        FROM experiences_v1 FINAL WHERE trigger_signature IS NOT NULL
    ) AS x ON f.agent = x.agent AND f.signature = x.signature
    WHERE x.tenant IN (f.tenant, '*')
    GROUP BY tenant, agent, signature
)
SELECT f.tenant AS tenant, f.agent AS agent, f.signature AS signature,
       f.episode_id AS episode_id, f.call_id AS call_id, f.user AS user, f.task AS task,
       f.result_ms AS failed_ms, l.learned_ms AS learned_ms,
       toBool(max(ifNull(p.user = f.user, false))) AS same_user,
       toBool(max(f.task != '' AND p.task = f.task)) AS same_task
FROM fails AS f
INNER JOIN learned AS l
    ON f.tenant = l.tenant AND f.agent = l.agent AND f.signature = l.signature
INNER JOIN fails AS p
    ON p.tenant = f.tenant AND p.agent = f.agent AND p.signature = f.signature
WHERE f.result_ms > l.learned_ms
  AND f.result_ms >= {since:Int64} AND f.result_ms < {until:Int64}
  AND p.result_ms < f.result_ms AND p.episode_id != f.episode_id
  AND (ifNull(p.user = f.user, false) OR (f.task != '' AND p.task = f.task))
GROUP BY tenant, agent, signature, episode_id, call_id, user, task, failed_ms, learned_ms
ORDER BY failed_ms, tenant, agent, episode_id, call_id"""

_OUTCOMES_BY_SNAPSHOT = """
SELECT snapshot_id, episodes, successes, failures, abandoned, success_rate
FROM outcomes_by_snapshot_v1
ORDER BY snapshot_id"""

_LEARNING_CURVE = """
SELECT intDiv(ended_ms, {{bucket_ms:Int64}}) * {{bucket_ms:Int64}} AS bucket_ms,
       count() AS episodes, countIf(outcome = 'success') AS successes,
       successes / episodes AS success_rate
FROM episodes_final_v1
WHERE agent = {{agent:String}} AND outcome IS NOT NULL AND ended_ms IS NOT NULL{tenant_filter}
GROUP BY bucket_ms
ORDER BY bucket_ms"""


Tenants = Set[str] | None  # None: every tenant

_IN_TENANTS = "tenant IN {tenants:Array(String)}"
#: What each source a query reads becomes when it is restricted to some tenants: a filtered
#: subquery under the same name, so every join, count and aggregate sees those tenants alone.
#: Cross-tenant lessons (tenant '*') stay visible: they apply to every tenant's failures.
_SCOPED_SOURCES = {
    "FROM steps_final_v1": f"FROM (SELECT * FROM steps_final_v1 WHERE {_IN_TENANTS}) AS sf",
    "FROM episodes_final_v1": f"FROM (SELECT * FROM episodes_final_v1 WHERE {_IN_TENANTS}) AS ef",
    "FROM experiences_v1 FINAL": (f"FROM (SELECT * FROM experiences_v1 FINAL WHERE {_IN_TENANTS}"
                                  " OR tenant = '*') AS xf"),
    "FROM outcomes_by_snapshot_v1": "FROM ({outcomes}) AS of",
}


def for_tenants(sql: str, tenants: Tenants) -> str:
    """The query over the rows of `tenants` only (the API's tenant-scoped reads); None: as is."""
    if tenants is None:
        return sql
    outcomes = VIEWS["outcomes_by_snapshot_v1"].split(" AS\n", 1)[1]
    sql = sql.replace("FROM outcomes_by_snapshot_v1",
                      _SCOPED_SOURCES["FROM outcomes_by_snapshot_v1"].format(outcomes=outcomes))
    for source, scoped in _SCOPED_SOURCES.items():
        if "{outcomes}" not in scoped:
            sql = sql.replace(source, scoped)
    return sql


def _rows(client: Client, sql: str, parameters: dict[str, Any], tenants: Tenants = None) -> Rows:
    if tenants is not None:
        sql, parameters = for_tenants(sql, tenants), {**parameters, "tenants": sorted(tenants)}
    return list(client.query(sql, parameters=parameters).named_results())


def failure_rate(
    client: Client, by: GroupBy, since_ms: int = 0, until_ms: int = END_OF_TIME,
    tenants: Tenants = None,
) -> Rows:
    """Share of failed tool results per tool, agent, tenant or error signature, in a window.

    Rows: `key, calls, failures, rate`, most failures first. By `signature`, `calls` is the number
    of results of the signature's tool in the window (the rate is "how often a call to this tool
    fails this way"), and rows also carry `tool`. For tool / agent / tenant the SQL is:

        SELECT tool AS key, count() AS calls, countIf(NOT ok) AS failures,
               failures / calls AS rate
        FROM steps_final_v1
        WHERE ok IS NOT NULL AND result_ms >= {since:Int64} AND result_ms < {until:Int64}
        GROUP BY key ORDER BY failures DESC, key

    and by signature it is `_FAILURE_RATE_BY_SIGNATURE` in this module (failures per
    (tool, signature) joined with calls per tool).
    """
    parameters = {"since": since_ms, "until": until_ms}
    if by == "signature":
        return _rows(client, _FAILURE_RATE_BY_SIGNATURE, parameters, tenants)
    if by not in ("tool", "agent", "tenant"):
        raise ValueError(f"failure_rate: unknown grouping {by!r}")
    return _rows(client, _FAILURE_RATE.format(key=by), parameters, tenants)


def latest_event_ms(client: Client) -> int | None:
    """The time of the latest tool result in the data (None when there is none): anchors
    windows to imported history instead of the wall clock."""
    rows = _rows(client, _LATEST_EVENT, {})
    latest = rows[0]["latest"] if rows else None
    return int(latest) if latest else None


def new_signatures(client: Client, hours: int, now_ms: int, since_ms: int | None = None,
                   tenants: Tenants = None) -> Rows:
    """Error signatures whose first failure anywhere in the fleet lies in the last `hours`.

    A burst of new signatures usually means an API or a page changed. Rows:
    `tool, signature, first_seen_ms, failures, episodes, tenants, agents` (counts up to `now_ms`),
    newest first. `now_ms` is passed in (event time), never read from a clock:

        SELECT tool, signature, min(result_ms) AS first_seen_ms, count() AS failures,
               uniqExact(tenant, agent, episode_id) AS episodes, uniqExact(tenant) AS tenants,
               uniqExact(agent) AS agents
        FROM steps_final_v1
        WHERE ok = false AND result_ms <= {now:Int64}
        GROUP BY tool, signature
        HAVING first_seen_ms >= {start:Int64}
        ORDER BY first_seen_ms DESC, signature

    `start` is `since_ms` when given (a window anchored to the data: `--since`), else
    `now_ms - hours`; callers pass the latest event's time as `now_ms` for imported history.
    """
    start = since_ms if since_ms is not None else now_ms - hours * 3_600_000
    return _rows(client, _NEW_SIGNATURES, {"now": now_ms, "start": start}, tenants)


def repeat_failures(
    client: Client, since_ms: int = 0, until_ms: int = END_OF_TIME, tenants: Tenants = None
) -> Rows:
    """Failures that a lesson should have prevented: evidence that the lesson is not working.

    A failed step F (tenant T, agent A, signature S) is a repeat failure when
      * an experience for S existed before F: some version of an experience with
        `trigger_signature = S`, agent A and tenant T or `'*'`, has `occurred_ms < F`'s time
        (`learned_ms` = the earliest such), and
      * the same user or the same task (non-empty) had already failed with S in an earlier,
        different episode of T / A (retries inside one episode are recoveries, not repeats).
    Only F with `since_ms <= failed_ms < until_ms` are returned. Rows: `tenant, agent, signature,
    episode_id, call_id, user, task, failed_ms, learned_ms, same_user, same_task`. SQL:
    `_REPEAT_FAILURES` in this module (`fails` and `learned` CTEs, then a self-join of `fails`).
    """
    return _rows(client, _REPEAT_FAILURES, {"since": since_ms, "until": until_ms}, tenants)


def outcomes_by_snapshot(client: Client, tenants: Tenants = None) -> Rows:
    """Episode outcomes per behavior snapshot ('' = episodes run without one).

    Rows: `snapshot_id, episodes, successes, failures, abandoned, success_rate`, counting
    episodes that have ended. It is the view `outcomes_by_snapshot_v1`:

        SELECT ifNull(snapshot_id, '') AS snapshot_id, count() AS episodes,
               countIf(outcome = 'success') AS successes,
               countIf(outcome = 'failure') AS failures,
               countIf(outcome = 'abandoned') AS abandoned,
               successes / episodes AS success_rate
        FROM episodes_final_v1 WHERE outcome IS NOT NULL GROUP BY snapshot_id
    """
    return _rows(client, _OUTCOMES_BY_SNAPSHOT, {}, tenants)


def learning_curve(
    client: Client, agent: str, bucket_seconds: int, tenant: str | None = None,
    tenants: Tenants = None,
) -> Rows:
    """Success rate of one agent's ended episodes per time bucket (by end time): is it learning?

    Rows: `bucket_ms, episodes, successes, success_rate`, oldest first; empty buckets are absent.
    Optionally restricted to one tenant. SQL:

        SELECT intDiv(ended_ms, {bucket_ms:Int64}) * {bucket_ms:Int64} AS bucket_ms,
               count() AS episodes, countIf(outcome = 'success') AS successes,
               successes / episodes AS success_rate
        FROM episodes_final_v1
        WHERE agent = {agent:String} AND outcome IS NOT NULL AND ended_ms IS NOT NULL
          [AND tenant = {tenant:String}]
        GROUP BY bucket_ms ORDER BY bucket_ms
    """
    if bucket_seconds < 1:
        raise ValueError("bucket_seconds must be >= 1")
    parameters: dict[str, Any] = {"agent": agent, "bucket_ms": bucket_seconds * 1000}
    tenant_filter = ""
    if tenant is not None:
        tenant_filter = " AND tenant = {tenant:String}"
        parameters["tenant"] = tenant
    return _rows(client, _LEARNING_CURVE.format(tenant_filter=tenant_filter), parameters,
                 tenants)
