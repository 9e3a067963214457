"""Error-signature cost per record on adversarial texts, at 1 KB, 32 KB and 96 KB.

Every error text is cut to MAX_INPUT_CHARS before any regex and each pass is linear, so the
cost must not grow with the size of the text (before the cut, a 32 KB hex dump took 5 s and
96 KB 50 s). Prints milliseconds per text (best of 3) for each family and size, and the ratio of
the 96 KB cost to the 1 KB cost in the same run (about 1 when the cut holds).

Run: ``python bench/signatures.py``.
"""

from __future__ import annotations

import time

from kaizen.processors.learning.signatures import MAX_INPUT_CHARS, normalize_error

FAMILIES = {
    "hex dump": "0123456789abcdef",
    "digits": "1234567890",
    "unclosed quotes": "'a ",
    "unclosed brackets": "[",
    "bracket+quote": '["',
    "endless token": "x1-",
    "at signs": "a@",
}
SIZES = (1_024, 32_768, 98_304)


def cost_ms(text: str, repeat: int = 3, number: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            normalize_error(text)
        best = min(best, (time.perf_counter() - start) / number)
    return best * 1000


def main() -> None:
    print(f"MAX_INPUT_CHARS = {MAX_INPUT_CHARS}")
    print(f"{'family':<20}" + "".join(f"{size // 1024:>8} KB" for size in SIZES) + "   96KB/1KB")
    for name, unit in FAMILIES.items():
        costs = [cost_ms("Error: " + unit * (size // len(unit))) for size in SIZES]
        row = "".join(f"{c:>8.2f}ms" for c in costs)
        print(f"{name:<20}{row}   {costs[-1] / costs[0]:>8.2f}")


if __name__ == "__main__":
    main()
