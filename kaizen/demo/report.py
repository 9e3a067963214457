"""A self-contained HTML report of a fleet run: static vs learning fleets, with inline SVG plots.

The report is one file with no scripts, stylesheets or images fetched from anywhere (plots are
hand-written SVG, since matplotlib is not a dependency), so it can be mailed or attached to a CI
run. It shows:

* the success rate over time of each fleet (a trailing rolling window, see `rolling_success_rate`)
  with a labelled vertical marker at every drift (a change in the world the agents work in),
* failures by error signature (bars),
* repeats of each novel failure per fleet (grouped bars and a table),
* the snapshot timeline (proposed / approved / activated / rejected / rolled back, with reasons),
* a short summary paragraph.

Every plotted value is also in data attributes (`data-series`, `data-x`, `data-y`, `data-value`)
so a test can check what is drawn without reading pixels.

    >>> data = ReportData(fleets={"static": [(0, True), (1, False)]}, drifts=[],
    ...                   failures_by_signature=[], repeats=[], snapshot_events=[],
    ...                   summary_lines=["one fleet, two episodes"])
    >>> rolling_success_rate(data.fleets["static"], window=2)
    [(0, 1.0), (1, 0.5)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

ROLLING_WINDOW = 20
EDGE_CASES_SHOWN = 5  # an evaluation may list many episodes; the timeline names a few
PALETTE = {"static": "#8a8a8a", "learning": "#2a6fdb"}
EXTRA_COLOURS = ("#d9822b", "#0f9960", "#a82a2a", "#7157d9")
ACTION_LABELS = {"proposed": "proposed", "evaluated": "evaluated", "approved": "approved",
                 "activated": "activated", "rejected": "rejected", "rolled_back": "rolled back"}

# plot geometry (SVG user units)
WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 22, 40


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows; built by whoever ran the fleets (e.g. `kaizen demo`).

    fleets: per fleet name, its episodes as (episode_index, success), in any order.
    drifts: (episode_index, name, description) of each change in the world.
    failures_by_signature: (signature, failure count).
    repeats: (novel failure / drift name, static count, learning count, episodes in flight when
        the learning fleet first recovered, or None if it never did).
    snapshot_events: rows shaped like the `events` of GET /snapshots.
    summary_lines: sentences for the summary paragraph.
    window: episodes in the rolling success-rate window.
    """

    fleets: dict[str, list[tuple[int, bool]]]
    drifts: list[tuple[int, str, str]]
    failures_by_signature: list[tuple[str, int]]
    repeats: list[tuple[str, int, int, int | None]]
    snapshot_events: list[dict[str, Any]]
    summary_lines: list[str]
    title: str = "Kaizen fleet report"
    window: int = ROLLING_WINDOW
    extra_sections: tuple[str, ...] = ()  # more rendered sections, e.g. a backtest's


def rolling_success_rate(outcomes: Sequence[tuple[int, bool]], window: int = ROLLING_WINDOW
                         ) -> list[tuple[int, float]]:
    """Per episode (ordered by index), the success share of the trailing `window` episodes
    ending with it: (index, rate).

    A trailing window (not a centred one) so that each point uses only the past, as a fleet owner
    would have seen it live; before `window` episodes exist it averages over those there are.
    """
    if window < 1:
        raise ValueError("window must be >= 1")
    ordered = sorted(outcomes)
    points, total = [], 0
    for i, (index, ok) in enumerate(ordered):
        total += ok
        if i >= window:
            total -= ordered[i - window][1]
        points.append((index, total / min(i + 1, window)))
    return points


def write_report(path: str | Path, data: ReportData) -> Path:
    """Write the report as one HTML file (parents created) and return its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(data), encoding="utf-8")
    return target


def render_report(data: ReportData) -> str:
    """The report's HTML text."""
    series = {name: [(float(i), rate) for i, rate in rolling_success_rate(points, data.window)]
              for name, points in data.fleets.items()}
    markers = [(float(index), name) for index, name, _ in data.drifts]
    success = line_plot("plot-success-rate", series, markers,
                        f"Success rate (rolling window of {data.window} episodes)")
    signatures = bar_plot("plot-failures-by-signature",
                          [s for s, _ in data.failures_by_signature],
                          {"failures": [float(n) for _, n in data.failures_by_signature]},
                          "Failures by error signature")
    repeats = bar_plot("plot-repeats", [name for name, *_ in data.repeats],
                       {"static": [float(r[1]) for r in data.repeats],
                        "learning": [float(r[2]) for r in data.repeats]},
                       "Repeats of each novel failure, per fleet")
    body = "\n".join([
        _section("summary", "Summary", _summary(data)),
        _section("success", "Success rate over time", success + _drift_list(data.drifts)),
        _section("signatures", "Failures by signature", signatures),
        _section("repeats", "Repeated failures", repeats + _repeats_table(data.repeats)),
        _section("timeline", "Snapshot timeline", _timeline(data.snapshot_events)),
        *data.extra_sections,
    ])
    return html_page(data.title, body)


def html_page(title: str, body: str) -> str:
    """A whole report page around `body` (sections), with the report's style."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
            f"<body>\n<h1>{escape(title)}</h1>\n{body}\n</body>\n</html>\n")


def line_plot(ident: str, series: dict[str, list[tuple[float, float]]],
              markers: Sequence[tuple[float, str]], title: str, y_max: float = 1.0) -> str:
    """Lines (y in [0, y_max]) over a shared x axis, with labelled vertical markers."""
    xs = [x for points in series.values() for x, _ in points] + [x for x, _ in markers]
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)

    def sx(x: float) -> float:
        return LEFT + ((x - x0) / (x1 - x0) if x1 > x0 else 0.5) * (WIDTH - LEFT - RIGHT)

    def sy(y: float) -> float:
        return TOP + (1 - y / y_max) * (HEIGHT - TOP - BOTTOM)

    parts = [_axes(sy(0), sy(y_max), title), _y_ticks(sy, y_max, percent=y_max == 1.0)]
    parts.append(f'<text x="{LEFT}" y="{sy(0) + 14:.1f}">{x0:g}</text>'
                 f'<text x="{WIDTH - RIGHT}" y="{sy(0) + 14:.1f}" text-anchor="end">{x1:g}</text>')
    for x, label in markers:
        parts.append(f'<line class="drift" data-x="{x:g}" x1="{sx(x):.1f}" y1="{TOP}" '
                     f'x2="{sx(x):.1f}" y2="{sy(0):.1f}" stroke="#c33" stroke-dasharray="4 3"/>'
                     f'<text x="{sx(x) + 3:.1f}" y="{TOP + 10}" fill="#c33">{escape(label)}</text>')
    for k, (name, points) in enumerate(series.items()):
        colour = _colour(name, k)
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        parts.append(f'<polyline data-series="{escape(name)}" points="{coords}" fill="none" '
                     f'stroke="{colour}" stroke-width="1.5"/>')
        parts.extend(f'<circle data-series="{escape(name)}" data-x="{x:g}" data-y="{y!r}" '
                     f'cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="1.2" fill="{colour}"/>'
                     for x, y in points)
    parts.append(_legend(list(series)))
    return _svg(ident, parts)


def bar_plot(ident: str, categories: Sequence[str], series: dict[str, list[float]],
             title: str) -> str:
    """Grouped vertical bars: one group per category, one bar per series."""
    top = max([v for values in series.values() for v in values] + [1.0])
    group = (WIDTH - LEFT - RIGHT) / max(len(categories), 1)
    bar = group * 0.8 / max(len(series), 1)

    def sy(y: float) -> float:
        return TOP + (1 - y / top) * (HEIGHT - TOP - BOTTOM)

    parts = [_axes(sy(0), sy(top), title), _y_ticks(sy, top, percent=False)]
    for c, category in enumerate(categories):
        x = LEFT + c * group + group * 0.1
        for k, (name, values) in enumerate(series.items()):
            value = values[c]
            parts.append(f'<rect data-series="{escape(name)}" data-category="{escape(category)}" '
                         f'data-value="{value:g}" x="{x + k * bar:.1f}" y="{sy(value):.1f}" '
                         f'width="{bar * 0.95:.1f}" height="{sy(0) - sy(value):.1f}" '
                         f'fill="{_colour(name, k)}"><title>{escape(category)}: {value:g}'
                         f"</title></rect>")
        short = category if len(category) <= 24 else category[:23] + "…"
        parts.append(f'<text x="{x + group * 0.4:.1f}" y="{HEIGHT - 24}" text-anchor="middle">'
                     f"{escape(short)}</text>")
    if len(series) > 1:
        parts.append(_legend(list(series)))
    return _svg(ident, parts)


def _svg(ident: str, parts: list[str]) -> str:
    inner = "\n".join(parts)
    return (f'<svg id="{ident}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
            f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">\n{inner}\n</svg>')


def _axes(y_zero: float, y_top: float, title: str) -> str:
    return (f'<text x="{LEFT}" y="14" font-weight="bold">{escape(title)}</text>'
            f'<line x1="{LEFT}" y1="{y_zero:.1f}" x2="{WIDTH - RIGHT}" y2="{y_zero:.1f}" '
            f'stroke="#888"/><line x1="{LEFT}" y1="{y_zero:.1f}" x2="{LEFT}" y2="{y_top:.1f}" '
            f'stroke="#888"/>')


def _y_ticks(sy: Any, top: float, percent: bool) -> str:
    ticks = []
    for fraction in (0.0, 0.5, 1.0):
        value = top * fraction
        label = f"{100 * value:.0f}%" if percent else f"{value:g}"
        ticks.append(f'<text x="{LEFT - 4}" y="{sy(value) + 4:.1f}" text-anchor="end">'
                     f"{label}</text>")
    return "".join(ticks)


def _legend(names: list[str]) -> str:
    items = []
    for k, name in enumerate(names):
        x = WIDTH - RIGHT - 110 * (len(names) - k)
        items.append(f'<rect x="{x}" y="{HEIGHT - 16}" width="10" height="10" '
                     f'fill="{_colour(name, k)}"/><text x="{x + 14}" y="{HEIGHT - 7}">'
                     f"{escape(name)}</text>")
    return "".join(items)


def _colour(name: str, k: int) -> str:
    return PALETTE.get(name, EXTRA_COLOURS[k % len(EXTRA_COLOURS)])


def section(ident: str, heading: str, content: str) -> str:
    """`<section id=ident>` with a heading: the unit other report parts are built from."""
    return _section(ident, heading, content)


def table(ident: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An escaped HTML table (None shows as a dash, floats with three decimals)."""
    return _table(ident, header, rows)


def _section(ident: str, heading: str, content: str) -> str:
    return f'<section id="{ident}">\n<h2>{escape(heading)}</h2>\n{content}\n</section>'


def _table(ident: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(_text(v))}</td>" for v in row) + "</tr>\n"
                   for row in rows)
    return f'<table id="{ident}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table>'


def _text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _summary(data: ReportData) -> str:
    lines = "<br>\n".join(escape(line) for line in data.summary_lines)
    rows = []
    for name, points in data.fleets.items():
        wins = sum(ok for _, ok in points)
        curve = rolling_success_rate(points, data.window)
        rows.append((name, len(points), wins, wins / len(points) if points else None,
                     curve[-1][1] if curve else None))
    table = _table("fleet-totals", ("fleet", "episodes", "successes", "success rate",
                                    f"last {data.window} episodes"), rows)
    return f'<p id="summary-text">{lines}</p>\n{table}'


def _drift_list(drifts: Sequence[tuple[int, str, str]]) -> str:
    if not drifts:
        return ""
    return _table("drifts", ("from episode", "drift", "what changed"), sorted(drifts))


def _repeats_table(repeats: Sequence[tuple[str, int, int, int | None]]) -> str:
    return _table("repeats-table", ("novel failure", "static fleet", "learning fleet",
                                    "in flight at first recovery"), repeats)


def _timeline(events: Sequence[dict[str, Any]]) -> str:
    rows = []
    for e in sorted(events, key=lambda e: (e.get("offset", 0), e.get("occurred_at", 0))):
        cases = list(e.get("edge_cases") or [])
        hidden = len(cases) - EDGE_CASES_SHOWN
        more = [f"and {hidden} more"] if hidden > 0 else []
        reason = "; ".join(([e["reason"]] if e.get("reason") else [])
                           + [f"edge case: {c}" for c in cases[:EDGE_CASES_SHOWN]] + more)
        rows.append((e.get("offset"), _iso(e.get("occurred_at")), e.get("scope"),
                     str(e.get("snapshot_id", ""))[:12],
                     ACTION_LABELS.get(e.get("action", ""), e.get("action")),
                     e.get("verdict"), e.get("actor"), reason or None))
    return _table("snapshot-timeline", ("offset", "time (UTC)", "scope", "snapshot", "action",
                                        "verdict", "actor", "reason"), rows)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 800px; color: #222; }
h2 { margin-top: 1.8em; font-size: 1.15em; }
table { border-collapse: collapse; width: 100%; margin-top: .6em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
svg text { font-size: 11px; fill: #444; }
"""
