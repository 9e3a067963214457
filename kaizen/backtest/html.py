"""The backtest section of the HTML report, and a page holding only it (`kaizen backtest --html`).

Rendered with the fleet report's building blocks (`kaizen.demo.report`), self-contained (no scripts
or fetched assets). Figures carry `data-figure` / `data-count` / `data-total` attributes, so a test
can read what is shown without parsing the prose.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from kaizen.backtest.report import BacktestReport
from kaizen.demo.report import html_page, section, table

FIGURES = (
    ("recurring_with_relevant_lesson", "recurring failures after support with a relevant "
                                       "lesson recalled before", "recurring_after_support"),
    ("recurring_with_relevant_lesson_at_start", "... the lesson recalled at the episode's start",
     "recurring_after_support"),
    ("recurring_with_relevant_lesson_at_call", "... the lesson recalled right before the failing "
                                               "call", "recurring_after_support"),
    ("recurring_after_support", "recurring failures after support", "recurring_failures"),
    ("recurring_failures", "recurring failures", "failures"),
    ("novel_failures", "novel failures", "failures"),
    ("episodes_with_off_target_lesson", "episodes with an off-target lesson", "episodes"),
    ("episodes_with_off_target_lesson_at_start", "... from the recall at the start", "episodes"),
    ("calls_with_lesson", "calls with a lesson recalled right before", "calls"),
    ("covered_by_on_error_recall", "failed calls after a first failure covered by an on-error "
                                   "recall", "failed_calls_after_first"),
)


def backtest_section(report: BacktestReport) -> str:
    """`<section id="backtest">`: the figures with denominators, top signatures, the lessons."""
    figures = report.figures()
    items = []
    for key, label, total_key in FIGURES:
        count, total = figures[key], figures[total_key]
        share = f" ({count / total:.0%})" if total else ""
        items.append(f'<li data-figure="{key}" data-count="{count}" data-total="{total}">'
                     f"{escape(label)}: <b>{count:,}</b> of {total:,}{share}</li>")
    head = (f"<p>{figures['episodes']:,} episodes from {len(report.files)} file(s); window "
            f"{report.settings['window']}, k {report.settings['k']}, tools "
            f"{escape(str(report.settings['tools']))}, min support "
            f"{report.settings['min_support']}; before each call k "
            f"{report.settings.get('call_k')}, margin {report.settings.get('call_margin')}."
            f"</p>\n<ul>{''.join(items)}</ul>")
    data = report.to_json()
    signatures = table("backtest-signatures", ("signature", "episodes", "recurring",
                                               "after support", "covered"),
                       [(s["signature"], s["episodes"], s["recurring"], s["after_support"],
                         s["covered"]) for s in data["signatures"][:20]])
    lessons = table("backtest-lessons", ("status", "gate", "tool", "support", "recalled",
                                         "relevant", "off-target", "guidance"),
                    [(x.status, x.gate, x.tool, x.support_episodes, x.recalled, x.relevant,
                      x.off_target, x.guidance) for x in report.lessons])
    gate = ", ".join(f"{n} {a}" for a, n in sorted(report.gate.items())) or "no candidates"
    return section("backtest", "Backtest: what recall would have prevented",
                   f"{head}\n<p>Gate: {escape(gate)}.</p>\n<h3>Failures by signature</h3>\n"
                   f"{signatures}\n<h3>Lessons</h3>\n{lessons}")


def write_backtest_page(path: str | Path, report: BacktestReport) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html_page("Kaizen backtest", backtest_section(report)), encoding="utf-8")
    return target.resolve()
