"""HubSpot outbound: CRM calls (date-versioned paths, ``connectors.hubspot.paths``) on ``requests``
behind one Redis rate limiter for all workers.

No retries in here: a call that fails as a whole raises (``CrmError`` and subclasses) and the
queue retries the job; per-record failures come back as ``WriteOutcome``.
Error handling: https://developers.hubspot.com/docs/api-reference/error-handling
Rate limits: https://developers.hubspot.com/docs/api/usage-details
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
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
from connectors.hubspot.contact_upsert import upsert_batches, upsert_body, upsert_outcomes
from connectors.hubspot.fields import PROPERTY_FIELDS, canonical_value, format_value
from connectors.hubspot.paths import api_path
from connectors.hubspot.tasks import TASK_KEY_PROPERTY, task_body

# --- mapping tables --------------------------------------------------------------------------

#: 207 error categories that will fail the same way on every retry: record and drop them.
FINAL_CATEGORIES = frozenset({"VALIDATION_ERROR", "OBJECT_NOT_FOUND", "MISSING_SCOPES", "INVALID_EMAIL"})
#: Whole-call statuses that are the request's fault, not HubSpot's: recorded, not retried.
FINAL_STATUSES = frozenset({400, 403, 404})

DEFAULT_API_BASE = "https://api.hubapi.com"
BATCH_SIZE = 100
RATE_LIMIT_KEY = "leadloop:hubspot:ratelimit"
WINDOW_MS = 10_000
#: The daily limit resets at midnight in the portal's time zone, which we do not know: check
#: again in an hour (a failed probe costs one call) rather than guess the reset.
DAILY_LIMIT_RETRY_S = 3600.0
TIMEOUT = (5, 30)

# Sliding window over the last WINDOW_MS, plus a "blocked until" key set when HubSpot says stop.
# Returns 0 when a slot was taken, else the milliseconds to wait.
_ACQUIRE = """
local blocked = redis.call('PTTL', KEYS[2])
if blocked > 0 then return blocked end
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class RateLimiter:
    """A per-10-second budget shared through Redis by every worker and client instance."""

    def __init__(self, redis: Any, limit: int, *, key: str = RATE_LIMIT_KEY,
                 clock: Callable[[], float] = time.time):
        self.redis = redis
        self.limit = max(1, limit)
        self.key = key
        self.block_key = key + ":blocked"
        self.clock = clock
        self._script = redis.register_script(_ACQUIRE)

    def acquire(self) -> None:
        """Take one call from the budget; raises ``CrmRateLimited`` with the wait when it is spent."""
        now_ms = int(self.clock() * 1000)
        wait_ms = int(self._script(keys=[self.key, self.block_key],
                                   args=[now_ms, WINDOW_MS, self.limit, uuid.uuid4().hex]))
        if wait_ms > 0:
            raise CrmRateLimited("HubSpot call budget spent (leadloop limiter)", retry_after=wait_ms / 1000)

    def block(self, seconds: float) -> None:
        """Stop every worker from calling HubSpot for ``seconds`` (never shortens a longer block)."""
        ms = max(1, int(seconds * 1000))
        current = self.redis.pttl(self.block_key)
        if current is None or current < ms:
            self.redis.set(self.block_key, "1", px=ms)


class HubSpotClient:
    """``CrmClient`` for HubSpot contacts, tasks and owners (private-app Bearer token)."""

    max_update_batch = BATCH_SIZE

    def __init__(self, token: str, limiter: RateLimiter, *, base_url: str = DEFAULT_API_BASE,
                 session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.session = session or requests.Session()
        self._token = token

    # --- transport ---------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
                bearer: bool = True) -> requests.Response:
        """Make one call and return the response for 2xx and the 4xx the caller decides on.

        Raises ``CrmAuthError`` (401), ``CrmRateLimited`` (429 or our own budget) and
        ``CrmError`` (423, 477, 5xx, network). Messages never carry the token or query string.
        """
        self.limiter.acquire()
        headers = {"Authorization": f"Bearer {self._token}"} if bearer else {}
        try:
            response = self.session.request(method, self.base_url + path, json=json, params=params,
                                            headers=headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise CrmError(f"HubSpot {method} {path} failed: {type(exc).__name__}") from None
        self._observe_limits(response)
        status = response.status_code
        if status == 401:
            raise CrmAuthError(f"HubSpot refused the access token (401): {error_message(response)}")
        if status == 429:
            raise self._rate_limited(response)
        if status in (423, 477) or status >= 500:
            raise CrmError(f"HubSpot {method} {path} -> {status}: {error_message(response)}")
        return response

    def _observe_limits(self, response: requests.Response) -> None:
        # If HubSpot says this 10-second window is used up, hold every worker until it rolls over.
        remaining = response.headers.get("X-HubSpot-RateLimit-Remaining")
        if remaining is not None and remaining.strip() == "0":
            self.limiter.block(_interval_seconds(response))
        if (response.headers.get("X-HubSpot-RateLimit-Daily-Remaining") or "").strip() == "0":
            self.limiter.block(DAILY_LIMIT_RETRY_S)

    def _rate_limited(self, response: requests.Response) -> CrmRateLimited:
        body = _json(response)
        policy = body.get("policyName", "") if isinstance(body, dict) else ""
        retry_after = _retry_after(response)
        if policy == "DAILY":
            retry_after = retry_after or DAILY_LIMIT_RETRY_S
        else:
            retry_after = retry_after or _interval_seconds(response)
        self.limiter.block(retry_after)
        return CrmRateLimited(f"HubSpot rate limit {policy or 'unknown policy'}: {error_message(response)}",
                              retry_after=retry_after)

    # --- CrmClient ---------------------------------------------------------------------------

    def fetch_fields(self, crm_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return ``{contact id: {canonical field: value}}``; ids HubSpot does not return are skipped.

        Raises ``CrmError`` (also for a 4xx on the whole call) and its subclasses.
        """
        ids = list(dict.fromkeys(str(i) for i in crm_ids))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), BATCH_SIZE):
            # propertiesWithHistory is required by the OpenAPI schema; asking for no history keeps
            # the batch limit at 100 (with history it is 50).
            body = {"properties": list(PROPERTY_FIELDS), "propertiesWithHistory": [],
                    "inputs": [{"id": i} for i in ids[start:start + BATCH_SIZE]]}
            response = self.request("POST", api_path("contacts.batch_read"), json=body)
            if response.status_code not in (200, 207):
                raise CrmError(f"HubSpot batch read -> {response.status_code}: {error_message(response)}")
            for result in _json(response).get("results", []):
                props = result.get("properties") or {}
                found[str(result["id"])] = {canonical: canonical_value(canonical, props[name])
                                            for name, canonical in PROPERTY_FIELDS.items()
                                            if props.get(name) is not None}
        return found

    def update_records(self, updates: Sequence[RecordUpdate]) -> list[WriteOutcome]:
        """Write batches of at most 100 via ``batch/update``; one outcome per update, in order.

        207 errors map back through ``objectWriteTraceId`` (or ``ids``). Raises for 401, 429,
        423, 477, 5xx and network failures; 400/403/404 become non-retryable outcomes.
        """
        outcomes: dict[str, WriteOutcome] = {}
        for batch in _batches(updates):
            body = {"inputs": [{"id": u.crm_id, "objectWriteTraceId": u.key, "properties": _properties(u)}
                               for u in batch]}
            response = self.request("POST", api_path("contacts.batch_update"), json=body)
            outcomes.update(_update_outcomes(batch, response))
        return [outcomes[u.key] for u in updates]

    def create_records(self, creates: Sequence[RecordCreate]) -> list[WriteOutcome]:
        """Create (or find) web-only leads' contacts by email, 100 a call; one outcome per create.

        ``external_id`` is the contact id, also for a contact that already existed (``new: false``).
        Raises for 401, 429, 423, 477, 5xx and network failures; 400/403/404 are recorded.
        """
        outcomes: dict[str, WriteOutcome] = {}
        for batch in upsert_batches(creates):
            response = self.request("POST", api_path("contacts.batch_upsert"), json=upsert_body(batch))
            outcomes.update(upsert_outcomes(batch, response.status_code, _json(response),
                                            f"HubSpot {response.status_code}: {error_message(response)}",
                                            FINAL_STATUSES))
        return [outcomes[c.key] for c in creates]

    def create_task(self, task: TaskSpec) -> WriteOutcome:
        """Create a task on the contact, unless one with ``task.key`` exists (``connectors.hubspot.tasks``).

        ``external_id`` is HubSpot's task id, the existing one's when a crashed attempt made it.
        """
        try:
            body = task_body(task)
        except ValueError as exc:
            return WriteOutcome(task.key, ok=False, error=str(exc))
        found = self._task_by_key(task.key)
        if isinstance(found, WriteOutcome):
            return found
        if found is not None:
            return WriteOutcome(task.key, ok=True, external_id=found)
        response = self.request("POST", api_path("tasks.create"), json=body)
        if response.status_code in (200, 201):
            return WriteOutcome(task.key, ok=True, external_id=str(_json(response)["id"]))
        error = f"HubSpot {response.status_code}: {error_message(response)}"
        return WriteOutcome(task.key, ok=False, error=error,
                            retryable=_key_taken(response) or response.status_code not in FINAL_STATUSES)

    def _task_by_key(self, key: str) -> str | WriteOutcome | None:
        """The id of the task holding ``key``, None if there is none, or the refusal to record."""
        response = self.request("GET", api_path("tasks.read", task_id=quote(key, safe="")),
                                params={"idProperty": TASK_KEY_PROPERTY, "properties": TASK_KEY_PROPERTY})
        if response.status_code == 200:
            return str(_json(response)["id"])
        if response.status_code == 404:
            return None
        return WriteOutcome(key, ok=False, retryable=response.status_code not in FINAL_STATUSES,
                            error=f"HubSpot {response.status_code} reading the task by its key "
                                  f"({TASK_KEY_PROPERTY}; run `leadloop setup hubspot`): {error_message(response)}")

    def task_is_open(self, task_id: str) -> bool:
        """Return whether the task is still open (``hs_task_status`` other than COMPLETED).

        Raises ``CrmError`` when HubSpot cannot say (the caller then judges by status alone).
        """
        response = self.request("GET", api_path("tasks.read", task_id=task_id),
                                params={"properties": "hs_task_status"})
        if response.status_code != 200:
            raise CrmError(f"HubSpot {response.status_code}: {error_message(response)}")
        return _json(response).get("properties", {}).get("hs_task_status") != "COMPLETED"

    # --- owners ------------------------------------------------------------------------------

    def list_owners(self, *, email: str | None = None) -> list[dict[str, Any]]:
        """Return all active owners (following ``paging.next.after``). Raises ``CrmError``."""
        owners: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100, "archived": "false"}
        if email:
            params["email"] = email
        while True:
            response = self.request("GET", api_path("owners.list"), params=params)
            if response.status_code != 200:
                raise CrmError(f"HubSpot owners -> {response.status_code}: {error_message(response)}")
            page = _json(response)
            owners.extend(page.get("results", []))
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return owners
            params["after"] = after

    def find_owner(self, email: str) -> dict[str, Any] | None:
        """Return the owner with this email (``id`` goes into ``hubspot_owner_id``), or None."""
        wanted = email.strip().lower()
        for owner in self.list_owners(email=wanted):
            if str(owner.get("email", "")).lower() == wanted:
                return owner
        return None


def make_client(config: Mapping[str, Any], redis: Any) -> HubSpotClient:
    """Build the client from config; raises ``CrmAuthError`` without a token, ``ValueError`` on bad limit."""
    token = (config.get("HUBSPOT_ACCESS_TOKEN") or "").strip()
    if not token:
        raise CrmAuthError("HUBSPOT_ACCESS_TOKEN is not set")
    raw_limit = config.get("HUBSPOT_RATE_LIMIT_PER_10S") or "100"
    try:
        per_10s = int(raw_limit)
    except ValueError:
        raise ValueError(f"HUBSPOT_RATE_LIMIT_PER_10S must be an integer, got {raw_limit!r}") from None
    # Stay ~10% under HubSpot's burst limit: other apps and the CRM UI share the account.
    limiter = RateLimiter(redis, int(per_10s * 0.9))
    return HubSpotClient(token, limiter, base_url=config.get("HUBSPOT_API_BASE") or DEFAULT_API_BASE)


# --- helpers ---------------------------------------------------------------------------------

def error_message(response: requests.Response) -> str:
    """Return HubSpot's error message (with its category) or the start of the body."""
    body = _json(response)
    if isinstance(body, dict) and body.get("message"):
        category = body.get("category") or body.get("errorType")
        return f"{category}: {body['message']}" if category else str(body["message"])
    return (response.text or response.reason or "").strip()[:300]


def _properties(update: RecordUpdate) -> dict[str, str]:
    props = {f"leadloop_{key}": format_value(value) for key, value in update.fields.items()}
    if update.owner_id is not None:
        props["hubspot_owner_id"] = str(update.owner_id)
    props.update({name: format_value(value) for name, value in update.crm_fields.items()})
    return props


def _batches(updates: Sequence[RecordUpdate]) -> list[list[RecordUpdate]]:
    # At most 100 per call, and never the same contact twice in one call (HubSpot refuses
    # duplicate ids in a batch); a later update for a contact goes into a later call.
    batches: list[list[RecordUpdate]] = []
    for update in updates:
        current = batches[-1] if batches else []
        if not batches or len(current) >= BATCH_SIZE or any(u.crm_id == update.crm_id for u in current):
            batches.append([])
        batches[-1].append(update)
    return batches


def _update_outcomes(batch: list[RecordUpdate], response: requests.Response) -> dict[str, WriteOutcome]:
    status = response.status_code
    if status == 200:
        return {u.key: WriteOutcome(u.key, ok=True) for u in batch}
    if status != 207:
        error = f"HubSpot {status}: {error_message(response)}"
        return {u.key: WriteOutcome(u.key, ok=False, error=error, retryable=status not in FINAL_STATUSES)
                for u in batch}
    body = _json(response)
    by_key = {u.key: u for u in batch}
    failed: dict[str, WriteOutcome] = {}
    unmatched: list[str] = []
    for err in body.get("errors", []):
        context = err.get("context") or {}
        keys = [k for k in context.get("objectWriteTraceId", []) if k in by_key]
        ids = set(map(str, context.get("ids", [])))
        keys += [u.key for u in batch if u.crm_id in ids and u.key not in keys]
        retryable = (err.get("category") or err.get("code")) not in FINAL_CATEGORIES
        message = f"{err.get('category') or err.get('code') or 'error'}: {err.get('message', '')}"
        if not keys:
            unmatched.append(message)
        for key in keys:
            failed[key] = WriteOutcome(key, ok=False, error=message, retryable=retryable)
    succeeded = {str(r.get("id")) for r in body.get("results", [])}
    outcomes = {}
    for u in batch:
        if u.key in failed:
            outcomes[u.key] = failed[u.key]
        elif unmatched and u.crm_id not in succeeded:
            # An error we cannot pin to a record: keep the unconfirmed ones pending.
            outcomes[u.key] = WriteOutcome(u.key, ok=False, error="; ".join(unmatched), retryable=True)
        else:
            outcomes[u.key] = WriteOutcome(u.key, ok=True)
    return outcomes


def _key_taken(response: requests.Response) -> bool:
    """Whether a refused task create says the key is taken (another attempt made the task between
    our read and our create): kept pending, so the next flush reads that task back. HubSpot does
    not document this refusal's shape; a wrong guess costs retries (at most 10), never a task."""
    text = response.text or ""
    return response.status_code == 409 or (TASK_KEY_PROPERTY in text and "PROPERTY_DOESNT_EXIST" not in text)


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(1.0, float(value)) if value else None
    except ValueError:
        return None


def _interval_seconds(response: requests.Response) -> float:
    try:
        return int(response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")) / 1000
    except ValueError:
        return WINDOW_MS / 1000

