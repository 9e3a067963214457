"""ClickHouse sink: Kaizen events -> the analytics tables of `sinks/ddl.py`.

    from kaizen.sinks.clickhouse import ClickHouseSink
    sink = ClickHouseSink("chdb:///var/lib/kaizen/ch", signature_of=error_signature)
    # the first argument may also be "http://host:8123" or a clickhouse-connect client
    sink.setup()
    sink.add(event, ("kaizen.episodes", 0, 41)); offsets = sink.flush()

What goes where:
  * `EpisodeEvent`: EpisodeStarted / EpisodeEnded -> `episodes_v1`; ToolCall / ToolResult ->
    `steps_v1` (joined on call_id by the table engine; a failed result gets its error signature
    from the injected `signature_of`, which the wiring sets to
    `kaizen.processors.learning.signatures.error_signature`, the function the extractor uses. It is
    injected, not imported, because the import-linter "Layers" contract keeps `sinks` and
    `processors` independent); Recall ->
    `recalls_v1`. LlmCall and Feedback payloads are not stored here (Feedback reaches ClickHouse as
    a Signal from the extractor).
  * `Signal`, `Pattern`, `Experience`, `SnapshotEvent` -> their `*_v1` table, one row per event.
  * `DeadLetter` is skipped (the dead-letter topic is its own record); any other type raises.
Inserts are column-oriented, one `client.insert` per table per batch. Idempotence comes from the
table engines (see `sinks/ddl.py`), so a re-delivered batch changes no count.

Embedded chdb: clickhouse-connect (>= 0.10) takes `chdb:///abs/path` (or `chdb://memory`) and runs
the engine in-process. chdb hosts ONE engine path per process: any number of clients may share
that path, but opening a client on another path raises while one is open. No cache is needed on our
side; a sink built from a DSN owns its client and closes it in `close()`, so tests can move from one
temporary directory to the next.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver import options
from clickhouse_connect.driver.client import Client

from kaizen.schemas import model
from kaizen.sinks import ddl
from kaizen.sinks.base import Sink

Row = list[Any]
SignatureFn = Callable[[str, str], str]
"""(tool, error text) -> error signature; pass `signatures.error_signature`."""

NO_ERROR_TEXT = "(no error text)"
"""What a failed result without error text is signed as (equals `learning.episodes`)."""

COLUMNS: dict[str, tuple[str, ...]] = {
    "episodes_v1": ("tenant", "agent", "episode_id", "user", "snapshot_id", "task", "task_type",
                    "agent_version", "started_ms", "ended_ms", "outcome", "reward"),
    "steps_v1": ("tenant", "agent", "episode_id", "call_id", "user", "snapshot_id", "tool",
                 "arguments_json", "seq", "called_ms", "result_ms", "ok", "error", "signature",
                 "latency_ms"),
    "recalls_v1": ("event_id", "occurred_ms", "tenant", "agent", "episode_id", "user",
                   "snapshot_id", "experience_ids", "query"),
    "signals_v1": ("event_id", "occurred_ms", "tenant", "agent", "episode_id", "kind", "user",
                   "snapshot_id", "task", "task_type", "tool", "signature", "error",
                   "arguments_json", "patch_json", "outcome", "rating", "correction",
                   "recalled_ids", "source_partition", "source_offset"),
    "patterns_v1": ("event_id", "occurred_ms", "tenant", "agent", "tool", "signature",
                    "window_start_ms", "window_seconds", "failures", "sessions", "users",
                    "tenants", "tool_calls", "rate", "baseline_rate", "first_seen_ms",
                    "last_seen_ms", "status"),
    "experiences_v1": ("event_id", "occurred_ms", "tenant", "agent", "experience_id", "version",
                       "kind", "trigger_signature", "trigger_task_type", "trigger_example_task",
                       "guidance", "evidence_episode_ids", "evidence_partitions",
                       "evidence_offsets", "evidence_users", "support_episodes", "support_users",
                       "user", "tool", "patch_json", "helpful", "harmful", "status", "extractor"),
    "snapshot_events_v1": ("event_id", "occurred_ms", "tenant", "agent", "snapshot_id", "action",
                           "parent_id", "member_ids", "member_hashes", "added", "removed",
                           "evaluator", "verdict", "scores", "edge_cases", "actor", "reason"),
}


def connect(dsn: str) -> Client:
    """A clickhouse-connect client for `chdb:///path`, `chdb://memory` or `http(s)://...`."""
    return clickhouse_connect.get_client(dsn=dsn)


class ClickHouseSink(Sink[model.Event]):
    """Batched, idempotent writer of Kaizen events into ClickHouse (embedded chdb or a server)."""

    def __init__(
        self,
        client_or_dsn: Client | str,
        *,
        signature_of: SignatureFn,
        max_batch: int = 5000,
        max_age_s: float = 1.0,
    ) -> None:
        super().__init__(max_batch=max_batch, max_age_s=max_age_s)
        self._signature_of = signature_of
        self._owns_client = isinstance(client_or_dsn, str)
        self.client: Client = (
            connect(client_or_dsn) if isinstance(client_or_dsn, str) else client_or_dsn
        )

    def setup(self) -> None:
        """Create tables and views if missing; safe to run at every start."""
        for statement in ddl.statements():
            self.client.command(statement)
        # the driver imports pandas on its first insert (~0.4 s): pay it here, not in a flush
        options.pd  # noqa: B018

    def write(self, batch: Sequence[model.Event]) -> None:
        """One column-oriented insert per table. Raises on any failure (do not commit then)."""
        for table, rows in rows_by_table(batch, self._signature_of).items():
            if rows:
                self.client.insert(table, rows, column_names=list(COLUMNS[table]))

    def close(self) -> None:
        """Close the client if this sink created it (frees the chdb engine path)."""
        if self._owns_client:
            self.client.close()


def rows_by_table(
    events: Sequence[model.Event], signature_of: SignatureFn
) -> dict[str, list[Row]]:
    """Route each event to the table it feeds, as rows in `COLUMNS` order."""
    out: dict[str, list[Row]] = defaultdict(list)
    for event in events:
        routed = _route(event, signature_of)
        if routed is not None:
            table, row = routed
            out[table].append(row)
    return dict(out)


def _route(event: model.Event, signature_of: SignatureFn) -> tuple[str, Row] | None:
    if isinstance(event, model.EpisodeEvent):
        return _episode_event(event, signature_of)
    if isinstance(event, model.Signal):
        return "signals_v1", _signal(event)
    if isinstance(event, model.Pattern):
        return "patterns_v1", _pattern(event)
    if isinstance(event, model.Experience):
        return "experiences_v1", _experience(event)
    if isinstance(event, model.SnapshotEvent):
        return "snapshot_events_v1", _snapshot(event)
    if isinstance(event, model.DeadLetter):
        return None
    raise TypeError(f"ClickHouseSink cannot store {type(event).__name__}")


def _episode_event(e: model.EpisodeEvent, signature_of: SignatureFn) -> tuple[str, Row] | None:
    p = e.payload
    head = [e.tenant, e.agent, e.episode_id]
    if isinstance(p, model.EpisodeStarted):
        return "episodes_v1", [*head, e.user, e.snapshot_id, p.task, p.task_type,
                               p.agent_version, e.occurred_at, None, None, None]
    if isinstance(p, model.EpisodeEnded):
        return "episodes_v1", [*head, e.user, e.snapshot_id, None, None, None, None,
                               e.occurred_at, p.outcome, p.reward]
    if isinstance(p, model.ToolCall):
        return "steps_v1", [*head, p.call_id, e.user, e.snapshot_id, p.tool_name,
                            p.arguments_json, e.seq, e.occurred_at, None, None, None, None, None]
    if isinstance(p, model.ToolResult):
        signature = None if p.ok else signature_of(p.tool_name, p.error or NO_ERROR_TEXT)
        return "steps_v1", [*head, p.call_id, e.user, e.snapshot_id, p.tool_name, None, None,
                            None, e.occurred_at, p.ok, p.error, signature, p.latency_ms]
    if isinstance(p, model.Recall):
        return "recalls_v1", [e.event_id, e.occurred_at, *head, e.user, e.snapshot_id,
                              list(p.experience_ids), p.query]
    return None  # LlmCall, Feedback: not stored by this sink


def _patch_json(patch: model.ToolCallPatch | None) -> str | None:
    return None if patch is None else json.dumps(asdict(patch), sort_keys=True)


def _signal(s: model.Signal) -> Row:
    return [s.event_id, s.occurred_at, s.tenant, s.agent, s.episode_id, s.kind, s.user,
            s.snapshot_id, s.task, s.task_type, s.tool, s.signature, s.error, s.arguments_json,
            _patch_json(s.patch), s.outcome, s.rating, s.correction, list(s.recalled_ids),
            s.source_partition, s.source_offset]


def _pattern(p: model.Pattern) -> Row:
    return [p.event_id, p.occurred_at, p.tenant, p.agent, p.tool, p.signature, p.window_start,
            p.window_seconds, p.failures, p.sessions, p.users, p.tenants, p.tool_calls, p.rate,
            p.baseline_rate, p.first_seen, p.last_seen, p.status]


def _experience(x: model.Experience) -> Row:
    ev = x.evidence
    return [x.event_id, x.occurred_at, x.tenant, x.agent, x.experience_id, x.version, x.kind,
            x.trigger.signature, x.trigger.task_type, x.trigger.example_task, x.guidance,
            [e.episode_id for e in ev], [e.partition for e in ev], [e.offset for e in ev],
            [e.user for e in ev], x.support_episodes, x.support_users, x.user, x.tool,
            _patch_json(x.patch), x.helpful, x.harmful, x.status, x.extractor]


def _snapshot(s: model.SnapshotEvent) -> Row:
    return [s.event_id, s.occurred_at, s.tenant, s.agent, s.snapshot_id, s.action, s.parent_id,
            [m.experience_id for m in s.members], [m.content_hash for m in s.members],
            list(s.added), list(s.removed), s.evaluator, s.verdict, dict(s.scores),
            list(s.edge_cases), s.actor, s.reason]
