"""Bounded distinct counts for curation: exact up to a cap, then a HyperLogLog sketch.

A lesson's support is the number of DISTINCT episodes (tasks, users, successful episodes) behind
it. Keeping every id would make curation state grow with support (issue 13); a sketch alone
would make small counts, the ones that decide whether a lesson is proposed, approximate. So a
`Distinct` holds the exact set of 64-bit hashes while it has at most EXACT_CAP members, and
then a HyperLogLog of 2**PRECISION one-byte registers (standard error ~1.04/sqrt(256) = 6.5 %),
folded from those hashes. Both forms are idempotent (adding an id twice changes nothing) and
mergeable (`merge`), and their state is O(1): at most EXACT_CAP hashes or 256 registers.

Pure and deterministic: ids are hashed with blake2b, never Python's salted `hash`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

EXACT_CAP = 64
PRECISION = 8
_REGISTERS = 1 << PRECISION
_ALPHA = 0.7213 / (1 + 1.079 / _REGISTERS)
#: 2**-rank for every rank a register can hold (exact powers of two: the sum is the same float).
_INVERSE_POWERS = tuple(2.0**-rank for rank in range(64 - PRECISION + 2))


def _hash64(item: str) -> int:
    return int.from_bytes(hashlib.blake2b(item.encode(), digest_size=8).digest(), "big")


def _rank(value: int) -> tuple[int, int]:
    """Register index and rank (position of the first 1-bit after the index bits)."""
    index = value >> (64 - PRECISION)
    rest = value & ((1 << (64 - PRECISION)) - 1)
    return index, (64 - PRECISION) - rest.bit_length() + 1


@dataclass
class Distinct:
    """Distinct count of string ids: exact below EXACT_CAP, HyperLogLog above (module doc)."""

    exact: set[int] | None = field(default_factory=set)
    registers: bytearray | None = None
    #: the sketch's estimate until a register changes (curation asks it several times a signal)
    _estimate: int | None = field(default=None, compare=False, repr=False)

    def add(self, item: str) -> bool:
        """Count `item`; True when the state changed (a new id, as far as the state can tell)."""
        value = _hash64(item)
        if self.exact is not None:
            if value in self.exact:
                return False
            self.exact.add(value)
            if len(self.exact) > EXACT_CAP:
                self._to_sketch()
            return True
        return self._register(value)

    def count(self) -> int:
        if self.exact is not None:
            return len(self.exact)
        if self._estimate is None:
            self._estimate = self._sketch_estimate()
        return self._estimate

    def _sketch_estimate(self) -> int:
        assert self.registers is not None
        zeros = self.registers.count(0)
        estimate = _ALPHA * _REGISTERS**2 / sum(map(_INVERSE_POWERS.__getitem__, self.registers))
        if estimate <= 2.5 * _REGISTERS and zeros:
            estimate = _REGISTERS * math.log(_REGISTERS / zeros)  # small-range correction
        return max(EXACT_CAP + 1, round(estimate))

    def merge(self, other: Distinct) -> Distinct:
        """The count of the union of both (a new object; neither is changed)."""
        merged = Distinct(set(self.exact) if self.exact is not None else None,
                          bytearray(self.registers) if self.registers is not None else None)
        if other.exact is not None:
            for value in other.exact:
                merged._add_hash(value)
            return merged
        assert other.registers is not None
        if merged.exact is not None:
            merged._to_sketch()
        assert merged.registers is not None
        for i, rank in enumerate(other.registers):
            merged.registers[i] = max(merged.registers[i], rank)
        merged._estimate = None
        return merged

    def _add_hash(self, value: int) -> None:
        if self.exact is not None:
            self.exact.add(value)
            if len(self.exact) > EXACT_CAP:
                self._to_sketch()
        else:
            self._register(value)

    def _register(self, value: int) -> bool:
        assert self.registers is not None
        index, rank = _rank(value)
        if rank <= self.registers[index]:
            return False
        self.registers[index] = rank
        self._estimate = None
        return True

    def _to_sketch(self) -> None:
        values, self.exact = self.exact or set(), None
        self.registers = bytearray(_REGISTERS)
        for value in values:
            self._register(value)

    def to_dict(self) -> dict[str, Any]:
        if self.exact is not None:
            return {"exact": sorted(self.exact)}
        assert self.registers is not None
        return {"hll": self.registers.hex()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Distinct:
        if "exact" in data:
            return cls(set(data["exact"]), None)
        return cls(None, bytearray.fromhex(data["hll"]))

    @classmethod
    def of(cls, items: Any) -> Distinct:
        counter = cls()
        for item in items:
            counter.add(str(item))
        return counter
