"""Configuration from the environment, validated at start-up.

Every setting is an environment variable: leadloop's own in ``SETTINGS``, each connector's in its
``Connector.settings`` (the registry). Values are checked once when the app or a worker starts;
a bad value stops start-up with an error that names the variable, never later in the middle of
a request.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from connectors import registry

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = PROJECT_ROOT / "rules" / "leadloop.yaml"
WRITE_MODES = ("shadow", "live")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def _url(*schemes: str) -> Callable[[str, str], str]:
    def check(name: str, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme.split("+")[0] not in schemes or not (parts.netloc or parts.path):
            raise ConfigError(f"{name}: must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return value
    return check


def _public_base_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{name}: must be an absolute http(s) URL like https://leads.example.com")
    return value.rstrip("/")


def _choice(*choices: str) -> Callable[[str, str], str]:
    def check(name: str, value: str) -> str:
        if value not in choices:
            raise ConfigError(f"{name}: must be one of {', '.join(choices)} (got {value!r})")
        return value
    return check


def _non_negative_seconds(name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < 86400:  # also refuses nan and inf
        raise ConfigError(f"{name}: must be a number of seconds of 0 or more, like 2 or 0.25 (got {value!r})")
    return seconds


def _positive_int(name: str, value: str) -> int:
    if not value.isdigit() or int(value) == 0:
        raise ConfigError(f"{name}: must be a whole number above 0 (got {value!r})")
    return int(value)


def _existing_file(name: str, value: str) -> str:
    if not Path(value).is_file():
        raise ConfigError(f"{name}: no such file: {value}")
    return value


def _text(name: str, value: str) -> str:
    return value


#: The dashboard token is typed into a login form, so it is the only thing between the store's
#: personal data and a guesser: long enough that guessing is hopeless.
DASHBOARD_TOKEN_MIN_LENGTH = 24


def _dashboard_token(name: str, value: str) -> str:
    if len(value) < DASHBOARD_TOKEN_MIN_LENGTH or any(c.isspace() for c in value):
        raise ConfigError(f"{name}: must be at least {DASHBOARD_TOKEN_MIN_LENGTH} characters without spaces "
                          "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return value


#: name -> (parser, default, description); the README's configuration table lists every one (a test checks).
SETTINGS: dict[str, tuple[Callable[[str, str], Any], str | None, str]] = {
    "DATABASE_URL": (_url("sqlite", "postgresql", "postgres"), None,
                     "SQLAlchemy URL of the store. Default: SQLite file `instance/leadloop.db`."),
    "REDIS_URL": (_url("redis", "rediss", "unix"), None,
                  "Redis for the queue, rate limits and token cache. Unset: an embedded Redis is started."),
    "LEADLOOP_RULES": (_existing_file, str(DEFAULT_RULES), "Path of the rules file."),
    "LEADLOOP_EVENTS_SECRETS": (_text, None,
                                "Comma-separated signing secrets for `POST /webhooks/events` (several = rotation)."),
    "CRM_WRITE_MODE": (_choice(*WRITE_MODES), "shadow",
                       "`shadow`: compute and record every CRM write, send none. `live`: send them."),
    "PUBLIC_BASE_URL": (_public_base_url, None,
                        "Externally visible base URL; URL-bound signatures (HubSpot v2/v3) are checked "
                        "against it instead of the Host header."),
    "LEADLOOP_INSTANCE_DIR": (_text, str(PROJECT_ROOT / "instance"),
                              "Folder for the default SQLite file and the embedded Redis."),
    "LEADLOOP_QUEUE": (_text, "leadloop", "Name of the RQ queue."),
    "LEADLOOP_FLUSH_DELAY": (_non_negative_seconds, "2",
                             "Seconds (fractions allowed: `0.5`) the outbox waits to gather CRM writes into "
                             "one batch."),
    "LEADLOOP_SWEEP_SECONDS": (_positive_int, "60",
                               "How often the sweeper runs (cron), and how long work may wait before it "
                               "counts as lost and is requested again."),
    "LOG_LEVEL": (_choice("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", "Log level."),
    "LOG_FORMAT": (_choice("text", "json"), "text",
                   "`text`: one readable line per record. `json`: one JSON object per line."),
    "LEADLOOP_METRICS_TOKENS": (_text, None,
                                "Comma-separated bearer tokens `GET /metrics` requires (several = rotation). "
                                "Unset: `/metrics` is open; restrict it at the proxy."),
    "LEADLOOP_DASHBOARD_TOKEN": (_dashboard_token, None,
                                 "The token of the read-only dashboard at `/dashboard` (login form or "
                                 "`Authorization: Bearer`). Unset: no dashboard (404)."),
    "LEADLOOP_SMTP_URL": (_url("smtp", "smtps"), None,
                          "SMTP server for the weekly digest: `smtp://user:password@host:587` (STARTTLS) or "
                          "`smtps://...:465` (TLS). A secret: never logged."),
    "LEADLOOP_DIGEST_TO": (_text, None, "Comma-separated addresses the weekly digest is e-mailed to."),
    "LEADLOOP_DIGEST_FROM": (_text, None, "The weekly digest e-mail's From address."),
    "LEADLOOP_SLACK_WEBHOOK_URL": (_url("https", "http"), None,
                                   "Slack incoming-webhook URL the weekly digest is posted to. A secret: never "
                                   "logged."),
}



def load_config(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
                ) -> dict[str, Any]:
    """Return the validated settings; raises ``ConfigError`` naming the first bad variable.

    ``overrides`` (tests, the CLI) win over the environment and are validated the same way.
    """
    env = dict(os.environ if environ is None else environ)
    if overrides:
        env.update({k: v for k, v in overrides.items() if isinstance(v, str)})
    config: dict[str, Any] = {}
    for name, (parse, default, _doc) in SETTINGS.items():
        raw = env.get(name)
        raw = raw.strip() if isinstance(raw, str) else raw
        value = raw if raw else default
        config[name] = parse(name, value) if value is not None else None
    connector_settings = {name for connector in registry().values() for name in connector.settings}
    for name in connector_settings:
        if name in env and name not in SETTINGS:
            config[name] = env[name]
    if config["DATABASE_URL"] is None:
        config["DATABASE_URL"] = f"sqlite:///{Path(config['LEADLOOP_INSTANCE_DIR']) / 'leadloop.db'}"
    if config["DATABASE_URL"].startswith("postgres://"):
        config["DATABASE_URL"] = "postgresql://" + config["DATABASE_URL"][len("postgres://"):]
    if config["DATABASE_URL"].startswith("postgresql://"):
        # psycopg 3 is the driver we ship.
        config["DATABASE_URL"] = "postgresql+psycopg://" + config["DATABASE_URL"][len("postgresql://"):]
    if overrides:
        config.update({k: v for k, v in overrides.items() if not isinstance(v, str)})
    mistakes = [mistake for connector in registry().values() for mistake in connector.check_config(config)]
    if mistakes:
        raise ConfigError("; ".join(mistakes))
    return config
