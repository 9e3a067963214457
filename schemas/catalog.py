"""The Avro schemas kept in `schemas/avro/` as `<name>.v<N>.avsc`, every version ever released.

The newest version of a name is the one writers use; older versions stay so that records written
years ago can still be read (their fingerprint finds their writer schema).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

AVRO_DIR = Path(__file__).parent / "avro"
_FILE_NAME = re.compile(r"^(?P<name>[a-z_]+)\.v(?P<version>\d+)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    """One released version of one schema."""

    name: str
    version: int
    path: Path
    raw: dict[str, Any]
    parsed: Any
    canonical: str
    fingerprint: bytes  # CRC-64-AVRO, little-endian, as single-object encoding wants
    wire: Any  # `parsed` without logical types: what the codec reads and writes with

    @property
    def full_name(self) -> str:
        return f"{self.raw['namespace']}.{self.raw['name']}"


def load_version(path: Path) -> SchemaVersion:
    """Parse one `.avsc` file of the catalog."""
    match = _FILE_NAME.match(path.name)
    if not match:
        raise ValueError(f"{path.name}: schema files are named <name>.v<N>.avsc")
    raw = json.loads(path.read_text())
    parsed = fastavro.parse_schema(raw)
    canonical = fastavro.schema.to_parsing_canonical_form(parsed)
    return SchemaVersion(
        wire=fastavro.parse_schema(without_logical_types(raw)),
        name=match["name"],
        version=int(match["version"]),
        path=path,
        raw=raw,
        parsed=parsed,
        canonical=canonical,
        fingerprint=bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")),
    )


def without_logical_types(schema: Any) -> Any:
    """The schema with its `logicalType` annotations dropped: the same bytes on the wire (a
    uuid is a string, a timestamp-millis a long), but fastavro then reads a string and an int
    instead of building a UUID and a datetime that the model turns back into them. That was
    two thirds of decoding an episode event."""
    if isinstance(schema, dict):
        return {k: without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [without_logical_types(v) for v in schema]
    return schema


@cache
def all_versions(directory: Path = AVRO_DIR) -> dict[str, list[SchemaVersion]]:
    """Every schema name with its versions, oldest first."""
    versions: dict[str, list[SchemaVersion]] = {}
    for path in sorted(directory.glob("*.avsc")):
        version = load_version(path)
        versions.setdefault(version.name, []).append(version)
    for history in versions.values():
        history.sort(key=lambda v: v.version)
    return versions


def latest(name: str) -> SchemaVersion:
    """The version writers use now."""
    return all_versions()[name][-1]


def record_full_names(schema: Any, namespace: str = "") -> dict[str, str]:
    """Short name -> full name of every named record in a schema (dataclasses use short names)."""
    names: dict[str, str] = {}
    if isinstance(schema, list):
        for branch in schema:
            names.update(record_full_names(branch, namespace))
    elif isinstance(schema, dict):
        ns = schema.get("namespace", namespace)
        if schema.get("type") == "record":
            names[schema["name"]] = f"{ns}.{schema['name']}" if ns else schema["name"]
            for f in schema["fields"]:
                names.update(record_full_names(f["type"], ns))
        elif schema.get("type") == "array":
            names.update(record_full_names(schema["items"], ns))
        elif schema.get("type") == "map":
            names.update(record_full_names(schema["values"], ns))
    return names
