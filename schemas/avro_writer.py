"""Avro binary writers compiled from a schema into Python source, one function per record.

fastavro interprets the schema on every call and wants a dict, so encoding one episode event
through `to_record` and `schemaless_writer` cost ~14 us: most of `Recorder.emit()` and of every
output a processor writes. A compiled writer reads the model object's attributes and appends the
bytes straight away (~4 us). It writes exactly fastavro's bytes (a property test compares both
on random events of every kind) and takes and refuses what fastavro does: a float for an int is
cut toward zero, a text for an int raises.

Supported: records, enums, arrays, maps, unions of null and one type, unions of records (the
branch is the model class of the value), string, bytes, int, long, double, boolean, null.
`compile_writer` raises `Unsupported` for anything else, and the codec keeps fastavro for it.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from itertools import count
from typing import Any

from kaizen.errors import KaizenError

_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1


class Unsupported(KaizenError, ValueError):
    """A schema this writer does not compile; use fastavro for it."""


def write_long(out: bytearray, n: int) -> None:
    """Zigzag varint, as Avro writes int and long; out of 64 bits raises, as fastavro does."""
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise OverflowError(f"{n} does not fit an Avro long")
    n = (n << 1) ^ (n >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def as_long(value: Any) -> int:
    """A non-int for an int or long field, as fastavro takes it: a float is cut toward zero."""
    if isinstance(value, float):
        return int(value)
    raise TypeError(f"an integer is required, not {type(value).__name__}")


_SCOPE: dict[str, Any] = {
    "write_long": write_long, "as_long": as_long, "pack_double": struct.Struct("<d").pack,
}


def compile_writer(schema: dict[str, Any], classes: dict[str, type]) -> Callable[[Any], bytes]:
    """A function from a model object to the Avro body of `schema` (a record without logical
    types). `classes` gives the model class of each record name (the short name)."""
    compiler = _Compiler(classes)
    entry = compiler.record(schema, "")
    namespace: dict[str, Any] = dict(_SCOPE, **compiler.constants)
    exec("\n".join([*compiler.lines, *compiler.tables]), namespace)  # noqa: S102 - source generated from our schemas
    write = namespace[entry]

    def encode(obj: Any) -> bytes:
        out = bytearray()
        write(obj, out)
        return bytes(out)

    return encode


class SchemaCompiler:
    """What the compiled writer and reader (`avro_reader`) share: the generated lines and
    constants, the records compiled so far, and named-type resolution in Avro's order."""

    def __init__(self, classes: dict[str, type]) -> None:
        self.classes = classes
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self.named: dict[str, Any] = {}  # full name -> schema, as Avro defines them in order
        self.functions: dict[str, str] = {}  # full record name -> its function's name
        self._ids = count()

    def _resolve(self, schema: Any, namespace: str) -> Any:
        """A named type's schema for its name; anything else as it is."""
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            full = schema if "." in schema else f"{namespace}.{schema}" if namespace else schema
            if full not in self.named:
                raise Unsupported(f"unknown named type {schema}")
            return self.named[full]
        if isinstance(schema, dict) and schema.get("type") in _PRIMITIVES:
            return schema["type"]
        return schema

    def _var(self) -> str:
        return f"v{next(self._ids)}"

    def _constant(self, value: Any) -> str:
        name = f"c{next(self._ids)}"
        self.constants[name] = value
        return name


class _Compiler(SchemaCompiler):
    """Emits one `def w_<name>(o, out)` per record; each field is a few inlined statements."""

    def __init__(self, classes: dict[str, type]) -> None:
        super().__init__(classes)
        self.tables: list[str] = []  # branch tables of record unions: class -> writer

    def record(self, schema: dict[str, Any], namespace: str) -> str:
        full = full_name(schema, namespace)
        if full in self.functions:
            return self.functions[full]
        self.named[full] = schema
        name = f"w_{full.replace('.', '_')}"
        self.functions[full] = name
        cls = self.classes.get(schema["name"])
        if cls is None or not dataclasses.is_dataclass(cls):
            raise Unsupported(f"no model class for record {full}")
        attributes = {f.name for f in dataclasses.fields(cls)}
        space = full.rsplit(".", 1)[0] if "." in full else ""
        body: list[str] = []
        for field in schema["fields"]:
            if field["name"] not in attributes:
                raise Unsupported(f"{cls.__name__} has no attribute {field['name']}")
            body += self.value(field["type"], f"o.{field['name']}", space, 1)
        self.lines += [f"def {name}(o, out):", *(body or ["    pass"]), ""]
        return name

    def value(self, schema: Any, expr: str, namespace: str, depth: int) -> list[str]:
        """Statements that write `expr` (evaluated once) as `schema`, indented `depth` levels."""
        pad = "    " * depth
        schema = self._resolve(schema, namespace)
        if isinstance(schema, list):
            return self.union(schema, expr, namespace, depth)
        kind = schema if isinstance(schema, str) else schema["type"]
        if kind == "string":
            v = self._var()
            return [f"{pad}{v} = {expr}.encode()", *self._length(v, pad), f"{pad}out += {v}"]
        if kind == "bytes":
            v = self._var()
            return [f"{pad}{v} = {expr}", f"{pad}if not isinstance({v}, (bytes, bytearray)):",
                    f"{pad}    raise TypeError(f'{{{v}!r}} is not bytes')",
                    *self._length(v, pad), f"{pad}out += {v}"]
        if kind in ("int", "long"):
            v = self._var()
            return [f"{pad}{v} = {expr}", f"{pad}if not isinstance({v}, int):",
                    f"{pad}    {v} = as_long({v})",
                    f"{pad}if 0 <= {v} < 64:", f"{pad}    out.append({v} << 1)",
                    f"{pad}else:", f"{pad}    write_long(out, {v})"]
        if kind == "double":
            return [f"{pad}out += pack_double({expr})"]
        if kind == "boolean":
            return [f"{pad}out.append(1 if {expr} else 0)"]  # truthiness, as fastavro
        if kind == "null":
            return [f"{pad}if {expr} is not None:",
                    f"{pad}    raise TypeError('a null field holds a value')"]
        if kind == "record":
            return [f"{pad}{self.record(schema, namespace)}({expr}, out)"]
        if kind == "enum":
            self.named[full_name(schema, namespace)] = schema
            index = self._constant({s: i for i, s in enumerate(schema["symbols"])})
            return [f"{pad}write_long(out, {index}[{expr}])"]
        if kind == "array":
            v, item = self._var(), self._var()
            return [f"{pad}{v} = {expr}", f"{pad}if {v}:", f"{pad}    write_long(out, len({v}))",
                    f"{pad}    for {item} in {v}:",
                    *self.value(schema["items"], item, namespace, depth + 2),
                    f"{pad}out.append(0)"]
        if kind == "map":
            v, key, item = self._var(), self._var(), self._var()
            return [f"{pad}{v} = {expr}", f"{pad}if {v}:", f"{pad}    write_long(out, len({v}))",
                    f"{pad}    for {key}, {item} in {v}.items():",
                    *self.value("string", key, namespace, depth + 2),
                    *self.value(schema["values"], item, namespace, depth + 2),
                    f"{pad}out.append(0)"]
        raise Unsupported(f"Avro type {kind!r}")

    def union(self, branches: list[Any], expr: str, namespace: str, depth: int) -> list[str]:
        pad = "    " * depth
        resolved = [self._resolve(b, namespace) for b in branches]
        kinds = [b if isinstance(b, str) else b.get("type") for b in resolved]
        v = self._var()
        if len(branches) == 2 and "null" in kinds:
            null = kinds.index("null")
            other = 1 - null
            return [f"{pad}{v} = {expr}", f"{pad}if {v} is None:",
                    f"{pad}    out.append({null * 2})", f"{pad}else:",
                    f"{pad}    out.append({other * 2})",
                    *self.value(branches[other], v, namespace, depth + 1)]
        if all(k == "record" for k in kinds):
            entries: list[str] = []
            for index, branch in enumerate(resolved):
                writer = self.record(branch, namespace)
                helper = f"{writer}_at_{index}"
                self.lines += [f"def {helper}(o, out):", f"    out.append({index * 2})",
                               f"    {writer}(o, out)", ""]
                entries.append(f"{self._constant(self.classes[branch['name']])}: {helper}")
            table = f"c{next(self._ids)}"  # defined after every function it names
            self.tables.append(f"{table} = {{{', '.join(entries)}}}")
            return [f"{pad}{v} = {expr}", f"{pad}{table}[type({v})]({v}, out)"]
        raise Unsupported(f"union of {kinds}")

    def _length(self, v: str, pad: str) -> list[str]:
        """The length of `v`, in one byte inline when under 64 (nearly every text)."""
        n = self._var()
        return [f"{pad}{n} = len({v})", f"{pad}if {n} < 64:", f"{pad}    out.append({n} << 1)",
                f"{pad}else:", f"{pad}    write_long(out, {n})"]


_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def full_name(schema: dict[str, Any], namespace: str) -> str:
    name: str = schema["name"]
    if "." in name:
        return name
    space = schema.get("namespace", namespace)
    return f"{space}.{name}" if space else name
