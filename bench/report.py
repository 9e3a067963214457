"""One markdown table of every benchmark figure and ratio, from the benchmarks' `--json` files.

`make bench` runs each benchmark with `--json .kaizen/bench/NAME.json`, then this, which writes
`.kaizen/bench.md` and prints it. Targets (issue 14) are shown next to the figures they bound.

Run: `python bench/report.py [--dir .kaizen/bench] [--out .kaizen/bench.md]`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: figure -> (comparison, limit): the targets the acceptance check holds the figures to.
TARGETS: dict[str, tuple[str, float]] = {
    "emit_p99_us": ("<", 50), "emit_to_floor_ratio": (">=", 0.5),
    "recall_p99_ms_100k": ("<", 5), "recall_at_5_100k": (">=", 0.95),
    "outputs_to_faust_ratio": (">=", 0.7), "recovery_to_recallable_p99_ms": ("<", 1000),
    "rollback_p99_ms": ("<", 100),
}
ORDER = ("emit", "recall", "process", "rollback", "embedding", "drift")


def _verdict(name: str, value: float) -> str:
    if name not in TARGETS:
        return ""
    op, limit = TARGETS[name]
    ok = value < limit if op == "<" else value >= limit
    return f"{op} {limit:g}: {'met' if ok else 'SHORT'}"


def table(directory: Path) -> str:
    """The markdown table of every `*.json` in `directory`, benchmarks in a fixed order."""
    files = sorted(directory.glob("*.json"),
                   key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem))
    lines = ["| benchmark | figure | value | target |", "| --- | --- | ---: | --- |"]
    for path in files:
        figures: dict[str, float] = json.loads(path.read_text())
        for name, value in sorted(figures.items()):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SystemExit(f"{path}: {name!r} is not a figure ({value!r}): a benchmark "
                                 "writes flat numbers under stable names (bench.common.write_json)")
            lines.append(f"| {path.stem} | `{name}` | {value:,.4g} | {_verdict(name, value)} |")
    missing = [name for name in TARGETS
               if not any(name in json.loads(p.read_text()) for p in files)]
    if missing:
        lines.append("")
        lines.append("Not measured: " + ", ".join(f"`{m}`" for m in missing))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="tabulate the benchmarks' --json figures")
    parser.add_argument("--dir", type=Path, default=Path(".kaizen/bench"))
    parser.add_argument("--out", type=Path, default=Path(".kaizen/bench.md"))
    args = parser.parse_args()
    text = "# Kaizen benchmarks\n\n" + table(args.dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
