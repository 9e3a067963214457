"""The HTML report: valid, self-contained HTML, one SVG per plot, and the plotted success rates
equal an independent computation of the trailing rolling window."""

from __future__ import annotations

import random
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaizen.demo.report import ReportData, rolling_success_rate, write_report

VOID = {"meta", "br", "hr", "img", "input", "link"}
SVG_LEAVES = {"line", "polyline", "circle", "rect", "path"}  # self-closed in the SVG we write


class _Checker(HTMLParser):
    """Collects elements and checks that every opened element is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.errors: list[str] = []
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _data(seed: int = 1, episodes: int = 120) -> ReportData:
    rng = random.Random(seed)
    static = [(i, rng.random() < (0.9 if i < 40 else 0.5)) for i in range(episodes)]
    learning = [(i, rng.random() < (0.9 if i < 40 or i > 50 else 0.5)) for i in range(episodes)]
    rng.shuffle(learning)  # the report must not rely on the input order
    return ReportData(
        fleets={"static": static, "learning": learning},
        drifts=[(40, "api-rename", "invoices.find renamed 'number' to 'invoice_no'"),
                (80, "quotes", "search rejects quoted queries")],
        failures_by_signature=[("invoices.find: unknown field <str>", 31),
                               ("search: no results for <str>", 12), ("a <b> & 'c'", 2)],
        repeats=[("api-rename", 30, 3, 5), ("quotes", 12, 2, None)],
        snapshot_events=[
            {"offset": 0, "occurred_at": 1_700_000_000_000, "scope": "acme/bot",
             "snapshot_id": "a" * 32, "action": "proposed", "verdict": "pass", "actor": "policy",
             "reason": None, "edge_cases": []},
            {"offset": 1, "occurred_at": 1_700_000_001_000, "scope": "acme/bot",
             "snapshot_id": "a" * 32, "action": "activated", "verdict": None, "actor": "policy",
             "reason": "gate passed", "edge_cases": []},
            {"offset": 2, "occurred_at": 1_700_000_002_000, "scope": "acme/bot",
             "snapshot_id": "b" * 32, "action": "rejected", "verdict": "fail", "actor": "policy",
             "reason": "breaks past successes", "edge_cases": ["ep-7"]},
            {"offset": 3, "occurred_at": 1_700_000_003_000, "scope": "acme/bot",
             "snapshot_id": "a" * 32, "action": "rolled_back", "verdict": None,
             "actor": "monitor", "reason": "success rate fell", "edge_cases": []},
        ],
        summary_lines=["The learning fleet recovered from both drifts.", "Static <did not>."],
        window=10,
    )


def _parse(path: Path) -> _Checker:
    checker = _Checker()
    checker.feed(path.read_text(encoding="utf-8"))
    checker.close()
    return checker


def _independent_rolling(outcomes: list[tuple[int, bool]], window: int) -> dict[int, float]:
    """Mean of the last `window` outcomes up to and including each episode, by brute force."""
    ordered = [ok for _, ok in sorted(outcomes)]
    indices = sorted(i for i, _ in outcomes)
    return {index: sum(ordered[max(0, n - window + 1):n + 1]) / len(
        ordered[max(0, n - window + 1):n + 1]) for n, index in enumerate(indices)}


def test_the_report_is_valid_self_contained_html_with_one_svg_per_plot(tmp_path: Path) -> None:
    path = write_report(tmp_path / "out" / "report.html", _data())
    assert path == tmp_path / "out" / "report.html" and path.is_file()
    page = _parse(path)
    assert page.doctype.lower() == "doctype html"
    assert not page.errors and page.stack == []
    svgs = [attrs["id"] for tag, attrs in page.elements if tag == "svg"]
    assert sorted(svgs) == ["plot-failures-by-signature", "plot-repeats", "plot-success-rate"]
    # nothing is fetched: no scripts, stylesheets, images or remote references
    assert not [tag for tag, _ in page.elements if tag in ("script", "link", "img", "iframe")]
    assert "http://" not in path.read_text().replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in path.read_text()


def test_plotted_success_rates_equal_an_independent_rolling_window(tmp_path: Path) -> None:
    data = _data()
    page = _parse(write_report(tmp_path / "report.html", data))
    plotted: dict[str, dict[int, float]] = defaultdict(dict)
    for tag, attrs in page.elements:
        if tag == "circle" and "data-series" in attrs:
            plotted[attrs["data-series"]][int(attrs["data-x"])] = float(attrs["data-y"])
    assert set(plotted) == {"static", "learning"}
    for name, outcomes in data.fleets.items():
        expected = _independent_rolling(outcomes, data.window)
        assert plotted[name].keys() == expected.keys()
        assert all(plotted[name][i] == pytest.approx(expected[i]) for i in expected)


def test_drifts_bars_timeline_and_summary_are_shown(tmp_path: Path) -> None:
    data = _data()
    page = _parse(write_report(tmp_path / "report.html", data))
    drifts = {a["data-x"] for t, a in page.elements if t == "line" and a.get("class") == "drift"}
    assert drifts == {"40", "80"}
    text = "".join(page.text)
    assert "api-rename" in text and "quotes" in text  # marker labels
    bars: dict[tuple[str, str], float] = {
        (a["data-series"], a["data-category"]): float(a["data-value"])
        for t, a in page.elements if t == "rect" and "data-category" in a}
    for signature, count in data.failures_by_signature:
        assert bars["failures", signature] == count
    for name, static, learning, _ in data.repeats:
        assert (bars["static", name], bars["learning", name]) == (static, learning)
    for label in ("proposed", "activated", "rejected", "rolled back", "breaks past successes",
                  "edge case: ep-7", "success rate fell"):
        assert label in text
    assert "Static <did not>." in text  # escaped in the file, intact once parsed


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 15))
def test_rolling_rate_matches_brute_force_and_stays_in_bounds(outcomes: list[bool],
                                                               window: int) -> None:
    episodes = [(3 * i + 1, ok) for i, ok in enumerate(outcomes)]
    got = rolling_success_rate(list(reversed(episodes)), window)
    expected = _independent_rolling(episodes, window)
    assert [i for i, _ in got] == sorted(expected)
    assert all(0.0 <= rate <= 1.0 and rate == pytest.approx(expected[i]) for i, rate in got)


def test_a_window_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        rolling_success_rate([(0, True)], 0)


def test_empty_data_still_gives_a_valid_report(tmp_path: Path) -> None:
    empty: dict[str, Any] = {"fleets": {}, "drifts": [], "failures_by_signature": [],
                             "repeats": [], "snapshot_events": [], "summary_lines": []}
    page = _parse(write_report(tmp_path / "empty.html", ReportData(**empty)))
    assert not page.errors and len([t for t, _ in page.elements if t == "svg"]) == 3
