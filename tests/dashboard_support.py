"""A small hand-built store for the dashboard tests, the dashboard's token, and a live server.

Six leads with known journeys (four first touched in March 2026, two in April), their events,
scores with reasons, stage changes and one won deal, written straight into the store: the
dashboard only reads it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from integration.store.models import Deal, DealLead, Event, Lead, ScoreRecord, Transition

TOKEN = "dash-token-0123456789abcdefghij"
OTHER_TOKEN = "dash-token-rotated-9876543210zyxw"
#: Every page that shows data (the CSVs included), each of which needs the token.
DATA_PAGES = ["/dashboard/", "/dashboard/funnel", "/dashboard/funnel.csv", "/dashboard/funnel?by=source",
              "/dashboard/handoff", "/dashboard/handoff.csv", "/dashboard/content", "/dashboard/content.csv",
              "/dashboard/sla", "/dashboard/sla.csv", "/dashboard/revenue", "/dashboard/revenue.csv",
              "/dashboard/recycle", "/dashboard/recycle.csv", "/dashboard/leads", "/dashboard/leads.csv",
              "/dashboard/leads?band=hot"]


#: Chrome's flags for a quiet headless run: no network of its own, no first-run or sync.
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1366,768")
MISSING_BROWSER = ("no headless browser: the dashboard's browser tests need Debian's chromium and chromium-driver "
                   "(bash scripts/install_browser.sh installs them as root)")


@contextlib.contextmanager
def chrome() -> Iterator[Any]:
    """A headless Chromium driven by Selenium through Debian's chromedriver (never a downloaded
    one), in a fresh profile, with the browser console's messages kept. Raises RuntimeError
    naming what is missing when there is no such browser."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver_path is None:
        raise RuntimeError(MISSING_BROWSER)
    profile = tempfile.mkdtemp(prefix="ll-chrome-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def at(day: str, hour: int = 9) -> datetime:
    """``at("03-05")``: 2026-03-05 09:00 UTC."""
    return datetime.fromisoformat(f"2026-{day}T{hour:02d}:00:00+00:00")


#: email -> (first touch day, source, band, owner, the path of stages with a day per step).
JOURNEYS: dict[str, tuple[str, str, str | None, str | None, list[tuple[str, str]]]] = {
    "ada@acme-robotics.com": ("03-02", "webinar", "hot", "owner-1",
                              [("mql", "03-03"), ("accepted", "03-04"), ("sql", "03-10"), ("won", "03-20")]),
    "bob@example-industries.com": ("03-03", "ads", "warm", "owner-2",
                                   [("nurture", "03-05"), ("mql", "03-08"), ("recycled", "03-12")]),  # no budget
    "cy@beta-labs.io": ("03-04", "webinar", "warm", "owner-1", [("mql", "03-06"), ("accepted", "03-07")]),
    "dee@gamma-works.org": ("03-05", "ads", "cool", None, [("nurture", "03-09")]),
    "eve@delta-systems.com": ("04-02", "webinar", "hot", "owner-2", [("mql", "04-03")]),
    "fay@epsilon-data.com": ("04-05", "ads", "cold", None, []),
}


SCORES = {"hot": 80, "warm": 55, "cool": 30, "cold": 5}


def seed_store(session: Session) -> dict[str, Lead]:
    """Write the six leads' histories; return the leads by e-mail."""
    leads: dict[str, Lead] = {}
    for number, (email, (first, source, band, owner, path)) in enumerate(JOURNEYS.items(), start=1):
        stage = path[-1][0] if path else "new"
        lead = Lead(crm="hubspot", crm_id=str(100 + number), email=email, stage=stage, band=band, owner_id=owner,
                    team="emea" if owner else None, score=SCORES[band or "cold"],
                    fit_points=30, engagement_points=25, grade="A", mql=any(s == "mql" for s, _ in path),
                    fields={"lead_source": source, "email": email}, field_times={}, created_at=at(first, 8),
                    updated_at=at(first, 8), scored_at=at(first, 10),
                    handoff_band=band if any(s == "mql" for s, _ in path) else None)
        session.add(lead)
        session.flush()
        leads[email] = lead
        session.add(Event(source="web", event_key=f"form-{number}", lead_id=lead.id, kind="form_submit",
                          occurred_at=at(first), received_at=at(first), fields={"email": email},
                          properties={"form": "demo-request", "campaign": f"{source}-spring"},
                          processed_at=at(first)))
        session.add(ScoreRecord(lead_id=lead.id, computed_at=at(first, 10), as_of=at(first, 10), rules_version="r1",
                                score=lead.score, fit_points=30, engagement_points=25, band=band or "cold",
                                grade="A", mql=lead.mql, summary=f"{band} lead", events_seen=1,
                                result={"reasons": [
                                    {"points": 30, "text": f"Requested a demo ({email.split('@')[1]})",
                                     "rule": "engagement.demo_request", "kind": "engagement"},
                                    {"points": 25, "text": "Job title: VP Engineering", "rule": "fit.title",
                                     "kind": "fit"}]}))
        previous = "new"
        for to, day in path:
            # Sales' answers are dispositions; bob's rejection gives its reason.
            cause = "disposition" if previous == "mql" else "score"
            detail = {"reason": "no budget"} if to == "recycled" else {}
            session.add(Transition(lead_id=lead.id, from_stage=previous, to_stage=to, cause=cause, detail=detail,
                                   rules_version="r1", at=at(day)))
            previous = to
    won = Deal(crm="hubspot", crm_id="deal-900", pipeline="default", stage="closedwon", is_closed=True, is_won=True,
               amount=Decimal("12000"), currency="EUR", created_at=at("03-10"), closed_at=at("03-20"),
               outcome="won", field_times={}, updated_at=at("03-20"))
    session.add(won)
    session.flush()
    session.add(DealLead(deal_id=won.id, lead_id=leads["ada@acme-robotics.com"].id, linked_at=at("03-10")))
    session.commit()
    return leads


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port from a thread (werkzeug's threaded server); yield its
    base URL, ``http://127.0.0.1:<port>``."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
