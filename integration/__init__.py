"""leadloop's integration layer: the Flask app, webhook receiver, queue jobs, store and CLI."""

from __future__ import annotations

from typing import Any

from flask import Flask


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the web app. ``config`` overrides the environment (tests, the CLI).

    Raises ``ConfigError`` naming a bad variable, ``RulesError`` listing the rules file's
    mistakes: start-up fails loudly rather than serving with a broken setup.
    """
    import logging

    from integration import health, services, webhooks
    from integration.config import load_config

    settings = load_config(overrides=config)
    logging.basicConfig(level=settings["LOG_LEVEL"],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask(__name__, instance_path=settings["LEADLOOP_INSTANCE_DIR"])
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024
    svc = services.Services.build(settings)
    services.install(svc)
    app.extensions["leadloop"] = svc
    health.init_app(app)
    webhooks.init_app(app)
    return app
