"""Shared test material for the lifecycle tests: a rules file, score results, times.

Results are built with the real ``scoring.ScoreResult``/``Reason`` when they exist, else with a
local stand-in that has the same field names (the scoring engine is written in parallel).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from connectors import status_fields
from scoring import Reason, ScoreResult
from scoring.lifecycle_rules import LifecycleRules, build

BERLIN = ZoneInfo("Europe/Berlin")

#: band -> (score, playbook, mql)
BAND_DEFAULTS: dict[str, tuple[float, str, bool]] = {
    "cold": (10, "nurture_only", False),
    "cool": (30, "automated_follow_up", False),
    "warm": (60, "individual_follow_up", True),
    "hot": (90, "call_now", True),
}

#: (text, points, rule, kind), strongest first as the engine orders them.
TEST_REASONS = (
    ("+40 registered for the trial (today)", 40.0, "trial_signup", "engagement"),
    ("+25 asked to be contacted (today)", 25.0, "contact_request", "engagement"),
    ("+15 company has 1,200 employees", 15.0, "employees_1000", "fit"),
    ("+5 read the pricing page (2 days ago)", 5.0, "pricing_page", "engagement"),
)


def make_result(band: str = "hot", *, mql: bool | None = None, disqualified: bool = False,
                disqualify_reason: str | None = None, as_of: datetime | None = None,
                **overrides: Any) -> Any:
    """Return a ScoreResult for a band with concrete values; keyword overrides replace fields."""
    score, playbook, band_mql = BAND_DEFAULTS[band]
    values: dict[str, Any] = {
        "fit_points": 15.0, "engagement_points": score - 15.0, "score": score, "band": band, "grade": "A",
        "mql": band_mql if mql is None else mql,
        "disqualified": disqualified, "disqualify_reason": disqualify_reason,
        "priority": "high" if band == "hot" else "normal", "playbook": playbook,
        "reasons": tuple(Reason(points=points, text=text, rule=rule, kind=kind)
                         for text, points, rule, kind in TEST_REASONS),
        "summary": f"{band.capitalize()} lead, score {score:g}", "rules_version": "v7",
        "as_of": as_of or datetime(2026, 4, 2, 14, 30, tzinfo=BERLIN),
    }
    values.update(overrides)
    known = set(ScoreResult._fields)
    values = {name: value for name, value in values.items() if name in known}
    return ScoreResult(**values)


RULES_YAML = """
working_hours: {opens: "09:00", closes: "17:00", timezone: Europe/Berlin, country: DE}
playbooks:
  nurture_only: {task: false}
  automated_follow_up: {task: false}
  individual_follow_up: {due: 1d, priority: normal, type: email, subject: "Follow up with {name} ({band})"}
  call_now: {due: 1h, priority: high, type: call, subject: "Call {name} now ({score})"}
handoff:
  keep_existing_owner: true
  fallback_owner: queue-owner
  routes:
    - name: dach
      when_all: [{field: country, in: [DE, AT, CH]}]
      team: dach
    - name: enterprise
      when_all: [{field: employees, min: 1000}]
      team: enterprise
    - name: partners
      when_all: [{field: lead_source, equals: Partner}]
      owner: partner-manager
  teams:
    dach:
      members:
        - {id: anna, weight: 2, timezone: Europe/Berlin, country: DE}
        - {id: ben, weight: 1, timezone: Europe/Vienna, country: AT}
        - {id: carla, weight: 1, timezone: Europe/Zurich, country: CH-ZH}
    enterprise:
      members:
        - {id: erin, weight: 1, timezone: America/New_York, country: US}
        - {id: evan, weight: 1, available: false}
sla:
  individual_follow_up: {escalation: [remind, reassign, recycle], max_misses: 3}
  hot: {escalation: [reassign], max_misses: 2}
  default: {escalation: [remind], max_misses: 2}
feedback:
  hubspot:
    hs_lead_status:
      IN_PROGRESS: accepted
      CONNECTED: accepted
      OPEN_DEAL: qualified
      UNQUALIFIED: rejected:bad_data
      BAD_TIMING: rejected:not_ready
    lifecycle_stage: {salesqualifiedlead: qualified, opportunity: qualified, customer: won}
  salesforce:
    Status:
      "Working - Contacted": accepted
      "Closed - Converted": won
      "Closed - Not Converted": rejected:not_ready
recycle:
  max_recycles: 2
  default_track: general-nurture
  reasons:
    not_ready: {cooldown: 30d, reset: engagement, track: long-term-nurture}
    no_response: {cooldown: 14d, reset: penalty, penalty: 10, track: re-engagement}
    wrong_person: {track: account-nurture}
    bad_data: {to: disqualified}
    competitor: {to: disqualified}
crm_stages:
  hubspot:
    nurture: {hs_lead_status: OPEN}
    mql: {lifecyclestage: marketingqualifiedlead, hs_lead_status: NEW}
    recycled: {hs_lead_status: BAD_TIMING}
    disqualified: {hs_lead_status: UNQUALIFIED}
  salesforce:
    mql: {Status: "Open - Not Contacted"}
    recycled: {Status: Recycled}
"""


def make_rules(**section_overrides: Any) -> LifecycleRules:
    """Return the test rules, with whole sections replaced by ``section_overrides``."""
    sections = yaml.safe_load(RULES_YAML)
    sections.update(section_overrides)
    return build(sections, status_fields())


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """Return an aware Berlin wall-clock time."""
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


DAY = timedelta(days=1)
