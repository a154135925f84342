"""``leadloop setup hubspot`` and ``leadloop doctor hubspot``.

Setup is idempotent: it reads what exists first and creates only what is missing (the
``leadloop`` property group, one ``leadloop_<key>`` contact property per ``LEADLOOP_FIELDS``
entry, the unique task property ``leadloop_task_key`` in a ``leadloop`` task property group and,
for a public app with a developer API key, the webhook subscriptions). ``dry_run``
makes only reads. Doctor makes only reads. Neither ever prints the access token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from connectors.base import LEADLOOP_FIELDS, CrmAuthError, CrmError, secret_list
from connectors.hubspot.client import HubSpotClient, error_message, make_client
from connectors.hubspot.fields import PROPERTY_FIELDS
from connectors.hubspot.paths import PATHS, api_path
from connectors.hubspot.tasks import TASK_KEY_PROPERTY, TASK_PROPERTY_GROUP, task_key_property_definition

Echo = Callable[[str], None]

#: Scopes leadloop needs, for a legacy private app's token and a project app's static auth alike.
#: Contacts read/write also cover tasks, calls, emails and meetings (the scopes HubSpot's OpenAPI
#: documents name for those objects); deals read covers deals, their pipelines and associations.
REQUIRED_SCOPES = (
    "crm.objects.contacts.read", "crm.objects.contacts.write",
    "crm.schemas.contacts.read", "crm.schemas.contacts.write",
    "crm.objects.owners.read",
    "crm.objects.deals.read",
)
GROUP_NAME = "leadloop"
GROUP_LABEL = "Leadloop"
#: LEADLOOP_FIELDS kind -> (HubSpot type, fieldType).
PROPERTY_TYPES: dict[str, tuple[str, str]] = {
    "number": ("number", "number"),
    "enum": ("enumeration", "select"),
    "bool": ("bool", "booleancheckbox"),
    "text": ("string", "textarea"),
    "string": ("string", "text"),
    "datetime": ("datetime", "date"),
}
OPTION_LABELS = {"mql": "MQL", "sql": "SQL", "true": "Yes", "false": "No"}
#: Subscriptions for record life-cycle events (no property).
RECORD_SUBSCRIPTIONS = ("contact.creation", "contact.deletion", "contact.merge",
                        "contact.privacyDeletion", "contact.restore")
#: Watched whatever the rules use: the hand-off loop reacts to sales moving these.
ALWAYS_WATCHED = ("lifecyclestage", "hs_lead_status", "hubspot_owner_id")
#: Deal properties whose changes say where a deal is (deals are the hand-offs' outcomes).
DEAL_WATCHED = ("dealstage", "pipeline", "amount", "deal_currency_code", "closedate", "hubspot_owner_id")
#: Legacy deal subscriptions. Calls, emails and meetings have only the generic (``object.*``) form.
DEAL_SUBSCRIPTIONS: tuple[tuple[str, str | None], ...] = (
    ("deal.creation", None), *(("deal.propertyChange", name) for name in DEAL_WATCHED),
    ("deal.associationChange", None), ("deal.deletion", None), ("deal.merge", None), ("deal.restore", None))
#: HubSpot refuses property-change subscriptions on these.
UNWATCHABLE = frozenset({"hs_lastmodifieddate", "num_unique_conversion_events"})
_CANONICAL_TO_HUBSPOT = {canonical: name for name, canonical in PROPERTY_FIELDS.items()}


def property_name(key: str) -> str:
    """Return the HubSpot property name of a ``LEADLOOP_FIELDS`` key (``leadloop_<key>``)."""
    return f"leadloop_{key}"


def property_definition(key: str, display_order: int) -> dict[str, Any]:
    """Return the ``POST /crm/properties/{version}/contacts`` body for one ``LEADLOOP_FIELDS`` entry."""
    label, kind, description = LEADLOOP_FIELDS[key]
    base, _, values = kind.partition(":")
    hs_type, field_type = PROPERTY_TYPES[base]
    body: dict[str, Any] = {
        "name": property_name(key), "label": label, "description": description,
        "groupName": GROUP_NAME, "type": hs_type, "fieldType": field_type,
        "displayOrder": display_order, "hasUniqueValue": False, "hidden": False, "formField": False,
    }
    options = values.split(",") if base == "enum" else ["true", "false"] if base == "bool" else []
    if options:
        body["options"] = [{"label": OPTION_LABELS.get(v, v.capitalize()), "value": v,
                            "displayOrder": i, "hidden": False} for i, v in enumerate(options)]
    return body


def watched_properties(watched: Iterable[str] | None = None) -> list[str]:
    """Return the HubSpot contact properties whose changes leadloop subscribes to.

    ``watched`` are the fields the rules read (canonical or HubSpot names); by default every
    mapped property. ``lifecyclestage``, ``hs_lead_status`` and ``hubspot_owner_id`` always.
    """
    names = [_CANONICAL_TO_HUBSPOT.get(n, n) for n in (PROPERTY_FIELDS if watched is None else watched)]
    return [n for n in dict.fromkeys([*names, *ALWAYS_WATCHED]) if n not in UNWATCHABLE]


def desired_subscriptions(watched: Iterable[str] | None = None) -> list[tuple[str, str | None]]:
    """Return legacy ``(eventType, propertyName)`` pairs to subscribe to: contacts (see
    ``watched_properties``), then deals."""
    return ([("contact.creation", None)] + [("contact.propertyChange", p) for p in watched_properties(watched)]
            + [(t, None) for t in RECORD_SUBSCRIPTIONS[1:]] + list(DEAL_SUBSCRIPTIONS))


class _Checklist:
    def __init__(self, echo: Echo):
        self.echo = echo
        self.items: list[tuple[str, str]] = []

    def add(self, status: str, text: str) -> None:
        """Record a check-list line (and show it now)."""
        self.items.append((status, text))
        self.echo(f"  [{status}] {text}")

    def note(self, text: str) -> None:
        """Show a progress line that does not go into the check list."""
        self.echo(f"    {text}")

    @property
    def failed(self) -> bool:
        return any(status == "FAIL" for status, _ in self.items)

    def summary(self, title: str) -> None:
        self.echo(f"\n{title}")
        for status, text in self.items:
            self.echo(f"  [{status}] {text}")


def run_setup(config: Mapping[str, Any], redis: Any, dry_run: bool, echo: Echo, *,
              watched: Iterable[str] | None = None) -> int:
    """Create what leadloop needs in HubSpot; return 0 when everything is in place, else 1.

    ``watched``: the fields the rules use (see ``desired_subscriptions``).
    """
    checks = _Checklist(echo)
    echo("HubSpot setup" + (" (dry run: nothing will be changed)" if dry_run else ""))
    try:
        client = make_client(config, redis)
    except (CrmAuthError, ValueError) as exc:
        checks.add("FAIL", str(exc))
        checks.summary("Check list:")
        return 1
    try:
        if _check_token(client, config, checks) is not False:
            _ensure_group(client, dry_run, checks)
            _ensure_properties(client, dry_run, checks)
            _ensure_task_key(client, dry_run, checks)
        _subscriptions(client, config, dry_run, checks, watched)
    except CrmError as exc:
        checks.add("FAIL", f"stopped: {exc}")
    _config_reminders(config, checks)
    checks.summary("Check list:")
    return 1 if checks.failed else 0


def run_doctor(config: Mapping[str, Any], redis: Any, echo: Echo) -> int:
    """Check the token, scopes, API reads, leadloop properties and inbound secrets; 0 if all work."""
    checks = _Checklist(echo)
    echo("HubSpot doctor")
    try:
        client = make_client(config, redis)
    except (CrmAuthError, ValueError) as exc:
        checks.add("FAIL", str(exc))
        return 1
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("token", lambda: _check_token(client, config, checks)),
        ("owners list", lambda: _probe(client, PATHS["owners.list"], checks, "owners list readable")),
        ("contact read", lambda: _probe(client, PATHS["contacts.list"], checks, "contacts readable")),
        ("leadloop properties", lambda: _check_properties_present(client, checks)),
        ("task key property", lambda: _check_task_key(client, checks)),
    ]
    for name, step in steps:
        try:
            step()
        except CrmError as exc:
            checks.add("FAIL", f"{name}: {exc}")
    try:
        redis.ping()
        checks.add("ok", "Redis reachable (shared rate limiter)")
    except Exception as exc:  # noqa: BLE001 - any client error means the limiter cannot work
        checks.add("FAIL", f"Redis unreachable: {type(exc).__name__}")
    _config_reminders(config, checks, strict=True)
    return 1 if checks.failed else 0


# --- steps -----------------------------------------------------------------------------------

def _check_token(client: HubSpotClient, config: Mapping[str, Any], checks: _Checklist) -> bool | None:
    """Read the private-app token's scopes; False if some are missing, None if HubSpot won't say."""
    token = (config.get("HUBSPOT_ACCESS_TOKEN") or "").strip()
    # The token-info endpoint takes the token in the body; the Bearer header is also required for
    # EU-hosted (pat-eu1) tokens. https://developers.hubspot.com/docs/api/private-apps
    response = client.request("POST", PATHS["token_info"], json={"tokenKey": token})
    if response.status_code != 200:
        checks.add("todo", f"could not read the token's scopes (HubSpot {response.status_code}); "
                           f"make sure the app has: {', '.join(REQUIRED_SCOPES)}")
        return None
    info = response.json()
    granted = set(info.get("scopes") or [])
    missing = [s for s in REQUIRED_SCOPES if s not in granted]
    where = f"portal {info.get('hubId')}, app {info.get('appId')}"
    if missing:
        checks.add("FAIL", f"token ({where}) lacks scopes: {', '.join(missing)}; add them to the private app")
        return False
    checks.add("ok", f"token accepted ({where}), all required scopes granted")
    return True


def _ensure_group(client: HubSpotClient, dry_run: bool, checks: _Checklist) -> None:
    response = client.request("GET", api_path("property_groups.contacts.one", group=GROUP_NAME))
    if response.status_code == 200:
        checks.add("ok", f"property group '{GROUP_NAME}' exists")
        return
    if response.status_code != 404:
        checks.add("FAIL", f"reading property group: {_refusal(response)}")
        return
    if dry_run:
        checks.add("todo", f"would create property group '{GROUP_NAME}'")
        return
    created = client.request("POST", PATHS["property_groups.contacts"],
                             json={"name": GROUP_NAME, "label": GROUP_LABEL, "displayOrder": -1})
    if created.status_code in (200, 201, 409):
        checks.add("ok", f"created property group '{GROUP_NAME}'")
    else:
        checks.add("FAIL", f"creating property group: {_refusal(created)}")


def _existing_properties(client: HubSpotClient) -> dict[str, dict[str, Any]]:
    response = client.request("GET", PATHS["properties.contacts"])
    if response.status_code != 200:
        raise CrmError(f"listing contact properties: {_refusal(response)}")
    return {p["name"]: p for p in response.json().get("results", [])}


def _ensure_properties(client: HubSpotClient, dry_run: bool, checks: _Checklist) -> None:
    existing = _existing_properties(client)
    created: list[str] = []
    failed = False
    for order, key in enumerate(LEADLOOP_FIELDS):
        wanted = property_definition(key, order)
        name = wanted["name"]
        have = existing.get(name)
        if have is not None:
            if have.get("type") != wanted["type"]:
                checks.add("FAIL", f"{name} exists with type {have.get('type')!r}, expected "
                                   f"{wanted['type']!r} (fix or delete it in HubSpot)")
                failed = True
                continue
            values = {o.get("value") for o in have.get("options") or []}
            lacking = [o["value"] for o in wanted.get("options", []) if o["value"] not in values]
            if lacking:
                checks.add("todo", f"{name} exists but lacks options {lacking}; add them in HubSpot")
            continue
        if dry_run:
            checks.note(f"would create property {name} ({wanted['type']}/{wanted['fieldType']})")
            created.append(name)
            continue
        response = client.request("POST", PATHS["properties.contacts"], json=wanted)
        if response.status_code in (200, 201, 409):
            checks.note(f"created property {name}")
            created.append(name)
        else:
            checks.add("FAIL", f"creating {name}: {_refusal(response)}")
            failed = True
    if dry_run and created:
        checks.add("todo", f"would create {len(created)} leadloop properties")
    elif not failed:
        checks.add("ok", f"all {len(LEADLOOP_FIELDS)} leadloop properties exist ({len(created)} created)")


def _task_key_property(client: HubSpotClient) -> dict[str, Any] | None:
    response = client.request("GET", PATHS["properties.tasks"])
    if response.status_code != 200:
        raise CrmError(f"listing task properties: {_refusal(response)}")
    return next((p for p in response.json().get("results", []) if p.get("name") == TASK_KEY_PROPERTY), None)


def _ensure_task_key(client: HubSpotClient, dry_run: bool, checks: _Checklist) -> None:
    """The unique task property that makes tasks exactly-once (``connectors.hubspot.tasks``)."""
    have = _task_key_property(client)
    if have is not None:
        _judge_task_key(have, checks)
        return
    if dry_run:
        checks.add("todo", f"would create the unique task property {TASK_KEY_PROPERTY}")
        return
    group = client.request("GET", api_path("property_groups.tasks.one", group=TASK_PROPERTY_GROUP))
    if group.status_code == 404:
        group = client.request("POST", PATHS["property_groups.tasks"],
                               json={"name": TASK_PROPERTY_GROUP, "label": GROUP_LABEL, "displayOrder": -1})
    if group.status_code not in (200, 201, 409):
        checks.add("FAIL", f"task property group '{TASK_PROPERTY_GROUP}': {_refusal(group)}")
        return
    created = client.request("POST", PATHS["properties.tasks"], json=task_key_property_definition())
    if created.status_code not in (200, 201):
        checks.add("FAIL", f"creating task property {TASK_KEY_PROPERTY}: {_refusal(created)}")
        return
    checks.note(f"created task property {TASK_KEY_PROPERTY}")
    _judge_task_key(created.json(), checks)


def _judge_task_key(prop: Mapping[str, Any], checks: _Checklist) -> None:
    if prop.get("hasUniqueValue") is True:
        checks.add("ok", f"task property {TASK_KEY_PROPERTY} holds unique values (tasks are created once)")
    else:
        # "Once set, this can't be changed" (hasUniqueValue, HubSpot's properties OpenAPI document).
        checks.add("FAIL", f"task property {TASK_KEY_PROPERTY} does not require unique values, and HubSpot "
                           "cannot change that: delete it in HubSpot and run setup again")


def _check_task_key(client: HubSpotClient, checks: _Checklist) -> None:
    have = _task_key_property(client)
    if have is None:
        checks.add("FAIL", f"missing task property {TASK_KEY_PROPERTY}; run `leadloop setup hubspot` "
                           "(tasks are refused until it exists)")
    else:
        _judge_task_key(have, checks)


def _subscriptions(client: HubSpotClient, config: Mapping[str, Any], dry_run: bool, checks: _Checklist,
                   watched: Iterable[str] | None) -> None:
    wanted = desired_subscriptions(watched)
    target = _target_url(config)
    checks.echo(f"Webhook target URL: {target}")
    checks.echo("Webhook subscriptions leadloop needs:")
    for event_type, prop in wanted:
        checks.note(event_type + (f" ({prop})" if prop else ""))
    app_id = (config.get("HUBSPOT_APP_ID") or "").strip()
    dev_key = (config.get("HUBSPOT_DEVELOPER_API_KEY") or "").strip()
    if not (app_id and dev_key):
        checks.add("todo", f"create the {len(wanted)} subscriptions above and the target URL in the app's "
                           "Webhooks settings (private apps cannot do it by API)")
        return
    # Legacy public (developer) apps: webhooks API, authenticated with the developer API key.
    subscriptions = api_path("webhooks.subscriptions", app_id=app_id)
    auth = {"hapikey": dev_key}
    listed = client.request("GET", subscriptions, params=auth, bearer=False)
    if listed.status_code != 200:
        checks.add("FAIL", f"reading subscriptions: {_refusal(listed)}")
        return
    have = {(s.get("eventType"), s.get("propertyName") or None): s for s in listed.json().get("results", [])}
    created, failed = 0, False
    for event_type, prop in wanted:
        label = event_type + (f" ({prop})" if prop else "")
        existing = have.get((event_type, prop))
        if existing is not None:
            if not existing.get("active", True):
                checks.add("todo", f"subscription {label} exists but is paused; activate it")
            continue
        if dry_run:
            checks.note(f"would create subscription {label}")
            created += 1
            continue
        body: dict[str, Any] = {"eventType": event_type, "active": True}
        if prop:
            body["propertyName"] = prop
        response = client.request("POST", subscriptions, json=body, params=auth, bearer=False)
        if response.status_code in (200, 201):
            checks.note(f"created subscription {label}")
            created += 1
        else:
            checks.add("FAIL", f"creating {label}: {_refusal(response)}")
            failed = True
    if dry_run and created:
        checks.add("todo", f"would create {created} webhook subscriptions")
    elif not failed:
        checks.add("ok", f"webhook subscriptions in place ({created} created)")
    settings = client.request("GET", api_path("webhooks.settings", app_id=app_id), params=auth, bearer=False)
    current = settings.json().get("targetUrl") if settings.status_code == 200 else None
    if current != target:
        checks.add("todo", f"set the app's webhook target URL to {target} (now: {current or 'not set'})")


def _check_properties_present(client: HubSpotClient, checks: _Checklist) -> None:
    existing = _existing_properties(client)
    missing = [property_name(k) for k in LEADLOOP_FIELDS if property_name(k) not in existing]
    if missing:
        checks.add("FAIL", f"missing properties {', '.join(missing)}; run `leadloop setup hubspot`")
    else:
        checks.add("ok", f"all {len(LEADLOOP_FIELDS)} leadloop properties present")


def _probe(client: HubSpotClient, path: str, checks: _Checklist, ok_text: str) -> None:
    response = client.request("GET", path, params={"limit": 1})
    if response.status_code != 200:
        raise CrmError(_refusal(response))
    checks.add("ok", ok_text)


def _refusal(response: Any) -> str:
    return f"HubSpot {response.status_code}: {error_message(response)}"


def _target_url(config: Mapping[str, Any]) -> str:
    base = (config.get("PUBLIC_BASE_URL") or "<PUBLIC_BASE_URL>").rstrip("/")
    return f"{base}/webhooks/hubspot"


def _config_reminders(config: Mapping[str, Any], checks: _Checklist, strict: bool = False) -> None:
    if secret_list(config.get("HUBSPOT_CLIENT_SECRETS")):
        checks.add("ok", "HUBSPOT_CLIENT_SECRETS set (webhook signatures can be checked)")
    else:
        checks.add("FAIL" if strict else "todo",
                   "set HUBSPOT_CLIENT_SECRETS to the app's client secret, or every webhook gets 401")
    if secret_list(config.get("HUBSPOT_WORKFLOW_API_KEYS")):
        checks.add("ok", "HUBSPOT_WORKFLOW_API_KEYS set (workflow webhooks may use the API-key header)")
    if not config.get("PUBLIC_BASE_URL"):
        checks.add("FAIL" if strict else "todo", "set PUBLIC_BASE_URL (HubSpot signs the full URL it calls)")
