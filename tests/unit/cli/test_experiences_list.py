"""`kaizen experiences list` says when it shows fewer rows than exist (issue 10 item 9)."""

from __future__ import annotations

import argparse

from kaizen.cli.experiences import _selected, shown_note
from kaizen.schemas.model import Experience, Trigger


def exp(i: int) -> Experience:
    return Experience(event_id=str(i), occurred_at=1, tenant="t", agent="a",
                      experience_id=f"x{i:02}", version=1, kind="pitfall", trigger=Trigger(),
                      guidance="g", evidence=[], support_episodes=i, support_users=1)


def test_a_limited_listing_says_how_many_matched() -> None:
    args = argparse.Namespace(tenant=None, agent=None, status=None, limit=3)
    shown, matched = _selected([exp(i) for i in range(10)], args)
    assert [x.support_episodes for x in shown] == [9, 8, 7] and matched == 10
    assert shown_note(len(shown), matched) == (
        "showing 3 of 10 experiences (best supported first); raise --limit"
    )
    assert shown_note(10, 10) is None
