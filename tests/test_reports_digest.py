"""The weekly digest: its figures against the week before, delivered to a real SMTP server
(aiosmtpd, started here) and to a local HTTP receiver standing in for Slack's incoming webhook;
the cron sends each week once per channel; the webhook URL is never logged."""

from __future__ import annotations

import email
import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from integration import logs
from integration.cli.main import cli as leadloop_group
from integration.cli.runtime import Runtime
from integration.pipeline.jobs import DIGEST_JOB, cron_jobs, request_digest
from integration.web import create_app
from tests.conftest import drain
from tests.outcomes_support import Clock
from tests.reports_support import History, at, session  # noqa: F401 - the fixture

WEDNESDAY = datetime(2026, 11, 25, 9, tzinfo=UTC)  # the last whole week: Mon 16 to Sun 22 November
WEBHOOK_PATH = "/services/T0001/B0001/secret-webhook-token"
THIS_WEEK = [
    "MQLs handed to sales: 3 (week before 2, +1)",
    "Acceptance rate: 100% (week before 50%, +50 pts)",
    "Median time to accept: 2.0 days (week before 1.0 days, +1.0 days)",
    "SLA misses: 1 (week before 0, +1)",
    "Deals won: 1 (week before 1, =)",
    "Won revenue (EUR): 12,000.00 (week before 5,000.00, +7,000)",
    "1. buyers-guide (asset): 1 conversions, 1 leads touched",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mailbox:
    """aiosmtpd's handler: keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, smtp_session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def slack() -> Iterator[tuple[list[dict[str, Any]], int, list[int]]]:
    """A local HTTP receiver: the JSON bodies posted to it, its port, and the status it answers."""
    posted: list[dict[str, Any]] = []
    status = [200]

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == WEBHOOK_PATH and self.headers["Content-Type"] == "application/json" and status[0] == 200:
                posted.append(json.loads(body))
            self.send_response(status[0] if self.path == WEBHOOK_PATH else 404)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield posted, server.server_address[1], status
    server.shutdown()
    server.server_close()


@pytest.fixture
def two_weeks(session):  # noqa: F811 - the fixture
    """This week (16-22 Nov): 3 hand-offs (two accepted after 1 and 3 days, one missed its SLA),
    a deal won for 12,000 EUR, a guide download and a demo form. The week before: 2 hand-offs (one
    accepted after a day, one rejected), a deal won for 5,000 EUR."""
    write = History(session)

    def handed(day: str):
        lead = write.lead(at("2026-11-01"), handoff_band="hot", owner_id="rep-1")
        write.move(lead, "new mql", at(day, 10))
        return lead

    a1, a2, a3 = handed("2026-11-16"), handed("2026-11-17"), handed("2026-11-18")
    write.move(a1, "mql accepted", at("2026-11-17", 10), cause="disposition")
    write.move(a2, "mql accepted", at("2026-11-20", 10), cause="disposition")
    write.move(a3, "mql mql", at("2026-11-19", 10), cause="sla", action="remind", sla_misses=1)
    write.event(a1, "content_download", at("2026-11-16", 9), asset="buyers-guide")
    write.event(a2, "page_view", at("2026-11-17", 9), url="https://example.com/pricing", campaign="nov-webinar")
    write.deal([a1], "won", "12000", at("2026-11-18"), at("2026-11-21"))
    p1, p2 = handed("2026-11-10"), handed("2026-11-12")
    write.move(p1, "mql accepted", at("2026-11-11", 10), cause="disposition")
    write.move(p2, "mql recycled nurture", at("2026-11-13"), at("2026-11-13"), cause="disposition",
               reason="not_ready")
    write.deal([p1], "won", "5000", at("2026-11-11"), at("2026-11-12"))
    session.commit()


def channels_config(config: dict[str, Any], smtp_port: int, slack_port: int) -> dict[str, Any]:
    return {**config, "LEADLOOP_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "LEADLOOP_DIGEST_TO": "Marketing <marketing@example.com>, sales-leads@example.com",
            "LEADLOOP_DIGEST_FROM": "leadloop <leadloop@example.com>",
            "LEADLOOP_SLACK_WEBHOOK_URL": f"http://127.0.0.1:{slack_port}{WEBHOOK_PATH}"}


def test_digest_send_delivers_the_figures_by_email_and_slack(config, two_weeks, mailbox, slack, caplog):
    box, smtp_port = mailbox
    posted, slack_port, _ = slack
    env = {key: value for key, value in channels_config(config, smtp_port, slack_port).items()
           if isinstance(value, str)}
    logs.configure_logging("DEBUG")  # as the worker and cron run with LOG_LEVEL=DEBUG
    caplog.set_level(logging.DEBUG)
    try:
        shown = CliRunner().invoke(leadloop_group, ["report", "digest", "--send", "--before", "2026-11-25"],
                                   obj=Runtime(), env=env, catch_exceptions=False)
    finally:
        logs.configure_logging("WARNING")
    assert shown.exit_code == 0, shown.output
    assert "digest 2026-W47 sent by email, slack" in shown.stderr
    for line in THIS_WEEK:
        assert line in shown.stdout
    [message] = box.messages
    assert box.recipients == [["marketing@example.com", "sales-leads@example.com"]]
    assert message["Subject"] == "leadloop weekly digest 2026-W47"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for line in THIS_WEEK:
        assert line in text
    assert '<th scope="row" align="left">MQLs handed to sales</th><td align="right">3</td>' in html
    assert '<td align="right">12,000.00</td>' in html
    [body] = posted
    assert body["blocks"][0]["text"]["text"] == body["text"]
    assert "*leadloop: week 2026-W47" in body["text"] and "SLA misses: 1 (week before 0, +1)" in body["text"]
    assert "secret-webhook-token" not in caplog.text


def test_the_cron_sends_each_week_once_per_channel(config, two_weeks, mailbox, slack):
    box, smtp_port = mailbox
    posted, slack_port, status = slack
    settings = channels_config(config, smtp_port, slack_port)
    assert request_digest not in [job for job, _ in cron_jobs({**config, "LEADLOOP_SWEEP_SECONDS": 60})]
    assert (request_digest, 3600) in cron_jobs({**settings, "LEADLOOP_SWEEP_SECONDS": 60})
    app = create_app(settings, clock=Clock(WEDNESDAY))
    svc = app.extensions["leadloop"]
    try:
        status[0] = 500  # Slack fails the first time: the e-mail goes, Slack is tried again
        svc.queue.enqueue(DIGEST_JOB)
        drain(svc)
        assert len(box.messages) == 1 and posted == []
        status[0] = 200
        for _ in range(3):  # the cron asks every hour; a restarted cron asks again
            request_digest()
            drain(svc)
        assert len(box.messages) == 1 and len(posted) == 1
        assert "MQLs handed to sales: 3 (week before 2, +1)" in posted[0]["text"]
    finally:
        svc.engine.dispose()
        svc.redis.close()


def test_digest_without_channels_is_a_setup_error(config):
    shown = CliRunner().invoke(leadloop_group, ["report", "digest", "--send"], obj=Runtime(),
                               env={key: value for key, value in config.items() if isinstance(value, str)})
    assert shown.exit_code != 0
    half = {**config, "LEADLOOP_SMTP_URL": "smtp://127.0.0.1:25"}
    from integration.reports.digest import DigestError, channels

    with pytest.raises(DigestError, match="LEADLOOP_DIGEST_FROM, LEADLOOP_DIGEST_TO"):
        channels(half)
