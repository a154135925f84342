"""Who may read the dashboard: the holder of ``LEADLOOP_DASHBOARD_TOKEN``.

Two ways in, both checked with ``hmac.compare_digest``:

- people sign in once through the login form; the answer is Flask's signed session cookie
  (HTTP-only, ``SameSite=Strict``, ``Secure`` unless the page was asked over plain HTTP from
  the machine itself, where a browser would drop a secure cookie). The cookie is signed with a
  key derived from the token, so changing the token signs everyone out; it expires after
  ``SESSION_HOURS``.
- scripts send ``Authorization: Bearer <token>`` with each request; no cookie is made.

The login and logout forms carry a CSRF token (kept in the same signed cookie) and their POSTs
must come from the dashboard's own origin when the browser says where they come from (``Origin``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, request, session
from flask.sessions import SecureCookieSessionInterface

#: How long a sign-in lasts.
SESSION_HOURS = 12
SESSION_COOKIE = "leadloop_dashboard"
_SESSION_KEY_LABEL = b"leadloop dashboard session cookie v1"
LOCAL_HOSTS = {"localhost"}


def session_key(token: str) -> bytes:
    """The key the session cookie is signed with: derived from the token (HMAC-SHA256), so the
    cookie never reveals the token and a new token invalidates every cookie."""
    return hmac.new(token.encode(), _SESSION_KEY_LABEL, hashlib.sha256).digest()


def token_matches(given: str, token: str) -> bool:
    """Whether ``given`` is the dashboard token (constant time)."""
    return hmac.compare_digest(given.encode(), token.encode())


def bearer_token(req: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None without one."""
    scheme, _, given = req.headers.get("Authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def is_plain_local(req: Request) -> bool:
    """Whether ``req`` came over plain HTTP to a loopback name or address (a developer's own
    machine): the only case where the session cookie is not marked ``Secure``."""
    if req.scheme != "http":
        return False
    host = urlsplit(f"//{req.host}").hostname or ""
    if host in LOCAL_HOSTS:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class DashboardSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session with the dashboard's cookie rules (see the module docstring)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return not is_plain_local(request)

    def get_cookie_httponly(self, app: Flask) -> bool:
        return True

    def get_cookie_samesite(self, app: Flask) -> str:
        return "Strict"

    def get_cookie_name(self, app: Flask) -> str:
        return SESSION_COOKIE

    def get_cookie_path(self, app: Flask) -> str:
        return "/dashboard"


def init_sessions(app: Flask, token: str) -> None:
    """Sign the app's sessions (only the dashboard uses one) with the token's derived key."""
    app.secret_key = session_key(token)
    app.permanent_session_lifetime = timedelta(hours=SESSION_HOURS)
    app.session_interface = DashboardSessionInterface()


def signed_in(token: str) -> bool:
    """Whether this request carries the token: a valid Bearer header or a signed-in session."""
    given = bearer_token(request)
    if given is not None:
        return token_matches(given, token)
    return session.get("signed_in") is True


def sign_in() -> None:
    """Start a session for this browser (a new CSRF token with it)."""
    session.clear()
    session.permanent = True
    session["signed_in"] = True
    session["csrf"] = secrets.token_urlsafe(24)


def sign_out() -> None:
    session.clear()


def csrf_token() -> str:
    """This browser's CSRF token for the forms that POST, made on first use."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return str(session["csrf"])


def post_is_genuine(form: Any, public_base_url: str | None) -> str | None:
    """Why a POST from a form may not be acted on (None: it may): sent from another host than
    this one (or ``PUBLIC_BASE_URL``'s, behind a proxy), or a missing or wrong CSRF token."""
    origin = request.headers.get("Origin")
    if origin is not None:
        ours = {request.host.lower()} | ({urlsplit(public_base_url).netloc.lower()} if public_base_url else set())
        if urlsplit(origin).netloc.lower() not in ours:
            return "the form was sent from another site"
    expected = session.get("csrf")
    given = form.get("csrf_token", "")
    if not expected or not isinstance(given, str) or not hmac.compare_digest(given.encode(), str(expected).encode()):
        return "the form has expired: load the page again and retry"
    return None
