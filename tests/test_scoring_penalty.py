"""The recycle penalty hook of ``score_lead``, and a digest guarding the engine's results."""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from datetime import timedelta
from functools import cache
from pathlib import Path

import pytest

from bench.scoring import AS_OF as BENCH_AS_OF
from bench.scoring import make_profile, make_signals
from scoring import LeadProfile, Rules, Signal, load_rules_file, score_lead
from tests.test_scoring_default_rules import AS_OF, BUYER

#: Fit 45 (grade A) plus the coverage map downloaded a day ago (+39.1): hot 84.1, an MQL.
SIGNALS = [Signal("content_download", AS_OF - timedelta(days=1), {"asset": "coverage-map"}, "d1")]


@cache
def default_rules() -> Rules:
    return load_rules_file(Path(__file__).resolve().parent.parent / "rules" / "leadloop.yaml")


@pytest.mark.parametrize(("penalty", "engagement_points", "score", "band", "mql"), [
    (0, 39.1, 84.1, "hot", True),
    (5, 34.1, 79.1, "hot", True),
    (10, 29.1, 74.1, "warm", True),      # crosses the hot threshold (75)
    (7.5, 31.6, 76.6, "hot", True),
    (40, -0.9, 44.1, "cool", False),     # below warm: no longer an MQL
])
def test_penalty_lowers_engagement_score_and_band(penalty: float, engagement_points: float, score: float,
                                                  band: str, mql: bool) -> None:
    result = score_lead(LeadProfile(BUYER), SIGNALS, default_rules(), AS_OF, penalty=penalty)
    assert (result.fit_points, result.engagement_points, result.score, result.band, result.mql, result.grade) == \
        (45, engagement_points, score, band, mql, "A")
    assert result.score == round(sum(reason.points for reason in result.reasons), 1)


def test_penalty_can_push_a_lead_under_the_score_floor() -> None:
    lead = LeadProfile({"email": "lee@gmail.com", "phone": "+49 40 3508460", "country": "DE"})
    assert score_lead(lead, [], default_rules(), AS_OF).score == -15  # free mail -20, country +5
    result = score_lead(lead, [], default_rules(), AS_OF, penalty=30)
    assert (result.score, result.disqualified, result.disqualify_reason) == (-45, True, "score below -40")


def test_zero_penalty_changes_nothing() -> None:
    plain = score_lead(LeadProfile(BUYER), SIGNALS, default_rules(), AS_OF)
    assert score_lead(LeadProfile(BUYER), SIGNALS, default_rules(), AS_OF, penalty=0,
                      penalty_reason="recycled") == plain
    assert not [reason for reason in plain.reasons if reason.rule == "recycle_penalty"]


@pytest.mark.parametrize(("penalty", "penalty_reason", "text", "summary_item"), [
    (10, "", "−10 recycle penalty", "−10 recycle penalty"),
    (7.5, "recycled: no response (2025-05-20)", "−7.5 recycled: no response (2025-05-20)",
     "−7.5 recycled: no response"),
    (40, "recycled: not ready", "−40 recycled: not ready", "−40 recycled: not ready"),
])
def test_penalty_reason(penalty: float, penalty_reason: str, text: str, summary_item: str) -> None:
    result = score_lead(LeadProfile(BUYER), SIGNALS, default_rules(), AS_OF, penalty=penalty,
                        penalty_reason=penalty_reason)
    [reason] = [reason for reason in result.reasons if reason.rule == "recycle_penalty"]
    assert (reason.points, reason.text, reason.kind) == (-penalty, text, "negative")
    assert summary_item in result.summary.split(": ", 1)[1].split("; ")


@pytest.mark.parametrize("penalty", [-1, math.nan, math.inf])
def test_penalty_must_be_finite_and_not_negative(penalty: float) -> None:
    with pytest.raises(ValueError, match="penalty"):
        score_lead(LeadProfile(BUYER), SIGNALS, default_rules(), AS_OF, penalty=penalty)


def test_bench_population_digest() -> None:
    """500 seeded bench leads score exactly as the engine did before it was optimised.

    Recorded with the unoptimised engine (commit 1bd00c4), under a frozen copy of the rules file
    of that time (tests/fixtures/rules/digest-rules.yaml), so it guards the engine, not the
    shipped rules. The digest covers every score, band, grade, flag, reason and summary, so any
    change in results fails here. A new phonenumbers / domain-list release that judges one of
    these numbers or domains differently also changes it: re-record then.
    """
    rules = load_rules_file(Path(__file__).resolve().parent / "fixtures" / "rules" / "digest-rules.yaml")
    rng = random.Random(7)
    leads = [(make_profile(rng, i), make_signals(rng, 20, i)) for i in range(500)]
    results = [score_lead(profile, signals, rules, BENCH_AS_OF) for profile, signals in leads]
    digest = hashlib.sha256()
    for r in results:
        digest.update(repr((r.score, r.fit_points, r.engagement_points, r.grade, r.band, r.mql, r.disqualified,
                            r.priority, r.summary, [(x.points, x.text, x.rule, x.kind) for x in r.reasons])).encode())
    assert round(sum(r.score for r in results), 1) == 16545.0
    assert Counter(r.band for r in results) == {"cold": 232, "cool": 56, "warm": 116, "hot": 96}
    assert (sum(r.mql for r in results), sum(r.disqualified for r in results)) == (141, 167)
    assert Counter(r.priority for r in results) == {"high": 287, "normal": 94, "low": 119}
    assert digest.hexdigest() == "d9ae2a5bef8cb84f119b898dc218aae958c9ad13297106db8f4d6eebe2ee4c7b"
