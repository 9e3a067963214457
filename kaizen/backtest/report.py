"""The backtest report: the figures with their denominators, the lessons, and what the gate did.

`BacktestReport.to_json()` is the `--format json` document (integer figures at the top level, so a
script can check them); `render_table()` is what a person reads. Neither holds a wall-clock time or
a run id: the same input gives the same report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kaizen.backtest.tally import Tally

SIGNATURES_SHOWN = 15
LESSONS_SHOWN = 20


@dataclass
class Timings:
    """Wall-clock seconds per phase (kept out of the JSON report: it must not vary by run)."""

    start: float = 0.0
    feed_and_drain: float = 0.0
    gate: float = 0.0
    recall: float = 0.0
    windows: int = 0
    total: float = 0.0
    _marks: list[float] = field(default_factory=list)

    def render(self) -> str:
        return (f"time: {self.total:.0f} s (start {self.start:.0f} s, feed and drain "
                f"{self.feed_and_drain:.0f} s, gate {self.gate:.0f} s, recall {self.recall:.0f} s"
                f" over {self.windows} windows)")


@dataclass(frozen=True)
class LessonRow:
    """One lesson learnt during the backtest, as it stood at the end."""

    experience_id: str
    scope: str
    kind: str
    tool: str | None
    signature: str | None
    status: str  # active, or the lesson's own status (candidate, proposed, quarantined)
    gate: str  # what the gate did with it (see `kaizen.backtest.lessons`)
    support_episodes: int
    support_users: int
    guidance: str
    recalled: int
    relevant: int
    off_target: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class BacktestReport:
    tally: Tally
    lessons: list[LessonRow]
    gate: dict[str, int]
    settings: dict[str, Any]
    files: list[str]
    skipped: dict[str, int] = field(default_factory=dict)
    read_errors: list[str] = field(default_factory=list)
    dead_letters: int = 0
    timings: Timings | None = None  # how long it took: in the table, never in the JSON

    def figures(self) -> dict[str, int]:
        t = self.tally
        return {
            "episodes": t.episodes,
            "episodes_with_failure": t.episodes_with_failure,
            "failed_calls": t.failed_calls,
            "failures": t.failures,
            "recurring_failures": t.recurring_failures,
            "novel_failures": t.novel_failures,
            "recurring_after_support": t.recurring_after_support,
            "recurring_with_relevant_lesson": t.recurring_with_relevant_lesson,
            "recurring_with_relevant_lesson_at_start": t.recurring_with_relevant_lesson_at_start,
            "recurring_with_relevant_lesson_at_call": t.recurring_with_relevant_lesson_at_call,
            "recurring_any_with_relevant_lesson": t.recurring_any_with_relevant_lesson,
            "episodes_with_lesson": t.episodes_with_lesson,
            "episodes_with_lesson_at_start": t.episodes_with_lesson_at_start,
            "episodes_with_off_target_lesson": t.episodes_with_off_target_lesson,
            "episodes_with_off_target_lesson_at_start": t.episodes_with_off_target_lesson_at_start,
            "lessons_recalled": t.lessons_recalled,
            "lessons_recalled_at_start": t.lessons_recalled_at_start,
            "off_target_recalls": t.off_target_recalls,
            "calls": t.calls,
            "calls_with_lesson": t.calls_with_lesson,
            "failed_calls_after_first": t.failed_calls_after_first,
            "covered_by_on_error_recall": t.covered_by_on_error_recall,
            "dead_letters": self.dead_letters,
        }

    def to_json(self) -> dict[str, Any]:
        signatures = [
            {"scope": scope, "signature": sig, "episodes": f.episodes, "recurring": f.recurring,
             "after_support": f.after_support, "covered": f.covered}
            for (scope, sig), f in sorted(self.tally.signatures.items(),
                                          key=lambda kv: (-kv[1].episodes, kv[0]))
        ]
        return {**self.figures(), "settings": self.settings, "files": self.files,
                "skipped": self.skipped, "read_errors": self.read_errors, "gate": self.gate,
                "signatures": signatures, "lessons": [x.to_json() for x in self.lessons]}

    def render_table(self) -> str:
        f, t = self.figures(), self.tally
        lines = [f"backtest of {len(self.files)} file(s): {f['episodes']:,} episodes, window "
                 f"{self.settings['window']}, k {self.settings['k']}, tools "
                 f"{self.settings['tools']}, min support {self.settings['min_support']}",
                 f"recall at the start: k {self.settings['k']}, margin "
                 f"{self.settings.get('start_margin')}; before each call: k "
                 f"{self.settings.get('call_k')}, margin {self.settings.get('call_margin')}", ""]
        rows = [
            ("failures (episode x signature)", f["failures"], f["episodes"], "episodes"),
            ("  recurring (signature seen before)", f["recurring_failures"], f["failures"],
             "failures"),
            ("  novel", f["novel_failures"], f["failures"], "failures"),
            ("  recurring after support", f["recurring_after_support"],
             f["recurring_failures"], "recurring"),
            ("    with a relevant lesson recalled before", f["recurring_with_relevant_lesson"],
             f["recurring_after_support"], "after support"),
            ("      at the episode's start", f["recurring_with_relevant_lesson_at_start"],
             f["recurring_after_support"], "after support"),
            ("      right before the failing call", f["recurring_with_relevant_lesson_at_call"],
             f["recurring_after_support"], "after support"),
            ("  recurring with a relevant lesson (any)", f["recurring_any_with_relevant_lesson"],
             f["recurring_failures"], "recurring"),
            ("episodes with a recalled lesson", f["episodes_with_lesson"], f["episodes"],
             "episodes"),
            ("  at the start", f["episodes_with_lesson_at_start"], f["episodes"], "episodes"),
            ("episodes with an off-target lesson", f["episodes_with_off_target_lesson"],
             f["episodes"], "episodes"),
            ("  at the start", f["episodes_with_off_target_lesson_at_start"], f["episodes"],
             "episodes"),
            ("calls with a lesson recalled right before", f["calls_with_lesson"], f["calls"],
             "calls"),
            ("failed calls after a first failure", f["failed_calls_after_first"],
             f["failed_calls"], "failed calls"),
            ("  covered by an on-error recall", f["covered_by_on_error_recall"],
             f["failed_calls_after_first"], "after a first"),
        ]
        for label, count, total, of in rows:
            share = f"{count / total:6.1%}" if total else "     -"
            lines.append(f"{label:<46} {count:>6,} of {total:>6,} {of:<14} {share}")
        lines += ["", f"gate: {_gate_text(self.gate)}; dead letters: {self.dead_letters}"]
        lines += self._signature_lines(t) + self._lesson_lines()
        lines += [f"read error: {e}" for e in self.read_errors]
        if self.timings is not None:
            lines += ["", self.timings.render()]
        return "\n".join(lines)

    def _signature_lines(self, t: Tally) -> list[str]:
        top = sorted(t.signatures.items(), key=lambda kv: (-kv[1].episodes, kv[0]))
        lines = ["", f"{'episodes':>8} {'recur':>6} {'after':>6} {'covered':>7}  signature"]
        for (_, sig), s in top[:SIGNATURES_SHOWN]:
            lines.append(f"{s.episodes:>8} {s.recurring:>6} {s.after_support:>6} "
                         f"{s.covered:>7}  {sig[:90]}")
        if len(top) > SIGNATURES_SHOWN:
            lines.append(f"... and {len(top) - SIGNATURES_SHOWN} more signatures (--format json)")
        return lines

    def _lesson_lines(self) -> list[str]:
        by_status: dict[str, int] = {}
        for lesson in self.lessons:
            by_status[lesson.status] = by_status.get(lesson.status, 0) + 1
        counts = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "none"
        lines = ["", f"lessons: {len(self.lessons)} ({counts})",
                 f"{'status':<11} {'gate':<20} {'support':>7} {'recalled':>8} {'relevant':>8} "
                 f"{'off':>4}  guidance"]
        ranked = sorted(self.lessons, key=lambda x: (-x.recalled, -x.support_episodes,
                                                     x.experience_id))
        for x in ranked[:LESSONS_SHOWN]:
            lines.append(f"{x.status:<11} {x.gate:<20} {x.support_episodes:>7} {x.recalled:>8} "
                         f"{x.relevant:>8} {x.off_target:>4}  {x.guidance[:70]}")
        if len(ranked) > LESSONS_SHOWN:
            lines.append(f"... and {len(ranked) - LESSONS_SHOWN} more lessons (--format json)")
        return lines


def _gate_text(gate: dict[str, int]) -> str:
    return ", ".join(f"{n} {action}" for action, n in sorted(gate.items())) or "no candidates"
