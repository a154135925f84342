"""The weekly digest that comes to marketing and sales: the week's figures against the week before,
as a short e-mail (HTML and text) and a Slack incoming-webhook message.

The week is the last whole week (Monday 00:00 UTC to Monday 00:00 UTC) before now. Its figures
come from the reports over that week's window, so they mean what the reports mean: MQLs (the
hand-offs of the week), their acceptance rate and median days to accept, SLA misses of the week's
hand-offs, the top content by conversions, and the deals won in the week with their amount.

``leadloop report digest`` prints it; ``--send`` and the cron's ``send_weekly_digest`` deliver it
to every configured channel: e-mail through ``LEADLOOP_SMTP_URL`` to ``LEADLOOP_DIGEST_TO`` from
``LEADLOOP_DIGEST_FROM``, Slack through ``LEADLOOP_SLACK_WEBHOOK_URL``. The cron sends each week
once: a Redis key per week is claimed before sending (and given back if sending failed).
Credentials and the webhook URL are never logged.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from jinja2 import Environment, select_autoescape
from sqlalchemy.orm import Session

from integration import services
from integration.reports import content, handoff, revenue, sla
from integration.reports.window import ReportQuery

log = logging.getLogger(__name__)

#: How many calls to action the digest lists.
TOP_CONTENT = 3
#: Seconds an SMTP server or the Slack webhook may take.
DELIVERY_TIMEOUT = 30
#: The Redis key that marks a week's digest as sent on a channel (claimed before sending):
#: ``%s`` is ``week:channel`` (``2026-W48:email``).
SENT_KEY = "leadloop:digest:sent:%s"
#: How long the mark is kept (longer than a week is all it needs).
SENT_TTL = 60 * 86400


class DigestError(Exception):
    """A channel is half configured or refused the digest; the message names the setting or server."""


@dataclass(frozen=True)
class Figure:
    """One line of the digest: this week's value and last week's."""

    label: str
    current: float | None
    previous: float | None
    #: ``count``, ``share`` (0..1), ``days`` or ``money`` (per currency, see ``Digest.revenue``).
    unit: str = "count"

    def text(self, value: float | None) -> str:
        """``value`` as the digest shows it."""
        if value is None:
            return "-"
        if self.unit == "share":
            return f"{value:.0%}"
        if self.unit == "days":
            return f"{value:.1f} days"
        return f"{value:,.0f}"

    @property
    def change(self) -> str:
        """``+5``, ``−3 pts``, ``+0.4 days``, ``=`` or ``-`` when either week has no value."""
        if self.current is None or self.previous is None:
            return "-"
        delta = self.current - self.previous
        if abs(delta) < 1e-9:
            return "="
        sign = "+" if delta > 0 else "−"
        if self.unit == "share":
            return f"{sign}{abs(delta) * 100:.0f} pts"
        if self.unit == "days":
            return f"{sign}{abs(delta):.1f} days"
        return f"{sign}{abs(delta):,.0f}"


@dataclass
class Digest:
    """The week's figures against the week before, ready to render."""

    week: str
    since: datetime
    until: datetime
    figures: list[Figure] = field(default_factory=list)
    #: Currency -> (this week, last week) won amount.
    revenue: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: The top calls to action of the week: (type, name, conversions, leads touched).
    top_content: list[tuple[str, str, int, int]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The digest as JSON-ready data."""
        return {"week": self.week, "since": self.since.isoformat(), "until": self.until.isoformat(),
                "figures": {figure.label: {"this_week": figure.current, "previous_week": figure.previous}
                            for figure in self.figures},
                "won_amount": {currency: {"this_week": now, "previous_week": before}
                               for currency, (now, before) in self.revenue.items()},
                "top_content": [{"type": kind, "name": name, "conversions": conversions, "leads_touched": touched}
                                for kind, name, conversions, touched in self.top_content]}


def week_of(now: datetime) -> tuple[datetime, datetime]:
    """The last whole week before ``now``: Monday 00:00 UTC to the next Monday 00:00 UTC."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    this_monday = midnight - timedelta(days=midnight.weekday())
    return this_monday - timedelta(days=7), this_monday


def week_name(since: datetime) -> str:
    """``2026-W48`` (ISO week)."""
    year, week, _ = since.isocalendar()
    return f"{year}-W{week:02d}"


def build_digest(session: Session, now: datetime) -> Digest:
    """Return the digest of the last whole week before ``now``, against the week before it."""
    since, until = week_of(now)
    weeks = [_week_figures(session, ReportQuery(since=since, until=until)),
             _week_figures(session, ReportQuery(since=since - timedelta(days=7), until=since))]
    current, previous = weeks
    figures = [Figure("MQLs handed to sales", current["mqls"], previous["mqls"]),
               Figure("Acceptance rate", current["acceptance"], previous["acceptance"], "share"),
               Figure("Median time to accept", current["to_accept"], previous["to_accept"], "days"),
               Figure("SLA misses", current["sla_misses"], previous["sla_misses"]),
               Figure("Deals won", current["won"], previous["won"])]
    currencies = sorted(set(current["amount"]) | set(previous["amount"]))
    return Digest(week=week_name(since), since=since, until=until, figures=figures,
                  revenue={currency: (current["amount"].get(currency, 0.0), previous["amount"].get(currency, 0.0))
                           for currency in currencies},
                  top_content=current["top_content"])


def _week_figures(session: Session, query: ReportQuery) -> dict[str, Any]:
    [handed] = handoff.build(session, query).rows or [{}]
    [slas] = sla.build(session, query).rows or [{}]
    [won] = revenue.build(session, query).rows or [{}]
    ranked = sorted(content.build(session, query).rows,
                    key=lambda row: (-row["conversions"], -row["leads_touched"], row["type"], row["name"]))
    return {"mqls": handed.get("handed_off", 0), "acceptance": handed.get("acceptance_rate"),
            "to_accept": handed.get("median_days_to_accept"), "sla_misses": slas.get("missed", 0),
            "won": won.get("won_deals", 0), "amount": won.get("amount", {}),
            "top_content": [(row["type"], row["name"], row["conversions"], row["leads_touched"])
                            for row in ranked[:TOP_CONTENT] if row["leads_touched"]]}


# --- rendering -------------------------------------------------------------------------------

_TEMPLATES = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_HTML = _TEMPLATES.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>leadloop weekly digest {{ d.week }}</title></head>
<body style="font-family: Arial, sans-serif; color: #1a1a1a; background: #ffffff">
<h1 style="font-size: 20px">leadloop: week {{ d.week }}</h1>
<p>{{ d.since.strftime('%a %d %b %Y') }} to {{ (d.until - one_day).strftime('%a %d %b %Y') }} (UTC),
against the week before.</p>
<table style="border-collapse: collapse" cellpadding="6">
<thead><tr><th scope="col" align="left">Figure</th><th scope="col" align="right">This week</th>
<th scope="col" align="right">Week before</th><th scope="col" align="right">Change</th></tr></thead>
<tbody>
{%- for f in d.figures %}
<tr><th scope="row" align="left">{{ f.label }}</th><td align="right">{{ f.text(f.current) }}</td>
<td align="right">{{ f.text(f.previous) }}</td><td align="right">{{ f.change }}</td></tr>
{%- endfor %}
{%- for currency, (now, before) in d.revenue.items() %}
<tr><th scope="row" align="left">Won revenue ({{ currency }})</th><td align="right">{{ money(now) }}</td>
<td align="right">{{ money(before) }}</td><td align="right">{{ delta(now, before) }}</td></tr>
{%- endfor %}
</tbody></table>
<h2 style="font-size: 16px">Top content this week</h2>
{%- if d.top_content %}
<ol>{% for kind, name, conversions, touched in d.top_content %}
<li>{{ name }} ({{ kind }}): {{ conversions }} conversions, {{ touched }} leads touched</li>{% endfor %}
</ol>
{%- else %}
<p>No content touched this week.</p>
{%- endif %}
</body></html>
""")


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _delta(now: float, before: float) -> str:
    return Figure("", now, before).change


def render_html(digest: Digest) -> str:
    """The digest as a short HTML e-mail."""
    return _HTML.render(d=digest, one_day=timedelta(days=1), money=_money, delta=_delta)


def render_text(digest: Digest) -> str:
    """The digest as plain text (the e-mail's text part, and what ``leadloop report digest`` prints)."""
    last_day = digest.until - timedelta(days=1)
    lines = [f"leadloop: week {digest.week} ({digest.since:%a %d %b} to {last_day:%a %d %b %Y}, UTC), "
             "against the week before", ""]
    for figure in digest.figures:
        lines.append(f"{figure.label}: {figure.text(figure.current)} "
                     f"(week before {figure.text(figure.previous)}, {figure.change})")
    for currency, (now, before) in digest.revenue.items():
        lines.append(f"Won revenue ({currency}): {_money(now)} (week before {_money(before)}, {_delta(now, before)})")
    lines += ["", "Top content this week:"]
    lines += [f"  {index}. {name} ({kind}): {conversions} conversions, {touched} leads touched"
              for index, (kind, name, conversions, touched) in enumerate(digest.top_content, 1)] or ["  none"]
    return "\n".join(lines) + "\n"


def render_slack(digest: Digest) -> dict[str, Any]:
    """The digest as a Slack incoming-webhook message: ``text`` (mrkdwn, also the notification)
    and one section block with the same text."""
    text = render_text(digest)
    title, _, body = text.partition("\n")
    mrkdwn = f"*{_slack_escape(title)}*\n{_slack_escape(body.strip())}"
    return {"text": mrkdwn, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}}]}


def _slack_escape(text: str) -> str:
    """Slack's three control characters, escaped as its formatting guide says."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- delivery --------------------------------------------------------------------------------

def channels(config: Mapping[str, Any]) -> list[str]:
    """The configured delivery channels (``email``, ``slack``); raises ``DigestError`` for an
    e-mail channel that is half set up."""
    found = []
    mail = [name for name in ("LEADLOOP_SMTP_URL", "LEADLOOP_DIGEST_TO", "LEADLOOP_DIGEST_FROM") if config.get(name)]
    if mail and len(mail) < 3:
        missing = sorted({"LEADLOOP_SMTP_URL", "LEADLOOP_DIGEST_TO", "LEADLOOP_DIGEST_FROM"} - set(mail))
        raise DigestError(f"the digest e-mail needs {', '.join(missing)} too")
    if mail:
        found.append("email")
    if config.get("LEADLOOP_SLACK_WEBHOOK_URL"):
        found.append("slack")
    return found


def deliver(digest: Digest, config: Mapping[str, Any], only: list[str] | None = None) -> list[str]:
    """Send ``digest`` to every configured channel (or to those of ``only``); return the channels
    it went to. Raises ``DigestError`` when none is configured or one refused it (after trying the
    others)."""
    wanted = channels(config) if only is None else only
    if not wanted:
        raise DigestError("no digest channel is configured: set LEADLOOP_SMTP_URL, LEADLOOP_DIGEST_TO and "
                          "LEADLOOP_DIGEST_FROM, and/or LEADLOOP_SLACK_WEBHOOK_URL")
    sent, failures = [], []
    for channel in wanted:
        try:
            if channel == "email":
                send_email(digest, config)
            else:
                send_slack(digest, config["LEADLOOP_SLACK_WEBHOOK_URL"])
            sent.append(channel)
        except DigestError as exc:
            failures.append(str(exc))
    if failures:
        raise DigestError("; ".join(failures) + (f" (sent by {', '.join(sent)})" if sent else ""))
    return sent


def send_email(digest: Digest, config: Mapping[str, Any]) -> None:
    """Send the digest as a multipart (text + HTML) e-mail through ``LEADLOOP_SMTP_URL``:
    ``smtps://`` connects with TLS, ``smtp://`` upgrades with STARTTLS when the server offers it
    (and must, when the URL has credentials)."""
    url = urlsplit(config["LEADLOOP_SMTP_URL"])
    host, tls = url.hostname or "localhost", url.scheme == "smtps"
    port = url.port or (465 if tls else 25)
    recipients = [address for _, address in getaddresses([config["LEADLOOP_DIGEST_TO"]]) if address]
    message = EmailMessage()
    message["Subject"] = f"leadloop weekly digest {digest.week}"
    message["From"] = config["LEADLOOP_DIGEST_FROM"]
    message["To"] = ", ".join(recipients)
    message.set_content(render_text(digest))
    message.add_alternative(render_html(digest), subtype="html")
    context = ssl.create_default_context()
    try:
        client = smtplib.SMTP_SSL(host, port, timeout=DELIVERY_TIMEOUT, context=context) if tls else \
            smtplib.SMTP(host, port, timeout=DELIVERY_TIMEOUT)
        with client:
            if not tls:
                client.ehlo()
                if client.has_extn("starttls"):
                    client.starttls(context=context)
                    client.ehlo()
                elif url.username:
                    raise DigestError(f"SMTP server {host}:{port} offers no STARTTLS: not sending the password "
                                      "in clear (use smtps://)")
            if url.username:
                client.login(unquote(url.username), unquote(url.password or ""))
            client.send_message(message, to_addrs=recipients)
    except (OSError, smtplib.SMTPException) as exc:
        # The exception's text never holds the URL; name only the server and the error's type.
        raise DigestError(f"SMTP server {host}:{port} refused the digest ({type(exc).__name__})") from None
    log.info("weekly digest %s e-mailed to %d recipient(s) through %s:%s", digest.week, len(recipients), host, port)


def send_slack(digest: Digest, webhook_url: str) -> None:
    """Post the digest to a Slack incoming webhook (the URL is a secret: never logged)."""
    try:
        response = requests.post(webhook_url, json=render_slack(digest), timeout=DELIVERY_TIMEOUT)
    except requests.RequestException as exc:
        raise DigestError(f"the Slack webhook could not be reached ({type(exc).__name__})") from None
    if response.status_code >= 300:
        raise DigestError(f"the Slack webhook answered {response.status_code}")
    log.info("weekly digest %s posted to Slack", digest.week)


def send_weekly_digest() -> dict[str, Any]:
    """The cron's job: send the last whole week's digest to every configured channel, once per
    week and channel.

    Each channel's mark for the week is claimed first (Redis SET NX), so cron restarts and
    concurrent workers send it once; a channel that failed gives its mark back, and the job raises
    for the next run to try that channel again.
    """
    svc = services.current()
    since, _ = week_of(svc.now())
    week = week_name(since)
    claimed = [channel for channel in channels(svc.config)
               if svc.redis.set(SENT_KEY % f"{week}:{channel}", svc.now().isoformat(), nx=True, ex=SENT_TTL)]
    if not claimed:
        return {"week": week, "sent": 0}
    try:
        with svc.sessions() as session:
            digest = build_digest(session, svc.now())
    except Exception:
        svc.redis.delete(*(SENT_KEY % f"{week}:{channel}" for channel in claimed))
        raise
    failures = []
    for channel in claimed:
        try:
            deliver(digest, svc.config, only=[channel])
        except DigestError as exc:
            svc.redis.delete(SENT_KEY % f"{week}:{channel}")
            failures.append(str(exc))
    if failures:
        raise DigestError("; ".join(failures))
    return {"week": week, "sent": len(claimed)}
