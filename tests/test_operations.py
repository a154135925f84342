"""What an admin touches: configuration errors, health endpoints, and the leadloop command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from integration.config import ConfigError, load_config
from integration.store.models import OutboxWrite
from integration.web import create_app
from scoring import native
from tests.conftest import drain, post_events, web_event

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("env, message", [
    ({"CRM_WRITE_MODE": "loud"}, "CRM_WRITE_MODE: must be one of shadow, live (got 'loud')"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL: must be a URL starting with sqlite:// or postgresql:// or postgres://"),
    ({"REDIS_URL": "localhost:6379"}, "REDIS_URL: must be a URL starting with redis:// or rediss:// or unix://"),
    ({"PUBLIC_BASE_URL": "leads.example.com"}, "PUBLIC_BASE_URL: must be an absolute http(s) URL like https://leads.example.com"),
    ({"LEADLOOP_RULES": "/nope/rules.yaml"}, "LEADLOOP_RULES: no such file: /nope/rules.yaml"),
    ({"LEADLOOP_FLUSH_DELAY": "soon"},
     "LEADLOOP_FLUSH_DELAY: must be a number of seconds of 0 or more, like 2 or 0.25 (got 'soon')"),
    ({"LEADLOOP_FLUSH_DELAY": "-0.5"},
     "LEADLOOP_FLUSH_DELAY: must be a number of seconds of 0 or more, like 2 or 0.25 (got '-0.5')"),
    ({"LEADLOOP_FLUSH_DELAY": "nan"},
     "LEADLOOP_FLUSH_DELAY: must be a number of seconds of 0 or more, like 2 or 0.25 (got 'nan')"),
])
def test_bad_settings_stop_start_up_naming_the_variable(env, message):
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    assert str(caught.value) == message


@pytest.mark.parametrize("raw, seconds", [("0.25", 0.25), ("2", 2.0), ("0", 0.0)])
def test_the_flush_delay_takes_fractions_of_a_second(raw, seconds):
    assert load_config({"LEADLOOP_FLUSH_DELAY": raw})["LEADLOOP_FLUSH_DELAY"] == seconds


def test_defaults_are_embedded_and_safe():
    config = load_config({})
    assert config["CRM_WRITE_MODE"] == "shadow"
    assert config["DATABASE_URL"].startswith("sqlite:///") and config["REDIS_URL"] is None
    assert load_config({"DATABASE_URL": "postgres://u@h/db"})["DATABASE_URL"] == "postgresql+psycopg://u@h/db"


def test_healthz_and_readyz(client, svc):
    assert client.get("/healthz").get_json() == {"status": "alive"}
    report = client.get("/readyz").get_json()
    assert report["status"] == "ready" and report["database"] == "ok" and report["redis"] == "ok"
    assert report["rules_version"] == svc.rules.version and report["queue_depth"] == 0
    expected = "pure Python" if native.pure_python_requested() else "compiled"
    assert report["scoring"] == expected
    post_events(client, [web_event("q1")])
    assert client.get("/readyz").get_json()["queue_depth"] == 1


def test_readyz_is_503_when_redis_is_down(config):
    app = create_app({**config, "REDIS_URL": "redis://127.0.0.1:1/0"})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["redis"].startswith("unreachable")


def test_a_stored_event_is_acknowledged_even_when_redis_is_down_after_commit(config):
    app = create_app({**config, "REDIS_URL": "redis://127.0.0.1:1/0"})
    response = post_events(app.test_client(), [web_event("r1")])
    assert response.status_code == 200 and response.get_json()["accepted"] == 1


def cli(config: dict, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", **{k: v for k, v in config.items() if isinstance(v, str)}}
    return subprocess.run([sys.executable, "-m", "integration.cli", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, timeout=120)


def test_rules_check_exit_codes(config, tmp_path):
    ok = cli(config, "rules", "check", str(ROOT / "rules" / "leadloop.yaml"))
    assert ok.returncode == 0 and b"rules OK, version" in ok.stdout
    # The shipped file is a template: its example owners are flagged until replaced.
    assert b"warning: owner ids still to fill in" in ok.stderr and b"REPLACE-rep-1" in ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("bands: {hot: 10}\nfit: [{id: x, field: title, points: lots}]\n")
    result = cli(config, "rules", "check", str(bad))
    assert result.returncode == 1
    assert b"mistakes" in result.stderr and b"fit[0].points" in result.stderr
    assert b"Traceback" not in result.stderr


def test_bad_rules_file_at_start_up_is_a_clear_error(config, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("fit: 3\n")
    result = cli({**config, "LEADLOOP_RULES": str(bad)}, "outbox")
    assert result.returncode == 2 and b"rules file error" in result.stderr and b"Traceback" not in result.stderr


def test_config_error_from_the_command_names_the_variable(config):
    result = cli({**config, "CRM_WRITE_MODE": "sometimes"}, "outbox")
    assert result.returncode == 2
    assert result.stderr.decode().strip() == \
        "configuration error: CRM_WRITE_MODE: must be one of shadow, live (got 'sometimes')"


def test_lead_show_and_outbox_list_what_happened(client, svc, config):
    post_events(client, [web_event("s1", "content_download", email="ops@acme-logistics.example", crm="hubspot",
                                   crm_id="77", properties={"asset": "pricing-page"})])
    drain(svc)
    shown = cli(config, "lead", "show", "hubspot:77")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode()
    assert "hubspot:77" in text and "web/content_download pricing-page" in text and "score" in text
    assert "crm-write" in text
    listed = cli(config, "outbox", "--json")
    rows = [json.loads(line) for line in listed.stdout.decode().splitlines()]  # only JSON on stdout
    assert [(r["lead"], r["kind"], r["status"]) for r in rows] == [("hubspot:77", "update", "shadow")]
    assert rows[0]["payload"]["fields"]["band"] in {"cold", "cool", "warm", "hot"}
    assert cli(config, "lead", "show", "hubspot:404").returncode == 1


def test_dead_letters_lists_failed_writes_and_requeues_them(client, svc, config):
    post_events(client, [web_event("d1", crm="hubspot", crm_id="88")])
    drain(svc)
    with svc.sessions.begin() as session:
        row = session.query(OutboxWrite).one()
        row.status, row.last_error = "failed", "Property values were not valid"
    listed = cli(config, "dead-letters")
    assert b"failed CRM writes: 1" in listed.stdout and b"Property values were not valid" in listed.stdout
    assert cli(config, "dead-letters", "--retry").returncode == 0
    with svc.sessions() as session:
        assert session.query(OutboxWrite).one().status == "pending"


def test_sign_helper_signs_for_the_intake(client, config):
    body = json.dumps([web_event("signed-by-cli")]).encode()
    signature = cli(config, "sign", stdin=body).stdout.decode().strip()
    response = client.post("/webhooks/events", data=body, headers={"X-Leadloop-Signature": signature})
    assert response.status_code == 200


def test_db_upgrade_is_idempotent(config):
    for _ in range(2):
        result = cli(config, "db", "upgrade")
        assert result.returncode == 0 and b"database at revision 0007" in result.stdout


def test_rules_compare_reports_mqls_added_removed_and_outcomes(client, svc, config, tmp_path):
    import yaml

    fields = {"first_name": "Ada", "company": "Acme Logistics", "job_title": "Operations Manager",
              "phone": "+49 30 1234567", "country": "DE", "employees": 250}
    events = []
    for n in range(6):
        email, crm_id = f"p{n}@firm{n}.example", str(600 + n)
        events.append(web_event(f"cf{n}", "form_submit", email=email, crm="hubspot", crm_id=crm_id,
                                properties={"fields": fields}))
        events.append(web_event(f"cr{n}", "contact_request" if n < 3 else "page_view", email=email,
                                crm="hubspot", crm_id=crm_id, properties={"url": "https://x.example/blog/a"}))
    post_events(client, events)
    drain(svc)
    live = yaml.safe_load((ROOT / "rules" / "leadloop.yaml").read_text())
    stricter = {**live, "mql": {**live["mql"], "bands": ["hot"]}}
    path = tmp_path / "candidate.yaml"
    path.write_text(yaml.safe_dump(stricter))
    result = cli(config, "rules", "compare", str(path))
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert "compared on 6 leads" in text
    assert "MQLs: 3 live -> 0 candidate (+0 added, -3 removed)" in text
    assert "MQL removed: hubspot:600, hubspot:601, hubspot:602" in text


def test_secrets_never_reach_the_logs(config, caplog):
    """Refusals, acceptances and CRM calls at DEBUG: no secret, token or key appears in a log line."""
    import logging

    import responses as responses_lib

    from tests.conftest import EVENTS_SECRET, EVENTS_SECRET_OLD

    secrets = [EVENTS_SECRET, EVENTS_SECRET_OLD, "hs-client-secret-new", "hs-client-secret-old",
               "pat-na1-supersecret-token", "sf-path-token-0123456789abcdef"]
    caplog.set_level(logging.DEBUG)
    app = create_app({**config, "LOG_LEVEL": "DEBUG", "CRM_WRITE_MODE": "live",
                      "HUBSPOT_ACCESS_TOKEN": "pat-na1-supersecret-token"})
    client, svc = app.test_client(), app.extensions["leadloop"]
    post_events(client, [web_event("ok")])
    post_events(client, [web_event("bad")], secret="wrong-secret")
    client.post("/webhooks/hubspot", data=b"[]", headers={"X-HubSpot-Signature-v3": "x",
                                                          "X-HubSpot-Request-Timestamp": "1"})
    client.post("/webhooks/salesforce/not-the-token", data=b"<x/>")
    client.post("/webhooks/salesforce/sf-path-token-0123456789abcdef", data=b"<broken")
    post_events(client, [web_event("crm", crm="hubspot", crm_id="5")])
    with responses_lib.RequestsMock() as api:
        api.post("https://api.hubapi.com/crm/objects/2026-03/contacts/batch/update", status=401,
                 json={"status": "error", "message": "Authentication credentials not found.",
                       "category": "INVALID_AUTHENTICATION", "correlationId": "x"})
        drain(svc, rounds=3)
    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    assert "Authentication credentials" in logged or "401" in logged  # the failure itself is logged
    for secret in secrets:
        assert secret not in logged, secret
    svc.engine.dispose()
