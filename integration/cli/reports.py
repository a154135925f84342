"""``leadloop report KIND``: the reports over the store (funnel, content, hand-off, SLA, recycle,
revenue) as a table, CSV or JSON, and ``leadloop report digest``: the weekly digest (printed, or
sent with ``--send``)."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import click

from integration.cli.errors import FAILURE, OK, SETUP, CliError
from integration.cli.output import dumps, note, out, table
from integration.cli.runtime import Runtime, pass_runtime
from integration.cli.times import parse_time
from integration.reports import REPORTS, Report, ReportQuery
from integration.reports.window import DIMENSIONS

FORMATS = ("table", "csv", "json")
#: A table wider than this many columns is shown turned: one line per column, one column per group.
WIDE = 10


def parse_moment(text: str, now: datetime) -> datetime:
    """Return the aware UTC time ``text`` names (``integration.cli.times.parse_time``): an ISO date
    (midnight UTC), an ISO datetime (naive taken as UTC), or ``30d`` / ``4w`` (that long before
    ``now``). Raises ``ValueError`` with the reason."""
    try:
        return parse_time(text, now)
    except ValueError:
        raise ValueError(f"{text!r} is no date: use 2026-03-01, 2026-03-01T09:00:00+00:00, 30d or 4w") from None


def report_query(runtime: Runtime, since: str | None, until: str | None, by: str | None) -> ReportQuery:
    """The ``ReportQuery`` of the options; raises ``click.UsageError`` (exit 2) with the reason."""
    now = runtime.now()
    try:
        return ReportQuery(since=parse_moment(since, now) if since else None,
                           until=parse_moment(until, now) if until else None, by=by)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def print_report(report: Report, output: str) -> None:
    """Write ``report`` to stdout as a table, CSV or JSON (its ``rows``)."""
    if output == "json":
        out(dumps(report.rows, indent=2))
        return
    rows = [["" if cell is None and output == "csv" else "-" if cell is None else cell for cell in row]
            for row in report.table_rows()]
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(report.columns)
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
        return
    if len(report.columns) > WIDE and rows:
        turned = [[column, *(row[index] for row in rows)] for index, column in enumerate(report.columns[1:], 1)]
        lines = table([report.columns[0], *(str(row[0]) for row in rows)], turned)
    else:
        lines = table(report.columns, rows)
    for line in lines:
        out(line)


@click.group(short_help="Reports: funnel, content, handoff, sla, recycle, revenue; the digest.")
def report() -> None:
    """Reports over the stored history, computed in SQL with business times (when things
    happened, not when leadloop processed them). The window (--since, --until) selects each
    report's subjects: the funnel's leads by their first touch, the content report's touches,
    hand-offs and recycles by when they happened, deals by their close; what became of them
    counts to date.
    """


#: Each report's help: (short, long), in plain words.
HELP = {
    "funnel": ("Leads entering each stage, conversions and days between stages.",
               "Leads entering each stage (new, nurture, mql, accepted, sql, won, lost, recycled, disqualified), "
               "the share of those entering a stage that later reached the next ones, and the median and p90 "
               "days between them. The window selects the leads by their first touch."),
    "content": ("Per asset, form and campaign: touches, converters, rates.",
                "Per asset, form and campaign named by the window's events: leads touched, first touches, "
                "conversions, new and repeat converters (people who had converted on another call to action "
                "before), and the MQL, accepted and won rates of the leads that touched it before their MQL."),
    "handoff": ("How sales answered the hand-offs: acceptance, reasons, rules.",
                "The hand-offs (MQLs) of the window and how they ended: accepted, rejected with their reasons, "
                "no response, open; the acceptance rate, the days to accept, the precision of the MQL "
                "definition (hand-offs that became opportunities) and the acceptance per scoring rule."),
    "sla": ("Hand-offs due, met, missed and escalated; time to first action.",
            "The hand-offs of the window against their SLA: due, met, missed, escalated and pending, and the "
            "hours from the hand-off to the rep's first action. Group it by owner or team."),
    "recycle": ("Recycled leads by reason: back to MQL, then won.",
                "The leads recycled in the window, by reason and by who recycled them (sales or the SLA): how "
                "many became an MQL again, after how many days, and how many were won."),
    "revenue": ("Deals won and lost, amount won and days to win.",
                "The deals closed in the window: won and lost, the win rate, the amount won per currency, the "
                "days from the first hand-off to the win, and the same per first content of the lead."),
}


def _report_command(kind: str) -> click.Command:
    build = REPORTS[kind]
    short, doc = HELP[kind]

    @click.option("--since", metavar="DATE", help="The window's start: 2026-03-01, an ISO datetime, or 30d / 4w "
                                                  "ago.")
    @click.option("--until", metavar="DATE", help="The window's end (not included), written as --since.")
    @click.option("--by", type=click.Choice(list(DIMENSIONS)), help="One group per value of this dimension.")
    @click.option("--format", "output", type=click.Choice(FORMATS), default="table", show_default=True,
                  help="table for people, csv or json (exactly the rows) for programs.")
    @pass_runtime
    def command(runtime: Runtime, since: str | None, until: str | None, by: str | None, output: str) -> int:
        query = report_query(runtime, since, until, by)
        with runtime.sessions()() as session:
            result = build(session, query)
        print_report(result, output)
        return OK

    command.__doc__ = doc
    return click.command(kind, short_help=short)(command)


for _kind in REPORTS:
    report.add_command(_report_command(_kind))


@report.command("digest", short_help="The weekly digest: print it, or --send it.")
@click.option("--before", metavar="DATE", help="The digest of the last whole week before DATE (default: now).")
@click.option("--format", "output", type=click.Choice(("text", "html", "json", "slack")), default="text",
              show_default=True, help="text or html (the e-mail's parts), json (the figures), slack (the message).")
@click.option("--send", is_flag=True, help="Deliver it to every configured channel (e-mail, Slack) as well.")
@pass_runtime
def digest(runtime: Runtime, before: str | None, output: str, send: bool) -> int:
    """The weekly digest: the last whole week's MQLs, acceptance, time to accept, SLA misses, won
    deals and revenue, each against the week before, and the top content.

    It is printed; with --send it also goes to every configured channel: e-mail
    (LEADLOOP_SMTP_URL, LEADLOOP_DIGEST_TO, LEADLOOP_DIGEST_FROM) and Slack
    (LEADLOOP_SLACK_WEBHOOK_URL). The cron sends it by itself once a week when a channel is set.
    """
    from integration.reports.digest import (
        DigestError,
        build_digest,
        channels,
        deliver,
        render_html,
        render_slack,
        render_text,
    )

    now = runtime.now()
    try:
        moment = parse_moment(before, now) if before else now
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        wanted = channels(runtime.config) if send else []
    except DigestError as exc:
        raise CliError(str(exc), SETUP) from None
    if send and not wanted:
        raise CliError("no digest channel is configured: set LEADLOOP_SMTP_URL, LEADLOOP_DIGEST_TO and "
                       "LEADLOOP_DIGEST_FROM, and/or LEADLOOP_SLACK_WEBHOOK_URL", SETUP)
    with runtime.sessions()() as session:
        weekly = build_digest(session, moment)
    if output == "html":
        out(render_html(weekly))
    elif output == "json":
        out(dumps(weekly.as_json(), indent=2))
    elif output == "slack":
        out(dumps(render_slack(weekly), indent=2))
    else:
        click.echo(render_text(weekly), nl=False)
    if send:
        try:
            sent = deliver(weekly, runtime.config, only=wanted)
        except DigestError as exc:
            raise CliError(str(exc), FAILURE) from None
        note(f"digest {weekly.week} sent by {', '.join(sent)}")
    return OK
