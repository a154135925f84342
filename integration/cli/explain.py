"""``leadloop explain``: why a lead has its verdict, now or at a past time, and what would change it."""

from __future__ import annotations

import click

from integration.cli.errors import FAILURE, OK
from integration.cli.output import dumps, note, out
from integration.cli.runtime import Runtime, pass_runtime


@click.command(short_help="Why a lead has its verdict, and what would change it.")
@click.argument("ref")
@click.option("--at", "at", metavar="TIME",
              help="Explain the verdict at this past time: an ISO date or time, or a duration ago (7d).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else.")
@pass_runtime
def explain(runtime: Runtime, ref: str, at: str | None, as_json: bool) -> int:
    """Explain the verdict on the lead REF now (or --at a past time, replaying its history to then).

    Each reason with the events behind it and its decay (points when it happened and now), when
    the verdict next changes on its own, and what would change it: how many points short of MQL
    and the fewest new activities that would close the gap.

    REF is crm:id (hubspot:123, salesforce:00Q...), email:address, a bare address, or leadloop's id.
    """
    from integration.cli.rules import moment as parse_moment
    from integration.lab.explain import explain as explain_lead
    from integration.lab.explain import render
    from integration.store.leads import find_lead

    now = runtime.now()
    when = parse_moment(at, now, "--at") or now
    rules = runtime.rules()
    with runtime.sessions()() as session:
        lead = find_lead(session, ref)
        if lead is None or lead.merged_into_id is not None or lead.erased_at is not None:
            note(f"no lead {ref}")
            return FAILURE
        report = explain_lead(session, lead, rules, when)
    if as_json:
        out(dumps(report, indent=2))
    else:
        for line in render(report):
            out(line)
    return OK
