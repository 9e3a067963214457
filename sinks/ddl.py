"""ClickHouse DDL for Kaizen's analytics tables, applied idempotently by `ClickHouseSink.setup`.

Every table name carries a version suffix (`_v1`): a change of columns or keys gets a new name and a
rebuild by replay, never an in-place ALTER that half-applies (STYLE item 7).

Idempotence: the Kafka consumer delivers at least once, so the same event may be written twice.
  * Fact tables (`signals_v1`, `patterns_v1`, `experiences_v1`, `snapshot_events_v1`,
    `recalls_v1`) are ReplacingMergeTree whose sorting key ends with the `event_id`: a duplicate
    row collapses into its twin at merge time, and `FINAL` collapses it at read time.
  * `episodes_v1` and `steps_v1` are assembled from several events (started + ended; tool call +
    tool result) that may arrive in different batches. They are AggregatingMergeTree with
    `SimpleAggregateFunction(any | min | max, ...)` columns: each event fills its own columns and
    leaves the others NULL; `any` skips NULLs, so `FINAL` yields one row per episode / call, and a
    duplicated event contributes the same value again (no double count).
Always read these tables with `FINAL` (or through the `*_final_v1` views below).

Times are UTC epoch milliseconds (`*_ms Int64`, exactly the event's `occurred_at`) with a
`DateTime64(3, 'UTC')` ALIAS column next to each for people typing SQL.
"""

from __future__ import annotations

_ANY_STR = "SimpleAggregateFunction(any, Nullable(String))"
_MIN_MS = "SimpleAggregateFunction(min, Nullable(Int64))"

TABLES: dict[str, str] = {
    "episodes_v1": f"""
CREATE TABLE IF NOT EXISTS episodes_v1 (
    tenant String,
    agent String,
    episode_id String,
    user {_ANY_STR},
    snapshot_id {_ANY_STR},
    task {_ANY_STR},
    task_type {_ANY_STR},
    agent_version {_ANY_STR},
    started_ms {_MIN_MS},
    ended_ms SimpleAggregateFunction(max, Nullable(Int64)),
    outcome {_ANY_STR},
    reward SimpleAggregateFunction(any, Nullable(Float64)),
    started_at DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(started_ms, 'UTC'),
    ended_at DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(ended_ms, 'UTC')
) ENGINE = AggregatingMergeTree ORDER BY (tenant, agent, episode_id)""",
    "steps_v1": f"""
CREATE TABLE IF NOT EXISTS steps_v1 (
    tenant String,
    agent String,
    episode_id String,
    call_id String,
    user {_ANY_STR},
    snapshot_id {_ANY_STR},
    tool {_ANY_STR},
    arguments_json {_ANY_STR},
    seq SimpleAggregateFunction(min, Nullable(Int64)),
    called_ms {_MIN_MS},
    result_ms {_MIN_MS},
    ok SimpleAggregateFunction(any, Nullable(Bool)),
    error {_ANY_STR},
    signature {_ANY_STR},
    latency_ms SimpleAggregateFunction(any, Nullable(Float64)),
    called_at DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(called_ms, 'UTC'),
    result_at DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(result_ms, 'UTC')
) ENGINE = AggregatingMergeTree ORDER BY (tenant, agent, episode_id, call_id)""",
    "signals_v1": """
CREATE TABLE IF NOT EXISTS signals_v1 (
    event_id String,
    occurred_ms Int64,
    tenant String,
    agent String,
    episode_id String,
    kind LowCardinality(String),
    user Nullable(String),
    snapshot_id Nullable(String),
    task String,
    task_type String,
    tool Nullable(String),
    signature Nullable(String),
    error Nullable(String),
    arguments_json Nullable(String),
    patch_json Nullable(String),
    outcome Nullable(String),
    rating Nullable(Float64),
    correction Nullable(String),
    recalled_ids Array(String),
    source_partition Int32,
    source_offset Int64,
    occurred_at DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(occurred_ms, 'UTC')
) ENGINE = ReplacingMergeTree ORDER BY (tenant, agent, event_id)""",
    "patterns_v1": """
CREATE TABLE IF NOT EXISTS patterns_v1 (
    event_id String,
    occurred_ms Int64,
    tenant String,
    agent String,
    tool String,
    signature String,
    window_start_ms Int64,
    window_seconds Int64,
    failures Int64,
    sessions Int64,
    users Int64,
    tenants Int64,
    tool_calls Int64,
    rate Float64,
    baseline_rate Float64,
    first_seen_ms Int64,
    last_seen_ms Int64,
    status LowCardinality(String),
    occurred_at DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(occurred_ms, 'UTC')
) ENGINE = ReplacingMergeTree ORDER BY (tenant, agent, tool, signature, event_id)""",
    "experiences_v1": """
CREATE TABLE IF NOT EXISTS experiences_v1 (
    event_id String,
    occurred_ms Int64,
    tenant String,
    agent String,
    experience_id String,
    version Int64,
    kind LowCardinality(String),
    trigger_signature Nullable(String),
    trigger_task_type String,
    trigger_example_task String,
    guidance String,
    evidence_episode_ids Array(String),
    evidence_partitions Array(Int32),
    evidence_offsets Array(Int64),
    evidence_users Array(Nullable(String)),
    support_episodes Int64,
    support_users Int64,
    user Nullable(String),
    tool Nullable(String),
    patch_json Nullable(String),
    helpful Int64,
    harmful Int64,
    status LowCardinality(String),
    extractor String,
    occurred_at DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(occurred_ms, 'UTC')
) ENGINE = ReplacingMergeTree ORDER BY (tenant, agent, experience_id, version, event_id)""",
    "snapshot_events_v1": """
CREATE TABLE IF NOT EXISTS snapshot_events_v1 (
    event_id String,
    occurred_ms Int64,
    tenant String,
    agent String,
    snapshot_id String,
    action LowCardinality(String),
    parent_id Nullable(String),
    member_ids Array(String),
    member_hashes Array(String),
    added Array(String),
    removed Array(String),
    evaluator Nullable(String),
    verdict Nullable(String),
    scores Map(String, Float64),
    edge_cases Array(String),
    actor Nullable(String),
    reason Nullable(String),
    occurred_at DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(occurred_ms, 'UTC')
) ENGINE = ReplacingMergeTree ORDER BY (tenant, agent, snapshot_id, event_id)""",
    "recalls_v1": """
CREATE TABLE IF NOT EXISTS recalls_v1 (
    event_id String,
    occurred_ms Int64,
    tenant String,
    agent String,
    episode_id String,
    user Nullable(String),
    snapshot_id Nullable(String),
    experience_ids Array(String),
    query String,
    occurred_at DateTime64(3, 'UTC') ALIAS fromUnixTimestamp64Milli(occurred_ms, 'UTC')
) ENGINE = ReplacingMergeTree ORDER BY (tenant, agent, episode_id, event_id)""",
}

# Views: the deduplicated, joined facts that the analytics queries (and users) start from.
VIEWS: dict[str, str] = {
    "episodes_final_v1": """
CREATE VIEW IF NOT EXISTS episodes_final_v1 AS
SELECT tenant, agent, episode_id, user, snapshot_id, task, task_type, agent_version,
       started_ms, ended_ms, outcome, reward
FROM episodes_v1 FINAL""",
    "steps_final_v1": """
CREATE VIEW IF NOT EXISTS steps_final_v1 AS
SELECT s.tenant AS tenant, s.agent AS agent, s.episode_id AS episode_id, s.call_id AS call_id,
       s.user AS user, s.snapshot_id AS snapshot_id, s.tool AS tool,
       s.arguments_json AS arguments_json, s.seq AS seq, s.called_ms AS called_ms,
       s.result_ms AS result_ms, s.ok AS ok, s.error AS error, s.signature AS signature,
       s.latency_ms AS latency_ms, e.task AS task
FROM (SELECT * FROM steps_v1 FINAL) AS s
LEFT JOIN (SELECT tenant, agent, episode_id, task FROM episodes_v1 FINAL) AS e
    ON s.tenant = e.tenant AND s.agent = e.agent AND s.episode_id = e.episode_id
SETTINGS join_use_nulls = 1""",
    "experiences_latest_v1": """
CREATE VIEW IF NOT EXISTS experiences_latest_v1 AS
SELECT tenant, agent, experience_id, l.1 AS version, l.2 AS kind, l.3 AS trigger_signature,
       l.4 AS guidance, l.5 AS status, l.6 AS helpful, l.7 AS harmful, first_seen_ms
FROM (
    SELECT tenant, agent, experience_id, min(occurred_ms) AS first_seen_ms,
           argMax(tuple(version, kind, trigger_signature, guidance, status, helpful, harmful),
                  tuple(version, occurred_ms, event_id)) AS l
    FROM experiences_v1 FINAL
    GROUP BY tenant, agent, experience_id
)""",
    "outcomes_by_snapshot_v1": """
CREATE VIEW IF NOT EXISTS outcomes_by_snapshot_v1 AS
SELECT ifNull(snapshot_id, '') AS snapshot_id,
       count() AS episodes,
       countIf(outcome = 'success') AS successes,
       countIf(outcome = 'failure') AS failures,
       countIf(outcome = 'abandoned') AS abandoned,
       successes / episodes AS success_rate
FROM episodes_final_v1
WHERE outcome IS NOT NULL
GROUP BY snapshot_id""",
}


def statements() -> list[str]:
    """All DDL in dependency order (tables before the views that read them)."""
    return [*TABLES.values(), *VIEWS.values()]
