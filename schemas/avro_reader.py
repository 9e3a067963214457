"""Avro binary readers compiled from a schema into Python source, one function per record: the
mirror of `avro_writer.py`.

fastavro interprets the schema on every call and returns dicts that `records.from_record` then
turns into model objects: ~12 us an episode event, and the processors decode every episode event
and again every tool result and signal they forward to themselves. A compiled reader walks the
bytes and builds the model objects straight away (~5 us).

It is strict rather than forgiving: it returns an object only when every value it read was
well-formed (varints within 64 bits and ints within 32, lengths and counts not negative and
within the data, enum and union indexes in range, booleans 0 or 1, text valid UTF-8, a block
count never negative: Kaizen never writes the sized form); on anything else it raises,
and the codec decodes the record with fastavro instead, which decides (an event or
`DecodeError`). So whatever the bytes, the codec's answer is fastavro's (a property test checks
it on random and corrupted bodies of every kind). Trailing bytes are ignored, as fastavro does.

Supported: records, enums, arrays, maps, unions, string, bytes, int, long, float, double,
boolean, null; `compile_reader` raises `Unsupported` for anything else (fixed), and the codec
keeps fastavro for it. Reading with another writer version (schema resolution) is not done
here either: the codec uses fastavro for it.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from typing import Any

from kaizen.errors import KaizenError
from kaizen.schemas.avro_writer import SchemaCompiler, Unsupported, full_name

__all__ = ["Malformed", "Unsupported", "compile_reader", "read_long"]

_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


class Malformed(KaizenError, ValueError):
    """A body the compiled reader does not read as well-formed: fastavro decides about it."""


def read_long(data: bytes, at: int) -> tuple[int, int]:
    """The zigzag varint at `at` and the position after it; a varint past 10 bytes or 64 bits
    raises (fastavro would read it in wrapping C arithmetic, or refuse it)."""
    byte = data[at]
    n, shift = byte & 0x7F, 7
    at += 1
    while byte & 0x80:
        if shift >= 70:
            raise Malformed("varint longer than 10 bytes")
        byte = data[at]
        at += 1
        n |= (byte & 0x7F) << shift
        shift += 7
    if n >> 64:
        raise Malformed("varint past 64 bits")
    return (n >> 1) ^ -(n & 1), at


_SCOPE: dict[str, Any] = {
    "read_long": read_long, "Malformed": Malformed,
    "unpack_double": struct.Struct("<d").unpack_from,
    "unpack_float": struct.Struct("<f").unpack_from,
}


def compile_reader(schema: dict[str, Any], classes: dict[str, type]
                   ) -> Callable[[bytes, int], Any]:
    """A function from a body (and the position it starts at) to the model object of `schema`
    (a record without logical types), raising on anything not well-formed. `classes` gives the
    model class of each record name (the short name)."""
    compiler = _Compiler(classes)
    entry = compiler.record(schema, "")
    namespace: dict[str, Any] = dict(_SCOPE, **compiler.constants)
    exec("\n".join(compiler.lines), namespace)  # noqa: S102 - source generated from our schemas
    read = namespace[entry]

    def decode(data: bytes, at: int) -> Any:
        return read(data, at)[0]

    return decode


class _Compiler(SchemaCompiler):
    """Emits one `def r_<name>(d, p)` per record, returning (object, position after it); each
    field is a few inlined statements over the local position `p` (`L` is the data's length)."""

    def record(self, schema: dict[str, Any], namespace: str) -> str:
        full = full_name(schema, namespace)
        if full in self.functions:
            return self.functions[full]
        self.named[full] = schema
        name = f"r_{full.replace('.', '_')}"
        self.functions[full] = name
        cls = self.classes.get(schema["name"])
        if cls is None or not dataclasses.is_dataclass(cls):
            raise Unsupported(f"no model class for record {full}")
        attributes = {f.name for f in dataclasses.fields(cls)}
        space = full.rsplit(".", 1)[0] if "." in full else ""
        body, kept = ["    L = len(d)"], []
        for field in schema["fields"]:
            v = self._var()
            body += self.value(field["type"], v, space, 1)
            if field["name"] in attributes:  # from_record leaves out what the model lacks
                kept.append(f"{field['name']}={v}")
        constructor = self._constant(cls)
        self.lines += [f"def {name}(d, p):", *body,
                       f"    return {constructor}({', '.join(kept)}), p", ""]
        return name

    def value(self, schema: Any, v: str, namespace: str, depth: int) -> list[str]:
        """Statements that read one `schema` value at `p` into the variable `v` and move `p`
        past it, indented `depth` levels."""
        pad = "    " * depth
        schema = self._resolve(schema, namespace)
        if isinstance(schema, list):
            return self.union(schema, v, namespace, depth)
        kind = schema if isinstance(schema, str) else schema["type"]
        if kind == "string":
            return [*self._bytes(v, pad), f"{pad}{v} = {v}.decode()"]
        if kind == "bytes":
            return self._bytes(v, pad)
        if kind == "long":
            return self._long(v, pad)
        if kind == "int":
            return [*self._long(v, pad),
                    f"{pad}if not {_INT_MIN} <= {v} <= {_INT_MAX}:",
                    f"{pad}    raise Malformed('int out of 32 bits')"]
        if kind == "double":
            return [f"{pad}{v} = unpack_double(d, p)[0]", f"{pad}p += 8"]
        if kind == "float":
            return [f"{pad}{v} = unpack_float(d, p)[0]", f"{pad}p += 4"]
        if kind == "boolean":
            return [f"{pad}{v} = d[p]", f"{pad}p += 1", f"{pad}if {v} > 1:",
                    f"{pad}    raise Malformed('boolean byte')", f"{pad}{v} = {v} == 1"]
        if kind == "null":
            return [f"{pad}{v} = None"]
        if kind == "record":
            return [f"{pad}{v}, p = {self.record(schema, namespace)}(d, p)"]
        if kind == "enum":
            self.named[full_name(schema, namespace)] = schema
            symbols = self._constant(tuple(schema["symbols"]))
            i = self._var()
            return [*self._long(i, pad), f"{pad}if not 0 <= {i} < {len(schema['symbols'])}:",
                    f"{pad}    raise Malformed('enum index')", f"{pad}{v} = {symbols}[{i}]"]
        if kind == "array":
            item = self._var()
            return [f"{pad}{v} = []",
                    *self._blocks(pad, self.value(schema["items"], item, namespace, depth + 2),
                                  f"{v}.append({item})")]
        if kind == "map":
            key, item = self._var(), self._var()
            return [f"{pad}{v} = {{}}",
                    *self._blocks(pad, [*self.value("string", key, namespace, depth + 2),
                                        *self.value(schema["values"], item, namespace, depth + 2)],
                                  f"{v}[{key}] = {item}")]
        raise Unsupported(f"Avro type {kind!r}")

    def union(self, branches: list[Any], v: str, namespace: str, depth: int) -> list[str]:
        """The branch index, then that branch: fastavro's value, as the model holds it (a
        record branch is its model object, whichever union it is in)."""
        pad = "    " * depth
        i = self._var()
        lines = self._long(i, pad)
        for index, branch in enumerate(branches):
            lines += [f"{pad}{'if' if index == 0 else 'elif'} {i} == {index}:",
                      *self.value(branch, v, namespace, depth + 1)]
        return [*lines, f"{pad}else:", f"{pad}    raise Malformed('union index')"]

    def _blocks(self, pad: str, item: list[str], keep: str) -> list[str]:
        """Avro's blocks of an array or map: counts until 0. A negative count (a block with its
        size) is never written by Kaizen; fastavro reads it. Every item takes a byte at least,
        so a count past the bytes left is corrupt (and no huge loop is started)."""
        n = self._var()
        return [f"{pad}while True:", *self._long(n, pad + "    "),
                f"{pad}    if {n} == 0:", f"{pad}        break",
                f"{pad}    if {n} < 0 or {n} > L - p:",
                f"{pad}        raise Malformed('block count')",
                f"{pad}    for _ in range({n}):", *item, f"{pad}        {keep}"]

    def _long(self, v: str, pad: str) -> list[str]:
        """A varint into `v`, in one byte inline when it is one (nearly every int)."""
        return [f"{pad}{v} = d[p]", f"{pad}if {v} < 128:", f"{pad}    p += 1",
                f"{pad}    {v} = ({v} >> 1) ^ -({v} & 1)", f"{pad}else:",
                f"{pad}    {v}, p = read_long(d, p)"]

    def _bytes(self, v: str, pad: str) -> list[str]:
        """A length, then that many bytes into `v`; a negative or overlong length raises."""
        n = self._var()
        return [*self._long(n, pad), f"{pad}if {n} < 0 or p + {n} > L:",
                f"{pad}    raise Malformed('length')", f"{pad}{v} = d[p:p + {n}]",
                f"{pad}p += {n}"]
