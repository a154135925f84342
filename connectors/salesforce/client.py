"""Salesforce REST client: read lead fields, write scores back, create Leads and follow-up tasks.

No retry loops: a failed call raises (``CrmError``/``CrmRateLimited``/``CrmAuthError``) and the
RQ job retries. The one exception is an expired session: a 401 ``INVALID_SESSION_ID`` drops the
cached token and repeats that one call once with a fresh token, as simple-salesforce does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests

from connectors.base import (
    CrmAuthError,
    CrmError,
    CrmRateLimited,
    RecordCreate,
    RecordUpdate,
    TaskSpec,
    WriteOutcome,
)
from connectors.salesforce.auth import TIMEOUT, SalesforceAuth, Token
from connectors.salesforce.keyed_writes import KEY_FIELD, duplicate_text, lead_body
from connectors.salesforce.webhook import SALESFORCE_ID, id18, map_fields

DEFAULT_API_VERSION = "62.0"

#: leadloop field key (``LEADLOOP_FIELDS``) -> Salesforce custom field on Lead and Contact.
LEADLOOP_FIELD_NAMES: dict[str, str] = {
    "score": "Leadloop_Score__c",
    "fit_points": "Leadloop_Fit_Points__c",
    "engagement_points": "Leadloop_Engagement_Points__c",
    "band": "Leadloop_Band__c",
    "grade": "Leadloop_Grade__c",
    "mql": "Leadloop_MQL__c",
    "reasons": "Leadloop_Reasons__c",
    "stage": "Leadloop_Stage__c",
    "rules_version": "Leadloop_Rules_Version__c",
    "scored_at": "Leadloop_Scored_At__c",
    "recycle_reason": "Leadloop_Recycle_Reason__c",
    "recycle_count": "Leadloop_Recycle_Count__c",
    "nurture_track": "Leadloop_Nurture_Track__c",
}

#: Key prefix of a record id -> sObject type (the first three characters name the object).
SOBJECT_PREFIXES: dict[str, str] = {"00Q": "Lead", "003": "Contact"}

#: Fields read by ``fetch_fields`` per sObject (Contact has no Company/Status/Industry...).
SOQL_FIELDS: dict[str, tuple[str, ...]] = {
    "Lead": (
        "Id", "Email", "FirstName", "LastName", "Company", "Title", "Phone", "MobilePhone",
        "Country", "State", "City", "Industry", "NumberOfEmployees", "AnnualRevenue", "Website",
        "LeadSource", "Status", "OwnerId", "HasOptedOutOfEmail", "Rating",
    ),
    "Contact": (
        "Id", "Email", "FirstName", "LastName", "Title", "Phone", "MobilePhone", "MailingCountry",
        "MailingState", "MailingCity", "LeadSource", "OwnerId", "HasOptedOutOfEmail",
    ),
}

#: Task Priority picklist (default values; org-configurable, read from TaskPriority).
TASK_PRIORITIES: dict[str, str] = {"high": "High", "normal": "Normal", "low": "Low"}
#: Task kind -> word put in front of the Subject. ``TaskSubtype`` is not set: its createability
#: could not be confirmed here, and an "Email" subtype renders as a sent email in the timeline.
TASK_TYPES: dict[str, str | None] = {"call": "Call", "email": "Email", "todo": None}

#: Per-record ``statusCode``s worth retrying; everything else (validation, bad id) is final.
TRANSIENT_CODES = frozenset({
    "UNABLE_TO_LOCK_ROW", "ALL_OR_NONE_OPERATION_ROLLED_BACK", "REQUEST_RUNNING_TOO_LONG",
    "SERVER_UNAVAILABLE",
})

MAX_BATCH = 200  # sObject Collections limit
SOQL_BATCH = 200  # ids per IN (...) clause, keeps the GET URL well under 16 kB
SUBJECT_MAX = 255
DESCRIPTION_MAX = 32_000
TEXT_MAX = 255
LONG_TEXT_MAX = 32_768
REQUEST_LIMIT_RETRY = 15 * 60.0
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


def sobject_type(record_id: str) -> str:
    """Return ``"Lead"`` or ``"Contact"`` for a record id; ``ValueError`` for anything else."""
    if not isinstance(record_id, str) or not SALESFORCE_ID.match(record_id):
        raise ValueError(f"not a Salesforce id: {record_id!r}")
    try:
        return SOBJECT_PREFIXES[record_id[:3]]
    except KeyError:
        raise ValueError(f"{record_id} is neither a Lead (00Q) nor a Contact (003)") from None


def _error_detail(response: requests.Response) -> tuple[str, str]:
    """Return ``(errorCode, message)`` of a REST error body (a JSON array), or blanks."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    first = body[0] if isinstance(body, list) and body else body
    if not isinstance(first, dict):
        return "", ""
    return str(first.get("errorCode") or first.get("error") or ""), str(first.get("message") or "")


class SalesforceClient:
    """Outbound calls against one org. ``api_usage`` holds the last ``Sforce-Limit-Info``."""

    max_update_batch = MAX_BATCH

    def __init__(self, config: Mapping[str, Any], redis: Any = None,
                 session: requests.Session | None = None):
        self.session = session or requests.Session()
        self.auth = SalesforceAuth(config, redis, self.session)
        self.api_version = str(config.get("SALESFORCE_API_VERSION") or DEFAULT_API_VERSION).lstrip("v")
        #: ``(used, limit)`` of daily API requests from the last response, if it said.
        self.api_usage: tuple[int, int] | None = None

    # --- transport ---------------------------------------------------------------------------

    def _url(self, token: Token, path: str) -> str:
        # "/services/..." is instance-relative (nextRecordsUrl, the versions list); anything
        # else is relative to the versioned data API.
        if path.startswith("/services/"):
            return token.instance_url + path
        return f"{token.instance_url}/services/data/v{self.api_version}{path}"

    def _once(self, token: Token, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {token.access_token}",
                   "Accept": "application/json"}
        try:
            response = self.session.request(method, self._url(token, path), headers=headers,
                                            timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise CrmError(f"Salesforce {method} {path.split('?')[0]} failed: {type(exc).__name__}") from None
        usage = _LIMIT_INFO.search(response.headers.get("Sforce-Limit-Info", ""))
        if usage:
            self.api_usage = (int(usage.group(1)), int(usage.group(2)))
        return response

    def send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Make one call and return the response for any status below 500 except 401/limits.

        Raises ``CrmAuthError`` (401 after one refresh), ``CrmRateLimited`` (403
        REQUEST_LIMIT_EXCEEDED) or ``CrmError`` (5xx, network).
        """
        token = self.auth.token()
        response = self._once(token, method, path, **kwargs)
        if response.status_code == 401:
            code, message = _error_detail(response)
            if code != "INVALID_SESSION_ID":
                raise CrmAuthError(f"Salesforce answered 401 {code}: {message}".strip())
            self.auth.invalidate(token)
            response = self._once(self.auth.token(), method, path, **kwargs)
            if response.status_code == 401:
                code, message = _error_detail(response)
                raise CrmAuthError(f"Salesforce refused a fresh session: 401 {code}: {message}".strip())
        if response.status_code == 403:
            code, message = _error_detail(response)
            if code == "REQUEST_LIMIT_EXCEEDED":
                raise CrmRateLimited(f"Salesforce API limit reached: {message}", REQUEST_LIMIT_RETRY)
        if response.status_code >= 500:
            raise CrmError(f"Salesforce {method} {path.split('?')[0]} answered {response.status_code}")
        return response

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Make one call and return its JSON (None for 204); any non-2xx raises ``CrmError``."""
        response = self.send(method, path, **kwargs)
        if not 200 <= response.status_code < 300:
            code, message = _error_detail(response)
            raise CrmError(f"Salesforce {method} {path.split('?')[0]} answered {response.status_code} "
                           f"{code}: {message}".rstrip(": "))
        return response.json() if response.content else None

    # --- CrmClient ---------------------------------------------------------------------------

    def fetch_fields(self, crm_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return current fields under canonical names keyed by the ids asked for.

        Raises ``ValueError`` for an id that is not a Lead/Contact id (nothing is queried then).
        """
        by_type: dict[str, list[str]] = {}
        for crm_id in dict.fromkeys(crm_ids):
            by_type.setdefault(sobject_type(crm_id), []).append(crm_id)
        found: dict[str, dict[str, Any]] = {}
        for sobject, ids in by_type.items():
            for start in range(0, len(ids), SOQL_BATCH):
                batch = ids[start:start + SOQL_BATCH]
                # Ids are checked against SALESFORCE_ID above, so quoting them cannot inject SOQL.
                quoted = ", ".join(f"'{crm_id}'" for crm_id in batch)
                soql = f"SELECT {', '.join(SOQL_FIELDS[sobject])} FROM {sobject} WHERE Id IN ({quoted})"
                page = self.call("GET", "/query", params={"q": soql})
                while True:
                    for record in page.get("records", []):
                        found[record["Id"]] = map_fields(record, f"{sobject} {record['Id']}")
                    if page.get("done", True) or not page.get("nextRecordsUrl"):
                        break
                    page = self.call("GET", page["nextRecordsUrl"])
        # Salesforce answers with 18-char ids; answer under the form each id was asked in.
        return {crm_id: found[id18(crm_id)] for crm_id in dict.fromkeys(crm_ids) if id18(crm_id) in found}

    def update_records(self, updates: Sequence[RecordUpdate]) -> list[WriteOutcome]:
        """Write updates through sObject Collections (200 a call); one outcome per update.

        A well-formed call answers 200 even when records fail; each failure is recorded with
        its ``statusCode`` and retryable only for transient codes.
        """
        outcomes: list[WriteOutcome | None] = [None] * len(updates)
        for start in range(0, len(updates), MAX_BATCH):
            records: list[dict[str, Any]] = []
            positions: list[int] = []
            for index in range(start, min(start + MAX_BATCH, len(updates))):
                try:
                    records.append(record_body(updates[index]))
                    positions.append(index)
                except ValueError as exc:
                    outcomes[index] = WriteOutcome(updates[index].key, ok=False, error=str(exc))
            if not records:
                continue
            results = self.call("PATCH", "/composite/sobjects", json={"allOrNone": False, "records": records})
            if not isinstance(results, list) or len(results) != len(records):
                raise CrmError("Salesforce composite/sobjects answered an unexpected body")
            for index, result in zip(positions, results, strict=True):
                outcomes[index] = _outcome(updates[index].key, result)
        return [outcome for outcome in outcomes if outcome is not None]

    def create_records(self, creates: Sequence[RecordCreate]) -> list[WriteOutcome]:
        """Create a Lead per web-only lead (``connectors.salesforce.keyed_writes``); ``external_id`` is
        the Lead id. A duplicate rule's refusal is recorded with Salesforce's message."""
        outcomes = []
        for create in creates:
            try:
                body = lead_body(create, LEADLOOP_FIELD_NAMES, _format)
            except ValueError as exc:
                outcomes.append(WriteOutcome(create.key, ok=False, error=str(exc)))
                continue
            # Without the header assignment rules run and can replace the owner the hand-off chose.
            headers = {"Sforce-Auto-Assign": "FALSE"} if create.owner_id else {}
            outcomes.append(self._write_by_key("Lead", create.key, body, headers))
        return outcomes

    def create_task(self, task: TaskSpec) -> WriteOutcome:
        """Create one Task on the lead/contact, or find the one made under ``task.key`` before;
        ``external_id`` is its ``00T...`` id."""
        try:
            sobject_type(task.crm_id)
            body = task_body(task)
        except ValueError as exc:
            return WriteOutcome(task.key, ok=False, error=str(exc))
        return self._write_by_key("Task", task.key, body, {})

    def _write_by_key(self, sobject: str, key: str, body: dict[str, Any], headers: dict[str, str]) -> WriteOutcome:
        """Read the record holding ``key``; if there is none, upsert it by the key. One outcome."""
        path = f"/sobjects/{sobject}/{KEY_FIELD}/{quote(key, safe='')}"
        found = self.send("GET", path, params={"fields": "Id"})
        if found.status_code == 200:
            return WriteOutcome(key, ok=True, external_id=found.json().get("Id"))
        if found.status_code != 404:  # 404: no record holds the key (or the field is missing: see below)
            return _refused(key, found)
        response = self.send("PATCH", path, json=body, headers=headers)
        if response.status_code in (200, 201):
            return WriteOutcome(key, ok=True, external_id=response.json().get("id"))
        if response.status_code == 204:  # API v45 and older answer an upsert without a body
            again = self.send("GET", path, params={"fields": "Id"})
            if again.status_code == 200:
                return WriteOutcome(key, ok=True, external_id=again.json().get("Id"))
        return _refused(key, response)


    def task_is_open(self, task_id: str) -> bool:
        """Return whether the Task is still open (``IsClosed`` false). Raises ``CrmError``."""
        if not SALESFORCE_ID.match(task_id or ""):
            raise CrmError(f"not a Salesforce id: {task_id!r}")
        record = self.call("GET", f"/sobjects/Task/{task_id}", params={"fields": "IsClosed"})
        return not (record or {}).get("IsClosed", False)


def _refused(key: str, response: requests.Response) -> WriteOutcome:
    """A keyed read or upsert Salesforce refused, as a recorded outcome (retryable if transient)."""
    try:
        errors = response.json()
    except ValueError:
        errors = []
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = str(first.get("errorCode") or "")
    if code == "DUPLICATES_DETECTED":
        return WriteOutcome(key, ok=False, error=duplicate_text(first))
    if response.status_code == 300:
        return WriteOutcome(key, ok=False, error=f"{KEY_FIELD} {key} matches several records; mark the field Unique")
    text = f"{response.status_code} {code}: {first.get('message') or ''}".strip().rstrip(":")
    if response.status_code == 404:
        text += f" (is {KEY_FIELD} there, External ID? run `leadloop setup salesforce`)"
    return WriteOutcome(key, ok=False, error=text, retryable=code in TRANSIENT_CODES)


def _format(key: str, value: Any) -> Any:
    """Return a leadloop value as the custom field expects it."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{key}: datetime must be timezone-aware")
        return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if key == "reasons" and isinstance(value, list | tuple):
        value = "\n".join(str(reason) for reason in value)
    text = str(value)
    return text[:LONG_TEXT_MAX] if key == "reasons" else text[:TEXT_MAX]


def record_body(update: RecordUpdate) -> dict[str, Any]:
    """Return the sObject Collections record for one update; ``ValueError`` if it cannot be."""
    record: dict[str, Any] = {"attributes": {"type": sobject_type(update.crm_id)}, "id": update.crm_id}
    for key, value in update.fields.items():
        if key not in LEADLOOP_FIELD_NAMES:
            raise ValueError(f"unknown leadloop field {key!r}")
        record[LEADLOOP_FIELD_NAMES[key]] = _format(key, value)
    if update.owner_id:
        record["OwnerId"] = update.owner_id
    reserved = {"id", "Id", "attributes"} & set(update.crm_fields)
    if reserved:
        raise ValueError(f"crm_fields may not set {', '.join(sorted(reserved))}")
    record.update(update.crm_fields)
    return record


def _outcome(key: str, result: Any) -> WriteOutcome:
    if isinstance(result, dict) and result.get("success"):
        return WriteOutcome(key, ok=True, external_id=result.get("id"))
    errors = (result.get("errors") or []) if isinstance(result, dict) else []
    codes = [str(error.get("statusCode", "")) for error in errors]
    text = "; ".join(
        f"{error.get('statusCode')}: {error.get('message')}"
        + (f" ({', '.join(error['fields'])})" if error.get("fields") else "")
        for error in errors
    ) or "failed without an error"
    return WriteOutcome(key, ok=False, error=text, retryable=bool(codes) and all(c in TRANSIENT_CODES
                                                                               for c in codes))


def task_body(task: TaskSpec) -> dict[str, Any]:
    """Return the ``POST /sobjects/Task`` body (field order as crm-samples' task request)."""
    if task.priority not in TASK_PRIORITIES:
        raise ValueError(f"unknown task priority {task.priority!r}")
    if task.type not in TASK_TYPES:
        raise ValueError(f"unknown task type {task.type!r}")
    if task.due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    subject = task.subject.strip()
    word = TASK_TYPES[task.type]
    if word and not subject.lower().startswith(word.lower()):
        subject = f"{word}: {subject}"
    body: dict[str, Any] = {
        "WhoId": task.crm_id,
        "Subject": subject[:SUBJECT_MAX],
        "ActivityDate": task.due_at.astimezone(UTC).date().isoformat(),
        "Status": "Not Started",
        "Priority": TASK_PRIORITIES[task.priority],
    }
    if task.owner_id:
        body["OwnerId"] = task.owner_id
    body["Description"] = task.body[:DESCRIPTION_MAX]
    return body


def make_client(config: Mapping[str, Any], redis: Any) -> SalesforceClient:
    """Return the ``CrmClient`` for ``config`` sharing token state through ``redis``."""
    return SalesforceClient(config, redis)
