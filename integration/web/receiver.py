"""The webhook receiver: one HTTP flow for every inbound endpoint of every source.

Status policy (the same for HubSpot, Salesforce and the generic intake):

- body larger than the endpoint allows      -> 413, nothing read further
- body not arriving in time (slow client)  -> 408
- missing, bad or stale signature / token  -> 401, checked over the raw bytes before parsing
- unparseable or invalid payload           -> 400 with every reason we found
- known but ignored event types            -> stored, 200 (so the sender stops retrying)
- the store is unreachable                 -> 503 (the sender retries later)
- stored and committed                     -> 200 ``{"accepted", "duplicates"}`` (SOAP Ack for
                                              Salesforce), and only then

Never a 500 for bad input. Enqueueing happens after the commit; if Redis is down then, the
events are still stored and the sweeper (cron) enqueues them, so the answer stays 200.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from connectors import registry
from connectors.base import Endpoint, InboundRequest, IntakeContext, IntakeResult, WebhookError
from connectors.events import LeadEvent
from integration.pipeline.queue import request_records, request_rescore
from integration.services import Services
from integration.store.events import StoreResult, store_events
from integration.store.validation import batch_problems
from integration.web import intake
from integration.web.body_deadline import WATCH

log = logging.getLogger(__name__)
STORE_ATTEMPTS = 3
#: How long a whole request body may take to arrive (enforced under gunicorn).
BODY_READ_SECONDS = 10
#: Most reasons one refusal lists.
MAX_REASONS = 100
#: What a parser raises on input it did not foresee; answered 400 (401 before authentication).
#: OSError: the platform's time conversion refuses epoch values past ~1e17 s (EOVERFLOW), where
#: smaller out-of-range ones raise ValueError; parsers do no I/O, so it can only come from input.
MALFORMED_INPUT = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError,
                   OSError)


def json_ok(result: IntakeResult) -> tuple[Any, int, dict[str, str]]:
    return jsonify({"accepted": result.accepted, "duplicates": result.duplicates,
                    "ignored": result.ignored}), 200, {}


def json_error(status: int, reason: str) -> tuple[Any, int, dict[str, str]]:
    headers = {"Retry-After": "30"} if status == 503 else {}
    return jsonify({"error": reason}), status, headers


def public_url(config: dict[str, Any]) -> str:
    """The URL the sender called: ``PUBLIC_BASE_URL`` + the raw request URI as received.

    Behind a proxy the Host header and scheme we see are the proxy's; URL-bound signatures
    are computed by the sender over the public URL, so we rebuild it from configuration.
    """
    raw_uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if not raw_uri:
        raw_uri = quote(request.path, safe="/:@!$&'()*+,;=-._~")
        if request.query_string:
            raw_uri += "?" + request.query_string.decode("latin-1")
    base = config.get("PUBLIC_BASE_URL") or request.host_url.rstrip("/")
    return base + raw_uri


class SlowBody(Exception):
    """The body did not arrive within ``BODY_READ_SECONDS``."""


def _read_body(limit: int) -> bytes | None:
    """The raw body, or None when it is larger than ``limit``.

    The whole body must arrive within ``BODY_READ_SECONDS`` (under gunicorn a watcher cuts off a
    read that takes longer, ``integration.web.body_deadline``): a client that trickles or stalls
    its upload frees the thread (``SlowBody``).
    """
    if request.content_length is not None and request.content_length > limit:
        return None
    with WATCH.deadline(request.environ.get("gunicorn.socket"), BODY_READ_SECONDS) as reading:
        try:
            body = request.stream.read(limit + 1)
        except Exception as exc:  # noqa: BLE001 - the read ended early: cut off, or the client left
            if reading.is_overdue():
                raise SlowBody() from exc
            raise
        if reading.is_overdue():
            raise SlowBody()
    return None if len(body) > limit else body


def receive(endpoint: Endpoint, **path_params: str) -> Response:
    svc: Services = current_app.extensions["leadloop"]
    ok_response = endpoint.ok_response or json_ok
    error_response = endpoint.error_response or json_error

    def refuse(status: int, reason: str) -> Response:
        # A 400's reasons can quote the payload (a value that is not a number, an unknown type):
        # they go back to the sender, never into the log. The other refusals' reasons are ours.
        log.info("webhook %s refused: %s %s", endpoint.name, status,
                 "(the reasons are in the answer)" if status == 400 else reason)
        svc.telemetry.count("leadloop_webhook_refusals", endpoint=endpoint.name, status=str(status))
        body, code, headers = error_response(status, reason)
        return current_app.make_response((body, code, headers))

    try:
        body = _read_body(endpoint.max_body)
    except SlowBody:
        response = refuse(408, f"the body did not arrive within {BODY_READ_SECONDS} seconds")
        response.headers["Connection"] = "close"
        return response
    if body is None:
        return refuse(413, f"body larger than {endpoint.max_body} bytes")
    inbound = InboundRequest(method=request.method, url=public_url(svc.config), headers=request.headers,
                             body=body, path_params=path_params)
    context = IntakeContext(config=svc.config, activity_kinds=svc.rules.activity_kinds, now=svc.now())
    try:
        endpoint.verify(inbound, context)
    except WebhookError as refusal:
        return refuse(refusal.status, str(refusal))
    except MALFORMED_INPUT as exc:  # a header no sender makes (a 400-digit timestamp ...)
        log.warning("webhook %s: unreadable authentication (%s)", endpoint.name, type(exc).__name__)
        return refuse(401, "malformed signature or token")
    try:
        events = endpoint.parse(inbound, context)
    except WebhookError as refusal:
        return refuse(refusal.status, str(refusal))
    except MALFORMED_INPUT as exc:  # a shape the parser did not foresee: the sender's mistake
        log.warning("webhook %s: unparseable payload (%s)", endpoint.name, type(exc).__name__)
        what = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
        return refuse(400, f"malformed payload ({what})")
    problems = [] if endpoint.checks_storable else batch_problems(events)
    if problems:
        shown = problems[:MAX_REASONS] + ([f"... and {len(problems) - MAX_REASONS} more"]
                                          if len(problems) > MAX_REASONS else [])
        return refuse(400, "; ".join(shown))
    received_at = context.now
    result = None
    for attempt in range(STORE_ATTEMPTS):
        try:
            result = _store(svc, events, received_at)
            break
        except IntegrityError:
            # A concurrent delivery of the same events committed first; the retry sees them.
            if attempt == STORE_ATTEMPTS - 1:
                log.error("webhook %s: could not store after %d attempts", endpoint.name, STORE_ATTEMPTS)
                return refuse(503, "storage conflict, retry later")
            time.sleep(0.05 * (attempt + 1))
        except DataError as exc:
            # A value the database refused that the edge checks did not foresee: the input's fault.
            log.warning("webhook %s: the store refused a value (%s)", endpoint.name, type(exc.orig).__name__)
            return refuse(400, "a value in the payload was refused by the store")
        except DBAPIError as exc:
            log.error("webhook %s: store unavailable (%s)", endpoint.name, type(exc.orig).__name__)
            return refuse(503, "store unavailable, retry later")
    assert result is not None
    for outcome, amount in (("accepted", result.accepted - result.ignored), ("ignored", result.ignored),
                            ("duplicate", result.duplicates)):
        if amount:
            svc.telemetry.count("leadloop_webhook_events", amount, endpoint=endpoint.name, outcome=outcome)
    if result.lead_ids or result.record_crms:
        try:
            request_rescore(svc.queue, result.lead_ids)
            for crm in sorted(result.record_crms):
                request_records(svc.queue, crm)
        except RedisError:
            log.warning("webhook %s: stored %d event(s) but Redis is down; the sweeper will enqueue them",
                        endpoint.name, result.accepted)
    body, code, headers = ok_response(IntakeResult(result.accepted, result.duplicates, result.ignored))
    return current_app.make_response((body, code, headers))


def _store(svc: Services, events: list[LeadEvent], received_at: datetime) -> StoreResult:
    """Store the events durably (committed on return).

    On PostgreSQL, events whose leads are all known (the common case) take two statements and no
    transaction: the leads' look-up, then one INSERT that stores every event at once and commits
    as it ends. Otherwise, and on SQLite, one transaction.
    """
    if svc.autocommit_sessions is not None:
        with svc.autocommit_sessions() as session:
            result = store_events(session, events, received_at, known_only=True)
        if result is not None:
            return result
    with svc.sessions.begin() as session:
        stored = store_events(session, events, received_at)
    assert stored is not None
    return stored


def endpoints() -> list[Endpoint]:
    """Every inbound endpoint: the generic intake, then each connector's."""
    found = [intake.ENDPOINT]
    for connector in registry().values():
        found.extend(connector.endpoints)
    return found


def init_app(app: Flask) -> None:
    blueprint = Blueprint("webhooks", __name__, url_prefix="/webhooks")
    for endpoint in endpoints():
        def view(_endpoint: Endpoint = endpoint, **params: str) -> Response:
            return receive(_endpoint, **params)

        blueprint.add_url_rule(endpoint.rule, endpoint=endpoint.name, view_func=view, methods=["POST"])
    app.register_blueprint(blueprint)
