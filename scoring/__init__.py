"""leadloop's pure scoring engine: rules file in, verdict on a lead out.

Nothing in this package reads the clock, the network or the database; the only I/O is
reading a rules file in ``load_rules_file``. Time is always an argument (``as_of``).

    rules = load_rules_file("rules/leadloop.yaml")
    result = score_lead(LeadProfile({"email": "ada@acme.com"}), signals, rules, as_of)
    change = next_change(LeadProfile({"email": "ada@acme.com"}), signals, rules, as_of)  # or None
    ok, output = check_rules_text(text, "rules/leadloop.yaml")   # `leadloop rules check FILE`
"""

from scoring import native
from scoring.model import LeadProfile, NextChange, Reason, ScoreResult, Signal
from scoring.rules import (
    Rules,
    RulesError,
    check_rules_file,
    check_rules_text,
    load_rules,
    load_rules_file,
    rules_version,
)

#: ``score_lead``, compiled or pure Python: ``scoring.native`` chooses.
score_lead = native.implementation().score_lead
#: ``next_change`` (``scoring.timeline``), compiled or pure Python, from the same side as ``score_lead``.
next_change = native.next_change_function()

__all__ = [
    "LeadProfile", "NextChange", "Reason", "Rules", "RulesError", "ScoreResult", "Signal", "check_rules_file",
    "check_rules_text", "load_rules", "load_rules_file", "next_change", "rules_version", "score_lead",
]
