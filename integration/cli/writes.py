"""``leadloop outbox`` and ``leadloop dead-letters``: the CRM writes, and what failed."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import click

from integration.cli.describe import lead_zone, write_summary
from integration.cli.errors import FAILURE, OK
from integration.cli.output import dumps, iso, minute, note, out, plural, shorten, table
from integration.cli.runtime import Runtime, pass_runtime

STATUSES = ("all", "pending", "sent", "shadow", "failed", "superseded")


@click.command(short_help="List the CRM writes: sent, pending, shadow.")
@click.option("--lead", "lead_ref", metavar="REF", help="Only the writes of this lead (crm:id, email:address or id).")
@click.option("--status", type=click.Choice(STATUSES), default="all", show_default=True,
              help="Only writes in this state: shadow ones were recorded but not sent (shadow mode).")
@click.option("--limit", type=click.IntRange(min=0), default=200, show_default=True,
              help="Show at most this many writes, oldest first.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per write and line (JSON Lines), with the full payload, and nothing else.")
@pass_runtime
def outbox(runtime: Runtime, lead_ref: str | None, status: str, limit: int, as_json: bool) -> int:
    """List the CRM writes: sent, pending, failed, or in shadow mode what would have been written.

    Each write shows its lead, kind (a field update or a task), state, batch, when it was
    queued (in the lead's zone, else its owner's, else UTC) and what it sets.
    """
    from sqlalchemy import select

    from integration.store.leads import find_lead
    from integration.store.models import Lead, OutboxWrite

    rules = runtime.rules()
    with runtime.sessions()() as session:
        stmt = select(OutboxWrite, Lead).join(Lead, Lead.id == OutboxWrite.lead_id).order_by(OutboxWrite.id)
        if lead_ref:
            found = find_lead(session, lead_ref)
            if found is None:
                note(f"no lead {lead_ref}")
                return FAILURE
            stmt = stmt.where(OutboxWrite.lead_id == found.id)
        if status != "all":
            stmt = stmt.where(OutboxWrite.status == status)
        rows = session.execute(stmt.limit(limit)).all()
        note(f"CRM write mode: {runtime.config['CRM_WRITE_MODE']}; {plural(len(rows), 'write')} shown")
        if as_json:
            for write, owner in rows:
                out(dumps(_write_json(write, owner)))
            return OK
        table_rows = []
        for write, owner in rows:
            zone, _ = lead_zone(owner, rules)
            table_rows.append((f"#{write.id}", owner.ref, write.kind, write.status, (write.batch_id or "-")[:8],
                               minute(write.created_at, zone), write_summary(write.kind, write.payload or {}, zone)
                               + (f"; error: {shorten(write.last_error, 200)}" if write.last_error else "")))
    if table_rows:
        for line in table(("ID", "LEAD", "KIND", "STATUS", "BATCH", "QUEUED", "WHAT"), table_rows):
            out(line)
    return OK


def _write_json(write: Any, lead: Any) -> dict[str, Any]:
    line = {"id": write.id, "lead": lead.ref, "crm": write.crm, "crm_id": write.crm_id, "kind": write.kind,
            "status": write.status, "batch": write.batch_id, "attempts": write.attempts,
            "external_id": write.external_id, "created_at": iso(write.created_at), "sent_at": iso(write.sent_at),
            "payload": write.payload}
    if write.last_error:
        line["error"] = write.last_error
    return line


@click.command("dead-letters", short_help="List failed jobs, failing leads and CRM writes; --retry.")
@click.option("--retry", is_flag=True,
              help="Requeue the failed jobs, release the failing and quarantined leads, and set the failed CRM "
                   "writes back to pending, for the worker to retry.")
@pass_runtime
def dead_letters(runtime: Runtime, retry: bool) -> int:
    """List the failed jobs (RQ's failed-job registry), the leads whose processing fails (retrying
    or quarantined after their last attempt) and the CRM writes the CRM refused.

    Fix the cause (the error is shown), then run it again with --retry.
    """
    from rq.job import Job
    from sqlalchemy import select

    from integration.pipeline.failures import failing_leads, release
    from integration.store.models import Lead, OutboxWrite

    svc = runtime.services()
    registry = svc.queue.failed_job_registry
    jobs = [job for job in Job.fetch_many(registry.get_job_ids(), connection=svc.redis) if job is not None]
    out(f"failed jobs: {len(jobs)}")
    if jobs:
        for line in table(("JOB", "ENDED", "FUNCTION", "ERROR"),
                          [(job.id, minute(job.ended_at, UTC), shorten(job.description or "-", 60), _last_error(job))
                           for job in jobs], indent="  "):
            out(line)
    requeued_jobs = requeued_writes = 0
    released: list[int] = []
    if retry:
        for job in jobs:
            registry.requeue(job.id)
            requeued_jobs += 1
    with svc.sessions.begin() as session:
        failing = failing_leads(session)
        out(f"failing leads: {len(failing)}")
        if failing:
            for line in table(("LEAD", "STATE", "ATTEMPTS", "NEXT TRY", "ERROR"),
                              [(lead.ref, "quarantined" if lead.quarantined_at else "retrying", lead.failures,
                                minute(lead.retry_at, UTC) if lead.retry_at else "-", lead.last_error or "-")
                               for lead in failing], indent="  "):
                out(line)
        if retry:
            released = release(session)
    with svc.sessions.begin() as session:
        failed = session.execute(select(OutboxWrite, Lead).join(Lead, Lead.id == OutboxWrite.lead_id)
                                 .where(OutboxWrite.status == "failed").order_by(OutboxWrite.id)).all()
        out(f"failed CRM writes: {len(failed)}")
        if failed:
            for line in table(("ID", "LEAD", "KIND", "ATTEMPTS", "ERROR"),
                              [(f"#{write.id}", owner.ref, write.kind, write.attempts,
                                shorten(write.last_error or "-", 200)) for write, owner in failed], indent="  "):
                out(line)
        if retry:
            for write, _owner in failed:
                write.status, write.attempts = "pending", 0
            requeued_writes = len(failed)
    if not retry:
        return OK
    if not requeued_jobs and not requeued_writes and not released:
        out("nothing to retry")
        return OK
    if released:
        from integration.pipeline.queue import request_rescore

        request_rescore(svc.queue, released)
    if requeued_writes:
        from integration.pipeline.jobs import sweep

        svc.queue.enqueue(sweep)  # the sweeper flushes the pending writes again
    out(f"requeued {plural(requeued_jobs, 'job')}, {plural(len(released), 'lead')} and "
        f"{plural(requeued_writes, 'CRM write')}; the worker will retry them")
    return OK


def _last_error(job: Any) -> str:
    result = job.latest_result()
    text = (getattr(result, "exc_string", None) or "").strip()
    return shorten(text.splitlines()[-1], 200) if text else "-"
