"""``leadloop setup hubspot --project DIR``: the HubSpot developer-platform project for one account.

Legacy public apps can no longer be created (2026-06-23) nor legacy private apps (2026-10-26 for
existing accounts). A single-account install is now a project app with ``distribution: private``
and static auth; Service Keys, the other replacement, do not support webhooks.
https://developers.hubspot.com/changelog/legacy-public-app-creation-sunset
https://developers.hubspot.com/changelog/legacy-private-app-creation-sunset
https://developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/overview

The files follow HubSpot's own 2026.03 templates (``static-private`` app, ``webhooks``
component) in https://github.com/HubSpot/hubspot-project-components:

    DIR/hsproject.json
    DIR/src/app/app-hsmeta.json
    DIR/src/app/webhooks/webhooks-hsmeta.json

Subscriptions are in the generic format (``crmObjects``, ``object.*``), except
``contact.privacyDeletion``, which has no generic form and goes in ``hubEvents``.
https://developers.hubspot.com/docs/apps/developer-platform/add-features/configure-webhooks
The admin uploads the project (``hs project upload``), installs the app and pastes its static
access token (``HUBSPOT_ACCESS_TOKEN``) and client secret (``HUBSPOT_CLIENT_SECRETS``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from connectors.base import SetupError
from connectors.hubspot.setup import DEAL_WATCHED, REQUIRED_SCOPES, watched_properties

PLATFORM_VERSION = "2026.03"
APP_UID = "leadloop_app"
WEBHOOKS_UID = "leadloop_webhooks"
#: HubSpot sends at most 10 concurrent requests per installed account; its example uses 10.
MAX_CONCURRENT_REQUESTS = 10
#: HubSpot's static-private template lists ``oauth`` first; the rest is what leadloop calls.
APP_SCOPES = ("oauth", *REQUIRED_SCOPES)

#: Object (``objectType`` name) -> (changes subscribed, properties whose changes are subscribed).
#: Contacts are the leads; deals are outcomes; calls, emails and meetings are rep activity.
#: Their property lists are fixed here; a contact's come from the rules (``watched_properties``).
OBJECT_SUBSCRIPTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "contact": (("creation", "deletion", "merge", "restore", "associationChange"), ()),
    "deal": (("creation", "deletion", "merge", "restore", "associationChange"), DEAL_WATCHED),
    "call": (("creation", "deletion", "restore", "associationChange"), ()),
    "email": (("creation", "deletion", "restore", "associationChange"), ()),
    "meeting": (("creation", "deletion", "restore", "associationChange"), ()),
}
#: Subscriptions with no generic form (hubEvents).
HUB_EVENTS = ("contact.privacyDeletion",)


class ProjectError(SetupError):
    """The project cannot be written (bad ``PUBLIC_BASE_URL``, files that would be overwritten)."""


def project_files(config: Mapping[str, Any], *, watched: Iterable[str] | None = None,
                  name: str = "leadloop", support_email: str | None = None) -> dict[str, dict[str, Any]]:
    """Return the project's files as ``{relative path: JSON content}``.

    ``watched``: the contact fields the rules use (as for ``run_setup``). Raises ``ProjectError``
    when ``PUBLIC_BASE_URL`` is missing or not https (HubSpot only calls https target URLs).
    """
    base = str(config.get("PUBLIC_BASE_URL") or "").strip().rstrip("/")
    if not base.startswith("https://"):
        raise ProjectError("PUBLIC_BASE_URL must be set to the https URL HubSpot calls "
                           f"(got {base or 'nothing'!r})")
    app: dict[str, Any] = {
        "description": "Lead scoring and hand-off: reads contacts, deals and rep activity, "
                       "writes leadloop's score properties and follow-up tasks.",
        "name": name,
        "distribution": "private",
        "auth": {"type": "static", "requiredScopes": list(APP_SCOPES), "optionalScopes": [],
                 "conditionallyRequiredScopes": []},
        "permittedUrls": {"fetch": ["https://api.hubapi.com"], "iframe": [], "img": []},
    }
    if support_email:
        app["support"] = {"supportEmail": support_email}
    return {
        "hsproject.json": {"name": name, "srcDir": "src", "platformVersion": PLATFORM_VERSION},
        "src/app/app-hsmeta.json": {"uid": APP_UID, "type": "app", "config": app},
        "src/app/webhooks/webhooks-hsmeta.json": {"uid": WEBHOOKS_UID, "type": "webhooks", "config": {
            "settings": {"targetUrl": f"{base}/webhooks/hubspot", "maxConcurrentRequests": MAX_CONCURRENT_REQUESTS},
            "subscriptions": {"crmObjects": crm_object_subscriptions(watched), "legacyCrmObjects": [],
                              "hubEvents": [{"subscriptionType": t, "active": True} for t in HUB_EVENTS]},
        }},
    }


def crm_object_subscriptions(watched: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Return the ``crmObjects`` entries: every change and watched property of every object."""
    entries: list[dict[str, Any]] = []
    for object_type, (changes, properties) in OBJECT_SUBSCRIPTIONS.items():
        if object_type == "contact":
            properties = tuple(watched_properties(watched))
        entries.append({"subscriptionType": "object.creation", "objectType": object_type, "active": True})
        entries.extend({"subscriptionType": "object.propertyChange", "objectType": object_type,
                        "propertyName": prop, "active": True} for prop in properties)
        entries.extend({"subscriptionType": f"object.{change}", "objectType": object_type, "active": True}
                       for change in changes if change != "creation")
    return entries


def write_project(directory: str | Path, config: Mapping[str, Any], *, watched: Iterable[str] | None = None,
                  name: str = "leadloop", support_email: str | None = None,
                  overwrite: bool = False) -> list[Path]:
    """Write the project into ``directory`` (created if missing); return the files written.

    A file that exists with other content is replaced only with ``overwrite``; otherwise
    ``ProjectError`` names it and nothing is written. Identical files are left as they are.
    """
    root = Path(directory)
    files = {root / path: json.dumps(content, indent=2) + "\n"
             for path, content in project_files(config, watched=watched, name=name,
                                                support_email=support_email).items()}
    changed = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    clashes = [path for path in changed if path.exists()]
    if clashes and not overwrite:
        raise ProjectError("would overwrite " + ", ".join(str(p) for p in clashes) + " (pass overwrite)")
    for path in changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
    return changed
