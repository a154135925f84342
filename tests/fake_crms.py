"""HubSpot and Salesforce as their REST APIs keep records, on ``responses``, for the write tests.

Each fake keeps state (contacts by email, Leads and Tasks by leadloop's key), answers with the
vendors' documented shapes, and enforces what the real CRM guarantees and leadloop relies on: a
contact's email is unique (batch upsert by email), a HubSpot task's ``leadloop_task_key`` is unique
(a second create with it is refused), a Salesforce ``Leadloop_Key__c`` is an External ID (upsert
by it matches the record that has it). Every request is kept in ``calls``.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import responses

from connectors.salesforce.webhook import id18

HUBSPOT = "https://api.hubapi.com"
HS_OBJECTS = f"{HUBSPOT}/crm/objects/2026-03"
SF_LOGIN = "https://login.salesforce.com/services/oauth2/token"
SF_INSTANCE = "https://acme.my.salesforce.com"
SF_DATA = f"{SF_INSTANCE}/services/data/v62.0"
#: Live-mode settings that reach both fakes.
LIVE = {
    "CRM_WRITE_MODE": "live",
    "HUBSPOT_ACCESS_TOKEN": "pat-na1-test",
    "SALESFORCE_CLIENT_ID": "3MVG9leadloopConsumerKey",
    "SALESFORCE_CLIENT_SECRET": "leadloop-consumer-secret",
    "SALESFORCE_REFRESH_TOKEN": "5Aep861leadloopRefreshToken",
}
STAMP = "2026-11-30T10:00:00.000Z"


def _answer(status: int, body: Any) -> tuple[int, dict[str, str], str]:
    return status, {"Content-Type": "application/json"}, json.dumps(body)


class FakeHubSpot:
    """Contacts (by email) and tasks (by ``leadloop_task_key``) of one HubSpot portal."""

    def __init__(self, mock: responses.RequestsMock, *, contacts: dict[str, str] | None = None):
        #: email -> contact id; ``contacts`` are the ones that exist before the test.
        self.contacts: dict[str, str] = dict(contacts or {})
        #: task id -> {"key", "contact", "properties"}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.next_id = 5001
        self.mock = mock
        routes = [
            ("POST", "/contacts/batch/upsert", self.upsert),
            ("POST", "/contacts/batch/update", self.update),
            ("POST", "/contacts/batch/read", self.read),
            ("POST", "/tasks", self.create_task),
            ("GET", r"/tasks/[^/?]+", self.read_task),
        ]
        for method, path, handler in routes:
            mock.add_callback(method, re.compile(re.escape(HS_OBJECTS) + path + r"(\?.*)?$"), callback=handler)

    def _new_id(self) -> str:
        self.next_id += 1
        return str(self.next_id - 1)

    def upsert(self, request: Any) -> tuple[int, dict[str, str], str]:
        results = []
        for item in json.loads(request.body)["inputs"]:
            assert item["idProperty"] == "email"
            email = item["id"].lower()
            new = email not in self.contacts
            if new:
                self.contacts[email] = self._new_id()
            results.append({"id": self.contacts[email], "new": new, "objectWriteTraceId": item["objectWriteTraceId"],
                            "properties": {"email": email}, "createdAt": STAMP, "updatedAt": STAMP,
                            "archived": False})
        return _answer(200, {"status": "COMPLETE", "results": results, "startedAt": STAMP, "completedAt": STAMP})

    def update(self, request: Any) -> tuple[int, dict[str, str], str]:
        inputs = json.loads(request.body)["inputs"]
        return _answer(200, {"status": "COMPLETE", "startedAt": STAMP, "completedAt": STAMP, "results": [
            {"id": item["id"], "properties": {}, "createdAt": STAMP, "updatedAt": STAMP, "archived": False}
            for item in inputs]})

    def read(self, request: Any) -> tuple[int, dict[str, str], str]:
        by_id = {contact_id: email for email, contact_id in self.contacts.items()}
        return _answer(200, {"status": "COMPLETE", "results": [
            {"id": item["id"], "properties": {"email": by_id[item["id"]]}, "createdAt": STAMP, "updatedAt": STAMP,
             "archived": False} for item in json.loads(request.body)["inputs"] if item["id"] in by_id]})

    def create_task(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        key = body["properties"]["leadloop_task_key"]
        if any(task["key"] == key for task in self.tasks.values()):
            # hasUniqueValue: the value is taken. (HubSpot does not document this answer's shape.)
            return _answer(409, {"status": "error", "category": "CONFLICT", "correlationId": "c0ffee00-0000",
                                 "message": f"A task with leadloop_task_key {key} already exists"})
        task_id = self._new_id()
        self.tasks[task_id] = {"key": key, "contact": body["associations"][0]["to"]["id"],
                               "properties": body["properties"]}
        return _answer(201, {"id": task_id, "properties": body["properties"], "createdAt": STAMP,
                             "updatedAt": STAMP, "archived": False})

    def read_task(self, request: Any) -> tuple[int, dict[str, str], str]:
        url = urlparse(request.url)
        wanted = unquote(url.path.rsplit("/", 1)[-1])
        by_key = parse_qs(url.query).get("idProperty") == ["leadloop_task_key"]
        for task_id, task in self.tasks.items():
            if (task["key"] if by_key else task_id) == wanted:
                return _answer(200, {"id": task_id, "properties": {"leadloop_task_key": task["key"],
                                                                   "hs_task_status": "NOT_STARTED"},
                                     "createdAt": STAMP, "updatedAt": STAMP, "archived": False})
        return _answer(404, {"status": "error", "message": "Object not found", "category": "OBJECT_NOT_FOUND",
                             "correlationId": "c0ffee00-0404"})

    def requests(self, method: str, path_end: str) -> list[Any]:
        """The calls made with ``method`` to a URL whose path ends with ``path_end``."""
        return [c for c in self.mock.calls
                if c.request.method == method and urlparse(c.request.url).path.endswith(path_end)]


class FakeSalesforce:
    """Leads and Tasks of one org, each findable by ``Leadloop_Key__c`` (External ID)."""

    def __init__(self, mock: responses.RequestsMock, *, duplicate_emails: tuple[str, ...] = ()):
        #: sObject -> id -> fields (with ``Leadloop_Key__c``)
        self.records: dict[str, dict[str, dict[str, Any]]] = {"Lead": {}, "Task": {}}
        #: Emails a blocking duplicate rule matches to an existing Lead.
        self.duplicate_emails = duplicate_emails
        self.serial = 0
        self.mock = mock
        mock.post(SF_LOGIN, json={"access_token": "00Do0000000e0vQ!AQ0AQLive", "instance_url": SF_INSTANCE,
                                  "id": "https://login.salesforce.com/id/00Do0000000e0vQEAQ/005xx000001Sv6AAAS",
                                  "token_type": "Bearer", "issued_at": "1700000000000", "signature": "x"})
        by_key = re.compile(re.escape(SF_DATA) + r"/sobjects/(Lead|Task)/Leadloop_Key__c/([^/?]+)(\?.*)?$")
        mock.add_callback(responses.GET, by_key, callback=self.read_by_key)
        mock.add_callback(responses.PATCH, by_key, callback=self.upsert)
        mock.add_callback(responses.PATCH, f"{SF_DATA}/composite/sobjects", callback=self.update)
        mock.add_callback(responses.GET, re.compile(re.escape(SF_DATA) + r"/query.*"), callback=self.query)

    def _located(self, request: Any) -> tuple[str, str]:
        sobject, key = re.search(r"/sobjects/(Lead|Task)/Leadloop_Key__c/([^/?]+)", request.url).groups()
        return sobject, unquote(key)

    def _holder(self, sobject: str, key: str) -> str | None:
        return next((i for i, fields in self.records[sobject].items() if fields["Leadloop_Key__c"] == key), None)

    def read_by_key(self, request: Any) -> tuple[int, dict[str, str], str]:
        sobject, key = self._located(request)
        found = self._holder(sobject, key)
        if found is None:
            return _answer(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
        return _answer(200, {"attributes": {"type": sobject, "url": f"/services/data/v62.0/sobjects/{sobject}/{found}"},
                             "Id": found})

    def upsert(self, request: Any) -> tuple[int, dict[str, str], str]:
        sobject, key = self._located(request)
        fields = json.loads(request.body)
        found = self._holder(sobject, key)
        if found is not None:
            self.records[sobject][found].update(fields)
            return _answer(200, {"id": found, "success": True, "errors": [], "created": False})
        if sobject == "Lead" and fields.get("Email") in self.duplicate_emails:
            match = {"matchConfidence": 100.0, "record": {"attributes": {"type": "Lead"}, "Id": "00Q1N00000OldLeadAAA"}}
            result = {"entityType": "Lead", "matchEngine": "FuzzyMatchEngine", "size": 1, "success": True,
                      "matchRecords": [match]}
            detail = {"allowSave": False, "duplicateRule": "Standard_Lead_Duplicate_Rule",
                      "duplicateRuleEntityType": "Lead", "matchResults": [result]}
            return _answer(400, [{"errorCode": "DUPLICATES_DETECTED", "message": "Use one of these records?",
                                  "duplicateResut": detail}])
        if sobject == "Lead":
            for name in ("LastName", "Company"):
                if not fields.get(name):
                    return _answer(400, [{"errorCode": "REQUIRED_FIELD_MISSING", "fields": [name],
                                          "message": f"Required fields are missing: [{name}]"}])
        self.serial += 1
        record_id = id18(("00Q" if sobject == "Lead" else "00T") + f"1N00000W{self.serial:04d}")
        self.records[sobject][record_id] = {**fields, "Leadloop_Key__c": key}
        return _answer(201, {"id": record_id, "success": True, "errors": [], "created": True})

    def update(self, request: Any) -> tuple[int, dict[str, str], str]:
        records = json.loads(request.body)["records"]
        return _answer(200, [{"id": record["id"], "success": True, "errors": []} for record in records])

    def query(self, request: Any) -> tuple[int, dict[str, str], str]:
        return _answer(200, {"totalSize": 0, "done": True, "records": []})

    def requests(self, method: str, pattern: str) -> list[Any]:
        """The calls made with ``method`` to a URL matching ``pattern``."""
        return [c for c in self.mock.calls if c.request.method == method and re.search(pattern, c.request.url)]
