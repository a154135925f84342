"""The plain-text summary ``leadloop rules check`` prints for a valid rules file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scoring.lifecycle_rules import LIFECYCLE_SECTIONS
from scoring.rules_schema import BAND_NAMES, NEGATIVE_SIGNALS
from scoring.wording import format_points


def _words(items: list[str], joiner: str = "or") -> str:
    return ", ".join(items[:-1]) + f" {joiner} " + items[-1] if len(items) > 1 else "".join(items)


def describe_rules(data: Mapping[str, Any], version: str, source: str) -> str:
    """Return a short, readable summary of loaded rules data: counts, bands, MQL, version."""
    bands = data["bands"]
    grades = data["grades"]
    caps = data["engagement_caps"]
    negative = data["negative"]
    enabled = [n for n in NEGATIVE_SIGNALS if n in negative and negative[n]["enabled"]]
    switched_off = [n for n in NEGATIVE_SIGNALS if n not in enabled]
    cap_words = [f"{g} {v:g}" for g, v in caps.get("groups", {}).items()]
    if "total" in caps:
        cap_words.insert(0, f"all {caps['total']:g}")
    band_line = f"cold < {bands['cool']['from']:g}"
    for band in BAND_NAMES[1:]:
        band_line += f" ≤ {band}" + (f" < {bands[BAND_NAMES[BAND_NAMES.index(band) + 1]]['from']:g}"
                                    if band != "hot" else "")
    mql = data["mql"]
    mql_line = f"band {_words(mql['bands'])}, grade {_words(mql['grades'])}"
    if "min_score" in mql:
        mql_line += f", score at least {mql['min_score']:g}"
    lines = [
        f"{source}: rules OK, version {version}" + (f" ({data['name']})" if data.get("name") else ""),
        f"  fit:          {len(data['fit'])} rules; grade A from {grades['A']:g}, B from {grades['B']:g}, "
        f"C from {grades['C']:g}, D below",
        f"  engagement:   {len(data['engagement'])} rules over {len(data['assets'])} assets"
        + (f"; caps: {', '.join(cap_words)}" if cap_words else ""),
        "  negative:     " + (", ".join(f"{n} {format_points(negative[n]['points'])}" for n in enabled)
                              or "none"),
        f"  switched off: {', '.join(switched_off) or 'none'}",
        "  bands:        " + band_line,
        "  playbooks:    " + ", ".join(f"{b} → {bands[b]['playbook']}" for b in BAND_NAMES),
        f"  overrides:    {len(data['overrides'])}, priority rules: {len(data['priority'])}, "
        f"disqualify rules: {len(data['disqualify'])}",
        f"  MQL:          {mql_line}, not disqualified",
    ]
    if data["activity_kinds"]:
        lines.append(f"  extra kinds:  {', '.join(data['activity_kinds'])}")
    lifecycle = [key for key in LIFECYCLE_SECTIONS if key in data]
    if lifecycle:
        lines.append(f"  lifecycle:    {', '.join(lifecycle)}")
    return "\n".join(lines)

