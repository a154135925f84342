"""Adding a CRM is one module and one registry entry: this test is that module.

It defines a small connector for an imaginary CRM ("acmecrm": HMAC-signed JSON webhooks in,
batched record updates out), registers it by adding this module to
``connectors.CONNECTOR_MODULES`` and nothing else, and shows the rest of leadloop picks it up:
its settings reach the config (and are validated), its webhook is received and authenticated,
its leads are scored and their writes batched through its client, the generic intake accepts
its ids (normalised), the rules file's per-CRM sections accept it, and ``leadloop setup`` /
``leadloop doctor`` run its commands.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

import connectors
from connectors.base import (
    Connector,
    Endpoint,
    InboundRequest,
    IntakeContext,
    PayloadError,
    RecordUpdate,
    SignatureError,
    TaskSpec,
    WriteOutcome,
)
from connectors.events import LeadEvent
from integration.cli.main import main as leadloop
from integration.config import ConfigError, load_config
from integration.store.models import Lead, OutboxWrite
from integration.web import create_app
from tests.conftest import drain, post_events, web_event

# --- the connector: what a third CRM's folder would hold ---------------------------------------

SIGNATURE_HEADER = "X-Acme-Signature"
#: Every update call the CRM received, as the list of record ids it carried.
UPDATE_CALLS: list[list[str]] = []


def acme_signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(request: InboundRequest, context: IntakeContext) -> None:
    expected = acme_signature(request.body, context.config.get("ACMECRM_SECRET") or "")
    if not hmac.compare_digest(expected, request.headers.get(SIGNATURE_HEADER, "")):
        raise SignatureError("bad Acme signature")


def parse(request: InboundRequest, context: IntakeContext) -> list[LeadEvent]:
    try:
        items = json.loads(request.body)
        return [LeadEvent(source="acmecrm", kind="field_change", event_key=item["change_id"],
                          occurred_at=datetime.fromisoformat(item["at"]).astimezone(UTC), crm="acmecrm",
                          crm_id=normalise_id(item["contact"]), fields=item["fields"], raw=item)
                for item in items]
    except (ValueError, KeyError, TypeError) as exc:
        raise PayloadError(f"not an Acme change list: {exc}") from None


def normalise_id(crm_id: str) -> str:
    return crm_id.strip().upper()


class AcmeClient:
    max_update_batch = 50

    def fetch_fields(self, crm_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {}

    def update_records(self, updates: Sequence[RecordUpdate]) -> list[WriteOutcome]:
        UPDATE_CALLS.append([update.crm_id for update in updates])
        return [WriteOutcome(key=update.key, ok=True) for update in updates]

    def create_task(self, task: TaskSpec) -> WriteOutcome:
        return WriteOutcome(key=task.key, ok=True, external_id=f"T-{task.crm_id}")

    def task_is_open(self, task_id: str) -> bool:
        return True


def check_config(config: Mapping[str, Any]) -> list[str]:
    secret = config.get("ACMECRM_SECRET")
    return [] if secret is None or len(secret) >= 8 else ["ACMECRM_SECRET: must be at least 8 characters"]


def run_setup(config: Mapping[str, Any], redis: Any, dry_run: bool, echo: Any) -> int:
    echo(f"Acme setup{' (dry run)' if dry_run else ''}: fields ok")
    return 0


def run_doctor(config: Mapping[str, Any], redis: Any, echo: Any) -> int:
    echo("Acme doctor: signing secret " + ("set" if config.get("ACMECRM_SECRET") else "missing"))
    return 0


connector = Connector(
    name="acmecrm",
    endpoints=[Endpoint(rule="/acmecrm", name="acmecrm", verify=verify, parse=parse)],
    make_client=lambda config, redis: AcmeClient(),
    settings={"ACMECRM_SECRET": "the webhook signing secret"},
    check_config=check_config,
    can_read=lambda config: False,
    normalise_id=normalise_id,
    status_fields={"Stage": "lead_status"},
    run_setup=run_setup,
    run_doctor=run_doctor,
    max_update_batch=AcmeClient.max_update_batch,
)

# --- the tests ---------------------------------------------------------------------------------

SECRET = "acme-secret-123"


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    """The one registry entry."""
    monkeypatch.setattr(connectors, "CONNECTOR_MODULES", (*connectors.CONNECTOR_MODULES, __name__))
    UPDATE_CALLS.clear()


def post_acme(client, changes: list[dict[str, Any]], secret: str = SECRET):
    body = json.dumps(changes).encode()
    return client.post("/webhooks/acmecrm", data=body, headers={
        "Content-Type": "application/json", SIGNATURE_HEADER: acme_signature(body, secret)})


def change(change_id: str, contact: str, **fields: Any) -> dict[str, Any]:
    return {"change_id": change_id, "contact": contact, "at": "2026-11-20T10:00:00+00:00", "fields": fields}


GOOD = {"email": "ada@acme-robotics.com", "first_name": "Ada", "company": "Acme Robotics",
        "job_title": "VP Operations", "country": "DE", "employees": 250, "industry": "Logistics"}


def test_its_settings_reach_the_config_and_are_validated():
    assert load_config({"ACMECRM_SECRET": SECRET})["ACMECRM_SECRET"] == SECRET
    with pytest.raises(ConfigError, match="ACMECRM_SECRET: must be at least 8 characters"):
        load_config({"ACMECRM_SECRET": "short"})


def test_its_webhook_is_authenticated_its_leads_scored_and_their_writes_batched(config):
    app = create_app({**config, "ACMECRM_SECRET": SECRET, "CRM_WRITE_MODE": "live"})
    client, svc = app.test_client(), app.extensions["leadloop"]
    try:
        assert post_acme(client, [change("c1", "a-1", **GOOD)], secret="wrong-secret").status_code == 401
        assert post_acme(client, [{"nonsense": True}]).status_code == 400
        answer = post_acme(client, [change("c1", "a-1", **GOOD),
                                    change("c2", "a-2", **{**GOOD, "email": "bo@acme-robotics.com"})])
        assert answer.status_code == 200 and answer.get_json()["accepted"] == 2
        # The generic intake knows the new CRM and normalises its ids.
        assert post_events(client, [web_event("w1", "page_view", crm="acmecrm", crm_id=" a-1 ",
                                              properties={"url": "/pricing"})]).status_code == 200
        assert drain(svc) >= 2
        with svc.sessions() as session:
            leads = session.scalars(select(Lead).where(Lead.crm == "acmecrm").order_by(Lead.crm_id)).all()
            assert [(lead.crm_id, lead.score is not None) for lead in leads] == [("A-1", True), ("A-2", True)]
            sent = session.scalars(select(OutboxWrite).where(OutboxWrite.crm == "acmecrm",
                                                              OutboxWrite.kind == "update")).all()
            assert sent and {write.status for write in sent} == {"sent"}
        # Both leads' updates went out in one batched call.
        assert sorted(UPDATE_CALLS[0]) == ["A-1", "A-2"]
        assert len(UPDATE_CALLS) == 1
    finally:
        svc.engine.dispose()


def test_the_rules_file_sections_accept_it_only_when_registered(config, tmp_path, monkeypatch):
    from pathlib import Path

    import yaml

    from scoring import RulesError

    rules = yaml.safe_load((Path(__file__).parents[1] / "rules" / "leadloop.yaml").read_text())
    rules.setdefault("feedback", {})["acmecrm"] = {"Stage": {"Working": "accepted"}}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    app = create_app({**config, "LEADLOOP_RULES": str(path)})
    app.extensions["leadloop"].engine.dispose()
    monkeypatch.setattr(connectors, "CONNECTOR_MODULES", tuple(m for m in connectors.CONNECTOR_MODULES
                                                               if m != __name__))
    with pytest.raises(RulesError, match="acmecrm"):
        create_app({**config, "LEADLOOP_RULES": str(path)})


def test_it_appears_in_setup_and_doctor(config, monkeypatch, capsys):
    for name, value in {**config, "ACMECRM_SECRET": SECRET}.items():
        monkeypatch.setenv(name, value)
    assert leadloop(["setup", "acmecrm", "--dry-run"]) == 0
    assert "Acme setup (dry run): fields ok" in capsys.readouterr().out
    assert leadloop(["doctor", "acmecrm"]) == 0
    assert "Acme doctor: signing secret set" in capsys.readouterr().out
