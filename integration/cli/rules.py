"""``leadloop rules check`` and ``leadloop rules compare``: the rules file before it goes live."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from integration.services import Services

from integration.cli.errors import FAILURE, OK
from integration.cli.output import note, out, plural
from integration.cli.runtime import Runtime, pass_runtime


@click.group(short_help="The rules file: check, compare.")
def rules() -> None:
    """The rules file: check it, and see what a change would do before it goes live."""


@rules.command("check", short_help="Validate a rules file and summarise it.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def check(file: Path) -> int:
    """Validate the rules file FILE: a summary when it is sound, else every mistake with its place.

    Exit code 0 when it is sound, 1 when it has mistakes or cannot be read. Owner ids still
    left as REPLACE-... placeholders are named in a warning.
    """
    from connectors import status_fields
    from scoring import check_rules_text

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        note(f"{file}: cannot read: {exc.strerror}")
        return FAILURE
    ok, report = check_rules_text(text, str(file), status_fields())
    (out if ok else note)(report)
    placeholders = sorted(set(re.findall(r"REPLACE-[\w-]*", text)))
    if ok and placeholders:
        note(f"warning: owner ids still to fill in with your CRM's user ids: {', '.join(placeholders)}")
    return OK if ok else FAILURE


@rules.command("compare", short_help="What a candidate rules file would change.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_runtime
def compare(runtime: Runtime, file: Path) -> int:
    """Score the stored history under the live rules and under FILE, and report the difference.

    MQLs added and removed, band moves, and how many leads sales won or rejected each rules file
    would have caught. Nothing is written.
    """
    from connectors import status_fields
    from integration.reports.rules_compare import compare as compare_rules
    from integration.reports.rules_compare import render
    from scoring import load_rules_file

    live = runtime.rules()
    candidate = load_rules_file(str(file), status_fields())
    with runtime.sessions()() as session:
        report = compare_rules(session, live, candidate, runtime.now())
    out(render(report, live, candidate))
    return OK


@click.command(short_help="Rescore the leads under the live rules (a roll-out).")
@click.option("--all", "all_leads", is_flag=True,
              help="Rescore every scored lead, not only those scored under other rules.")
@click.option("--dry-run", is_flag=True,
              help="Say how many verdicts (band, MQL, written score) would change, and change nothing.")
@click.option("--status", "status_only", is_flag=True, help="Only say how far the roll-out is.")
@pass_runtime
def rescore(runtime: Runtime, all_leads: bool, dry_run: bool, status_only: bool) -> int:
    """Roll the live rules file out to the stored leads.

    A worker starting under a new rules file does this by itself; run it by hand to rescore
    every lead (--all), to see first what would change (--dry-run), or to follow the progress
    (--status). The roll-out runs in the workers, in batches, and resumes where it stopped.
    """
    from integration.pipeline import rollout

    svc = runtime.services()
    version = svc.rules.version
    if dry_run:
        changed, examined = _dry_run(svc, all_leads)
        parts = ", ".join(f"{name} {count}" for name, count in changed.items() if name != "leads")
        out(f"rules {version}: {plural(examined, 'lead')} examined; the verdict would change for "
            f"{plural(changed['leads'], 'lead')} ({parts}); nothing was changed")
        return OK
    if all_leads and not status_only:
        with svc.sessions.begin() as session:
            marked = rollout.mark_all_due(session)
        out(f"{plural(marked, 'lead')} marked to be rescored under rules {version}")
    if not status_only and rollout.request_rollout(svc):
        out("roll-out queued; the workers rescore the leads in batches")
    with svc.sessions() as session:
        state = rollout.progress(session, version)
    out(f"rules {version}: {state.scored - state.due} of {plural(state.scored, 'scored lead')} rescored, "
        f"{state.due} to go" + (" (done)" if state.done else ""))
    return OK


def _dry_run(svc: Services, all_leads: bool) -> tuple[dict[str, int], int]:
    """Score the due (or all) leads under the live rules as of now; nothing is written."""
    from sqlalchemy import select

    from integration.pipeline.processing import score_now
    from integration.pipeline.rollout import due_lead_ids
    from integration.store.models import Lead

    changed = {"leads": 0, "band": 0, "MQL": 0, "written score": 0}
    examined = 0
    now = svc.now()
    with svc.sessions() as session:
        if all_leads:
            ids = list(session.scalars(select(Lead.id).where(
                Lead.scored_at.is_not(None), Lead.merged_into_id.is_(None), Lead.erased_at.is_(None))
                .order_by(Lead.id)))
        else:
            ids = due_lead_ids(session, svc.rules.version, limit=10**9)
        for lead_id in ids:
            lead = session.get(Lead, lead_id)
            if lead is None:
                continue
            result = score_now(session, svc, lead, now)
            examined += 1
            moves = (result.band != lead.band, result.mql != lead.mql, round(result.score) != round(lead.score or 0))
            changed["band"] += moves[0]
            changed["MQL"] += moves[1]
            changed["written score"] += moves[2]
            changed["leads"] += any(moves)
    return changed, examined
