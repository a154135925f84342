"""The Flask app factory (``wsgi.py`` and the tests call it)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, request

from integration import logs, services
from integration.clock import Clock
from integration.config import load_config
from integration.web import dashboard, health, metrics, openapi, receiver

REQUEST_ID_HEADER = "X-Request-Id"
#: A caller's request id is kept if it looks like one (a proxy's or load balancer's); else we make one.
WELL_FORMED_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+/-]{0,127}")


class LeadloopFlask(Flask):
    """Flask, logging unhandled errors by endpoint name: a path can hold a secret (the Salesforce
    endpoint's token is part of its URL)."""

    def log_exception(self, exc_info: Any) -> None:
        self.logger.error("unhandled error in endpoint %s [%s]", request.endpoint or "(none)", request.method,
                          exc_info=exc_info)


def init_request_ids(app: Flask) -> None:
    """Give each request an id for its log lines (``integration.logs``), echoed in the response's
    ``X-Request-Id``: the caller's if well-formed, else a new one."""

    @app.before_request
    def start() -> None:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        rid = given if WELL_FORMED_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        g.request_id_token = logs.request_id.set(rid)

    @app.after_request
    def echo(response: Response) -> Response:
        rid = logs.request_id.get()
        if rid is not None:
            response.headers[REQUEST_ID_HEADER] = rid
        return response

    @app.teardown_request
    def end(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            logs.request_id.reset(token)


def create_app(config: Mapping[str, Any] | None = None, *, clock: Clock | None = None) -> Flask:
    """Build the web app. ``config`` overrides the environment (tests, the CLI); ``clock``
    replaces the system clock (tests).

    Raises ``ConfigError`` naming a bad variable, ``RulesError`` listing the rules file's
    mistakes: start-up fails loudly rather than serving with a broken setup.
    """
    settings = load_config(overrides=config)
    logs.configure_logging(settings["LOG_LEVEL"], settings["LOG_FORMAT"])
    app = LeadloopFlask(__name__, instance_path=settings["LEADLOOP_INSTANCE_DIR"])
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024
    svc = services.Services.build(settings, clock=clock)
    services.install(svc)
    app.extensions["leadloop"] = svc
    init_request_ids(app)
    health.init_app(app)
    receiver.init_app(app)
    metrics.init_app(app)
    openapi.init_app(app)
    dashboard.init_app(app)
    return app
