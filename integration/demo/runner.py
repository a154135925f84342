"""``leadloop demo``: the quick start's main job, on embedded defaults.

Starts the real web app (gunicorn) and a real RQ worker on a SQLite file and the embedded
Redis, in shadow mode, replays the seeded demo data set through the real signed webhook
endpoints (the generic intake, HubSpot v3-signed webhooks, Salesforce outbound messages), then
sales' answers and the deals made of the accepted leads, waits for the queue to drain, and prints
what leadloop decided (with the deals won and their revenue) and would write to the CRMs, the
funnel report, and the dashboard's address with the token the demo made for it. When it ends
(done, failed, Ctrl-C or SIGTERM; with ``serve``, Ctrl-C after the summary) it stops the web app,
the worker and the embedded Redis: nothing of it keeps running.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select
from tqdm import tqdm

from integration.config import PROJECT_ROOT, load_config
from integration.embedded_redis import ensure_embedded_redis, stop_embedded_redis
from integration.services import Services

DEMO_DIR = PROJECT_ROOT / "instance" / "demo"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/readyz", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError("the web app did not become ready; see instance/demo/web.log")


def _demo_env(port: int, redis_url: str, dashboard_token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUBSPOT_", "SALESFORCE_", "LEADLOOP_"))}
    env.update({
        "DATABASE_URL": f"sqlite:///{DEMO_DIR / 'demo.db'}",
        "REDIS_URL": redis_url,
        "CRM_WRITE_MODE": "shadow",
        "LEADLOOP_INSTANCE_DIR": str(DEMO_DIR),
        "LEADLOOP_EVENTS_SECRETS": "demo_" + secrets.token_hex(16),
        "HUBSPOT_CLIENT_SECRETS": "demo-hubspot-" + secrets.token_hex(8),
        "SALESFORCE_WEBHOOK_TOKENS": "demo" + secrets.token_hex(12),
        "SALESFORCE_ORG_ID": "00Dd0000000demoEAA",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "LEADLOOP_FLUSH_DELAY": "1",
        "LOG_LEVEL": "WARNING",
        "LEADLOOP_DASHBOARD_TOKEN": dashboard_token,
    })
    if os.environ.get("LEADLOOP_RULES"):
        env["LEADLOOP_RULES"] = os.environ["LEADLOOP_RULES"]
    return env


def run_demo(leads: int = 600, seed: int = 7, keep: bool = False, serve: bool = False) -> int:
    """Run the demo end to end; return the exit code. ``serve`` keeps the web app (and so the
    dashboard) running after the summary, until Ctrl-C or SIGTERM."""
    from integration import services
    from integration.demo import data as demo_data
    from integration.services import make_engine
    from integration.store.migrate import upgrade

    if not keep and DEMO_DIR.exists():
        stop_embedded_redis(DEMO_DIR)
        shutil.rmtree(DEMO_DIR)
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    # A demo killed earlier may have left its Redis running: reuse it, and stop it at the end.
    redis_url = ensure_embedded_redis(DEMO_DIR)
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []
    engine = None
    previous_sigterm = signal.signal(signal.SIGTERM, _terminated)
    try:
        port = _free_port()
        env = _demo_env(port, redis_url, "demo-" + secrets.token_urlsafe(24))
        os.environ.update(env)
        config = load_config(env)
        engine = make_engine(config["DATABASE_URL"])
        upgrade(engine)
        bin_dir = Path(sys.executable).parent
        base = f"http://127.0.0.1:{port}"
        print(f"leadloop demo: SQLite {DEMO_DIR / 'demo.db'}, embedded Redis, CRM writes in shadow mode")
        logs = [open(DEMO_DIR / name, "w") for name in ("web.log", "worker.log")]  # noqa: SIM115
        processes.append(subprocess.Popen(
            [str(bin_dir / "gunicorn"), "-c", "python:integration.web.gunicorn_config", "--bind", f"127.0.0.1:{port}",
             "--chdir", str(PROJECT_ROOT), "wsgi:app"], env=env, stdout=logs[0],
            stderr=subprocess.STDOUT, start_new_session=True))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "integration.cli", "worker"], env=env, cwd=PROJECT_ROOT,
            stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True))
        _wait_ready(base)
        svc = services.Services.build(config)
        started = time.monotonic()
        dataset = demo_data.generate(leads=leads, seed=seed)
        print(f"replaying {dataset.event_count} events for {dataset.lead_count} leads over 90 days "
              f"through {base}/webhooks/...")
        _replay(base, env, dataset.phase1)
        _wait_drained(svc, "scoring")
        # What sales answers, built from what leadloop decided: each phase after the one before.
        for builder, what, says in (
                (dataset.phase2_builder, "feedback",
                 "sales works the hand-offs: {} status changes come back through the CRM webhooks"),
                (dataset.deals_builder, "deals", "sales turns accepted leads into deals: {} deal and "
                 "opportunity changes come through the CRM webhooks")):
            requests_ = builder(svc) if builder is not None else []
            if requests_:
                print(says.format(sum(len(r.items) for r in requests_)))
                _replay(base, env, requests_)
                _wait_drained(svc, what)
        elapsed = time.monotonic() - started
        print_summary(svc, dataset.event_count, elapsed)
        print_on_time(svc)
        print_funnel(svc)
        print_dashboard(base, env["LEADLOOP_DASHBOARD_TOKEN"], serve)
        if serve:
            while True:  # until Ctrl-C or SIGTERM, through the clean-up below
                time.sleep(3600)
        return 0
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave processes behind.
        previous_sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            _stop(processes)
            for log in logs:
                log.close()
            if engine is not None:
                engine.dispose()
            stop_embedded_redis(DEMO_DIR)
        finally:
            signal.signal(signal.SIGINT, previous_sigint)
            signal.signal(signal.SIGTERM, previous_sigterm)


def _terminated(signum: int, frame: Any) -> None:
    """SIGTERM ends the demo like Ctrl-C does: through the clean-up of ``run_demo``."""
    raise KeyboardInterrupt


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop the web app and the worker with their children (each leads its own session)."""
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _replay(base: str, env: dict[str, str], requests_to_send: list[Any]) -> None:
    total = sum(len(r.items) for r in requests_to_send)
    with requests.Session() as http, tqdm(total=total, unit="event", desc="posting", ncols=80) as bar:
        for outgoing in requests_to_send:
            body, headers, path = outgoing.render(env)
            response = http.post(base + path, data=body, headers=headers, timeout=30)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
            bar.update(len(outgoing.items))


def _wait_drained(svc: Services, what: str, timeout: float = 600) -> None:
    from integration.store.models import Event, OutboxWrite

    with svc.sessions() as session:
        total = session.scalar(select(func.count()).select_from(Event).where(Event.processed_at.is_(None)))
    deadline = time.monotonic() + timeout
    with tqdm(total=total, unit="event", desc=what, ncols=80) as bar:
        while time.monotonic() < deadline:
            with svc.sessions() as session:
                left = session.scalar(select(func.count()).select_from(Event).where(Event.processed_at.is_(None)))
                writes = session.scalar(select(func.count()).select_from(OutboxWrite)
                                        .where(OutboxWrite.status == "pending"))
            bar.n = max(0, total - left)
            bar.refresh()
            # Scheduled jobs due soon (batched flushes, retries) count; SLA checks hours ahead do not.
            due_soon = svc.queue.scheduled_job_registry.get_jobs_to_schedule(int(time.time()) + 30)
            busy = len(svc.queue) or svc.queue.started_job_registry.count or due_soon
            if not left and not writes and not busy:
                return
            time.sleep(0.3)
    raise RuntimeError(f"the queue did not drain within {timeout:.0f}s; see instance/demo/worker.log")


def _records_of_handoffs(session: Any, leads: list[Any]) -> tuple[int, int]:
    """Return (handed-off leads with no CRM record and none being created, web-only leads whose
    record was created at hand-off: sent, or in shadow mode recorded)."""
    from integration.store.models import OutboxWrite, Transition

    handed_off = set(session.scalars(select(Transition.lead_id).where(Transition.to_stage == "mql")))
    creates = dict(session.execute(select(OutboxWrite.lead_id, OutboxWrite.status)
                                   .where(OutboxWrite.kind == "create").order_by(OutboxWrite.id)).all())
    made = {lead_id for lead_id, status in creates.items() if status in ("pending", "sent", "shadow")}
    without = [lead for lead in leads if lead.id in handed_off and lead.crm is None and lead.id not in made]
    return len(without), len(made & handed_off)


def deals_line(deals: list[Any]) -> str:
    """``deals won: 14 (revenue 310,400 EUR, 48,000 GBP)  lost: 9  open: 7``."""
    outcomes = Counter(deal.outcome for deal in deals)
    revenue: Counter[str] = Counter()
    for deal in deals:
        if deal.outcome == "won" and deal.amount is not None:
            revenue[deal.currency or "?"] += deal.amount
    money = ", ".join(f"{amount:,.0f} {currency}" for currency, amount in revenue.most_common())
    return (f"deals won: {outcomes['won']} (revenue {money or 0})  lost: {outcomes['lost']}  "
            f"open: {outcomes['open']}")


def print_on_time(svc: Services) -> None:
    """Scores that age on time: what the cron's on-time rescoring does a week later, run now."""
    from datetime import timedelta

    from integration.pipeline.on_time import rescore_on_time
    from integration.store.models import Lead, OutboxWrite

    with svc.sessions() as session:
        waiting = session.scalar(select(func.count()).select_from(Lead).where(Lead.next_review_at.is_not(None)))
        updates = session.scalar(select(func.count()).select_from(OutboxWrite).where(OutboxWrite.kind == "update"))
    week_later = svc.now() + timedelta(days=7)
    counts = {"due": 0, "rescored": 0}
    while True:  # as the cron would over the week: each run takes at most a batch
        run = rescore_on_time(svc, week_later)
        counts["due"] += run["due"]
        counts["rescored"] += run["rescored"]
        if run["due"] == 0 or run["rescored"] == 0:
            break
    with svc.sessions() as session:
        queued = session.scalar(select(func.count()).select_from(OutboxWrite)
                                .where(OutboxWrite.kind == "update")) - updates
    print(f"scores that age on time: {waiting} leads have a next review; a week later the cron rescores "
          f"{counts['rescored']} of them on time, and {queued} changed verdicts go to the CRM")


def print_funnel(svc: Services) -> None:
    """The funnel report of every lead (``leadloop report funnel``): leads entering each stage,
    their share of the leads, the conversion from the stage before and the median days it took."""
    from integration.reports import REPORTS, ReportQuery
    from integration.reports.funnel import STEPS, pair_name

    with svc.sessions() as session:
        report = REPORTS["funnel"](session, ReportQuery())
    if not report.rows:
        return
    row = report.rows[0]
    entered, leads = row["entered"], row["entered"]["new"] or 1
    print("\nthe funnel (leadloop report funnel):")
    print(f"  {'stage':<10} {'leads':>6} {'of all':>8} {'from the stage before':>22} {'median days':>12}")
    print(f"  {'new':<10} {entered['new']:>6} {'100.0 %':>8}")
    for step in STEPS:
        name = pair_name(step)
        converted, median = row["converted"][name], row["median_days"][name]
        step_share = "-" if converted is None else f"{converted * 100:.1f} %"
        print(f"  {step[1]:<10} {entered[step[1]]:>6} {entered[step[1]] / leads * 100:>6.1f} % "
              f"{step_share:>22} {'-' if median is None else f'{median:.1f}':>12}")
    others = "  ".join(f"{stage}={entered[stage]}" for stage in ("recycled", "lost", "disqualified"))
    print(f"  and out of the main path: {others}")


def print_dashboard(base: str, token: str, serve: bool) -> None:
    """Where the dashboard is, with the token this demo made for it."""
    print(f"\nthe dashboard: {base}/dashboard/  (token {token})")
    if serve:
        print("serving it on the demo's data until Ctrl-C")
    else:
        print("it stopped with the demo: `bash run-demo.sh --serve` keeps it open after the summary")


def print_summary(svc: Services, events: int, elapsed: float) -> None:
    from integration.store.models import Deal, Lead, OutboxWrite, ScoreRecord, Transition

    with svc.sessions() as session:
        leads = session.scalars(select(Lead).where(Lead.merged_into_id.is_(None))).all()
        scorings = session.scalar(select(func.count()).select_from(ScoreRecord))
        writes = session.execute(select(OutboxWrite.kind, OutboxWrite.status, func.count())
                                 .group_by(OutboxWrite.kind, OutboxWrite.status)).all()
        batches = session.scalar(select(func.count(func.distinct(OutboxWrite.batch_id)))
                                 .where(OutboxWrite.kind == "update"))
        handoffs = session.scalar(select(func.count()).select_from(Transition).where(Transition.to_stage == "mql"))
        recycles = session.scalar(select(func.count()).select_from(Transition)
                                  .where(Transition.to_stage == "recycled"))
        tasks = session.scalars(select(OutboxWrite).where(OutboxWrite.kind == "task")
                                .order_by(OutboxWrite.id)).all()
        print()
        print(f"done in {elapsed:.1f}s: {events} events, {events / elapsed:.0f} events/s end to end, "
              f"{scorings} scorings for {len(leads)} leads")
        bands = Counter(lead.band or "-" for lead in leads)
        stages = Counter(lead.stage for lead in leads)
        print("leads by band:  " + "  ".join(f"{b}={bands.get(b, 0)}" for b in ("hot", "warm", "cool", "cold")))
        print("leads by stage: " + "  ".join(f"{s}={n}" for s, n in stages.most_common()))
        deals = session.scalars(select(Deal).where(Deal.deleted_at.is_(None), Deal.merged_into_id.is_(None))).all()
        print(f"hand-offs (became MQL): {handoffs}   recycled: {recycles}   {deals_line(deals)}")
        without, created = _records_of_handoffs(session, leads)
        print(f"hand-offs without a CRM record: {without}   CRM records made for web-only leads at hand-off: "
              f"{created} (rules handoff.create_in)")
        by_kind = Counter()
        for kind, status, n in writes:
            by_kind[(kind, status)] += n
        print(f"CRM writes recorded in shadow mode: {by_kind[('create', 'shadow')]} records created, "
              f"{by_kind[('update', 'shadow')]} field updates in {batches} batched calls, "
              f"{by_kind[('task', 'shadow')]} tasks ({by_kind[('update', 'superseded')]} updates superseded "
              "before sending)")
        for task in tasks[:3]:
            t = task.payload.get("task", {})
            print(f"  task for {task.crm}:{task.crm_id or '(record created at hand-off)'}: {t.get('subject')} "
                  f"(due {t.get('due_at')}, {t.get('priority')}, owner {t.get('owner_id')})")
        print("\ntop reasons of a few leads:")
        shown = 0
        for band in ("hot", "warm", "cool", "cold"):
            for lead in [lead for lead in leads if lead.band == band][:2 if band != "cold" else 1]:
                record = session.scalars(select(ScoreRecord).where(ScoreRecord.lead_id == lead.id)
                                         .order_by(ScoreRecord.id.desc()).limit(1)).first()
                if record is None:
                    continue
                print(f"  {lead.ref} ({lead.email}) score {lead.score:g} {lead.band} grade {lead.grade} "
                      f"stage {lead.stage}")
                for reason in record.result.get("reasons", [])[:4]:
                    print(f"      {reason['text']}")
                shown += 1
        # The demo's Redis is stopped when it ends: the commands start (and stop) their own.
        print("\nexplore: .venv/bin/leadloop outbox --limit 5   |   .venv/bin/leadloop lead show <crm:id>")
        print(f"(with DATABASE_URL=sqlite:///{DEMO_DIR / 'demo.db'} LEADLOOP_INSTANCE_DIR={DEMO_DIR})")
        _ = json
