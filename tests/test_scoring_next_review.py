"""``next_review``: the score's next change and the recycle cooldown's end, whichever comes first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scoring import NextChange, load_rules_file
from scoring.lifecycle import LeadState, decide, recycle_lead
from scoring.review import COOLDOWN_ENDS, next_review

NOW = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SOON = NextChange(NOW + 3 * DAY, "band hot->warm", "decay")


@pytest.mark.parametrize(("stage", "cooldown_days", "change", "expected"), [
    pytest.param("nurture", None, SOON, SOON, id="no-cooldown"),
    pytest.param("nurture", None, None, None, id="nothing-at-all"),
    pytest.param("recycled", 10, SOON, SOON, id="score-changes-first"),
    pytest.param("recycled", 2, SOON, NextChange(NOW + 2 * DAY, "stage recycled->nurture", COOLDOWN_ENDS),
                 id="cooldown-ends-first"),
    pytest.param("recycled", 2, None, NextChange(NOW + 2 * DAY, "stage recycled->nurture", COOLDOWN_ENDS),
                 id="only-the-cooldown"),
    pytest.param("nurture", 2, None, NextChange(NOW + 2 * DAY, "cooldown ends", COOLDOWN_ENDS),
                 id="cooldown-holds-a-nurture-lead-back"),  # e.g. kept by a merge
    pytest.param("recycled", 3, SOON, SOON, id="a-tie-goes-to-the-score"),
    pytest.param("recycled", -1, None, None, id="cooldown-already-over"),
    pytest.param("recycled", 0, None, None, id="cooldown-ends-now"),
    pytest.param("accepted", 2, SOON, SOON, id="sales-owns-the-lead"),
    pytest.param("disqualified", 2, None, None, id="out-of-the-loop"),
])
def test_next_review(stage: str, cooldown_days: int | None, change: NextChange | None,
                     expected: NextChange | None) -> None:
    until = None if cooldown_days is None else NOW + cooldown_days * DAY
    assert next_review(change, LeadState(stage=stage, cooldown_until=until), NOW) == expected


def test_review_is_when_decide_moves_the_recycled_lead() -> None:
    rules = load_rules_file(Path(__file__).resolve().parent.parent / "rules" / "leadloop.yaml").lifecycle
    recycled = recycle_lead(LeadState(stage="mql"), "not_ready", cause="disposition", rules=rules, now=NOW).state
    review = next_review(None, recycled, NOW)
    assert review == NextChange(NOW + 30 * DAY, "stage recycled->nurture", COOLDOWN_ENDS)  # not_ready: 30d
    assert decide(recycled, None, None, rules, review.at - timedelta(microseconds=1)).stage == "recycled"
    assert decide(recycled, None, None, rules, review.at).stage == "nurture"


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_review(SOON, LeadState(), datetime(2026, 3, 9))
