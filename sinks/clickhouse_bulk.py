"""Bulk load of episode events, signals and patterns into the analytics tables, decoded by
ClickHouse itself.

`kaizen rebuild` replays the whole log, where per-record Python decoding (about 25 us a record)
caps the rate near 20k events/s. Here the records' Avro bodies travel as one Avro container
(`schemas/container.py`) into a staging table, and `INSERT ... SELECT` statements fill the tables
with exactly the rows `sinks/clickhouse.py` writes for the same events (tests compare the two
paths table by table). Experiences and snapshot events are few and need Python anyway (embedding,
the snapshot log): they stay on the per-record path.

What SQL cannot compute the same way is computed in Python once per distinct value, staged in a
lookup table and joined in: error signatures (the injected `signature_of`) and patch JSON text.
A container ClickHouse cannot parse raises `BulkLoadError`; the caller then falls back to the
per-record path, which skips only the undecodable records.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from clickhouse_connect.driver.client import Client

from kaizen.errors import KaizenError
from kaizen.schemas.catalog import SchemaVersion, latest
from kaizen.sinks.clickhouse import NO_ERROR_TEXT, SignatureFn

_SCALARS = {"string": "String", "bytes": "String", "int": "Int32", "long": "Int64",
            "boolean": "Bool", "double": "Float64", "float": "Float32"}
_LOGICAL = {"uuid": "UUID", "timestamp-millis": "DateTime64(3)"}
_SETTINGS = {"allow_suspicious_variant_types": 1}
# typed NULLs: the branches of a UNION ALL must agree on every column's type
_STR, _INT = "CAST(NULL AS Nullable(String))", "CAST(NULL AS Nullable(Int64))"
_FLOAT, _BOOL = "CAST(NULL AS Nullable(Float64))", "CAST(NULL AS Nullable(Bool))"


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _error_text(column: str) -> str:
    """What a failed result is signed by: its error, or NO_ERROR_TEXT when null or empty (as in
    `sinks/clickhouse.py`, where `error or NO_ERROR_TEXT` treats both alike)."""
    return f"ifNull(nullIf({column}, ''), {_literal(NO_ERROR_TEXT)})"


class BulkLoadError(KaizenError, RuntimeError):
    """ClickHouse could not load a container; the records need the per-record path."""


def clickhouse_type(avro: Any, records: dict[str, str]) -> str:
    """The ClickHouse type its Avro input format reads `avro` into; named records are collected
    in `records` (name -> Tuple type) so queries can pick a union branch by its exact type."""
    if isinstance(avro, str):
        return _SCALARS[avro]
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) == 1 and "null" in avro:
            return f"Nullable({clickhouse_type(branches[0], records)})"
        return f"Variant({', '.join(clickhouse_type(b, records) for b in branches)})"
    kind = avro["type"]
    if avro.get("logicalType") in _LOGICAL:
        return _LOGICAL[avro["logicalType"]]
    if kind == "record":
        fields = ", ".join(f"{f['name']} {clickhouse_type(f['type'], records)}"
                           for f in avro["fields"])
        records[avro["name"]] = f"Tuple({fields})"
        return records[avro["name"]]
    if kind == "enum":
        symbols = ", ".join(f"'{s}' = {i}" for i, s in enumerate(avro["symbols"]))
        return f"Enum8({symbols})"
    if kind == "array":
        return f"Array({clickhouse_type(avro['items'], records)})"
    if kind == "map":
        return f"Map(String, {clickhouse_type(avro['values'], records)})"
    return clickhouse_type(kind, records)


class BulkLoader:
    """Loads containers of one writer schema version: the records land in a staging table, then
    `INSERT ... SELECT` statements fill the analytics tables. Subclasses name the statements and
    any lookup table the statements join (filled in Python by `_prepare`)."""

    lookup_columns = ""  # "name Type, ..." of the lookup table; empty: none

    def __init__(self, client: Client, schema: SchemaVersion) -> None:
        self.client, self.schema = client, schema
        self._records: dict[str, str] = {}
        self._columns = ", ".join(f"`{f['name']}` {clickhouse_type(f['type'], self._records)}"
                                  for f in schema.raw["fields"])
        suffix = f"{schema.name}_{uuid.uuid4().hex[:8]}"
        self._staging, self._lookup = f"_bulk_{suffix}", f"_bulk_lookup_{suffix}"

    def load(self, container: bytes) -> None:
        """Stage, prepare the lookup, insert into the tables, drop the staging tables."""
        self.client.command(f"CREATE TABLE {self._staging} ({self._columns}) ENGINE = Memory",
                            settings=_SETTINGS)
        if self.lookup_columns:
            self.client.command(f"CREATE TABLE {self._lookup} ({self.lookup_columns}) "
                                "ENGINE = Memory")
        try:
            try:
                self.client.raw_insert(self._staging, None, container, fmt="Avro")
            except Exception as error:  # the driver raises several kinds for a bad container
                raise BulkLoadError(f"ClickHouse rejected the Avro container: {error}") from error
            self._prepare()
            for statement in self._inserts():
                self.client.command(statement)
        finally:
            self.client.command(f"DROP TABLE IF EXISTS {self._staging}")
            self.client.command(f"DROP TABLE IF EXISTS {self._lookup}")

    def _prepare(self) -> None:
        """Fill the lookup table (none by default)."""

    def _inserts(self) -> list[str]:
        raise NotImplementedError

    def _lookup_rows(self, rows: list[list[Any]]) -> None:
        if rows:
            names = [c.split()[0] for c in self.lookup_columns.split(", ")]
            self.client.insert(self._lookup, rows, column_names=names)


class EpisodeBulkLoader(BulkLoader):
    """Episode events -> `episodes_v1`, `steps_v1`, `recalls_v1`; failed results are signed by
    the injected `signature_of` once per distinct (tool, error)."""

    lookup_columns = "tool String, error String, signature String"

    def __init__(self, client: Client, schema: SchemaVersion, *, signature_of: SignatureFn
                 ) -> None:
        super().__init__(client, schema)
        self._signature_of = signature_of

    def _branch(self, record: str) -> str:
        return f"variantElement(payload, {_literal(self._records[record])})"

    def _is(self, record: str) -> str:
        return f"variantType(payload) = {_literal(self._records[record])}"

    def _prepare(self) -> None:
        result = self._branch("ToolResult")
        failed = self.client.query(
            f"SELECT DISTINCT {result}.tool_name, {_error_text(f'{result}.error')} "
            f"FROM {self._staging} WHERE {self._is('ToolResult')} AND NOT {result}.ok"
        ).result_rows
        self._lookup_rows([[tool, error, self._signature_of(tool, error)]
                           for tool, error in failed])

    def _inserts(self) -> list[str]:
        started, ended = self._branch("EpisodeStarted"), self._branch("EpisodeEnded")
        call, result, recall = (self._branch("ToolCall"), self._branch("ToolResult"),
                                self._branch("Recall"))
        occurred = "toUnixTimestamp64Milli(occurred_at)"
        head = "tenant, agent, episode_id"
        return [
            f"""INSERT INTO episodes_v1 ({head}, user, snapshot_id, task, task_type,
                    agent_version, started_ms, ended_ms, outcome, reward)
                SELECT {head}, user, snapshot_id, {started}.task, {started}.task_type,
                       {started}.agent_version, {occurred}, {_INT}, {_STR}, {_FLOAT}
                FROM {self._staging} WHERE {self._is('EpisodeStarted')}
                UNION ALL
                SELECT {head}, user, snapshot_id, {_STR}, {_STR}, {_STR}, {_INT}, {occurred},
                       toString({ended}.outcome), {ended}.reward
                FROM {self._staging} WHERE {self._is('EpisodeEnded')}""",
            f"""INSERT INTO steps_v1 ({head}, call_id, user, snapshot_id, tool, arguments_json,
                    seq, called_ms, result_ms, ok, error, signature, latency_ms)
                SELECT {head}, {call}.call_id, user, snapshot_id, {call}.tool_name,
                       {call}.arguments_json, toInt64(seq), {occurred}, {_INT}, {_BOOL}, {_STR},
                       {_STR}, {_FLOAT}
                FROM {self._staging} WHERE {self._is('ToolCall')}
                UNION ALL
                SELECT {head}, r.1, user, snapshot_id, r.2, {_STR}, {_INT}, {_INT}, occurred_ms,
                       r.3, r.4, if(r.3, {_STR}, s.signature), r.6
                FROM (SELECT {head}, user, snapshot_id, {occurred} AS occurred_ms, {result} AS r,
                             r.2 AS tool_name, {_error_text('r.4')} AS error_text
                      FROM {self._staging} WHERE {self._is('ToolResult')}) AS e
                LEFT JOIN {self._lookup} AS s
                    ON e.tool_name = s.tool AND e.error_text = s.error
                SETTINGS join_use_nulls = 1""",
            f"""INSERT INTO recalls_v1 (event_id, occurred_ms, {head}, user, snapshot_id,
                    experience_ids, query)
                SELECT toString(event_id), {occurred}, {head}, user, snapshot_id,
                       {recall}.experience_ids, {recall}.query
                FROM {self._staging} WHERE {self._is('Recall')}""",
        ]


class SignalBulkLoader(BulkLoader):
    """Signals -> `signals_v1`. A patch is stored as the per-record sink's JSON text, made in
    Python once per distinct patch (JSON text formatting is not ClickHouse's to imitate)."""

    lookup_columns = "patch String, patch_json String"

    def _prepare(self) -> None:
        patches = self.client.query(
            f"SELECT DISTINCT toString(patch), patch FROM {self._staging} WHERE patch IS NOT NULL"
        ).result_rows
        self._lookup_rows([[text, _patch_json(value)] for text, value in patches])

    def _inserts(self) -> list[str]:
        return [f"""
            INSERT INTO signals_v1 (event_id, occurred_ms, tenant, agent, episode_id, kind, user,
                snapshot_id, task, task_type, tool, signature, error, arguments_json, patch_json,
                outcome, rating, correction, recalled_ids, source_partition, source_offset)
            SELECT toString(event_id), toUnixTimestamp64Milli(occurred_at), tenant, agent,
                   episode_id, toString(kind), user, snapshot_id, task, task_type, tool,
                   signature, error, arguments_json, p.patch_json, outcome, rating, correction,
                   recalled_ids, source_partition, source_offset
            FROM (SELECT *, toString(patch) AS patch_text FROM {self._staging}) AS s
            LEFT JOIN {self._lookup} AS p ON s.patch_text = p.patch
            SETTINGS join_use_nulls = 1"""]


class PatternBulkLoader(BulkLoader):
    """Pattern updates -> `patterns_v1`."""

    def _inserts(self) -> list[str]:
        return [f"""
            INSERT INTO patterns_v1 (event_id, occurred_ms, tenant, agent, tool, signature,
                window_start_ms, window_seconds, failures, sessions, users, tenants, tool_calls,
                rate, baseline_rate, first_seen_ms, last_seen_ms, status)
            SELECT toString(event_id), toUnixTimestamp64Milli(occurred_at), tenant, agent, tool,
                   signature, toUnixTimestamp64Milli(window_start), window_seconds, failures,
                   sessions, users, tenants, tool_calls, rate, baseline_rate,
                   toUnixTimestamp64Milli(first_seen), toUnixTimestamp64Milli(last_seen),
                   toString(status)
            FROM {self._staging}"""]


def _patch_json(patch: Any) -> str:
    """`sinks.clickhouse`'s patch text (`json.dumps(asdict(patch), sort_keys=True)`), from the
    patch as the driver returns a named tuple (a dict, or a tuple in the schema's field order)."""
    tool, use_tool, changes = (
        (patch["tool"], patch["use_tool"], patch["changes"]) if isinstance(patch, dict)
        else patch)
    names = ("op", "argument", "new_argument", "value_json", "rule")
    rows = [change if isinstance(change, dict) else dict(zip(names, change, strict=True))
            for change in changes]
    return json.dumps({"tool": tool, "use_tool": use_tool,
                       "changes": [{n: row[n] for n in names} for row in rows]}, sort_keys=True)


def bulk_loaders(client: Client, signature_of: SignatureFn) -> list[BulkLoader]:
    """A loader for the current version of each schema that can be loaded in bulk."""
    return [EpisodeBulkLoader(client, latest("episode_event"), signature_of=signature_of),
            SignalBulkLoader(client, latest("signal")),
            PatternBulkLoader(client, latest("pattern"))]
