"""Read big JSON result files (plain or gzip) element by element, so a bad file loses only its tail.

Benchmark result files are one JSON document (an object holding a `simulations` array, or a list
of runs). `json.load` would give all or nothing; `JsonStream` walks the document's top level and
decodes one element at a time, so when a file is truncated or malformed the importer keeps every
element before the damage and reports the file, line, column and character where it stopped.

    text, problem = read_text(path)           # problem: the gzip stream ended early, or None
    stream = JsonStream(text)
    for index, item in enumerate(stream.array_items()):
        ...                                   # raises JsonPositionError at the first bad element
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kaizen.errors import KaizenError

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_WHITESPACE = re.compile(r"\s*")


class JsonPositionError(KaizenError, ValueError):
    """The document cannot be read past `offset` (a character index into the decoded text)."""

    def __init__(self, text: str, offset: int, message: str) -> None:
        self.offset = offset
        self.line = text.count("\n", 0, offset) + 1
        self.column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        super().__init__(f"{message} at line {self.line} column {self.column} "
                         f"(character {offset:,})")


def open_bytes(path: Path) -> bytes:
    """The first bytes of a file, decompressed when it is gzip (for format detection)."""
    with path.open("rb") as raw:
        head = raw.read(64 * 1024)
    if head[:2] != GZIP_MAGIC:
        return head
    try:
        return zlib.decompressobj(wbits=31).decompress(head, 64 * 1024)
    except zlib.error:
        return b""


def read_text(path: Path) -> tuple[str, str | None]:
    """The file's text (gzip is read directly, whatever the suffix), and what went wrong while
    reading it, if anything: a gzip stream that ends early still gives the text before the cut."""
    data = path.read_bytes()
    if data[:2] != GZIP_MAGIC:
        return data.decode("utf-8", errors="replace"), None
    text, problem = _gunzip(data)
    return text.decode("utf-8", errors="replace"), problem


def _gunzip(data: bytes) -> tuple[bytes, str | None]:
    """Decompress every gzip member, keeping what came out before any damage (the stdlib's
    `gzip.decompress` gives nothing at all for a truncated file)."""
    out: list[bytes] = []
    rest = data
    while rest:
        decompressor = zlib.decompressobj(wbits=31)
        try:
            for start in range(0, len(rest), _CHUNK):
                out.append(decompressor.decompress(rest[start : start + _CHUNK]))
        except zlib.error as error:
            return b"".join(out), f"corrupt gzip data after {sum(map(len, out)):,} bytes ({error})"
        if not decompressor.eof:
            out.append(decompressor.flush())
            return b"".join(out), (f"gzip data ends early after {sum(map(len, out)):,} bytes "
                                   "(truncated file)")
        rest = decompressor.unused_data.lstrip(b"\x00")
    return b"".join(out), None


class JsonStream:
    """A cursor over one JSON document's top level: object keys and array items, decoded one
    value at a time with the stdlib decoder."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self._decoder = json.JSONDecoder()

    def peek(self) -> str:
        """The next non-blank character, or "" at the end."""
        self._skip()
        return self.text[self.pos : self.pos + 1]

    def value(self) -> Any:
        """Decode the value at the cursor and move past it."""
        self._skip()
        try:
            value, self.pos = self._decoder.raw_decode(self.text, self.pos)
        except json.JSONDecodeError as error:
            raise JsonPositionError(self.text, error.pos, error.msg) from None
        return value

    def array_items(self) -> Iterator[Any]:
        """Each item of the array at the cursor, decoded as it is reached."""
        self._expect("[")
        if self.peek() == "]":
            self.pos += 1
            return
        while True:
            yield self.value()
            if self._separator("]"):
                return

    def object_keys(self) -> Iterator[str]:
        """Each key of the object at the cursor; the caller reads its value (`value()` or
        `array_items()`) before asking for the next key."""
        self._expect("{")
        if self.peek() == "}":
            self.pos += 1
            return
        while True:
            key = self.value()
            if not isinstance(key, str):
                raise JsonPositionError(self.text, self.pos, "expected an object key")
            self._expect(":")
            start = self.pos
            yield key
            if self.pos == start:  # the caller did not read the value: skip it
                self.value()
            if self._separator("}"):
                return

    def _separator(self, closing: str) -> bool:
        """Past a `,` (False: more follows) or the closing bracket (True: done)."""
        char = self.peek()
        if char == ",":
            self.pos += 1
            return False
        if char == closing:
            self.pos += 1
            return True
        found = "the end of the data" if not char else repr(char)
        raise JsonPositionError(self.text, self.pos, f"expected ',' or '{closing}', found {found}")

    def _expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            what = "the end of the data" if not found else repr(found)
            raise JsonPositionError(self.text, self.pos, f"expected '{char}', found {what}")
        self.pos += 1

    def _skip(self) -> None:
        match = _WHITESPACE.match(self.text, self.pos)
        self.pos = match.end() if match else self.pos
