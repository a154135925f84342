"""The two endpoints ``bench/intake.py`` measures leadloop's signed intake against.

- ``durable``: the minimal durable intake: the same HMAC check as ``POST /webhooks/events``
  (``integration.web.intake.verify``), one ``INSERT ... COMMIT`` of the body in PostgreSQL and
  one Redis command (``RPUSH`` of the new row's id), then 200. One database connection per
  thread, kept open.
- ``bare``: a Flask endpoint that answers 200 and does nothing else.

Served by gunicorn with leadloop's own settings (``integration.web.gunicorn_config``):
``gunicorn -c python:integration.web.gunicorn_config bench.intake_apps:durable``. Reads
``BENCH_DATABASE_URL`` (a ``postgresql://`` URL), ``REDIS_URL`` and ``LEADLOOP_EVENTS_SECRETS``.
"""

from __future__ import annotations

import os
import threading

import psycopg
from flask import Flask, jsonify, request
from redis import Redis

from connectors.base import InboundRequest, IntakeContext, SignatureError
from integration.web.intake import verify

TABLE = "bench_minimal_intake"
REDIS_KEY = "bench:minimal-intake"

durable = Flask("durable")
bare = Flask("bare")
_local = threading.local()
_redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
_context = IntakeContext(config={"LEADLOOP_EVENTS_SECRETS": os.environ.get("LEADLOOP_EVENTS_SECRETS", "")})


def _connection() -> psycopg.Connection:
    connection = getattr(_local, "connection", None)
    if connection is None:
        url = os.environ["BENCH_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        connection = _local.connection = psycopg.connect(url)
    return connection


def create_table(url: str) -> None:
    """(Re)create the minimal intake's table."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {TABLE}")
        connection.execute(f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, body jsonb NOT NULL, "
                           "received_at timestamptz NOT NULL DEFAULT now())")


@durable.post("/webhooks/events")
def durable_intake():
    body = request.get_data()
    try:
        verify(InboundRequest(method="POST", url=request.url, headers=request.headers, body=body), _context)
    except SignatureError as refusal:
        return jsonify({"error": str(refusal)}), 401
    connection = _connection()
    with connection.transaction():
        row_id = connection.execute(f"INSERT INTO {TABLE} (body) VALUES (%s) RETURNING id",
                                    (body.decode(),)).fetchone()[0]
    _redis.rpush(REDIS_KEY, row_id)
    return jsonify({"accepted": 1})


@bare.post("/webhooks/events")
def bare_intake():
    return jsonify({"accepted": 1})

