"""The ``leadloop`` command as an operator meets it: help, output, errors, exit codes, pipes."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest

from integration.cli.describe import lead_zone, write_summary
from integration.cli.main import cli as leadloop_group
from integration.cli.main import main
from integration.store.models import Lead, OutboxWrite
from scoring import load_rules_file
from tests.conftest import drain, post_events, web_event

ROOT = Path(__file__).parents[1]
FIT = {"first_name": "Ada", "last_name": "Lovelace", "company": "Acme Logistics", "job_title": "Operations Manager",
       "phone": "+49 30 1234567", "country": "DE", "employees": 250}


def run(config: dict, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``leadloop ARGS`` in a subprocess on ``config`` (plus ``env``), as an operator runs it."""
    environ = {"PATH": "/usr/bin:/bin", **{k: v for k, v in config.items() if isinstance(v, str)}, **env}
    return subprocess.run([sys.executable, "-m", "integration.cli", *args], cwd=ROOT, env=environ,
                          capture_output=True, timeout=120)


def free_port() -> int:
    """A TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def two_leads(client, svc):
    """hubspot:501 is a hot MQL with a task for its owner; hubspot:502 a free-mail lead with minus points.

    The activity happened ten days before the test runs, so the decayed points read the same any day."""
    when = (datetime.now(UTC) - timedelta(days=10)).isoformat()
    post_events(client, [{**event, "occurred_at": when} for event in [
        web_event("f1", "form_submit", email="ada@acme-logistics.example", crm="hubspot", crm_id="501",
                  properties={"form": "demo-request", "fields": FIT}),
        web_event("c1", "contact_request", email="ada@acme-logistics.example", crm="hubspot", crm_id="501",
                  properties={"url": "https://acme.example/contact"}),
        web_event("d1", "content_download", email="ada@acme-logistics.example", crm="hubspot", crm_id="501",
                  properties={"asset": "coverage-map"}),
        web_event("g1", "page_view", email="jürgen@gmail.com", crm="hubspot", crm_id="502",
                  properties={"url": "https://acme.example/blog/grüße"}),
    ]])
    drain(svc)


# --- help ------------------------------------------------------------------------------------

def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def test_every_command_and_option_has_help_in_plain_words(capsys):
    commands = list(_commands(leadloop_group))
    names = {" ".join(path) for path, _ in commands}
    assert {"db upgrade", "worker", "cron", "rules check", "rules compare", "lead show", "outbox", "dead-letters",
            "setup", "doctor", "sign", "demo", "stop"} <= names
    for path, command in [((), leadloop_group), *commands]:
        assert command.help and command.get_short_help_str(), path
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, (path, param.name)
        assert main([*path, "--help"]) == 0
        shown = capsys.readouterr().out
        assert "`" not in shown and "``" not in shown, path
        listed = shown.split("Commands:")[1].splitlines() if "Commands:" in shown else []
        assert not any(line.endswith("...") for line in listed), path  # short help cut off


def test_options_keep_their_names():
    options = {(" ".join(path), opt) for path, command in _commands(leadloop_group)
               for param in command.params if isinstance(param, click.Option) for opt in param.opts}
    assert {("worker", "--burst"), ("worker", "--simple"), ("outbox", "--lead"), ("outbox", "--status"),
            ("outbox", "--limit"), ("outbox", "--json"), ("dead-letters", "--retry"), ("setup", "--dry-run"),
            ("demo", "--leads"), ("demo", "--seed"), ("demo", "--keep"), ("lead show", "--json")} <= options


def test_usage_errors_exit_2(capsys):
    assert main(["outbox", "--status", "lost"]) == 2
    assert "Invalid value for '--status'" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2
    assert main([]) == 2  # no command: the help, and the usage exit code


# --- output ----------------------------------------------------------------------------------

def test_outbox_json_is_only_json_lines_with_real_characters(two_leads, config):
    listed = run(config, "outbox", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.decode().splitlines()]
    assert [(r["lead"], r["kind"]) for r in rows] == [("hubspot:501", "task"), ("hubspot:501", "update"),
                                                      ("hubspot:502", "update")]
    assert listed.stderr.decode().strip() == "CRM write mode: shadow; 3 writes shown"
    assert "−20 free-mail address" in listed.stdout.decode() and b"\\u2212" not in listed.stdout


def test_outbox_text_is_an_aligned_table_with_times_to_the_minute_in_the_leads_zone(two_leads, config):
    listed = run(config, "outbox")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.decode().splitlines()
    header, rows = lines[0], lines[1:]
    assert header.split() == ["ID", "LEAD", "KIND", "STATUS", "BATCH", "QUEUED", "WHAT"]
    for column in ("LEAD", "KIND", "STATUS", "BATCH", "QUEUED", "WHAT"):
        start = header.index(column)
        assert all(row[start - 2:start] == "  " and row[start] != " " for row in rows), column
    task, update, free_mail = rows
    # The hot lead's owner works in Berlin: its times are shown there, to the minute, zone named.
    assert re.search(r"  \d{4}-\d\d-\d\d \d\d:\d\d Europe/Berlin  Call Ada Lovelace", task)
    assert re.search(r"\(due \d{4}-\d\d-\d\d \d\d:\d\d Europe/Berlin, high, call, owner REPLACE-rep-1\)", task)
    assert "score 107" in update or "band hot" in update
    assert re.search(r"\d\d:\d\d UTC +score -?\d+, band cold", free_mail)  # no owner, no zone: UTC
    assert "\\u" not in listed.stdout.decode()


def test_due_times_are_shown_to_the_minute_whatever_the_payload_carries(svc, config):
    with svc.sessions.begin() as session:
        lead = Lead(crm="hubspot", crm_id="9", email="x@example.com", fields={"timezone": "America/New_York"})
        session.add(lead)
        session.flush()
        session.add(OutboxWrite(lead_id=lead.id, crm="hubspot", crm_id="9", kind="task", idempotency_key="t9",
                                status="pending", created_at=datetime(2026, 11, 20, 15, 4, 59, 123456, tzinfo=UTC),
                                payload={"task": {"subject": "Call", "due_at": "2026-11-20T16:34:12.654321+01:00"}}))
    text = run(config, "outbox").stdout.decode()
    assert "2026-11-20 10:04 America/New_York" in text and "(due 2026-11-20 10:34 America/New_York)" in text
    assert ":12" not in text and "654321" not in text


def test_lead_show_text_keeps_every_fact_in_readable_form(two_leads, config):
    shown = run(config, "lead", "show", "hubspot:501")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode()
    assert "lead 1 hubspot:501  email=ada@acme-logistics.example  stage=mql  owner=REPLACE-rep-1" in text
    assert "band=hot" in text and "mql=yes" in text and "job_title=Operations Manager" in text
    assert "times in Europe/Berlin (the zone of owner REPLACE-rep-1)" in text
    assert "+31.7 downloaded Coverage map (10 days ago, decays 50% per 30d)" in text  # the reasons, in the rep's words
    assert re.search(r"\n  \d{4}-\d\d-\d\d \d\d:\d\d  shadow  - +Call Ada Lovelace now", text)
    timeline = text.split("timeline:\n", 1)[1].splitlines()
    assert timeline[0].split() == ["WHEN", "WHAT", "DETAIL"]
    # The stage change at its business time (the last event's), the score recorded as of processing.
    assert [line[20:29].strip() for line in timeline[1:]] == ["event"] * 3 + ["stage", "score", "crm-write",
                                                                              "crm-write"]
    assert all(re.match(r"  \d{4}-\d\d-\d\d \d\d:\d\d  \S", line) for line in timeline[1:])
    assert "web/content_download coverage-map" in text
    assert "web/form_submit demo-request company=Acme Logistics, country=DE, employees=250, first_name=Ada" in text
    assert "new -> mql (score)" in text
    free_mail = run(config, "lead", "show", "hubspot:502").stdout.decode()
    assert "−20 free-mail address (gmail.com)" in free_mail and "blog/grüße" in free_mail
    assert "times in UTC" in free_mail and "\\u" not in free_mail


def test_lead_show_json_is_one_object_with_the_whole_story(two_leads, config):
    shown = run(config, "lead", "show", "hubspot:501", "--json")
    assert shown.returncode == 0 and shown.stderr == b""
    lead = json.loads(shown.stdout)  # nothing but the one object on stdout
    assert (lead["crm"], lead["crm_id"], lead["email"]) == ("hubspot", "501", "ada@acme-logistics.example")
    assert (lead["stage"], lead["band"], lead["grade"], lead["mql"], lead["owner"]) == \
        ("mql", "hot", "B", True, "REPLACE-rep-1")
    assert lead["score"] == pytest.approx(107, abs=5) and lead["fields"]["job_title"] == "Operations Manager"
    assert all(set(reason) >= {"points", "text"} for reason in lead["reasons"])
    assert any(r["rule"] == "download-hot" and r["points"] > 0
               and r["text"].startswith(f"+{r['points']:g} downloaded Coverage map") for r in lead["reasons"])
    assert lead["deals"] == []
    [task] = lead["tasks"]
    assert task["subject"].startswith("Call Ada Lovelace") and task["status"] == "shadow"
    assert task["external_id"] is None and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", task["due_at"])
    assert [(a["kind"], a["asset"], a["url"], a["form"]) for a in lead["activities"]] == [
        ("form_submit", None, None, "demo-request"), ("contact_request", None, "https://acme.example/contact", None),
        ("content_download", "coverage-map", None, None)]
    assert all(datetime.fromisoformat(a["occurred_at"]).tzinfo for a in lead["activities"])
    assert [entry["what"] for entry in lead["timeline"]] == ["event"] * 3 + ["stage", "score"] + ["crm-write"] * 2
    assert all(datetime.fromisoformat(entry["at"]).tzinfo for entry in lead["timeline"])
    assert lead["timeline"][2]["text"] == "web/content_download coverage-map"
    assert run(config, "lead", "show", "hubspot:404", "--json").stdout == b""


def test_lead_zone_is_the_leads_then_its_owners_then_utc():
    rules = load_rules_file(ROOT / "rules" / "leadloop.yaml")
    own = Lead(fields={"timezone": "America/Chicago"}, owner_id="REPLACE-rep-4")
    assert str(lead_zone(own, rules)[0]) == "America/Chicago"
    owned = Lead(fields={"timezone": "Mars/Olympus"}, owner_id="REPLACE-rep-4")
    assert str(lead_zone(owned, rules)[0]) == "Europe/London"
    assert lead_zone(Lead(fields={}, owner_id=None), rules)[0] is UTC


def test_a_record_create_reads_as_a_new_record():
    payload = {"fields": {"score": 80, "band": "hot", "mql": True, "stage": "mql"}, "owner_id": "rep-1",
               "crm_fields": {"hs_lead_status": "NEW"}, "record": {"email": "ada@acme.example", "lead_fields": {}}}
    assert write_summary("create", payload, UTC) == \
        "new record: score 80, band hot, mql yes, stage mql, owner rep-1, hs_lead_status=NEW"


def test_a_closed_pipe_ends_quietly(svc, config):
    with svc.sessions.begin() as session:
        lead = Lead(crm="hubspot", crm_id="1", email="a@example.com", fields={})
        session.add(lead)
        session.flush()
        session.add_all([OutboxWrite(lead_id=lead.id, crm="hubspot", crm_id="1", kind="update",
                                     idempotency_key=f"u{n}", status="shadow", created_at=datetime.now(UTC),
                                     payload={"fields": {"score": n, "band": "warm"}}) for n in range(3000)])
    environ = {"PATH": "/usr/bin:/bin", **{k: v for k, v in config.items() if isinstance(v, str)}}
    # `leadloop outbox --limit 3000 | head -1`: the reader leaves after one line.
    piped = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m integration.cli outbox --limit 3000 "
                            "| head -1; echo \"exit=${PIPESTATUS[0]}\" >&2"],
                           cwd=ROOT, env=environ, capture_output=True, timeout=120)
    assert piped.stdout.decode().split() == ["ID", "LEAD", "KIND", "STATUS", "BATCH", "QUEUED", "WHAT"]
    stderr = piped.stderr.decode()
    assert "exit=141" in stderr and "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert stderr.replace("CRM write mode: shadow; 3000 writes shown\n", "").strip() == "exit=141"


# --- errors: one line, the right exit code -----------------------------------------------------

def test_an_empty_database_file_says_to_run_db_upgrade(config, tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    rules_file = str(ROOT / "rules" / "leadloop.yaml")
    for args in (("outbox",), ("lead", "show", "hubspot:1"), ("rules", "compare", rules_file)):
        result = run(config, *args, DATABASE_URL=f"sqlite:///{empty}")
        assert result.returncode == 2, args
        assert result.stderr.decode() == ("the database has no leadloop tables: run `leadloop db upgrade` "
                                          f"(SQLite database {empty})\n")
    assert empty.stat().st_size == 0
    missing = tmp_path / "never-created.db"
    result = run(config, "outbox", DATABASE_URL=f"sqlite:///{missing}")
    assert result.returncode == 2 and b"run `leadloop db upgrade`" in result.stderr and not missing.exists()


def test_an_unreachable_database_is_named_with_its_cause(config):
    port = free_port()
    for args in (("outbox",), ("db", "upgrade")):
        result = run(config, *args, DATABASE_URL=f"postgresql://leadloop@127.0.0.1:{port}/leadloop_test")
        assert result.returncode == 1, args
        assert result.stderr.decode() == f"cannot reach PostgreSQL at 127.0.0.1:{port}: connection refused\n"


def test_an_unreachable_redis_is_named_with_its_cause(config, tmp_path):
    port = free_port()
    result = run(config, "dead-letters", REDIS_URL=f"redis://127.0.0.1:{port}/0")
    assert result.returncode == 1
    assert result.stderr.decode() == f"cannot reach Redis at 127.0.0.1:{port}: connection refused\n"
    socket_path = tmp_path / "gone.sock"
    result = run(config, "dead-letters", REDIS_URL=f"unix://{socket_path}")
    assert result.returncode == 1
    assert result.stderr.decode() == f"cannot reach Redis at unix socket {socket_path}: no such file or directory\n"


@pytest.mark.parametrize("args, message", [
    (("setup", "hubspot"), "hubspot: no API credentials: set HUBSPOT_ACCESS_TOKEN"),
    (("doctor", "hubspot"), "hubspot: no API credentials: set HUBSPOT_ACCESS_TOKEN"),
    (("doctor", "salesforce"), "salesforce: no API credentials: set SALESFORCE_CLIENT_ID, SALESFORCE_USERNAME and "
     "SALESFORCE_PRIVATE_KEY_FILE (or SALESFORCE_PRIVATE_KEY) for the JWT bearer flow, or SALESFORCE_CLIENT_ID and "
     "SALESFORCE_REFRESH_TOKEN for the refresh-token flow"),
])
def test_missing_crm_credentials_are_named(config, args, message):
    result = run(config, *args)
    assert result.returncode == 2 and result.stderr.decode() == message + "\n" and result.stdout == b""


def test_partial_salesforce_credentials_name_only_what_is_missing(config):
    result = run(config, "setup", "salesforce", "--dry-run", SALESFORCE_CLIENT_ID="3MVG9", SALESFORCE_USERNAME="int@x")
    assert result.returncode == 2
    assert result.stderr.decode() == ("salesforce: no API credentials: set SALESFORCE_PRIVATE_KEY_FILE (or "
                                      "SALESFORCE_PRIVATE_KEY) for the JWT bearer flow, or SALESFORCE_REFRESH_TOKEN "
                                      "for the refresh-token flow\n")


def test_sign_without_secrets_is_a_setup_error(config):
    result = run({**config, "LEADLOOP_EVENTS_SECRETS": ""}, "sign")
    assert result.returncode == 2
    assert result.stderr.decode() == "LEADLOOP_EVENTS_SECRETS is not set: set it to the intake's signing secret(s)\n"


# --- dead letters: truthful ------------------------------------------------------------------

def explode() -> None:
    """A job that fails (run by the dead-letters test)."""
    raise RuntimeError("the CRM said no")


def test_dead_letters_retry_says_what_it_did(svc, config):
    assert run(config, "dead-letters", "--retry").stdout.decode().splitlines()[-1] == "nothing to retry"
    svc.queue.enqueue(explode)
    drain(svc)
    with svc.sessions.begin() as session:
        lead = Lead(crm="hubspot", crm_id="3", email="c@example.com", fields={})
        session.add(lead)
        session.flush()
        session.add(OutboxWrite(lead_id=lead.id, crm="hubspot", crm_id="3", kind="update", idempotency_key="f3",
                                status="failed", attempts=4, last_error="Property values were not valid",
                                created_at=datetime.now(UTC), payload={"fields": {"score": 3}}))
    listed = run(config, "dead-letters")
    text = listed.stdout.decode()
    assert listed.returncode == 0 and "failed jobs: 1" in text and "RuntimeError: the CRM said no" in text
    assert "failed CRM writes: 1" in text and re.search(r"#1  hubspot:3  update  +4  Property values", text)
    retried = run(config, "dead-letters", "--retry")
    assert retried.stdout.decode().splitlines()[-1] == \
        "requeued 1 job, 0 leads and 1 CRM write; the worker will retry them"
    assert svc.queue.failed_job_registry.count == 0
    with svc.sessions() as session:
        assert session.query(OutboxWrite).one().status == "pending"
    assert run(config, "dead-letters", "--retry").stdout.decode().splitlines()[-1] == "nothing to retry"


def test_setup_hubspot_project_writes_the_developer_platform_project(config, tmp_path):
    written = run(config, "setup", "hubspot", "--project", str(tmp_path / "app"))
    assert written.returncode == 0, written.stderr
    assert "wrote hsproject.json, src/app/app-hsmeta.json, src/app/webhooks/webhooks-hsmeta.json" in \
        written.stdout.decode()
    webhooks = json.loads((tmp_path / "app" / "src" / "app" / "webhooks" / "webhooks-hsmeta.json").read_text())
    assert webhooks["config"]["settings"]["targetUrl"] == "https://leads.example.com/webhooks/hubspot"
    again = run(config, "setup", "hubspot", "--project", str(tmp_path / "app"))
    assert again.returncode == 0 and "already up to date" in again.stdout.decode()
    refused = run(config, "setup", "salesforce", "--project", str(tmp_path / "sf"))
    assert refused.returncode == 2
    assert refused.stderr.decode().strip() == "salesforce: --project is not offered for this CRM"
