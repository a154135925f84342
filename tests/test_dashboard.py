"""The dashboard over HTTP (Flask's test client, the real store): off without its token, every
page 401 without it and showing no data, the login form's cookie and CSRF rules, Bearer for
scripts, a new token signing everyone out, 400 for bad parameters, the lead search and lead
page, the CSV downloads, and no dashboard route in /openapi.json."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from integration.config import ConfigError, load_config
from tests.conftest import running_app
from tests.dashboard_support import DATA_PAGES, JOURNEYS, OTHER_TOKEN, TOKEN, seed_store

BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def seeded(config, migrated_engine) -> dict[str, Any]:
    with Session(migrated_engine) as session:
        leads = seed_store(session)
        return {email: lead.id for email, lead in leads.items()}


@pytest.fixture
def app(config, seeded):
    with running_app(config, LEADLOOP_DASHBOARD_TOKEN=TOKEN) as app:
        yield app


def sign_in(client: Any, token: str = TOKEN, base_url: str = "http://localhost", **headers: str) -> Any:
    form = client.get("/dashboard/login", base_url=base_url).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    return client.post("/dashboard/login", data={"token": token, "csrf_token": csrf, "next": "/dashboard/leads"},
                       headers=headers, base_url=base_url)


def test_no_token_no_dashboard(config):
    with running_app(config) as app:
        client = app.test_client()
        for path in ("/dashboard", "/dashboard/", "/dashboard/login", "/dashboard/leads"):
            assert client.get(path).status_code == 404
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("token", ["short-token", "a token with spaces in it 0123456789"])
def test_a_weak_token_stops_start_up(token):
    with pytest.raises(ConfigError, match="LEADLOOP_DASHBOARD_TOKEN"):
        load_config({"LEADLOOP_DASHBOARD_TOKEN": token})


@pytest.mark.parametrize("path", DATA_PAGES + ["/dashboard/lead-page"])
def test_without_the_token_every_page_is_401_and_shows_no_data(client, seeded, path):
    path = path.replace("lead-page", f"leads/{seeded['ada@acme-robotics.com']}")
    for headers in ({}, {"Authorization": f"Bearer {OTHER_TOKEN}"}, {"Authorization": "Basic abc"}):
        answer = client.get(path, headers=headers)
        body = answer.get_data(as_text=True)
        assert answer.status_code == 401, (path, headers)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "acme-robotics" not in body and "webinar" not in body and "owner-1" not in body
        if not path.endswith(".csv") and "Authorization" not in headers:
            assert 'name="token"' in body and "<label" in body  # the login form, nothing else


@pytest.mark.parametrize("path", DATA_PAGES)
def test_bearer_reads_every_page_without_a_cookie(client, path):
    answer = client.get(path, headers=BEARER)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    assert "Set-Cookie" not in answer.headers
    assert answer.headers["Cache-Control"] == "no-store"
    assert "script-src" not in answer.headers["Content-Security-Policy"]  # default-src 'none': no script


def test_the_login_form_sets_a_strict_http_only_cookie(client):
    answer = sign_in(client, base_url="https://leads.example.com")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/dashboard/leads")
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("leadloop_dashboard=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie
    assert "Path=/dashboard" in cookie and TOKEN not in cookie
    page = client.get("/dashboard/leads", base_url="https://leads.example.com")
    assert page.status_code == 200 and "ada@acme-robotics.com" in page.get_data(as_text=True)


@pytest.mark.parametrize("base_url, secure", [("http://127.0.0.1:5000", False), ("http://localhost", False),
                                              ("http://[::1]:8000", False), ("http://leads.example.com", True),
                                              ("https://localhost", True)])
def test_the_cookie_is_secure_unless_plain_http_on_this_machine(app, base_url, secure):
    client = app.test_client()
    form = client.get("/dashboard/login", base_url=base_url).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    answer = client.post("/dashboard/login", data={"token": TOKEN, "csrf_token": csrf}, base_url=base_url)
    assert answer.status_code == 302
    assert ("; Secure" in answer.headers["Set-Cookie"]) == secure


def test_a_wrong_token_is_refused_with_the_form(client):
    answer = sign_in(client, token=OTHER_TOKEN)
    assert answer.status_code == 401
    assert "That is not the dashboard token." in answer.get_data(as_text=True)
    assert client.get("/dashboard/leads").status_code == 401


def test_the_login_needs_its_csrf_token_and_our_origin(client):
    client.get("/dashboard/login")
    assert client.post("/dashboard/login", data={"token": TOKEN}).status_code == 401
    answer = sign_in(client, Origin="https://evil.example")
    assert answer.status_code == 401 and "another site" in answer.get_data(as_text=True)
    assert client.get("/dashboard/").status_code == 401
    assert sign_in(client, Origin="http://localhost").status_code == 302


def test_a_new_token_signs_everyone_out(config, app):
    client = app.test_client()
    assert sign_in(client).status_code == 302
    assert client.get("/dashboard/leads").status_code == 200
    cookie = client.get_cookie("leadloop_dashboard", path="/dashboard")
    with running_app(config, LEADLOOP_DASHBOARD_TOKEN=OTHER_TOKEN) as rotated:
        other = rotated.test_client()
        other.set_cookie("leadloop_dashboard", cookie.value, path="/dashboard")
        assert other.get("/dashboard/leads").status_code == 401


def test_sign_out(client):
    sign_in(client)
    page = client.get("/dashboard/leads").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/dashboard/logout", data={}).status_code == 400
    assert client.post("/dashboard/logout", data={"csrf_token": csrf}).status_code == 302
    assert client.get("/dashboard/leads").status_code == 401


@pytest.mark.parametrize("query, reason", [
    ("/dashboard/?since=2026-13-01", "since: must be a date"),
    ("/dashboard/funnel?since=2026-04-01&until=2026-03-01", "since: must be before until"),
    ("/dashboard/funnel?until=yesterday", "until: must be a date"),
    ("/dashboard/funnel?by=colour", "by: must be one of cohort"),
    ("/dashboard/funnel.csv?by=colour", "by: must be one of cohort"),
    ("/dashboard/funnel?step=new->lost", "step: must be one of"),
    ("/dashboard/leads?page=0", "page: must be a whole number"),
    ("/dashboard/leads?page=abc", "page: must be a whole number"),
    ("/dashboard/leads?page=%C2%B2", "page: must be a whole number"),  # a superscript two
    ("/dashboard/leads?band=purple", "band: must be one of cold, cool, warm, hot"),
    ("/dashboard/leads?stage=%00", "stage: control characters"),
    ("/dashboard/leads.csv?stage=limbo", "stage: must be one of new"),
    ("/dashboard/leads?email=" + "a" * 400, "email: at most 320 characters"),
    ("/dashboard/?since=0001-01-01", "between the years 1900 and 2999"),
])
def test_bad_parameters_are_a_400_with_the_reason(client, query, reason):
    answer = client.get(query, headers=BEARER)
    assert answer.status_code == 400
    assert reason in answer.get_data(as_text=True)


def test_lead_search_by_email_band_stage_and_owner(client, seeded):
    def found(query: str) -> set[str]:
        page = client.get(f"/dashboard/leads?{query}", headers=BEARER)
        assert page.status_code == 200
        return set(re.findall(r"<td>([a-z]+@[a-z.-]+)</td>", page.get_data(as_text=True)))

    assert found("") == set(JOURNEYS)
    assert found("email=ADA@acme-robotics.com") == {"ada@acme-robotics.com"}
    assert found("email=b") == {"bob@example-industries.com"}
    assert found("email=cy@beta-labs") == {"cy@beta-labs.io"}
    assert found("email=cy@beta-labs.i") == {"cy@beta-labs.io"}  # looks whole, is the start of one
    assert found("email=%25") == set()  # a wildcard is a character, not a pattern
    assert found("band=warm") == {"bob@example-industries.com", "cy@beta-labs.io"}
    assert found("stage=accepted") == {"cy@beta-labs.io"}
    assert found("owner=owner-1&band=hot") == {"ada@acme-robotics.com"}
    assert found("owner=owner-3") == set()


def test_lead_search_pages_through_many_leads(client, migrated_engine):
    from integration.store.models import Lead

    with Session(migrated_engine) as session:
        session.add_all(Lead(email=f"lead{n:03d}@many.example", fields={}, field_times={}, stage="nurture")
                        for n in range(120))
        session.commit()
    first = client.get("/dashboard/leads?stage=nurture", headers=BEARER).get_data(as_text=True)
    third = client.get("/dashboard/leads?stage=nurture&page=3", headers=BEARER).get_data(as_text=True)
    assert first.count("@many.example</td>") == 50 and 'rel="next"' in first and 'rel="prev"' not in first
    assert "lead119@many.example" in first
    # 120 many.example leads and dee's nurture lead: the third page has the last 21.
    assert third.count("@many.example</td>") == 20 and "dee@gamma-works.org" in third and 'rel="next"' not in third


def test_the_lead_page_shows_score_reasons_deals_and_timeline(client, seeded):
    page = client.get(f"/dashboard/leads/{seeded['ada@acme-robotics.com']}", headers=BEARER)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Requested a demo (acme-robotics.com)" in html and "Job title: VP Engineering" in html
    assert "deal-900" in html and "won" in html and "12000" in html
    for step in ("new → mql (score)", "mql → accepted (disposition)", "sql → won (score)"):
        assert step in html
    assert "web form_submit demo-request" in html
    for missing in (999999, 2**31, 10**30):
        assert client.get(f"/dashboard/leads/{missing}", headers=BEARER).status_code == 404


def test_the_leads_csv_parses(client):
    answer = client.get("/dashboard/leads.csv?band=warm", headers=BEARER)
    assert answer.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert {row["email"] for row in rows} == {"bob@example-industries.com", "cy@beta-labs.io"}
    assert {row["stage"] for row in rows} == {"recycled", "accepted"}


def test_the_dashboard_is_not_in_the_api_description(client):
    document = client.get("/openapi.json").get_json()
    assert not [path for path in document["paths"] if path.startswith("/dashboard")]


PARAMETERS = ["since", "until", "by", "step", "page", "email", "band", "stage", "owner", "next"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(DATA_PAGES + ["/dashboard/leads/1", "/dashboard/login"]),
       query=st.dictionaries(st.sampled_from(PARAMETERS), st.text(max_size=40), max_size=4))
def test_no_query_makes_a_server_error(client, path, query):
    answer = client.get(path.split("?")[0], query_string=query, headers=BEARER)
    assert answer.status_code in (200, 302, 400, 404), (path, query, answer.get_data(as_text=True)[:300])


def test_report_figures_are_reused_for_a_while_then_computed_again(client, app, migrated_engine):
    from integration.store.models import Lead
    from integration.web.dashboard.report_pages import CACHE_PREFIX, CACHE_SECONDS

    def leads_shown() -> str:
        page = client.get("/dashboard/", headers=BEARER).get_data(as_text=True)
        assert "Figures computed" in page
        return re.search(r"<dt>Leads</dt><dd>([0-9,]+)</dd>", page).group(1)

    assert leads_shown() == "6"
    with Session(migrated_engine) as session:
        session.add(Lead(email="new@late.example", fields={}, field_times={}))
        session.commit()
    assert leads_shown() == "6"  # the same figures, from the cache
    redis = app.extensions["leadloop"].redis
    [key] = redis.keys(CACHE_PREFIX + "*")
    assert 0 < redis.ttl(key) <= CACHE_SECONDS
    redis.delete(key)  # as when it expires
    assert leads_shown() == "7"


@pytest.mark.parametrize("path, chart, described", [
    ("/dashboard/handoff", "acceptance-chart", "hot: 100.0 %; warm: 50.0 %"),  # eve's hand-off is still open
    ("/dashboard/handoff", "reasons-chart", "no budget: 1"),
    ("/dashboard/handoff?since=2026-04-01", "acceptance-chart", "hot: -"),  # eve's alone: none decided yet
    ("/dashboard/revenue", "won-chart", "hot: 1"),
    ("/dashboard/revenue", "amount-chart", "hot: 12,000"),
    ("/dashboard/recycle", "recycled-chart", "no budget: 1"),
    ("/dashboard/funnel?by=source&step=mql->accepted", "conversion-chart", "ads: 0.0 %; webinar: 66.7 %"),
])
def test_each_chart_draws_the_reports_figures(client, path, chart, described):
    page = client.get(path, headers=BEARER).get_data(as_text=True)
    assert re.search(rf'<svg class="chart" id="{chart}".*?<desc id="{chart}-desc">([^<]*)</desc>', page).group(1) \
        == described


def test_report_tables_show_shares_as_percentages_and_the_csv_keeps_the_numbers(client):
    page = client.get("/dashboard/handoff?by=band", headers=BEARER).get_data(as_text=True)
    warm = re.search(r'<th scope="row">warm</th>(.*?)</tr>', page).group(1)
    assert "<td>50.0 %</td>" in warm  # acceptance_rate: cy accepted, bob rejected
    rows = list(csv.DictReader(io.StringIO(client.get("/dashboard/handoff.csv?by=band", headers=BEARER)
                                           .get_data(as_text=True))))
    assert {row["group"]: float(row["acceptance_rate"]) for row in rows}["warm"] == 0.5


def test_no_token_reaches_the_logs(config, seeded, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    with running_app(config, LEADLOOP_DASHBOARD_TOKEN=TOKEN, LOG_LEVEL="DEBUG") as app:
        client = app.test_client()
        sign_in(client, token=OTHER_TOKEN)
        sign_in(client)
        for path in DATA_PAGES:
            client.get(path)
            client.get(path, headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert TOKEN not in logged and OTHER_TOKEN not in logged


def test_the_demo_ends_with_the_funnel_and_the_dashboard_address(svc, capsys):
    from integration.demo.runner import print_dashboard, print_funnel

    print_funnel(svc)
    print_dashboard("http://127.0.0.1:8123", TOKEN, serve=False)
    lines = capsys.readouterr().out.splitlines()
    table = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("  ") and line.split()}
    # mql: 4 of the 6 leads; of the 2 that entered nurture (bob, dee), bob went on to mql.
    assert table["new"][:1] == ["6"] and table["mql"][:4] == ["4", "66.7", "%", "50.0"]
    assert table["won"][:1] == ["1"]
    assert f"the dashboard: http://127.0.0.1:8123/dashboard/  (token {TOKEN})" in lines
