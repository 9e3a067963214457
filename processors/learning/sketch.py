"""Bounded-size building blocks for fold states: distinct counts and a recent-id memory.

A table value is written whole to its changelog at every batch that touches it and must stay far
below the broker's ~1 MB message limit, however many events it summarises. So:

  * `Distinct` counts distinct values exactly up to `EXACT` of them (it keeps 32-bit hashes),
    then as a HyperLogLog of `2**P` one-byte registers (standard error about 1.04 / sqrt(2**P),
    9 % at P=7). Sketches are mergeable (register-wise max), so counts over several windows or
    partitions combine without the values. Encoded size: at most ~350 characters.
  * `RecentIds` remembers the last `capacity` ids (64-bit hashes, in arrival order) to recognise
    re-delivered events: at-least-once redelivery comes back soon after the original (a crashed
    batch is read again), so a bounded memory of the most recent ids is enough.

Hashes are blake2b, never Python's `hash()`, so a replay in another process gives equal states.
Pure: no Kafka, faust or store imports.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections import deque
from collections.abc import Iterable
from typing import Any

EXACT = 32
P = 7
M = 1 << P
_RANK_BITS = 32 - P
_ALPHA = 0.7213 / (1 + 1.079 / M)


def hash32(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=4).digest(), "big")


def hash64(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


class Distinct:
    """How many distinct values were added: exact while few, a HyperLogLog beyond `EXACT`."""

    __slots__ = ("_exact", "_registers")

    def __init__(self) -> None:
        self._exact: dict[int, None] | None = {}
        self._registers: bytearray | None = None

    def add(self, value: str) -> bool:
        """Count `value`; True if the count may have changed (False: seen, or no register rose)."""
        h = hash32(value)
        if self._exact is not None:
            if h in self._exact:
                return False
            self._exact[h] = None
            if len(self._exact) > EXACT:
                self._to_registers()
            return True
        return self._raise(h)

    def _raise(self, h: int) -> bool:
        assert self._registers is not None
        index, rest = h >> _RANK_BITS, h & ((1 << _RANK_BITS) - 1)
        rank = _RANK_BITS - rest.bit_length() + 1
        if rank > self._registers[index]:
            self._registers[index] = rank
            return True
        return False

    def _to_registers(self) -> None:
        assert self._exact is not None
        hashes, self._exact, self._registers = list(self._exact), None, bytearray(M)
        for h in hashes:
            self._raise(h)

    def count(self) -> int:
        if self._exact is not None:
            return len(self._exact)
        assert self._registers is not None
        estimate = _ALPHA * M * M / sum(2.0 ** -r for r in self._registers)
        zeros = self._registers.count(0)
        if estimate <= 2.5 * M and zeros:
            estimate = M * math.log(M / zeros)
        return max(EXACT + 1, round(estimate))

    def merge(self, other: Distinct) -> None:
        """Add every value `other` counted (exactly as if they had been added here)."""
        if other._exact is not None:
            for h in other._exact:
                if self._exact is not None:
                    self._exact[h] = None
                    if len(self._exact) > EXACT:
                        self._to_registers()
                else:
                    self._raise(h)
            return
        if self._exact is not None:
            self._to_registers()
        assert self._registers is not None and other._registers is not None
        for i, r in enumerate(other._registers):
            if r > self._registers[i]:
                self._registers[i] = r

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Distinct) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def to_json(self) -> Any:
        if self._exact is not None:
            return list(self._exact)
        assert self._registers is not None
        return base64.b64encode(bytes(self._registers)).decode()

    @classmethod
    def from_json(cls, data: Any) -> Distinct:
        sketch = cls()
        if isinstance(data, str):
            sketch._exact, sketch._registers = None, bytearray(base64.b64decode(data))
        else:
            sketch._exact = dict.fromkeys(int(h) for h in data)
        return sketch

    @classmethod
    def of(cls, values: Iterable[str]) -> Distinct:
        sketch = cls()
        for value in values:
            sketch.add(value)
        return sketch


class RecentIds:
    """The last `capacity` ids seen (as 64-bit hashes): membership O(1), size bounded."""

    __slots__ = ("capacity", "_order", "_members")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._order: deque[int] = deque()
        self._members: set[int] = set()

    def add(self, value: str) -> bool:
        """Remember `value`; False if it is among the recent ids already (a re-delivery)."""
        h = hash64(value)
        if h in self._members:
            return False
        self._order.append(h)
        self._members.add(h)
        while len(self._order) > self.capacity:
            self._members.discard(self._order.popleft())
        return True

    def __len__(self) -> int:
        return len(self._order)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecentIds) and self._order == other._order

    __hash__ = None  # type: ignore[assignment]  # mutable

    def to_json(self) -> str:
        """The hashes as 8-byte big-endian words, base64: packed in one call, since an agent's
        pattern state holds thousands and is written at every batch of its tool results."""
        packed = struct.pack(f">{len(self._order)}Q", *self._order)
        return base64.b64encode(packed).decode()

    @classmethod
    def from_json(cls, data: str, capacity: int) -> RecentIds:
        ids = cls(capacity)
        packed = base64.b64decode(data)
        whole = len(packed) - len(packed) % 8
        hashes = list(struct.unpack(f">{whole // 8}Q", packed[:whole]))
        if whole < len(packed):  # never written so; read as the word-by-word loop read it
            hashes.append(int.from_bytes(packed[whole:], "big"))
        ids._order.extend(hashes)
        ids._members.update(hashes)
        while len(ids._order) > capacity:
            ids._members.discard(ids._order.popleft())
        return ids
