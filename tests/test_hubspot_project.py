"""The HubSpot developer-platform project ``leadloop setup hubspot --project DIR`` writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.base import InboundRequest, IntakeContext
from connectors.hubspot.notifications import OBJECT_NAMES
from connectors.hubspot.project import ProjectError, crm_object_subscriptions, project_files, write_project
from connectors.hubspot.setup import REQUIRED_SCOPES, UNWATCHABLE
from connectors.hubspot.webhook import parse_webhook

CONFIG = {"PUBLIC_BASE_URL": "https://leads.example.com/"}
FILES = ["hsproject.json", "src/app/app-hsmeta.json", "src/app/webhooks/webhooks-hsmeta.json"]


def read(root: Path, name: str) -> dict:
    return json.loads((root / name).read_text())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    written = write_project(tmp_path / "hubspot-project", CONFIG)
    assert sorted(str(p.relative_to(tmp_path / "hubspot-project")) for p in written) == sorted(FILES)
    return tmp_path / "hubspot-project"


def test_hsproject_json(project):
    assert read(project, "hsproject.json") == {"name": "leadloop", "srcDir": "src", "platformVersion": "2026.03"}


def test_the_app_is_private_with_static_auth_and_exactly_our_scopes(project):
    app = read(project, "src/app/app-hsmeta.json")
    assert (app["uid"], app["type"]) == ("leadloop_app", "app")
    config = app["config"]
    assert config["distribution"] == "private"
    assert config["auth"] == {"type": "static", "requiredScopes": ["oauth", *REQUIRED_SCOPES],
                              "optionalScopes": [], "conditionallyRequiredScopes": []}
    assert set(REQUIRED_SCOPES) == {"crm.objects.contacts.read", "crm.objects.contacts.write",
                                    "crm.schemas.contacts.read", "crm.schemas.contacts.write",
                                    "crm.objects.owners.read", "crm.objects.deals.read"}
    assert config["permittedUrls"] == {"fetch": ["https://api.hubapi.com"], "iframe": [], "img": []}
    assert "support" not in config  # only with support_email


def test_support_email_goes_into_the_app():
    files = project_files(CONFIG, support_email="ops@example.com")
    assert files["src/app/app-hsmeta.json"]["config"]["support"] == {"supportEmail": "ops@example.com"}


def test_webhooks_target_public_base_url_in_the_generic_format(project):
    webhooks = read(project, "src/app/webhooks/webhooks-hsmeta.json")
    assert (webhooks["uid"], webhooks["type"]) == ("leadloop_webhooks", "webhooks")
    config = webhooks["config"]
    assert config["settings"] == {"targetUrl": "https://leads.example.com/webhooks/hubspot",
                                  "maxConcurrentRequests": 10}
    subscriptions = config["subscriptions"]
    assert subscriptions["legacyCrmObjects"] == []
    assert subscriptions["hubEvents"] == [{"subscriptionType": "contact.privacyDeletion", "active": True}]
    crm = subscriptions["crmObjects"]
    assert all(s["subscriptionType"].startswith("object.") and s["active"] is True for s in crm)
    assert all(("propertyName" in s) == (s["subscriptionType"] == "object.propertyChange") for s in crm)
    assert len({json.dumps(s, sort_keys=True) for s in crm}) == len(crm)  # no duplicates
    assert not any(s.get("propertyName") in UNWATCHABLE for s in crm)


def test_every_contact_change_and_the_always_watched_properties_are_subscribed(project):
    crm = read(project, "src/app/webhooks/webhooks-hsmeta.json")["config"]["subscriptions"]["crmObjects"]
    contact = [s for s in crm if s["objectType"] == "contact"]
    assert {s["subscriptionType"] for s in contact} == {
        "object.creation", "object.propertyChange", "object.deletion", "object.merge", "object.restore",
        "object.associationChange"}
    watched = {s["propertyName"] for s in contact if "propertyName" in s}
    assert {"email", "jobtitle", "lifecyclestage", "hs_lead_status", "hubspot_owner_id"} <= watched
    deal = {s.get("propertyName") for s in crm if s["objectType"] == "deal"}
    assert {"dealstage", "pipeline", "amount", "closedate"} <= deal
    assert {s["objectType"] for s in crm} == {"contact", "deal", "call", "email", "meeting"}


def test_contact_properties_follow_the_rules_fields():
    props = [s["propertyName"] for s in crm_object_subscriptions(["job_title", "hs_lastmodifieddate", "custom_fit"])
             if s["objectType"] == "contact" and "propertyName" in s]
    assert props == ["jobtitle", "custom_fit", "lifecyclestage", "hs_lead_status", "hubspot_owner_id"]


def test_every_subscription_written_is_one_the_receiver_understands(project):
    """A notification for each subscription parses: contacts into lead events, deals into deal
    changes, calls, emails and meetings into rep activity; none is ignored."""
    crm = read(project, "src/app/webhooks/webhooks-hsmeta.json")["config"]["subscriptions"]["crmObjects"]
    batch = []
    for i, entry in enumerate(crm):
        type_id = OBJECT_NAMES[entry["objectType"]]
        event = {"eventId": i, "subscriptionId": 100 + i, "portalId": 62515, "appId": 1,
                 "occurredAt": 1700000000000 + i, "subscriptionType": entry["subscriptionType"],
                 "attemptNumber": 0, "changeSource": "CRM_UI"}
        if entry["subscriptionType"] == "object.associationChange":
            event.update(associationType="X_TO_CONTACT", associationTypeId=1, associationCategory="HUBSPOT_DEFINED",
                         fromObjectId=5, fromObjectTypeId=type_id, toObjectId=6, toObjectTypeId="0-1",
                         associationRemoved=False, isPrimaryAssociation=False)
        else:
            event.update(objectId=5, objectTypeId=type_id)
        if entry["subscriptionType"] == "object.propertyChange":
            value = {"amount": "1200.50", "closedate": "1700000000000"}.get(entry["propertyName"], "x")
            event.update(propertyName=entry["propertyName"], propertyValue=value)
        if entry["subscriptionType"] == "object.merge":
            event.update(newObjectId=5, primaryObjectId=5, mergedObjectIds=[7])
        batch.append(event)
    parsed = parse_webhook(InboundRequest("POST", "https://leads.example.com/webhooks/hubspot", {},
                                          json.dumps(batch).encode()), IntakeContext({}))
    kinds = {"deal": "deal_change", "call": "rep_activity", "email": "rep_activity", "meeting": "rep_activity"}
    for entry, event in zip(crm, parsed, strict=True):
        if entry["objectType"] == "contact":
            assert event.kind not in ("ignored", "deal_change", "rep_activity"), entry
        else:
            assert (event.kind, event.record_id) == (kinds[entry["objectType"]], "5"), entry


@pytest.mark.parametrize("base", [None, "", "http://leads.example.com", "leads.example.com"])
def test_public_base_url_must_be_https(tmp_path, base):
    with pytest.raises(ProjectError, match="PUBLIC_BASE_URL must be set to the https URL"):
        write_project(tmp_path, {"PUBLIC_BASE_URL": base})
    assert list(tmp_path.iterdir()) == []


def test_rewriting_the_same_project_changes_nothing(project):
    assert write_project(project, CONFIG) == []


def test_a_changed_project_is_not_overwritten_unless_asked(project):
    webhooks = project / "src/app/webhooks/webhooks-hsmeta.json"
    before = webhooks.read_text()
    with pytest.raises(ProjectError, match="would overwrite .*webhooks-hsmeta.json"):
        write_project(project, CONFIG, watched=["job_title"])
    assert webhooks.read_text() == before
    assert write_project(project, CONFIG, watched=["job_title"], overwrite=True) == [webhooks]
    assert "firstname" not in webhooks.read_text()
