"""Backward compatibility between two versions of a schema: can the new one read old records?

Two checks, because each catches what the other misses: a structural rule (a field the old
version lacks needs a default) and a data check (random old records decode under the new schema).
"""

from __future__ import annotations

import io
from typing import Any

import fastavro
from fastavro.utils import generate_many

from kaizen.schemas.catalog import SchemaVersion


def _records(schema: Any, found: dict[str, dict[str, Any]], ns: str = "") -> None:
    if isinstance(schema, list):
        for branch in schema:
            _records(branch, found, ns)
    elif isinstance(schema, dict):
        ns = schema.get("namespace", ns)
        if schema.get("type") == "record":
            found[f"{ns}.{schema['name']}"] = schema
            for field in schema["fields"]:
                _records(field["type"], found, ns)
        for inner in ("items", "values"):
            if inner in schema:
                _records(schema[inner], found, ns)


def structural_problems(old: SchemaVersion, new: SchemaVersion) -> list[str]:
    """Fields added to a record without a default: old records could not be read."""
    old_records: dict[str, dict[str, Any]] = {}
    new_records: dict[str, dict[str, Any]] = {}
    _records(old.raw, old_records)
    _records(new.raw, new_records)
    problems = []
    for name, record in new_records.items():
        before = {f["name"] for f in old_records.get(name, {"fields": []})["fields"]}
        if name not in old_records:
            continue
        for field in record["fields"]:
            if field["name"] not in before and "default" not in field:
                problems.append(f"{name}.{field['name']} is new and has no default")
    return problems


def data_problems(old: SchemaVersion, new: SchemaVersion, samples: int = 50) -> list[str]:
    """Random records written with `old` must decode with `new` as the reader schema."""
    problems = []
    for record in generate_many(old.parsed, samples):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, old.parsed, record)
        buffer.seek(0)
        try:
            fastavro.schemaless_reader(buffer, old.parsed, new.parsed)
        except Exception as error:  # fastavro raises several types on resolution failure
            problems.append(f"v{old.version} record unreadable by v{new.version}: {error}")
            break
    return problems


def backward_problems(old: SchemaVersion, new: SchemaVersion) -> list[str]:
    return structural_problems(old, new) + data_problems(old, new)
