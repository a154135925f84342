"""``leadloop rules check`` and ``leadloop rules compare``: the rules file before it goes live."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from integration.services import Services

from integration.cli.errors import FAILURE, OK
from integration.cli.output import dumps, note, out, plural
from integration.cli.runtime import Runtime, pass_runtime


@click.group(short_help="The rules file: check, compare, suggest.")
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


@rules.command("compare", short_help="Backtest a candidate rules file on the stored history.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--against", "against", type=click.Path(dir_okay=False, path_type=Path),
              help="The rules file to compare with (default: the live one, LEADLOOP_RULES).")
@click.option("--since", metavar="TIME",
              help="Count MQLs from this time: an ISO date or time, or a duration ago (90d).")
@click.option("--until", metavar="TIME",
              help="Replay up to this time (default now): an ISO date or time, or a duration ago.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="A report to read, or one JSON object.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report with charts as one self-contained HTML file.")
@pass_runtime
def compare(runtime: Runtime, file: Path, against: Path | None, since: str | None, until: str | None,
            output_format: str, html_file: Path | None) -> int:
    """Replay the stored history under the live rules (or --against) and under FILE; report the difference.

    Each lead's events are replayed in time order and scored as of each moment under both
    files. Against the known outcomes (won, lost, accepted, rejected, deals) the report gives
    MQL volume, the band migration matrix, precision, recall and lift per band, how many
    eventually-won leads each file hands off and how many days earlier or later, MQLs per won
    deal, and the leads that would newly become or stop being MQLs with their reasons.
    Nothing is written.
    """
    from connectors import status_fields
    from integration.lab.backtest import backtest, render
    from scoring import load_rules_file

    now = runtime.now()
    start, end = moment(since, now, "--since"), moment(until, now, "--until") or now
    live = load_rules_file(str(against), status_fields()) if against else runtime.rules()
    candidate = load_rules_file(str(file), status_fields())
    with runtime.sessions()() as session:
        report = backtest(session, live, candidate, since=start, until=end)
    data = report.to_dict()
    if html_file is not None:
        from integration.lab.html import render_html

        html_file.write_text(render_html(data), encoding="utf-8")
        note(f"report written to {html_file}")
    out(dumps(data, indent=2) if output_format == "json" else render(report, live, candidate))
    return OK


@rules.command("suggest", short_help="Learn point values from the outcome history.")
@click.option("--target", type=click.Choice(["won", "accepted"]), default="won", show_default=True,
              help="The outcome to predict: won deals, or leads sales accepted.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the proposed rules file here (default: print it after the report).")
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True,
              help="Folds of the stratified cross-validation.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="A report to read, or one JSON object.")
@pass_runtime
def suggest(runtime: Runtime, target: str, out_file: Path | None, folds: int, output_format: str) -> int:
    """Propose point values for the live rules, and new rules, learned from the leads' outcomes.

    Fits a regularised logistic regression (scikit-learn) on one row per lead with a known
    outcome (which live rules fired by its first MQL or its outcome, its field values, numeric
    ranges, assets and kinds of activity), turns it into a rules file of whole points that
    "leadloop rules check" accepts, and reports the cross-validated AUC and precision at the
    MQL threshold of the live rules and of the proposal. Exit code 1 when there is too little
    history, saying how much more it needs. Nothing changes: make the proposal live yourself.
    """
    from integration.lab.suggest import NotEnoughHistory
    from integration.lab.suggest import suggest as suggest_points

    live = runtime.rules()
    live_text = Path(live.source).read_text(encoding="utf-8")
    try:
        with runtime.sessions()() as session:
            proposal = suggest_points(session, live, live_text, target=target, folds=folds, now=runtime.now())
    except NotEnoughHistory as exc:
        note(str(exc))
        return FAILURE
    if out_file is not None:
        out_file.write_text(proposal.text, encoding="utf-8")
        proposal.out = str(out_file)
    if output_format == "json":
        out(dumps(proposal.to_dict(), indent=2))
        return OK
    for line in suggest_report(proposal):
        out(line)
    if out_file is None:
        out("")
        out(proposal.text)
    return OK


def suggest_report(proposal: Any) -> list[str]:
    """The proposal's comparison with the live rules and its points table, for a person."""
    from integration.cli.output import table

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.0f}%"

    lines = [f"learned from {proposal.rows} leads with a known outcome ({proposal.positives} {proposal.target}), "
             f"{proposal.folds}-fold cross-validation:",
             f"  live rules: AUC {proposal.live['auc']:.3f}, precision at the MQL threshold "
             f"{pct(proposal.live['precision_at_mql'])}",
             f"  proposal:   AUC {proposal.proposed['auc']:.3f}, precision at the MQL threshold "
             f"{pct(proposal.proposed['precision_at_mql'])}",
             "points:"]
    rows = []
    for key, value in sorted(proposal.points.items(), key=lambda item: -item[1]):
        leads, lift = proposal.support[key]
        rows.append((value, leads, "-" if lift is None else f"{lift:g}", proposal.candidates[key].text))
    lines += table(("points", "leads", "lift", "rule"), rows, indent="  ")
    if proposal.out:
        lines.append(f"proposed rules file written to {proposal.out}; check it with `leadloop rules check "
                     f"{proposal.out}` and try it with `leadloop rules compare {proposal.out}`")
    return lines


def moment(value: str | None, now: datetime, option: str) -> datetime | None:
    """A command-line time: ISO 8601 (a date is its midnight UTC; no zone means UTC) or a duration
    ago (``90d``, ``12h``); raise ``click.BadParameter`` otherwise."""
    from integration.cli.times import parse_time

    if value is None:
        return None
    try:
        return parse_time(value, now)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither an ISO date or time nor a duration like 90d",
                                 param_hint=option) from None


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
