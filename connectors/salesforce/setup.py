"""``leadloop setup salesforce`` and ``leadloop doctor salesforce``.

Setup creates the missing ``Leadloop_*__c`` fields on Lead and Contact, and the key field
``Leadloop_Key__c`` (External ID, Unique) on Lead and on activities (Task), through the Tooling API,
and prints the steps an admin does by hand (permission set, outbound message, Flow). It is
idempotent: fields that exist are left alone, so a second run changes nothing. The doctor only
reads. Neither prints a token, key or secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from connectors.base import LEADLOOP_FIELDS, CrmError, SignatureError, secret_list
from connectors.salesforce.client import LEADLOOP_FIELD_NAMES, SalesforceClient, make_client
from connectors.salesforce.keyed_writes import KEY_FIELD
from connectors.salesforce.webhook import check_organization

Echo = Callable[[str], None]

SOBJECTS = ("Lead", "Contact")
#: Number fields that carry fractions (points decay); the others are whole numbers.
NUMBER_SCALES: dict[str, int] = {"fit_points": 2, "engagement_points": 2}
#: Fields to tick in the Outbound Message (Lead); LastModifiedDate orders the snapshots.
OUTBOUND_FIELDS = (
    "Id", "Email", "FirstName", "LastName", "Company", "Title", "Phone", "MobilePhone", "Country",
    "State", "City", "Industry", "NumberOfEmployees", "AnnualRevenue", "Website", "LeadSource",
    "Status", "OwnerId", "HasOptedOutOfEmail", "Rating", "LastModifiedDate",
)
PERMISSION_SET = "Leadloop Integration"
#: Where the key field goes: the Tooling API's object (activity custom fields are defined on
#: Activity) -> the object whose describe shows it.
KEY_FIELD_OBJECTS: dict[str, str] = {"Lead": "Lead", "Activity": "Task"}
#: The key field: leadloop's write key, so a retried create finds its record (``keyed_writes.py``).
KEY_FIELD_METADATA: dict[str, Any] = {
    "label": "Leadloop key", "type": "Text", "length": 255, "externalId": True, "unique": True,
    "caseSensitive": True,
    "description": "leadloop's key for a record it created; unique, so a retried write finds the record.",
}


def field_metadata(key: str) -> dict[str, Any]:
    """Return the Tooling API ``CustomField.Metadata`` for a ``LEADLOOP_FIELDS`` key.

    Shapes follow the Metadata API ``CustomField`` type (precision/scale, length, visibleLines,
    defaultValue, valueSet.valueSetDefinition).
    """
    label, kind, description = LEADLOOP_FIELDS[key]
    meta: dict[str, Any] = {"label": label, "description": description}
    if kind == "number":
        meta.update(type="Number", precision=18, scale=NUMBER_SCALES.get(key, 0))
    elif kind == "bool":
        meta.update(type="Checkbox", defaultValue="false")
    elif kind == "text":
        meta.update(type="LongTextArea", length=32768, visibleLines=5)
    elif kind == "string":
        meta.update(type="Text", length=255)
    elif kind == "datetime":
        meta.update(type="DateTime")
    elif kind.startswith("enum:"):
        values = [{"fullName": v, "label": v, "default": False} for v in kind[5:].split(",")]
        meta.update(type="Picklist", valueSet={
            "restricted": True, "valueSetDefinition": {"sorted": False, "value": values},
        })
    else:
        raise ValueError(f"no Salesforce field type for {key!r} ({kind})")
    return meta


def _mask(secret: str) -> str:
    return "****" + secret[-4:] if len(secret) > 8 else "****"


def _describe(client: SalesforceClient, sobject: str) -> dict[str, dict[str, Any]]:
    described = client.call("GET", f"/sobjects/{sobject}/describe")
    return {field["name"]: field for field in described.get("fields", [])}


def _config_problems(config: Mapping[str, Any]) -> list[str]:
    problems = []
    if not secret_list(config.get("SALESFORCE_WEBHOOK_TOKENS")):
        problems.append("SALESFORCE_WEBHOOK_TOKENS is not set (generate one: openssl rand -hex 32)")
    if not config.get("SALESFORCE_ORG_ID"):
        problems.append("SALESFORCE_ORG_ID is not set (Setup > Company Information > Organization ID)")
    if not config.get("PUBLIC_BASE_URL"):
        problems.append("PUBLIC_BASE_URL is not set")
    return problems


def run_setup(config: Mapping[str, Any], redis: Any, dry_run: bool, echo: Echo) -> int:
    """Create missing fields (unless ``dry_run``) and print the manual steps; 0 when all is in place."""
    client = make_client(config, redis)
    echo("Salesforce setup" + (" (dry run: nothing is changed)" if dry_run else ""))
    problems = _config_problems(config)
    try:
        token = client.auth.token()
        echo(f"1. Login: ok, instance {token.instance_url}")
        missing_after = _ensure_fields(client, dry_run, echo)
    except CrmError as exc:
        echo(f"1. Login or describe failed: {exc}")
        return 1

    echo(f"3. Field-level security: create the permission set '{PERMISSION_SET}' giving Read and Edit on")
    echo("   these fields of Lead and Contact, and assign it to the integration user:")
    echo("   " + ", ".join(LEADLOOP_FIELD_NAMES.values()))
    echo(f"   and Read and Edit on {KEY_FIELD} of Lead and Task (Activity), plus Create on Lead and Task")
    echo("   (fields created through the API are visible to no one until this is done)")

    tokens = secret_list(config.get("SALESFORCE_WEBHOOK_TOKENS"))
    base = (config.get("PUBLIC_BASE_URL") or "<PUBLIC_BASE_URL>").rstrip("/")
    shown = _mask(tokens[0]) if tokens else "<token>"
    echo("4. Outbound message (Setup > Outbound Messages > New, object Lead; then Contact):")
    echo(f"   Endpoint URL: {base}/webhooks/salesforce/{shown}")
    echo("   (shown masked: use the full first entry of SALESFORCE_WEBHOOK_TOKENS)")
    echo("   Send Session ID: off.  Fields to send: " + ", ".join(OUTBOUND_FIELDS))
    echo("   Contact: the same, with MailingCountry/MailingState/MailingCity instead of Country/State/City")
    echo("   and without Company, Industry, NumberOfEmployees, AnnualRevenue, Website, Status, Rating.")
    echo("   Fire it from a record-triggered Flow (A record is created or updated) with an Outbound")
    echo("   Message action; leave out updates made by the integration user (our own write-back).")
    echo("5. Alternative: a record-triggered Flow HTTP Callout (Named Credential) POSTing JSON to")
    echo(f"   {base}/webhooks/salesforce/{shown}/flow  (body shape: docs/salesforce.md)")

    echo("Checklist:")
    for problem in problems:
        echo(f"  [ ] {problem}")
    echo(f"  [{' ' if problems else 'x'}] configuration complete")
    echo(f"  [{' ' if missing_after else 'x'}] leadloop fields exist on Lead and Contact, {KEY_FIELD} on Lead and Task")
    echo(f"  [?] permission set '{PERMISSION_SET}' assigned (check: leadloop doctor salesforce)")
    echo("  [?] an outbound message or Flow points at the endpoint above")
    return 0 if not problems and not missing_after else 1


def _ensure_fields(client: SalesforceClient, dry_run: bool, echo: Echo) -> list[str]:
    """Create missing fields; return the full names still missing afterwards."""
    echo("2. Custom fields:")
    missing_after = []
    for sobject in SOBJECTS:
        existing = _describe(client, sobject)
        for key, api_name in LEADLOOP_FIELD_NAMES.items():
            full_name = f"{sobject}.{api_name}"
            if api_name in existing:
                echo(f"   {full_name}: exists")
                continue
            if dry_run:
                echo(f"   {full_name}: missing, would be created")
                missing_after.append(full_name)
                continue
            try:
                client.call("POST", "/tooling/sobjects/CustomField",
                            json={"FullName": full_name, "Metadata": field_metadata(key)})
                echo(f"   {full_name}: created")
            except CrmError as exc:
                echo(f"   {full_name}: NOT created: {exc}")
                missing_after.append(full_name)
    for tooling_object, sobject in KEY_FIELD_OBJECTS.items():
        full_name = f"{tooling_object}.{KEY_FIELD}"
        have = _describe(client, sobject).get(KEY_FIELD)
        if have is not None:
            problem = _key_field_problem(have)
            echo(f"   {full_name}: exists" + (f", but {problem}" if problem else ""))
            if problem:
                missing_after.append(full_name)
            continue
        if dry_run:
            echo(f"   {full_name}: missing, would be created (External ID, Unique)")
            missing_after.append(full_name)
            continue
        try:
            client.call("POST", "/tooling/sobjects/CustomField",
                        json={"FullName": full_name, "Metadata": KEY_FIELD_METADATA})
            echo(f"   {full_name}: created (External ID, Unique)")
        except CrmError as exc:
            echo(f"   {full_name}: NOT created: {exc}")
            missing_after.append(full_name)
    return missing_after


def _key_field_problem(described: Mapping[str, Any]) -> str | None:
    """What keeps a described key field from guarding against a second create, if anything."""
    if not described.get("externalId"):
        return "it is not an External ID (edit the field: External ID, Unique)"
    if not described.get("unique"):
        return "it is not Unique (edit the field: Unique)"
    return None


def run_doctor(config: Mapping[str, Any], redis: Any, echo: Echo) -> int:
    """Check login, API version, org id, field access and limits; 0 if healthy, 1 otherwise."""
    client = make_client(config, redis)
    failures = 0

    def report(ok: bool, text: str) -> None:
        nonlocal failures
        failures += not ok
        echo(f"[{'ok' if ok else 'FAIL'}] {text}")

    for problem in _config_problems(config):
        report(False, problem)
    try:
        token = client.auth.login()
    except CrmError as exc:
        report(False, f"login: {exc}")
        return 1
    report(True, f"login, instance {token.instance_url}")
    try:
        versions = [v.get("version") for v in client.call("GET", "/services/data/")]
        report(client.api_version in versions, f"API version {client.api_version} "
               + ("available" if client.api_version in versions else f"not offered (latest {versions[-1:]})"))
        org = client.call("GET", "/query", params={"q": "SELECT Id FROM Organization"})
        org_id = (org.get("records") or [{}])[0].get("Id")
        try:
            check_organization(org_id, config)
            report(True, f"organization {org_id} matches SALESFORCE_ORG_ID")
        except SignatureError as exc:
            report(False, f"organization {org_id}: {exc}")
        for sobject in SOBJECTS:
            fields = _describe(client, sobject)
            bad = [name for name in LEADLOOP_FIELD_NAMES.values()
                   if not fields.get(name, {}).get("updateable")]
            report(not bad, f"{sobject}: all leadloop fields visible and updateable" if not bad else
                   f"{sobject}: missing or read-only for this user: {', '.join(bad)} "
                   "(run setup, then check the permission set)")
        for sobject in KEY_FIELD_OBJECTS.values():
            key = _describe(client, sobject).get(KEY_FIELD)
            problem = ("missing or not visible to this user (run setup, then check the permission set)"
                       if key is None else _key_field_problem(key))
            report(problem is None, f"{sobject}.{KEY_FIELD}: External ID and Unique (creates happen once)"
                   if problem is None else f"{sobject}.{KEY_FIELD}: {problem}")
        daily = client.call("GET", "/limits").get("DailyApiRequests", {})
        maximum, remaining = daily.get("Max"), daily.get("Remaining")
        report(bool(maximum) and remaining is not None and remaining > 0,
               f"daily API requests: {remaining} of {maximum} remaining")
        if client.api_usage:
            echo(f"     Sforce-Limit-Info: {client.api_usage[0]}/{client.api_usage[1]} used")
    except CrmError as exc:
        report(False, str(exc))
    return 1 if failures else 0
