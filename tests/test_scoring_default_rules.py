"""The shipped rules file encodes the domain brief: a few leads scored under it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from scoring import LeadProfile, Rules, Signal, load_rules_file, score_lead

AS_OF = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
BUYER = {"email": "ada.schmidt@nordcargo-logistics.de", "phone": "+49 40 3508460", "country": "DE",
         "job_title": "Head of Dispatch", "industry": "Logistics", "employees": 240, "company": "Nordcargo"}


@cache
def default_rules() -> Rules:
    return load_rules_file(Path(__file__).resolve().parent.parent / "rules" / "leadloop.yaml")


def sig(kind: str, days_ago: float, **properties: Any) -> Signal:
    return Signal(kind, AS_OF - timedelta(days=days_ago), properties, f"{kind}-{days_ago}")


@pytest.mark.parametrize(("fields", "signals", "band", "mql", "priority"), [
    # a perfect-fit buyer who only read one blog post: the logo alone is not warm
    (BUYER, [sig("page_view", 2, url="https://www.example.com/blog/routing-tips")], "cool", False, "normal"),
    # the same person with no fit data, reading the blog: cold
    ({"email": "ada@nordcargo-logistics.de", "phone": "+49 40 3508460", "country": "DE"},
     [sig("page_view", 2, url="/blog/routing-tips")], "cold", False, "low"),
    # several sections of the buyer's guide in a week on a medium fit: warm
    ({**BUYER, "job_title": "Dispatcher", "employees": None},
     [sig("page_view", d, url=f"/guide/section-{d}") for d in range(1, 6)], "warm", True, "normal"),
    # the coverage map only a buyer checks: hot content with a problem indicator
    ({**BUYER, "job_title": "Dispatcher"}, [sig("content_download", 1, asset="coverage-map"),
                                            sig("page_view", 1, url="/pricing")], "hot", True, "high"),
    # came to an event: hot whatever the sum
    ({"email": "lee@gmail.com", "phone": "+1 650 253 0000", "country": "US"},
     [sig("event_attended", 3)], "hot", False, "low"),
    # a student at an event is disqualified, so stays cold
    ({"email": "mia@cs.ox.ac.uk", "phone": "+44 20 7946 0958", "country": "GB"},
     [sig("event_attended", 3)], "cold", False, "low"),
    # asked not to be contacted: cold, even for a perfect buyer
    ({**BUYER, "do_not_contact": True}, [sig("trial_signup", 1)], "cold", False, "normal"),
])
def test_default_rules_follow_the_brief(fields: dict[str, Any], signals: list[Signal], band: str, mql: bool,
                                        priority: str) -> None:
    result = score_lead(LeadProfile(fields), signals, default_rules(), AS_OF)
    assert (result.band, result.mql, result.priority) == (band, mql, priority), result.summary


def test_default_rules_penalise_a_lone_made_up_free_mail_address() -> None:
    result = score_lead(LeadProfile({"email": "sdfslk522@gmail.com"}), [], default_rules(), AS_OF)
    assert [r.text for r in result.reasons if r.kind == "negative"] == [
        "−30 email address looks made up (sdfslk522@)", "−20 free-mail address (gmail.com)",
        "−10 no phone number"]
    assert (result.score, result.disqualified, result.disqualify_reason) == (-60, True, "score below -40")
