"""The read-only dashboard at ``/dashboard`` for marketing ops and sales managers.

Mounted by the app factory only when ``LEADLOOP_DASHBOARD_TOKEN`` is set (otherwise
``/dashboard`` is a 404). Every page but the login form and the stylesheet needs the token
(``auth``): without it the answer is the login form with status 401 and none of the store's data.
The pages are HTML rendered on the server (Jinja, one layout), charts are inline SVG
(``charts``), and filters are plain GET forms: nothing needs JavaScript, and no page loads
anything from another site (the Content-Security-Policy says so to the browser). A bad query
parameter is a 400 page saying which and why; pages with a table also come as CSV.

The report pages (``report_pages``) show the reports of ``integration.reports``; the lead search
and the lead page (``lead_pages``) read the leads table and a lead's timeline.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request, url_for
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from integration.web.dashboard import auth, lead_pages, report_pages
from integration.web.dashboard.common import cell, count, days, report_cell, services, share

#: What the browser may load: only this site's stylesheet; no script at all; not framed.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                           "base-uri 'none'; frame-ancestors 'none'")
#: Endpoints reachable without the token (the stylesheet holds no data).
PUBLIC_ENDPOINTS = {"dashboard.login", "dashboard.static"}


def init_app(app: Flask) -> None:
    """Mount the dashboard when ``LEADLOOP_DASHBOARD_TOKEN`` is set; do nothing otherwise."""
    token = app.extensions["leadloop"].config.get("LEADLOOP_DASHBOARD_TOKEN")
    if not token:
        return
    auth.init_sessions(app, token)
    app.register_blueprint(make_blueprint())


def make_blueprint() -> Blueprint:
    """A new dashboard blueprint (one per app: the tests build many apps)."""
    bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates",
                   static_folder="static", static_url_path="/static")
    bp.before_request(_require_token)
    bp.after_request(_security_headers)
    for name, format_value in (("share", share), ("days", days), ("count", count), ("cell", cell),
                               ("report_cell", report_cell)):
        bp.add_app_template_filter(format_value, name)
    bp.context_processor(lambda: {"csrf_token": auth.csrf_token, "nav": report_pages.nav_links})
    bp.add_url_rule("/login", "login", login, methods=["GET", "POST"])
    bp.add_url_rule("/logout", "logout", logout, methods=["POST"])
    report_pages.register(bp)
    lead_pages.register(bp)
    bp.register_error_handler(HTTPException, _http_error)
    bp.register_error_handler(DBAPIError, _store_unavailable)
    return bp


def _token() -> str:
    return services().config["LEADLOOP_DASHBOARD_TOKEN"]


def _require_token() -> Any:
    if request.endpoint in PUBLIC_ENDPOINTS or auth.signed_in(_token()):
        return None
    headers = {"WWW-Authenticate": 'Bearer realm="dashboard"'}
    if request.path.endswith(".csv") or auth.bearer_token(request) is not None:
        return Response("the dashboard token is required (sign in, or send Authorization: Bearer)\n",
                        status=401, mimetype="text/plain", headers=headers)
    return render_template("dashboard/login.html", error=None, next=request.full_path.rstrip("?")), 401, headers


def login() -> Any:
    """The login form; its POST signs the browser in with the token, then goes where it was asked."""
    if request.method == "GET":
        if auth.signed_in(_token()):
            return redirect(url_for("dashboard.overview"))
        return render_template("dashboard/login.html", error=None, next=_safe_next())
    problem = auth.post_is_genuine(request.form, services().config.get("PUBLIC_BASE_URL"))
    if problem is None and not auth.token_matches(request.form.get("token", ""), _token()):
        problem = "That is not the dashboard token."
    if problem is not None:
        return render_template("dashboard/login.html", error=problem, next=_safe_next()), 401
    auth.sign_in()
    return redirect(_safe_next())


def logout() -> Any:
    problem = auth.post_is_genuine(request.form, services().config.get("PUBLIC_BASE_URL"))
    if problem is not None:
        return render_template("dashboard/error.html", code=400, reason=problem), 400
    auth.sign_out()
    return redirect(url_for("dashboard.login"))


def _safe_next() -> str:
    """Where to go after signing in: a dashboard path only (never another site)."""
    target = request.values.get("next", "")
    if target.startswith("/dashboard") and "//" not in target and "\\" not in target and len(target) < 2000:
        return target
    return url_for("dashboard.overview")


def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "dashboard.static":
        # Pages hold personal data: no copy in shared caches or the browser's history cache.
        response.headers["Cache-Control"] = "no-store"
    return response


def _http_error(exc: HTTPException) -> Any:
    code = exc.code or 500
    headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
    if request.path.endswith(".csv"):
        return Response(f"{exc.description}\n", status=code, mimetype="text/plain", headers=headers)
    return render_template("dashboard/error.html", code=code, reason=exc.description), code, headers


def _store_unavailable(exc: DBAPIError) -> Any:
    current_app.logger.warning("dashboard: the store is unreachable (%s)", type(exc.orig).__name__)
    return (render_template("dashboard/error.html", code=503, reason="The store is unreachable; try again shortly."),
            503, {"Retry-After": "30"})
