"""The rules loader: every mistake reported with its path and a plain message, all at once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from scoring import RulesError, check_rules_file, check_rules_text, load_rules, load_rules_file
from scoring.fields import BUILTIN_ACTIVITY_KINDS
from scoring.lifecycle_rules import LIFECYCLE_SECTIONS

DEFAULT_RULES = Path(__file__).resolve().parent.parent / "rules" / "leadloop.yaml"
#: A frozen older copy of the shipped rules: its routes use the old syntax ``{field, op, value}``.
OLD_SYNTAX_RULES = Path(__file__).resolve().parent / "fixtures" / "rules" / "digest-rules.yaml"
MINIMAL = """\
grades: {A: 40, B: 25, C: 10}
bands: {cold: {}, cool: {from: 20}, warm: {from: 40}, hot: {from: 70}}
mql: {bands: [warm, hot]}
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        load_rules(text)
    return caught.value.errors


@pytest.mark.parametrize(("extra", "expected"), [
    pytest.param("engagement:\n  - {id: a, kind: page_view, points: 1, decay: {half_life: 30 days}}\n",
                 'engagement[0].decay.half_life: must be a duration like "30d" (m, h, d or w)',
                 id="bad-duration"),
    pytest.param("engagement:\n  - {id: a, kind: page_view, points: 1, decay: {lifespan: 0d}}\n",
                 "engagement[0].decay.lifespan: must be longer than zero", id="zero-duration"),
    pytest.param("engagment: []\n", 'engagment: unknown key "engagment" (did you mean "engagement"?)',
                 id="unknown-top-level-key"),
    pytest.param("fit:\n  - {id: a, field: industry, equals: x, points: lots}\n",
                 "fit[0].points: must be a number", id="wrong-type"),
    pytest.param("fit: {id: a}\n", "fit: must be a list", id="section-not-a-list"),
    pytest.param("fit:\n  - {id: a, field: industry, startswith: Log, points: 1}\n",
                 'fit[0].startswith: unknown operator "startswith" '
                 "(use equals, in, not_in, contains, regex, min, max, above, below or present)",
                 id="unknown-operator"),
    pytest.param("fit:\n  - {id: a, field: industry, equal: Log, points: 1}\n",
                 'fit[0].equal: unknown operator "equal" (did you mean "equals"?)', id="operator-typo"),
    pytest.param("fit:\n  - {id: a, field: industry, points: 1}\n",
                 "fit[0]: needs an operator: equals, in, not_in, contains, regex, min, max, above, below or present",
                 id="missing-operator"),
    pytest.param("fit:\n  - {id: a, field: industry, equals: x, in: [y], points: 1}\n",
                 "fit[0]: use one operator per condition, found equals and in", id="two-operators"),
    pytest.param("fit:\n  - {id: a, field: employees, min: 500, max: 50, points: 1}\n",
                 "fit[0].max: must not be below min", id="min-above-max"),
    pytest.param("fit:\n  - {id: a, field: job_title, regex: '(head', points: 1}\n",
                 "fit[0].regex: not a valid regular expression (missing ), unterminated subpattern "
                 "at position 0)", id="bad-regex"),
    pytest.param("fit:\n  - {id: a, kind: page_view, field: x, present: true, points: 1}\n",
                 'fit[0].kind: "kind" cannot be used in a fit rule (fit looks at lead fields only)',
                 id="signal-key-in-fit"),
    pytest.param("assets: {blog: {name: Blog, intent: cool}}\n"
                 "engagement:\n  - {id: a, kind: content_download, asset: blgo, points: 1}\n",
                 'engagement[0].asset: unknown asset "blgo" (did you mean "blog"?) (list it under assets)',
                 id="unknown-asset"),
    pytest.param("assets: {blog: {name: Blog, intent: lukewarm}}\n",
                 'assets.blog.intent: unknown intent "lukewarm" (use cold, cool, warm or hot)',
                 id="unknown-intent"),
    pytest.param("engagement:\n  - {id: a, kind: pageview, points: 1}\n",
                 'engagement[0].kind: unknown event kind "pageview" (did you mean "page_view"?) '
                 "(declare new kinds under activity_kinds)", id="unknown-kind"),
    pytest.param("engagement:\n  - {id: a, kind: page_view, points: 1, limit: {count: 0, per: 7d}}\n",
                 "engagement[0].limit.count: must be 1 or more", id="zero-limit"),
    pytest.param("engagement:\n  - {id: a, kind: page_view, points: 1, decay: {half_life: 7d, lifespan: 9d}}\n",
                 "engagement[0].decay: give either half_life or lifespan", id="two-decays"),
    pytest.param("engagement_caps: {total: -5}\n", "engagement_caps.total: must be zero or more",
                 id="negative-cap"),
    pytest.param("engagement_caps: {groups: {web: 10}}\n",
                 'engagement_caps.groups.web: no engagement rule has group "web"', id="unused-cap-group"),
    pytest.param("negative: {free_mail: {points: 20}}\n",
                 "negative.free_mail.points: must be zero or less (negative signals lower the score)",
                 id="positive-negative-points"),
    pytest.param("negative: {competitor: {points: -5}}\n", "negative.competitor.domains: required",
                 id="missing-nested-key"),
    pytest.param("overrides:\n  - {id: o, at_least: boiling, when_any: [{kind: contact_request}]}\n",
                 'overrides[0].at_least: unknown band "boiling" (use cold, cool, warm or hot)',
                 id="unknown-override-band"),
    pytest.param("overrides:\n  - {id: o, when_any: [{kind: contact_request}]}\n",
                 "overrides[0]: give either force or at_least (a band)", id="override-without-effect"),
    pytest.param("disqualify:\n  - {id: d, reason: r, when_any: []}\n",
                 "disqualify[0].when_any: must list at least one condition", id="empty-conditions"),
    pytest.param("disqualify:\n  - {id: d, reason: r, when_any: [{disqualified: true}]}\n",
                 "disqualify[0].when_any[0].disqualified: a disqualify rule cannot depend on being "
                 "disqualified", id="circular-disqualify"),
    pytest.param("disqualify:\n  - {id: d, reason: r, when_any: [{negative: competitor}]}\n",
                 "disqualify[0].when_any[0].negative: negative.competitor is not set up, so this never holds",
                 id="negative-not-set-up"),
    pytest.param("priority:\n  - {id: p, priority: high, when_any: [{tag: problm}]}\n",
                 'priority[0].when_any[0].tag: no asset has the tag "problm"', id="unknown-tag"),
    pytest.param("priority:\n  - {id: p, priority: high, when_any: [{grade: [A], kind: page_view}]}\n",
                 "priority[0].when_any[0]: checks signal and grade at once; write separate conditions",
                 id="mixed-condition"),
    pytest.param("fit:\n  - {id: a, field: x, present: true, points: 1}\n"
                 "  - {id: a, field: y, present: true, points: 1}\n",
                 'fit[1].id: "a" is already used at fit[0]', id="duplicate-id"),
    pytest.param("rescore: {score_step: 0}\n",
                 "rescore.score_step: must be 1 or more (points of the written score)", id="zero-score-step"),
    pytest.param("rescore: {score_step: 2.5}\n", "rescore.score_step: must be a whole number",
                 id="fractional-score-step"),
    pytest.param("rescore: {scorestep: 5}\n",
                 'rescore.scorestep: unknown key "scorestep" (did you mean "score_step"?)',
                 id="rescore-typo"),
    pytest.param("mql: {bands: [hot]}\n", 'line 4: key "mql" is written twice', id="duplicate-yaml-key"),
    pytest.param("fit: [\n", "line 5, column 1: not valid YAML: expected the node content, but found "
                 "'<stream end>'", id="yaml-syntax"),
])
def test_each_mistake_is_reported_with_path_and_plain_message(extra: str, expected: str) -> None:
    assert errors_of(MINIMAL + extra) == [expected]


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param(MINIMAL.replace("warm: {from: 40}", "warm: {from: 15}"),
                 "bands.warm.from: must be higher than bands.cool.from (20)", id="unsorted-bands"),
    pytest.param(MINIMAL.replace("warm: {from: 40}", "warm: {from: 20}"),
                 "bands.warm.from: must be higher than bands.cool.from (20)", id="overlapping-bands"),
    pytest.param(MINIMAL.replace("cold: {}", "cold: {from: 0}"),
                 "bands.cold.from: cold is everything below cool; remove this key", id="cold-threshold"),
    pytest.param(MINIMAL.replace("hot: {from: 70}", "hot: {playbook: call_now}"),
                 "bands.hot.from: required (the lowest score of this band)", id="band-without-threshold"),
    pytest.param(MINIMAL.replace("[warm, hot]", "[warm, hott]"),
                 'mql.bands[1]: unknown band "hott" (use cold, cool, warm or hot)', id="unknown-mql-band"),
    pytest.param(MINIMAL.replace("B: 25", "B: 45"), "grades.B: must be lower than A (40)",
                 id="unsorted-grades"),
    pytest.param(MINIMAL.replace("grades: {A: 40, B: 25, C: 10}\n", ""), "grades: required",
                 id="missing-section"),
    pytest.param("", "(top): the rules file is empty", id="empty-file"),
    pytest.param("- fit\n", "(top): the rules file must be made of sections like fit: and bands:, not a list",
                 id="top-level-list"),
])
def test_structural_mistakes(text: str, expected: str) -> None:
    assert errors_of(text) == [expected]


def test_all_mistakes_are_reported_at_once_in_file_order() -> None:
    text = MINIMAL.replace("B: 25", "B: 45") + (
        "engagement:\n"
        "  - {id: a, kind: page_view, points: 1, decay: {half_life: soon}}\n"
        "  - {id: b, kind: pageview, points: x}\n"
        "engagement_caps: {total: -1}\n"
    )
    assert errors_of(text) == [
        'engagement[0].decay.half_life: must be a duration like "30d" (m, h, d or w)',
        "engagement[1].kind: unknown event kind \"pageview\" (did you mean \"page_view\"?) "
        "(declare new kinds under activity_kinds)",
        "engagement[1].points: must be a number",
        "engagement_caps.total: must be zero or more",
        "grades.B: must be lower than A (40)",
    ]
    assert str(RulesError(["a: b", "c: d"])) == "a: b\nc: d"


def test_check_reports_errors_or_a_summary() -> None:
    ok, output = check_rules_text(MINIMAL + "engagement_caps: {total: -1}\n", "team.yaml")
    assert not ok
    assert output == "team.yaml: 1 mistake\n  engagement_caps.total: must be zero or more"
    ok, output = check_rules_text(MINIMAL, "team.yaml")
    assert ok
    lines = output.splitlines()
    assert lines[0] == f"team.yaml: rules OK, version {load_rules(MINIMAL).version}"
    assert "  bands:        cold < 20 ≤ cool < 40 ≤ warm < 70 ≤ hot" in lines
    assert "  MQL:          band warm or hot, grade A, B, C or D, not disqualified" in lines
    assert "  playbooks:    cold → nurture_only, cool → automated_follow_up, warm → individual_follow_up, " \
           "hot → call_now" in lines


def test_check_file_that_does_not_exist(tmp_path: Path) -> None:
    ok, output = check_rules_file(tmp_path / "missing.yaml")
    assert not ok and "cannot read the file" in output
    with pytest.raises(RulesError) as caught:
        load_rules_file(tmp_path / "missing.yaml")
    assert caught.value.errors[0].startswith("(file): cannot read")


def test_version_ignores_key_order_comments_and_whitespace() -> None:
    reordered = """\
# the same rules, written differently
mql:   {bands: [warm, hot]}     # handed to sales
bands:
  hot: {from: 70}
  warm: {from: 40}
  cool: {from: 20}
  cold: {}

grades: {C: 10, B: 25, A: 40}
"""
    assert load_rules(reordered).version == load_rules(MINIMAL).version
    assert len(load_rules(MINIMAL).version) == 12
    # Same meaning spelled differently (defaults written out, 2w vs 14d) is the same version too.
    explicit = MINIMAL.replace("cold: {}", "cold: {playbook: nurture_only}")
    assert load_rules(explicit).version == load_rules(MINIMAL).version


def test_rescore_section_is_optional_and_kept_as_written() -> None:
    # No default is filled in, so files written before the section existed keep their version.
    assert "rescore" not in load_rules(MINIMAL).data
    assert load_rules(MINIMAL + "rescore: {score_step: 2}\n").data["rescore"] == {"score_step": 2}
    assert load_rules(MINIMAL + "rescore: {}\n").data["rescore"] == {}


def test_version_changes_with_content() -> None:
    assert load_rules(MINIMAL.replace("from: 70", "from: 71")).version != load_rules(MINIMAL).version


def test_activity_kinds_include_declared_kinds() -> None:
    rules = load_rules(MINIMAL + "activity_kinds: [webinar_registration]\n"
                       "engagement:\n  - {id: w, kind: webinar_registration, points: 5}\n")
    assert rules.activity_kinds == BUILTIN_ACTIVITY_KINDS | {"webinar_registration"}


def test_lifecycle_sections_are_known_top_level_keys() -> None:
    rules = load_rules(MINIMAL)
    assert rules.lifecycle is not None
    for key in LIFECYCLE_SECTIONS:
        text = MINIMAL + f"{key}: 17\n"
        assert all(not line.startswith(f"{key}: unknown key") for line in errors_of(text))


def test_default_rules_file_passes_the_check() -> None:
    ok, output = check_rules_file(DEFAULT_RULES)
    assert ok, output
    rules = load_rules_file(DEFAULT_RULES)
    assert rules.data["mql"] == {"bands": ["warm", "hot"], "grades": ["A", "B", "C"]}
    assert {b: rules.data["bands"][b]["playbook"] for b in ("cold", "cool", "warm", "hot")} == {
        "cold": "nurture_only", "cool": "automated_follow_up", "warm": "individual_follow_up",
        "hot": "call_now"}
    assert rules.data["assets"]["coverage-map"]["intent"] == "hot"
    assert rules.data["assets"]["blog"]["intent"] == "cool"


def test_default_rules_file_uses_the_one_condition_language() -> None:
    ok, output = check_rules_file(DEFAULT_RULES)
    assert ok and "warning:" not in output
    rules = load_rules_file(DEFAULT_RULES)
    assert rules.warnings == ()
    assert [route["when_all"] for route in rules.data["handoff"]["routes"]] == [
        [{"field": "country", "in": ["DE", "AT", "CH"]}], [{"field": "employees", "min": 1000}], []]
    # The frozen older copy writes the same routes in the old syntax: they load to the same data.
    # (It predates ``create_in``, which the shipped file sets.)
    old = load_rules_file(OLD_SYNTAX_RULES)
    assert old.lifecycle.handoff == replace(rules.lifecycle.handoff, create_in=None)
    assert old.data["handoff"] == {**rules.data["handoff"], "create_in": None}


def test_default_rules_file_ends_my_part_with_the_lifecycle_marker() -> None:
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    head, marker, _ = text.partition("# ==== lifecycle ====\n")
    assert marker and "# ==== lifecycle ====" not in head


def test_old_route_syntax_loads_and_check_says_how_to_rewrite_it() -> None:
    rules = load_rules_file(OLD_SYNTAX_RULES)
    assert [route.name for route in rules.lifecycle.handoff.routes] == ["dach", "enterprise", "everyone-else"]
    expected = [
        "handoff.routes[0].when: old name; write when_all (every condition must hold)",
        "handoff.routes[0].when[0]: old route syntax {field: country, op: in, value: [DE, AT, CH]}; "
        "write {field: country, in: [DE, AT, CH]}",
        "handoff.routes[1].when: old name; write when_all (every condition must hold)",
        "handoff.routes[1].when[0]: old route syntax {field: employees, op: gte, value: 1000}; "
        "write {field: employees, min: 1000}",
    ]
    assert list(rules.warnings) == expected
    ok, output = check_rules_file(OLD_SYNTAX_RULES)
    assert ok
    assert output.splitlines()[-4:] == [f"warning: {line}" for line in expected]


@pytest.mark.parametrize(("old", "rewrite"), [
    ("{field: industry, op: eq, value: Software}", "{field: industry, equals: Software}"),
    ("{field: employees, op: eq, value: 1000}", "{field: employees, in: [1000]}"),
    ("{field: do_not_contact, op: eq, value: true}", "{field: do_not_contact, in: [true]}"),
    ("{field: lead_source, op: eq, value: 'yes'}", "{field: lead_source, equals: 'yes'}"),
    ("{field: industry, op: ne, value: Software}", "{field: industry, not_in: [Software]}"),
    ("{field: country, op: not_in, value: [DE, AT]}", "{field: country, not_in: [DE, AT]}"),
    ("{field: employees, op: gt, value: 999}", "{field: employees, above: 999}"),
    ("{field: employees, op: lt, value: 50}", "{field: employees, below: 50}"),
    ("{field: employees, op: lte, value: 49.5}", "{field: employees, max: 49.5}"),
    ("{field: phone, op: exists, value: false}", "{field: phone, present: false}"),
])
def test_check_gives_the_exact_rewrite_of_each_old_op(old: str, rewrite: str) -> None:
    def with_route(condition: str) -> str:
        route = f"{{name: r, owner: o, when_all: [{condition}]}}"
        return MINIMAL + f"handoff:\n  fallback_owner: q\n  routes:\n    - {route}\n"

    ok, output = check_rules_text(with_route(old), "team.yaml")
    assert ok
    assert output.splitlines()[-1] == f"warning: handoff.routes[0].when_all[0]: old route syntax {old}; write {rewrite}"
    # The rewrite loads to the same rules (same version), without a warning.
    assert load_rules(with_route(rewrite)).version == load_rules(with_route(old)).version
    assert load_rules(with_route(rewrite)).warnings == ()
