"""The Flask app factory (``wsgi.py`` and the tests call it)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, request

from integration import services
from integration.clock import Clock
from integration.config import load_config
from integration.web import health, openapi, receiver


class LeadloopFlask(Flask):
    """Flask, logging unhandled errors by endpoint name: a path can hold a secret (the Salesforce
    endpoint's token is part of its URL)."""

    def log_exception(self, exc_info: Any) -> None:
        self.logger.error("unhandled error in endpoint %s [%s]", request.endpoint or "(none)", request.method,
                          exc_info=exc_info)


def create_app(config: Mapping[str, Any] | None = None, *, clock: Clock | None = None) -> Flask:
    """Build the web app. ``config`` overrides the environment (tests, the CLI); ``clock``
    replaces the system clock (tests).

    Raises ``ConfigError`` naming a bad variable, ``RulesError`` listing the rules file's
    mistakes: start-up fails loudly rather than serving with a broken setup.
    """
    settings = load_config(overrides=config)
    logging.basicConfig(level=settings["LOG_LEVEL"],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = LeadloopFlask(__name__, instance_path=settings["LEADLOOP_INSTANCE_DIR"])
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024
    svc = services.Services.build(settings, clock=clock)
    services.install(svc)
    app.extensions["leadloop"] = svc
    health.init_app(app)
    receiver.init_app(app)
    openapi.init_app(app)
    return app
