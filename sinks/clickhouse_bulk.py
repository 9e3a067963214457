"""Bulk load of episode events into the analytics tables, decoded by ClickHouse itself.

`kaizen rebuild` replays the whole episode log, where per-record Python decoding (about 25 us a
record) caps the rate near 20k events/s. Here the records' Avro bodies travel as one Avro container
(`schemas/container.py`) into a staging table, and `INSERT ... SELECT` statements fill
`episodes_v1`, `steps_v1` and `recalls_v1` with exactly the rows `sinks/clickhouse.py` writes for
the same events (a test compares the two paths table by table).

Error signatures are the one thing SQL cannot compute the same way: the distinct failed
(tool, error) pairs of a load are signed in Python by the injected `signature_of`, staged, and
joined in. A container ClickHouse cannot parse raises `BulkLoadError`; the caller then falls back
to the per-record path, which dead-letters nothing and skips only the undecodable records.
"""

from __future__ import annotations

import uuid
from typing import Any

from clickhouse_connect.driver.client import Client

from schemas.catalog import SchemaVersion
from sinks.clickhouse import NO_ERROR_TEXT, SignatureFn

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


class BulkLoadError(RuntimeError):
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


class EpisodeBulkLoader:
    """Loads containers of episode events (one writer schema version) into the analytics tables."""

    def __init__(self, client: Client, schema: SchemaVersion, *, signature_of: SignatureFn
                 ) -> None:
        self.client, self.schema, self._signature_of = client, schema, signature_of
        self._records: dict[str, str] = {}
        self._columns = ", ".join(f"`{f['name']}` {clickhouse_type(f['type'], self._records)}"
                                  for f in schema.raw["fields"])
        suffix = uuid.uuid4().hex[:8]
        self._staging, self._signatures = f"_bulk_events_{suffix}", f"_bulk_signatures_{suffix}"

    def load(self, container: bytes) -> None:
        """Stage, sign, insert into the three tables, drop the staging tables."""
        self.client.command(f"CREATE TABLE {self._staging} ({self._columns}) ENGINE = Memory",
                            settings=_SETTINGS)
        self.client.command(f"CREATE TABLE {self._signatures} (tool String, error String, "
                            "signature String) ENGINE = Memory")
        try:
            try:
                self.client.raw_insert(self._staging, None, container, fmt="Avro")
            except Exception as error:  # the driver raises several kinds for a bad container
                raise BulkLoadError(f"ClickHouse rejected the Avro container: {error}") from error
            self._stage_signatures()
            for statement in self._inserts():
                self.client.command(statement)
        finally:
            self.client.command(f"DROP TABLE IF EXISTS {self._staging}")
            self.client.command(f"DROP TABLE IF EXISTS {self._signatures}")

    def _branch(self, record: str) -> str:
        return f"variantElement(payload, {_literal(self._records[record])})"

    def _is(self, record: str) -> str:
        return f"variantType(payload) = {_literal(self._records[record])}"

    def _stage_signatures(self) -> None:
        result = self._branch("ToolResult")
        failed = self.client.query(
            f"SELECT DISTINCT {result}.tool_name, {_error_text(f'{result}.error')} "
            f"FROM {self._staging} WHERE {self._is('ToolResult')} AND NOT {result}.ok"
        ).result_rows
        rows = [[tool, error, self._signature_of(tool, error)] for tool, error in failed]
        if rows:
            self.client.insert(self._signatures, rows, column_names=["tool", "error", "signature"])

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
                LEFT JOIN {self._signatures} AS s
                    ON e.tool_name = s.tool AND e.error_text = s.error
                SETTINGS join_use_nulls = 1""",
            f"""INSERT INTO recalls_v1 (event_id, occurred_ms, {head}, user, snapshot_id,
                    experience_ids, query)
                SELECT toString(event_id), {occurred}, {head}, user, snapshot_id,
                       {recall}.experience_ids, {recall}.query
                FROM {self._staging} WHERE {self._is('Recall')}""",
        ]
