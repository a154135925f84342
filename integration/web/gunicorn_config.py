"""gunicorn's settings for leadloop's web tier: ``gunicorn -c python:integration.web.gunicorn_config wsgi:app``.

Threaded workers (``gthread``) so that slow or stalled clients cannot take the service down:
gunicorn hands a connection to a thread only once its request has started to arrive, each
worker has ``threads`` of them, and the receiver gives a request body ``BODY_READ_SECONDS`` to
arrive (``integration.web.receiver``) before answering 408. In production put a buffering
proxy in front as well (nginx buffers request bodies by default; keep ``proxy_request_buffering
on`` and a ``client_body_timeout``), so only whole requests reach gunicorn.

Command-line options override these (the demo and the benchmarks pass ``--bind``).
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
#: A worker that does not report within this is restarted (not a per-request limit).
timeout = 30
graceful_timeout = 20
keepalive = 5
#: Request line and header limits (gunicorn's defaults, stated).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
#: No access log: request paths can hold a secret (the Salesforce endpoint's token).
accesslog = None
