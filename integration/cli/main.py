"""The ``leadloop`` command: database, worker, cron, rules, leads, outbox, setup, demo."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from integration.config import ConfigError, load_config

if TYPE_CHECKING:
    from integration.services import Services


def _services(args: argparse.Namespace) -> Services:
    from integration import services

    svc = services.Services.build(load_config())
    services.install(svc)
    return svc


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy import create_engine

    from integration.services import ensure_sqlite_folder, make_engine
    from integration.store.migrate import current, upgrade

    config = load_config()
    ensure_sqlite_folder(config["DATABASE_URL"])
    engine = make_engine(config["DATABASE_URL"]) if config["DATABASE_URL"].startswith("sqlite") \
        else create_engine(config["DATABASE_URL"])
    upgrade(engine)
    print(f"database at revision {current(engine)}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from rq import SimpleWorker, Worker

    svc = _services(args)
    worker_class = SimpleWorker if args.simple else Worker
    worker = worker_class([svc.queue], connection=svc.redis)
    worker.work(with_scheduler=True, burst=args.burst, logging_level=svc.config["LOG_LEVEL"])
    return 0


def cmd_cron(args: argparse.Namespace) -> int:
    from rq.cron import CronScheduler

    from integration.pipeline.jobs import CRON_JOBS

    svc = _services(args)
    cron = CronScheduler(connection=svc.redis, logging_level=svc.config["LOG_LEVEL"])
    for func, interval in CRON_JOBS:
        cron.register(func, queue_name=svc.queue.name, interval=interval)
    cron.start()
    return 0


def cmd_rules_check(args: argparse.Namespace) -> int:
    from connectors import status_fields
    from scoring import check_rules_text

    try:
        with open(args.file, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        print(f"{args.file}: cannot read: {exc.strerror}", file=sys.stderr)
        return 1
    ok, output = check_rules_text(text, args.file, status_fields())
    print(output, file=sys.stdout if ok else sys.stderr)
    placeholders = sorted(set(re.findall(r"REPLACE-[\w-]*", text)))
    if ok and placeholders:
        print(f"warning: owner ids still to fill in with your CRM's user ids: {', '.join(placeholders)}",
              file=sys.stderr)
    return 0 if ok else 1


def cmd_rules_compare(args: argparse.Namespace) -> int:
    from connectors import status_fields
    from integration.reports.rules_compare import compare, render
    from scoring import load_rules_file

    svc = _services(args)
    candidate = load_rules_file(args.file, status_fields())
    with svc.sessions() as session:
        report = compare(session, svc.rules, candidate, svc.now())
    print(render(report, svc.rules, candidate))
    return 0


def cmd_lead_show(args: argparse.Namespace) -> int:
    from integration.store.leads import find_lead, lead_timeline

    svc = _services(args)
    with svc.sessions() as session:
        lead = find_lead(session, args.ref)
        if lead is None:
            print(f"no lead {args.ref}", file=sys.stderr)
            return 1
        print(f"lead {lead.id} {lead.ref}  email={lead.email or '-'}  stage={lead.stage}  "
              f"owner={lead.owner_id or '-'}")
        print(f"  score={_num(lead.score)} (fit {_num(lead.fit_points)}, engagement {_num(lead.engagement_points)})"
              f"  band={lead.band or '-'}  grade={lead.grade or '-'}  mql={'yes' if lead.mql else 'no'}"
              f"  rules={lead.rules_version or '-'}")
        if lead.fields:
            print("  fields: " + ", ".join(f"{k}={v}" for k, v in sorted(lead.fields.items())))
        for when, what, detail in lead_timeline(session, lead.id):
            print(f"{when.isoformat(timespec='seconds')}  {what:<9} {_describe(what, detail)}")
    return 0


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _describe(what: str, d: dict[str, Any]) -> str:
    if what == "event":
        extra = d["properties"].get("asset") or d["properties"].get("url") or ""
        fields = ", ".join(f"{k}={v}" for k, v in d["fields"].items())
        return f"{d['source']}/{d['kind']} {extra} {fields}".rstrip()
    if what == "score":
        return f"{d['score']:g} {d['band']} {d['grade']} mql={d['mql']} [{d['rules_version']}] {d['summary']}"
    if what == "stage":
        return f"{d['from']} -> {d['to']} ({d['cause']}) {json.dumps(d['detail'])}"
    return f"{d['crm']} {d['kind']} {d['status']} {json.dumps(d['payload'])[:200]}" + (
        f" error={d['error']}" if d["error"] else "")


def cmd_outbox(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from integration.store.leads import find_lead
    from integration.store.models import Lead, OutboxWrite

    svc = _services(args)
    with svc.sessions() as session:
        stmt = select(OutboxWrite, Lead).join(Lead, Lead.id == OutboxWrite.lead_id).order_by(OutboxWrite.id)
        if args.lead:
            lead = find_lead(session, args.lead)
            if lead is None:
                print(f"no lead {args.lead}", file=sys.stderr)
                return 1
            stmt = stmt.where(OutboxWrite.lead_id == lead.id)
        if args.status != "all":
            stmt = stmt.where(OutboxWrite.status == args.status)
        rows = session.execute(stmt.limit(args.limit)).all()
        mode = svc.config["CRM_WRITE_MODE"]
        print(f"CRM write mode: {mode}; {len(rows)} write(s) shown")
        for write, lead in rows:
            line = {"id": write.id, "lead": lead.ref, "crm": write.crm, "kind": write.kind,
                    "status": write.status, "batch": write.batch_id, "payload": write.payload}
            if write.last_error:
                line["error"] = write.last_error
            print(json.dumps(line, default=str) if args.json else
                  f"#{write.id} {lead.ref} {write.kind} [{write.status}] batch={write.batch_id or '-'}\n"
                  f"    {json.dumps(write.payload, default=str)}"
                  + (f"\n    error: {write.last_error}" if write.last_error else ""))
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from rq.job import Job
    from sqlalchemy import select

    from integration.store.models import OutboxWrite

    svc = _services(args)
    registry = svc.queue.failed_job_registry
    job_ids = registry.get_job_ids()
    print(f"failed jobs: {len(job_ids)}")
    for job in Job.fetch_many(job_ids, connection=svc.redis):
        if job is None:
            continue
        last = (job.exc_info or "").strip().splitlines()[-1:] or [""]
        print(f"  {job.id}  {job.description}  ended {job.ended_at}  {last[0]}")
        if args.retry:
            registry.requeue(job.id)
    with svc.sessions.begin() as session:
        failed = list(session.scalars(select(OutboxWrite).where(OutboxWrite.status == "failed")))
        print(f"failed CRM writes: {len(failed)}")
        for write in failed:
            print(f"  #{write.id} {write.crm}:{write.crm_id} {write.kind} attempts={write.attempts} "
                  f"error={write.last_error}")
            if args.retry:
                write.status, write.attempts = "pending", 0
    if args.retry:
        from integration.pipeline.jobs import sweep

        svc.queue.enqueue(sweep)
        print("requeued; the worker will retry them")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    svc = _services(args)
    run_setup = svc.connector(args.crm).run_setup
    if run_setup is None:
        print(f"{args.crm}: this connector has no setup command", file=sys.stderr)
        return 1
    return run_setup(svc.config, svc.redis, dry_run=args.dry_run, echo=print)


def cmd_doctor(args: argparse.Namespace) -> int:
    svc = _services(args)
    run_doctor = svc.connector(args.crm).run_doctor
    if run_doctor is None:
        print(f"{args.crm}: this connector has no doctor command", file=sys.stderr)
        return 1
    return run_doctor(svc.config, svc.redis, echo=print)


def cmd_sign(args: argparse.Namespace) -> int:
    from connectors.base import secret_list
    from integration.web.intake import sign

    secrets = secret_list(load_config()["LEADLOOP_EVENTS_SECRETS"])
    if not secrets:
        print("LEADLOOP_EVENTS_SECRETS is not set", file=sys.stderr)
        return 1
    body = sys.stdin.buffer.read()
    print(sign(body, secrets[0]))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from integration.demo.runner import run_demo

    return run_demo(leads=args.leads, seed=args.seed, keep=args.keep)


def build_parser() -> argparse.ArgumentParser:
    from connectors import registry

    parser = argparse.ArgumentParser(prog="leadloop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)

    worker = sub.add_parser("worker", help="run an RQ worker (with the scheduler for delayed jobs)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument("--simple", action="store_true", help="run jobs in-process (no fork per job)")
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("cron", help="run the periodic jobs (sweeper, SLA checks)").set_defaults(func=cmd_cron)

    rules = sub.add_parser("rules", help="the rules file").add_subparsers(dest="action", required=True)
    check = rules.add_parser("check", help="validate a rules file and summarise it")
    check.add_argument("file")
    check.set_defaults(func=cmd_rules_check)
    compare = rules.add_parser("compare", help="what a candidate rules file would change, on the stored history")
    compare.add_argument("file")
    compare.set_defaults(func=cmd_rules_compare)

    lead = sub.add_parser("lead", help="one lead").add_subparsers(dest="action", required=True)
    show = lead.add_parser("show", help="print a lead's timeline")
    show.add_argument("ref", help="crm:id (hubspot:123), email:address, or the numeric id")
    show.set_defaults(func=cmd_lead_show)

    outbox = sub.add_parser("outbox", help="CRM writes: sent, pending, or (shadow mode) would-be")
    outbox.add_argument("--lead", help="only this lead (crm:id or email)")
    outbox.add_argument("--status", default="all",
                        choices=["all", "pending", "sent", "shadow", "failed", "superseded"])
    outbox.add_argument("--limit", type=int, default=200)
    outbox.add_argument("--json", action="store_true", help="one JSON object per line")
    outbox.set_defaults(func=cmd_outbox)

    dead = sub.add_parser("dead-letters", help="failed jobs and failed CRM writes")
    dead.add_argument("--retry", action="store_true", help="requeue them")
    dead.set_defaults(func=cmd_dead_letters)

    for name, func, helptext in (("setup", cmd_setup, "create CRM fields and print the webhook setup"),
                                 ("doctor", cmd_doctor, "check the CRM connection")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("crm", choices=sorted(registry()))
        if name == "setup":
            p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
        p.set_defaults(func=func)

    sign = sub.add_parser("sign", help="sign a request body from stdin for POST /webhooks/events")
    sign.set_defaults(func=cmd_sign)

    demo = sub.add_parser("demo", help="run web + worker on embedded defaults and replay the demo data set")
    demo.add_argument("--leads", type=int, default=600)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--keep", action="store_true", help="keep the previous demo database")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a clear line for the admin instead of a traceback
        from scoring import RulesError

        if isinstance(exc, RulesError):
            print(f"rules file error:\n{exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
