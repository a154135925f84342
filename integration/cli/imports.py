"""``leadloop import csv|hubspot|salesforce``: history from an export or a CRM, before day one.

Imported leads become ordinary leads with their past (fields, stage changes, activity, one score
under the live rules), stored already processed: an import never writes to a CRM and never hands
a lead off. Each import is resumable (rerun the same command) and idempotent.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from integration.cli.errors import OK, SETUP, CliError
from integration.cli.output import note, out, plural
from integration.cli.runtime import Runtime, pass_runtime

#: Bad rows listed one by one; past this many only their count is given.
BAD_ROWS_LISTED = 50


@click.group("import", short_help="Import history: a CSV export, a CRM backfill.")
def import_group() -> None:
    """Import lead history (fields, stage changes, activity, outcomes) from a CSV export or a CRM.

    Imported leads are stored already processed and scored once under the live rules: an import
    never writes to a CRM and never hands a lead off. Rerunning an interrupted import resumes it;
    rerunning a finished one changes nothing.
    """


@contextmanager
def progress_bars() -> Iterator[Any]:
    """A callback drawing one tqdm bar per phase on stderr (none when stderr is not a terminal)."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def show(phase: str, done: int, total: int) -> None:
        bar = bars.get(phase)
        if bar is None:
            unit = "lead" if phase == "scoring" else "B"
            bar = bars[phase] = tqdm(total=total, desc=phase, unit=unit, unit_scale=unit == "B", ncols=80,
                                     file=sys.stderr, disable=None, leave=True)
        bar.total = max(total, done)
        bar.update(done - bar.n)

    try:
        yield show
    finally:
        for bar in bars.values():
            bar.close()


class BadRowNotes:
    """Lists skipped rows on stderr, the first ``BAD_ROWS_LISTED`` of them one per line."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, row: Any) -> None:
        self.count += 1
        if self.count <= BAD_ROWS_LISTED:
            note(f"skipped {row}")
        elif self.count == BAD_ROWS_LISTED + 1:
            note(f"(more rows skipped: only the first {BAD_ROWS_LISTED} are listed)")


@import_group.command("csv", short_help="Leads and their activity from CSV files.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mapping", "mapping_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The mapping YAML: which columns are the id, email, fields, stage dates and outcome "
                   "(docs/import.md).")
@click.option("--activities", "activities_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A second CSV file of the leads' activity: columns id, kind, occurred_at, and properties.")
@click.option("--dry-run", is_flag=True,
              help="Check the mapping against the files and print the first rows as leadloop sees them; "
                   "write nothing.")
@pass_runtime
def import_csv_command(runtime: Runtime, file: Path, mapping_path: Path, activities_path: Path | None,
                       dry_run: bool) -> int:
    """Import the leads in FILE (a CSV export) by the mapping, and their activity if given.

    Bad rows (an unreadable number or date, no id) are listed by line and skipped; the rest is
    imported. Exit code 0 when the import finished (bad rows or not), 2 for a mapping mistake.
    """
    from integration.imports.csv_import import ImportFailed, dry_run_lines, import_csv
    from integration.imports.mapping import MappingError, load_mapping

    try:
        mapping = load_mapping(mapping_path)
        if dry_run:
            known = runtime.rules().activity_kinds if activities_path else frozenset()
            for line in dry_run_lines(mapping, file, activities_path, known):
                out(line)
            note("dry run: nothing was written")
            return OK
        svc = runtime.services()
        bad_rows = BadRowNotes()
        with progress_bars() as show:
            done = import_csv(svc, file, mapping, mapping_path.read_text(encoding="utf-8"), activities_path,
                              on_bad_row=bad_rows, on_progress=show)
    except MappingError as err:
        raise CliError(str(err), SETUP) from None
    except ImportFailed as err:
        raise CliError(str(err)) from None
    counts = done.counts
    if done.already_done:
        note("these files were imported already (same mapping, same content): nothing to do")
    elif done.resumed_at:
        note(f"resumed after {', '.join(f'{phase} {at}' for phase, at in sorted(done.resumed_at.items()))}")
    out(f"{plural(counts.get('rows', 0), 'row')} read, {plural(counts.get('bad_rows', 0), 'bad row')} skipped; "
        f"{plural(counts.get('leads', 0), 'lead')} and {plural(counts.get('activities', 0), 'activity', 'activities')}"
        f" imported, {plural(counts.get('transitions', 0), 'stage change')}, "
        f"{plural(counts.get('scored', 0), 'lead')} scored")
    return OK


def since_option(text: str | None, now: Any) -> Any:
    """``--since``: a duration back from now (``365d``, ``12w``) or a date (``2025-01-31``); None: everything."""
    from integration.cli.times import parse_time

    if not text:
        return None
    try:
        return parse_time(text, now)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a duration like 365d nor a date like 2025-01-31",
                                 param_hint="--since") from None


BACKFILL_HELP = """Import {label}'s records with their history: fields, status history as stage changes, deals
and their outcomes.

Pages through the API within its rate limits (a rate limit is waited out, then the same page is
asked again). Rerun an interrupted backfill to resume it after its last stored page; a finished
one changes nothing. Imported leads are scored once and never written back or handed off.
"""


def backfill_command(crm: str, label: str) -> click.Command:
    """The ``leadloop import CRM`` command of one CRM."""

    @import_group.command(crm, short_help=f"Backfill from {label}: records, status history, deals.",
                          help=BACKFILL_HELP.format(label=label))
    @click.option("--since", "since_text", metavar="DURATION|DATE",
                  help="Only records changed since then: a duration back from now (365d) or a date (2025-01-31). "
                       "Default: all.")
    @click.option("--dry-run", is_flag=True,
                  help="Read the first page and print its records as leadloop sees them; write nothing.")
    @pass_runtime
    def command(runtime: Runtime, since_text: str | None, dry_run: bool) -> int:
        from integration.cli.crm import require_credentials
        from integration.imports.backfill import PAGE_READERS, BackfillFailed, backfill, imported_lead

        since = since_option(since_text, runtime.now())
        require_credentials(crm, runtime.config)
        if dry_run:
            svc = runtime.services(database=False)
            records, cursor = PAGE_READERS[crm](svc.crm_client(crm).client, since, None)
            for record in records[:5]:
                lead = imported_lead(crm, record, svc.rules.lifecycle)
                stages = ", ".join(f"{stage} {at.isoformat()}" for stage, at in lead.stages) or "-"
                out(f"{crm}:{lead.crm_id}; email {lead.email or '-'}; created {lead.created_at.isoformat()}; "
                    f"fields {', '.join(f'{k}={v!r}' for k, v in lead.fields.items()) or '-'}; stages {stages}")
            note(f"dry run: {plural(len(records), 'record')} on the first page"
                 f"{' (more pages follow)' if cursor else ''}; nothing was written")
            return OK
        svc = runtime.services()
        from tqdm import tqdm

        with tqdm(desc=f"{crm} records", unit=" records", file=sys.stderr, disable=None, ncols=80) as bar:
            try:
                done = backfill(svc, crm, since, on_page=bar.update)
            except BackfillFailed as err:
                raise CliError(str(err)) from None
        counts = done.counts
        if done.already_done:
            note(f"this {label} backfill finished already ({done.key}): nothing to do")
        elif done.resumed_at.get("cursor"):
            note("resumed after the last stored page")
        out(f"{plural(counts.get('rows', 0), 'record')} read in {plural(counts.get('pages', 0), 'page')}; "
            f"{plural(counts.get('leads', 0), 'lead')} and {plural(counts.get('deals', 0), 'deal')} imported, "
            f"{plural(counts.get('transitions', 0), 'stage change')}, {plural(counts.get('scored', 0), 'lead')} "
            f"scored; {plural(len(done.waits), 'rate-limit wait')}")
        return OK

    return command


import_hubspot = backfill_command("hubspot", "HubSpot")
import_salesforce = backfill_command("salesforce", "Salesforce")
