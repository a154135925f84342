"""``leadloop import csv``: leads (and their activity) from any CRM or spreadsheet export.

The files are streamed with the csv module, never loaded: rows are read, turned into leads by the
mapping (``integration.imports.mapping``) and stored in batches (``integration.imports.history``),
each batch in one transaction with the import's new position (``integration.imports.progress``).
A row that cannot be read is reported with its line number and skipped; the import goes on.

Three phases, each resumable where it stopped: the leads file, the activities file, then one
quiet scoring of the new leads under the live rules.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from integration.imports.history import (
    ImportedActivity,
    ImportedLead,
    count_unscored,
    lead_ids,
    refresh_statistics,
    score_quietly,
    store_activities,
    store_leads,
    unscored_leads,
)
from integration.imports.mapping import Mapping, MappingError, RowError, missing_columns
from integration.imports.progress import advance, file_key, finish, start_import
from integration.services import Services
from integration.store.models import ImportProgress

#: Rows per transaction.
BATCH_ROWS = 1000
#: The source name of a CSV import in the ``imports`` table.
SOURCE = "csv"

#: ``(phase, done, total)``: the phase's progress (bytes of its file, or leads scored).
ProgressCallback = Callable[[str, int, int], None]


class ImportFailed(Exception):
    """A file that cannot be read as CSV text (not UTF-8, unreadable)."""


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row skipped, with its file, line and reason."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}, line {self.line}: {self.reason}"


@dataclass
class CsvImport:
    """What an import run did (``counts`` are the import's totals over every run)."""

    key: str
    already_done: bool = False
    resumed_at: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


# --- reading ---------------------------------------------------------------------------------

@dataclass
class CsvFile:
    """An open CSV file: its header and its rows with their line numbers, streamed."""

    path: Path
    handle: IO[str]
    reader: csv.DictReader[str]
    header: list[str]

    @classmethod
    def open(cls, path: Path) -> CsvFile:
        try:
            handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 (closed by close())
            reader = csv.DictReader(handle)
            header = [name.strip() for name in (reader.fieldnames or [])]
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise ImportFailed(f"{path}: cannot read the header: {err}") from None
        reader.fieldnames = header
        return cls(path, handle, reader, header)

    def rows(self) -> Iterator[tuple[int, dict[str, str] | None, str | None]]:
        """Yield ``(line, row, None)``, or ``(line, None, reason)`` for a row the csv module rejects."""
        while True:
            try:
                row = next(self.reader)
            except StopIteration:
                return
            except csv.Error as err:
                yield self.reader.line_num, None, f"not valid CSV ({err})"
                continue
            except UnicodeDecodeError:
                raise ImportFailed(f"{self.path}, after line {self.reader.line_num}: not UTF-8 text") from None
            if None in row:
                yield self.reader.line_num, None, "more cells than the header has columns"
                continue
            yield self.reader.line_num, row, None

    def done_bytes(self) -> int:
        """How far the reading got, in bytes (read-ahead included: for a progress bar)."""
        return self.handle.buffer.tell()

    def close(self) -> None:
        self.handle.close()


def check_headers(mapping: Mapping, leads_file: CsvFile, activities_file: CsvFile | None) -> None:
    """Raise ``MappingError`` naming every column the mapping needs that a file lacks."""
    errors = missing_columns(mapping.lead_columns(), leads_file.header, leads_file.path.name)
    if activities_file is not None:
        errors += missing_columns(mapping.activity_columns(), activities_file.header, activities_file.path.name)
    if errors:
        raise MappingError(errors, "the mapping against the files")


def batches(file: CsvFile, after_line: int, size: int, read: Callable[[dict[str, str]], Any],
            bad: Callable[[BadRow], None]) -> Iterator[tuple[int, int, list[tuple[Any, int]]]]:
    """Yield ``(last line, rows read, [(item, line)])`` per ``size`` rows after ``after_line``; bad rows
    go to ``bad``."""
    items: list[tuple[Any, int]] = []
    read_rows, last = 0, after_line
    for line, row, problem in file.rows():
        if line <= after_line:
            continue
        read_rows, last = read_rows + 1, line
        if problem is None:
            try:
                items.append((read(row), line))  # type: ignore[arg-type]
            except RowError as err:
                problem = str(err)
        if problem is not None:
            bad(BadRow(file.path.name, line, problem))
        if read_rows >= size:
            yield last, read_rows, items
            items, read_rows = [], 0
    if read_rows:
        yield last, read_rows, items


# --- importing -------------------------------------------------------------------------------

def import_csv(svc: Services, leads_path: Path, mapping: Mapping, mapping_text: str,
               activities_path: Path | None = None, *, batch_rows: int = BATCH_ROWS,
               on_bad_row: Callable[[BadRow], None] | None = None,
               on_progress: ProgressCallback | None = None,
               on_batch: Callable[[str], None] | None = None) -> CsvImport:
    """Import the leads file (and the activities file) by ``mapping``; return what was done.

    Resumes an interrupted import of the same files and mapping where its last batch ended; an
    import that finished does nothing. ``on_batch(phase)`` runs after each committed batch.
    Raises ``MappingError`` (a column the mapping names is missing) or ``ImportFailed``.
    """
    now = svc.now()
    report = CsvImport(file_key(mapping_text, [leads_path, activities_path]))
    bad = on_bad_row or (lambda row: None)
    progress_to = on_progress or (lambda phase, done, total: None)
    after_batch = on_batch or (lambda phase: None)
    leads_file = CsvFile.open(leads_path)
    activities_file = CsvFile.open(activities_path) if activities_path else None
    try:
        check_headers(mapping, leads_file, activities_file)
        with svc.sessions() as session:
            progress = start_import(session, SOURCE, report.key, mapping.crm, now)
            report.resumed_at = dict(progress.position or {})
            if progress.finished_at is not None:
                report.already_done, report.counts = True, dict(progress.counts or {})
                return report
            source = mapping.crm

            # Without an activities file each batch's new leads are scored with the batch; with one,
            # once their activity is in (a pass after the files).
            score_with_batch = activities_file is None

            def leads_batch(items: list[tuple[ImportedLead, int]]) -> dict[str, int]:
                stored = store_leads(session, mapping.crm, source, [lead for lead, _ in items], now)
                scored = score_quietly(session, svc, stored.new_leads, now, with_activity=False) \
                    if score_with_batch else 0
                return {"leads": stored.leads, "events": stored.events, "transitions": stored.transitions,
                        "scored": scored}

            _phase(session, progress, "leads", leads_file, mapping.read_lead, leads_batch, batch_rows, now,
                   bad, progress_to, after_batch)
            refresh_statistics(session)
            if activities_file is not None:
                known = svc.rules.activity_kinds

                def activities_batch(items: list[tuple[ImportedActivity, int]]) -> dict[str, int]:
                    ids = lead_ids(session, mapping.crm, (item.crm_id for item, _ in items))
                    unknown = [(activity, line) for activity, line in items if activity.crm_id not in ids]
                    for activity, line in unknown:
                        bad(BadRow(activities_file.path.name, line, f'no lead with id "{activity.crm_id}"'))
                    found = [(activity, ids[activity.crm_id]) for activity, _ in items if activity.crm_id in ids]
                    return {"activities": store_activities(session, source, found, now), "bad_rows": len(unknown)}

                def read_activity(row: dict[str, str]) -> ImportedActivity:
                    return mapping.read_activity(row, known)

                _phase(session, progress, "activities", activities_file, read_activity, activities_batch,
                       batch_rows, now, bad, progress_to, after_batch)
                refresh_statistics(session)
            if not score_with_batch:
                _score(session, svc, progress, batch_rows, now, progress_to, after_batch)
            finish(session, progress, svc.now())
            report.counts = dict(progress.counts or {})
            return report
    finally:
        leads_file.close()
        if activities_file is not None:
            activities_file.close()


def _phase(session: Any, progress: ImportProgress, phase: str, file: CsvFile, read: Callable[[dict[str, str]], Any],
           store: Callable[[list[tuple[Any, int]]], dict[str, int]], batch_rows: int, now: datetime,
           bad: Callable[[BadRow], None], progress_to: ProgressCallback, after_batch: Callable[[str], None]) -> None:
    """Stream one file after its committed line, one transaction per batch."""
    total = os.path.getsize(file.path)
    skipped: list[BadRow] = []

    def note_bad(row: BadRow) -> None:
        skipped.append(row)
        bad(row)

    start = int((progress.position or {}).get(phase, 0))
    for last_line, rows, items in batches(file, start, batch_rows, read, note_bad):
        counts = store(items)
        counts["bad_rows"] = counts.get("bad_rows", 0) + len(skipped)
        advance(progress, phase, last_line, now, rows=rows, **counts)
        skipped.clear()
        session.commit()
        progress_to(phase, file.done_bytes(), total)
        after_batch(phase)
    progress_to(phase, total, total)


def _score(session: Any, svc: Services, progress: ImportProgress, batch_rows: int, now: datetime,
           progress_to: ProgressCallback, after_batch: Callable[[str], None]) -> None:
    """Score the import's new leads once, quietly, with their activity, a batch per transaction."""
    after_id = int((progress.position or {}).get("scored", 0))
    done, total = 0, count_unscored(session, progress.crm, after_id)
    while leads := unscored_leads(session, progress.crm, after_id, batch_rows):
        scored = score_quietly(session, svc, leads, now)
        after_id = leads[-1].id
        advance(progress, "scored", after_id, now, scored=scored)
        session.commit()
        done += scored
        progress_to("scoring", done, max(total, done))
        after_batch("scoring")
    progress_to("scoring", done, done)


def dry_run_lines(mapping: Mapping, leads_path: Path, activities_path: Path | None, known_kinds: frozenset[str],
                  rows: int = 5) -> Iterator[str]:
    """Yield what the first ``rows`` rows of each file become, as leadloop sees them; writes nothing.

    Raises ``MappingError`` (a column missing from a header) or ``ImportFailed``.
    """
    leads_file = CsvFile.open(leads_path)
    activities_file = CsvFile.open(activities_path) if activities_path else None
    try:
        check_headers(mapping, leads_file, activities_file)
        yield f"{leads_path.name}: columns {', '.join(leads_file.header)}"
        for shown, (line, row, problem) in enumerate(leads_file.rows()):
            if shown >= rows:
                break
            yield f"  line {line}: " + (_describe(problem, row, lambda r: _lead_text(mapping, r)))
        if activities_file is not None:
            yield f"{activities_file.path.name}: columns {', '.join(activities_file.header)}"
            for shown, (line, row, problem) in enumerate(activities_file.rows()):
                if shown >= rows:
                    break
                yield f"  line {line}: " + _describe(
                    problem, row, lambda r: _activity_text(mapping.read_activity(r, known_kinds)))
    finally:
        leads_file.close()
        if activities_file is not None:
            activities_file.close()


def _describe(problem: str | None, row: dict[str, str] | None, show: Callable[[dict[str, str]], str]) -> str:
    if problem is not None or row is None:
        return f"skipped: {problem}"
    try:
        return show(row)
    except RowError as err:
        return f"skipped: {err}"


def _lead_text(mapping: Mapping, row: dict[str, str]) -> str:
    lead = mapping.read_lead(row)
    parts = [f"{mapping.crm}:{lead.crm_id}", f"email {lead.email or '-'}",
             f"created {lead.created_at.isoformat() if lead.created_at else '- (the import time)'}"]
    parts.append("fields " + (", ".join(f"{name}={value!r}" for name, value in lead.fields.items()) or "-"))
    parts.append("stages " + (", ".join(f"{stage} {at.isoformat()}" for stage, at in lead.stages) or "-"))
    parts.append(f"outcome {lead.outcome or '-'}")
    return "; ".join(parts)


def _activity_text(activity: ImportedActivity) -> str:
    properties = ", ".join(f"{name}={value!r}" for name, value in activity.properties.items()) or "-"
    return f"lead {activity.crm_id}: {activity.kind} at {activity.occurred_at.isoformat()}; properties {properties}"

