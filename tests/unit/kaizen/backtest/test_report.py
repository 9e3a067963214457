"""The backtest report: lesson fates from the snapshot log, the JSON fields, the HTML section."""

from __future__ import annotations

import json

from kaizen.backtest.html import backtest_section
from kaizen.backtest.lessons import gate_counts, lesson_rows
from kaizen.backtest.matching import FailedCall, LessonView
from kaizen.backtest.report import BacktestReport
from kaizen.backtest.tally import EpisodeFacts, Recalls, Tally
from kaizen.processors.learning.snapshots import SnapshotLog, apply
from kaizen.schemas.model import Experience, Member, SnapshotEvent, Trigger

SIG = "pay: Error: currency required"


def lesson(ident: str, status: str = "proposed") -> Experience:
    return Experience("e-" + ident, 0, "t", "bot", ident, 1, "recovery", Trigger(SIG), "Add it.",
                      [], 3, 2, tool="pay", status=status)


def snapshot(offset: int, sid: str, action: str, members: tuple[str, ...] = (),
             verdict: str | None = None) -> tuple[SnapshotEvent, int]:
    return SnapshotEvent(f"ev-{offset}", offset, "t", "bot", sid, action,
                         members=[Member(m, "h") for m in members], verdict=verdict), offset


def test_each_lesson_gets_the_furthest_fate_of_its_snapshots() -> None:
    log = SnapshotLog()
    for event, offset in [snapshot(0, "s1", "proposed", ("a", "b")), snapshot(1, "s1", "activated"),
                          snapshot(2, "s2", "proposed", ("a", "c"), verdict="await_approval"),
                          snapshot(3, "s3", "proposed", ("a", "d")), snapshot(4, "s3", "rejected")]:
        log = apply(log, event, offset)
    rows = lesson_rows({("t", "bot"): [lesson(x) for x in "abcde"]}, log, {}, blamed={"d"},
                       quarantined=set())
    assert {r.experience_id: (r.status, r.gate) for r in rows} == {
        "a": ("active", "active"), "b": ("active", "active"),
        "c": ("proposed", "awaiting approval"), "d": ("proposed", "blamed"),
        "e": ("proposed", "not in a candidate")}
    assert gate_counts(log) == {"proposed": 3, "activated": 1, "rejected": 1,
                                "awaiting approval": 1}


def test_the_json_has_the_integer_figures_and_the_lessons() -> None:
    tally = Tally(min_support=1)
    call = FailedCall("pay", SIG, {})
    tally.recalled(EpisodeFacts(0, "bot", frozenset({"pay"}), (call,)), Recalls(()))
    tally.fed(EpisodeFacts(0, "bot", frozenset({"pay"}), (call,)))
    tally.recalled(EpisodeFacts(1, "bot", frozenset({"pay"}), (call,)),
                   Recalls((LessonView("a", "pay", SIG, None),)))
    rows = lesson_rows({("t", "bot"): [lesson("a")]}, SnapshotLog(), tally.lessons,
                       blamed=set(), quarantined=set())
    report = BacktestReport(tally, rows, {}, {"window": 1, "k": 5, "tools": "available",
                                              "min_support": 1}, ["x.json"])
    data = json.loads(json.dumps(report.to_json()))
    for key in ("episodes", "recurring_failures", "recurring_after_support",
                "recurring_with_relevant_lesson", "episodes_with_off_target_lesson"):
        assert isinstance(data[key], int)
    assert (data["recurring_after_support"], data["recurring_with_relevant_lesson"]) == (1, 1)
    assert data["lessons"][0]["status"] == "proposed" and data["lessons"][0]["relevant"] == 1
    assert "1 of      1" in report.render_table()
    html = backtest_section(report)
    assert 'data-figure="recurring_with_relevant_lesson" data-count="1" data-total="1"' in html
