"""``/healthz`` (the process answers) and ``/readyz`` (it can do its job), plus JSON errors."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, jsonify
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from integration.services import Services
from scoring import native


def readiness(svc: Services) -> tuple[dict[str, Any], bool]:
    """Return the readiness report and whether every check passed."""
    report: dict[str, Any] = {"rules_version": svc.rules.version, "write_mode": svc.config["CRM_WRITE_MODE"],
                              "scoring": native.active()}
    ok = True
    try:
        with svc.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        report["database"] = "ok"
    except DBAPIError as exc:
        report["database"] = f"unreachable: {type(exc.orig).__name__}"
        ok = False
    try:
        svc.redis.ping()
        report["redis"] = "ok"
        report["queue_depth"] = len(svc.queue)
        report["scheduled"] = svc.queue.scheduled_job_registry.count
        report["failed_jobs"] = svc.queue.failed_job_registry.count
    except RedisError as exc:
        report["redis"] = f"unreachable: {type(exc).__name__}"
        ok = False
    report["status"] = "ready" if ok else "not ready"
    return report, ok


def init_app(app: Flask) -> None:
    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify({"status": "alive"})

    @app.get("/readyz")
    def readyz() -> Any:
        report, ok = readiness(current_app.extensions["leadloop"])
        return jsonify(report), 200 if ok else 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        # Keep the exception's own headers (405's Allow, required by RFC 9110), not its HTML type.
        headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
        return jsonify({"error": exc.description}), exc.code, headers
