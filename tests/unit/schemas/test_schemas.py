"""The schema catalog: every file well-formed, documented, compatible with its predecessor, and in
step with the Python model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from kaizen.schemas import model
from kaizen.schemas.catalog import AVRO_DIR, all_versions, latest, load_version
from kaizen.schemas.codec import CLASS_OF
from kaizen.schemas.compat import backward_problems

VERSIONS = [v for history in all_versions().values() for v in history]


def _fields(schema: object, out: list[dict[str, object]]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _fields(branch, out)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            for field in schema["fields"]:  # type: ignore[union-attr]
                out.append(field)
                _fields(field["type"], out)
        for inner in ("items", "values"):
            if inner in schema:
                _fields(schema[inner], out)


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.path.name)
def test_every_field_has_a_doc_and_every_schema_a_namespace(version) -> None:
    assert version.raw.get("namespace")
    fields: list[dict[str, object]] = []
    _fields(version.raw, fields)
    undocumented = [f["name"] for f in fields if not f.get("doc")]
    assert undocumented == []


def test_every_event_has_the_common_fields() -> None:
    for name in all_versions():
        names = {f["name"] for f in latest(name).raw["fields"]}
        assert {"event_id", "occurred_at", "tenant", "agent"} <= names, name


@pytest.mark.parametrize("name", sorted(all_versions()))
def test_each_version_reads_its_predecessors_records(name: str) -> None:
    history = all_versions()[name]
    for old, new in zip(history, history[1:], strict=False):
        assert backward_problems(old, new) == []


def test_the_compatibility_check_catches_a_new_field_without_default(tmp_path: Path) -> None:
    old = latest("dead_letter")
    raw = json.loads(old.path.read_text())
    raw["fields"].append({"name": "severity", "type": "string", "doc": "x"})
    new_path = tmp_path / f"dead_letter.v{old.version + 1}.avsc"
    new_path.write_text(json.dumps(raw))
    problems = backward_problems(old, load_version(new_path))
    assert any("severity" in p for p in problems)


def _record_fields(raw: dict[str, object], record_name: str) -> set[str]:
    stack: list[object] = [raw]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("type") == "record" and node.get("name") == record_name:
                return {f["name"] for f in node["fields"]}  # type: ignore[union-attr]
            if node.get("type") == "record":
                stack.extend(f["type"] for f in node["fields"])  # type: ignore[union-attr]
            stack.extend(node[k] for k in ("items", "values") if k in node)
    raise AssertionError(f"{record_name} not found")


def test_the_python_model_matches_the_newest_schemas() -> None:
    classes = [c for c in vars(model).values() if dataclasses.is_dataclass(c)]
    for cls in classes:
        tag = f'"name": "{cls.__name__}"'
        owners = [latest(n).raw for n in all_versions() if tag in json.dumps(latest(n).raw)]
        assert owners, f"{cls.__name__} has no Avro record"
        fields = {f.name for f in dataclasses.fields(cls)}
        assert fields == _record_fields(owners[0], cls.__name__), cls.__name__
    assert set(CLASS_OF) == set(all_versions())


def test_shared_records_are_defined_identically_everywhere() -> None:
    patch_in = [
        json.dumps(latest(n).raw).count('"name": "ToolCallPatch"') for n in ("signal", "experience")
    ]
    assert patch_in == [1, 1]
    signal = _record_fields(latest("signal").raw, "ArgumentChange")
    experience = _record_fields(latest("experience").raw, "ArgumentChange")
    assert signal == experience


def test_schema_files_live_in_the_catalog_dir() -> None:
    assert sorted(p.name for p in AVRO_DIR.glob("*.avsc")) == sorted(v.path.name for v in VERSIONS)
