"""HubSpot request signatures: published vectors, one test per refusal message, rotation."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from connectors.base import InboundRequest, IntakeContext, SignatureError
from connectors.hubspot import webhook
from connectors.hubspot.webhook import (
    decode_v3_uri,
    hubspot_signature_v1,
    hubspot_signature_v2,
    hubspot_signature_v3,
    verify_webhook,
    verify_workflow,
)

FIXTURES = Path(__file__).parent / "fixtures" / "hubspot"
SDK_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
SDK_URI = "https://www.example.com/webhook_uri"
# v3 example attributed to https://developers.hubspot.com/docs/api/webhooks/validating-requests
DOCS_SECRET = "cfc68c0b-4b4e-4ef8-b764-95350e4ea479"
DOCS_URI = "https://webhook.site/335453f5-94b3-49d9-b684-a55354d4b8df"
DOCS_TS = "1752613922216"
DOCS_SIGNATURE = "gbj1XPRvUt0noT7i7fXfTzOD4sLzQmf0VT28ZYq0EYg="
DOCS_NOW = int(DOCS_TS) / 1000 + 1


def docs_request(**overrides) -> InboundRequest:
    headers = {"X-HubSpot-Signature-v3": DOCS_SIGNATURE, "X-HubSpot-Request-Timestamp": DOCS_TS}
    headers.update(overrides.pop("headers", {}))
    fields = {"method": "POST", "url": DOCS_URI, "headers": headers,
              "body": (FIXTURES / "contact_creation.raw").read_bytes()}
    fields.update(overrides)
    return InboundRequest(**fields)


def config(secrets: str = DOCS_SECRET, **extra) -> IntakeContext:
    return IntakeContext({"HUBSPOT_CLIENT_SECRETS": secrets, **extra})


# --- published vectors -----------------------------------------------------------------------

def test_v1_vector():
    body = (FIXTURES / "contact_creation_v1.raw").read_bytes()
    assert hubspot_signature_v1(SDK_SECRET, body) == \
        "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"


def test_v2_get_vector():
    assert hubspot_signature_v2(SDK_SECRET, "GET", SDK_URI, b"") == \
        "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"


def test_v2_post_vector():
    assert hubspot_signature_v2(SDK_SECRET, "POST", SDK_URI, b'{"example_field":"example_value"}') == \
        "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"


def test_v3_sdk_vector():
    body = b"{'example_field':'example_value'}"
    assert hubspot_signature_v3(SDK_SECRET, "POST", SDK_URI, body, "1693657560000") == \
        "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="


def test_v3_docs_webhook_example_verifies():
    verify_webhook(docs_request(), config(), now=DOCS_NOW)


def test_v1_request_verifies_when_no_v3_header():
    body = (FIXTURES / "contact_creation_v1.raw").read_bytes()
    request = InboundRequest("POST", "https://leadloop.example/webhooks/hubspot", {
        "X-HubSpot-Signature": "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de",
        "X-HubSpot-Signature-Version": "v1"}, body)
    verify_webhook(request, config(SDK_SECRET))


def test_v2_request_verifies_when_no_v3_header():
    request = InboundRequest("POST", SDK_URI, {
        "X-HubSpot-Signature": "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900",
        "X-HubSpot-Signature-Version": "v2"}, b'{"example_field":"example_value"}')
    verify_webhook(request, config(SDK_SECRET))


def test_v3_wins_over_older_headers_on_the_same_request():
    # HubSpot sends older signatures beside v3; a bad v1 must not matter, a bad v3 must.
    verify_webhook(docs_request(headers={"X-HubSpot-Signature": "00", "X-HubSpot-Signature-Version": "v1"}),
                   config(), now=DOCS_NOW)


# --- rotation and URI handling -----------------------------------------------------------------

def test_any_configured_secret_verifies():
    verify_webhook(docs_request(), config(f"new-secret-not-yet-used, {DOCS_SECRET}"), now=DOCS_NOW)


@pytest.mark.parametrize(("raw", "decoded"), [
    ("https://x.example/a%3Ab%2Fc%3Fd%40e%21f%24g%27h%28i%29j%2Ak%2Cl%3Bm", "https://x.example/a:b/c?d@e!f$g'h(i)j*k,l;m"),
    ("https://x.example/p?q=a%20b%3Dc", "https://x.example/p?q=a%20b%3Dc"),
])
def test_v3_decodes_only_the_documented_escapes(raw, decoded):
    assert decode_v3_uri(raw) == decoded


def test_v3_signs_the_decoded_uri():
    body, ts = b"[]", DOCS_TS
    signature = hubspot_signature_v3(DOCS_SECRET, "POST", "https://x.example/h?e=a@b.c", body, ts)
    request = InboundRequest("POST", "https://x.example/h?e=a%40b.c", {
        "X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": ts}, body)
    verify_webhook(request, config(), now=DOCS_NOW)


def test_header_names_are_case_insensitive_in_werkzeug_headers():
    from werkzeug.datastructures import Headers

    headers = Headers({"x-hubspot-signature-V3": DOCS_SIGNATURE, "x-hubspot-request-timestamp": DOCS_TS})
    request = InboundRequest("POST", DOCS_URI, headers, (FIXTURES / "contact_creation.raw").read_bytes())
    verify_webhook(request, config(), now=DOCS_NOW)


# --- one test per refusal message ------------------------------------------------------------

def refusal(request: InboundRequest, cfg: IntakeContext, **kwargs) -> str:
    with pytest.raises(SignatureError) as info:
        verify_webhook(request, cfg, **kwargs)
    assert info.value.status == 401
    return str(info.value)


def test_no_secret_configured():
    assert refusal(docs_request(), config(" , "), now=DOCS_NOW) == webhook.NO_SECRET


def test_missing_signature():
    request = docs_request(headers={"X-HubSpot-Signature-v3": ""})
    assert refusal(request, config()) == webhook.MISSING_SIGNATURE


def test_unknown_version():
    request = docs_request(headers={"X-HubSpot-Signature-v3": "", "X-HubSpot-Signature": "ab",
                                    "X-HubSpot-Signature-Version": "v9"})
    assert refusal(request, config()) == webhook.UNKNOWN_VERSION


@pytest.mark.parametrize("timestamp", ["", "soon", "1752613922.216"])
def test_missing_or_malformed_timestamp(timestamp):
    request = docs_request(headers={"X-HubSpot-Request-Timestamp": timestamp})
    assert refusal(request, config(), now=DOCS_NOW) == webhook.BAD_TIMESTAMP


def test_stale_timestamp():
    assert refusal(docs_request(), config(), now=DOCS_NOW + 300) == webhook.STALE_TIMESTAMP


def test_timestamp_too_far_in_the_future():
    assert refusal(docs_request(), config(), now=int(DOCS_TS) / 1000 - 301) == webhook.FUTURE_TIMESTAMP


def test_timestamp_at_the_edges_of_the_window_passes():
    verify_webhook(docs_request(), config(), now=int(DOCS_TS) / 1000 + 299.9)
    verify_webhook(docs_request(), config(), now=int(DOCS_TS) / 1000 - 299.9)


def test_v3_mismatch_on_tampered_body():
    body = (FIXTURES / "contact_creation.raw").read_bytes().replace(b"138017612137", b"138017612138")
    assert refusal(docs_request(body=body), config(), now=DOCS_NOW) == webhook.MISMATCH


def test_v3_mismatch_on_path_only_uri():
    # Behind a proxy the full public URL must be rebuilt; the path alone cannot match.
    request = docs_request(url="/335453f5-94b3-49d9-b684-a55354d4b8df")
    assert refusal(request, config(), now=DOCS_NOW) == webhook.MISMATCH


def test_v1_mismatch_with_wrong_secret():
    body = (FIXTURES / "contact_creation_v1.raw").read_bytes()
    request = InboundRequest("POST", SDK_URI, {
        "X-HubSpot-Signature": "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de",
        "X-HubSpot-Signature-Version": "v1"}, body)
    assert refusal(request, config("other-secret")) == webhook.MISMATCH


# --- workflow endpoint: v2 signature or API-key header -------------------------------------------

WORKFLOW_URL = "https://leadloop.example/webhooks/hubspot/workflow?source=wf1"
WORKFLOW_BODY = b'{"leadloop_event":"content_download","email":"a@example.com"}'


def workflow_request(headers: dict) -> InboundRequest:
    return InboundRequest("POST", WORKFLOW_URL, headers, WORKFLOW_BODY)


def signed(signature: str, version: str) -> InboundRequest:
    return workflow_request({"X-HubSpot-Signature": signature, "X-HubSpot-Signature-Version": version})


def test_workflow_v2_signature_verifies():
    signature = hubspot_signature_v2(SDK_SECRET, "POST", WORKFLOW_URL, WORKFLOW_BODY)
    verify_workflow(signed(signature, "v2"), config(SDK_SECRET))


def test_workflow_refuses_v1_signature():
    signature = hubspot_signature_v1(SDK_SECRET, WORKFLOW_BODY)
    with pytest.raises(SignatureError, match=re.escape(webhook.UNKNOWN_VERSION)):
        verify_workflow(signed(signature, "v1"), config(SDK_SECRET))


def test_workflow_api_key_header_any_configured_key():
    cfg = IntakeContext({"HUBSPOT_WORKFLOW_API_KEYS": "old-key,new-key"})
    verify_workflow(workflow_request({"X-Leadloop-Api-Key": "new-key"}), cfg)
    verify_workflow(workflow_request({"X-Leadloop-Api-Key": "old-key"}), cfg)


def test_workflow_api_key_custom_header_name():
    cfg = IntakeContext({"HUBSPOT_WORKFLOW_API_KEYS": "k1", "HUBSPOT_WORKFLOW_API_KEY_HEADER": "X-Wf-Key"})
    verify_workflow(workflow_request({"X-Wf-Key": "k1"}), cfg)


def test_workflow_wrong_api_key():
    with pytest.raises(SignatureError, match=re.escape(webhook.API_KEY_MISMATCH)):
        verify_workflow(workflow_request({"X-Leadloop-Api-Key": "guess"}),
                        IntakeContext({"HUBSPOT_WORKFLOW_API_KEYS": "k1"}))


def test_workflow_nothing_configured():
    with pytest.raises(SignatureError, match=re.escape(webhook.NO_CREDENTIAL)):
        verify_workflow(workflow_request({"X-Leadloop-Api-Key": "k1"}), IntakeContext({}))


def test_workflow_neither_signature_nor_key():
    with pytest.raises(SignatureError, match=re.escape(webhook.MISSING_SIGNATURE_OR_KEY)):
        verify_workflow(workflow_request({}),
                        IntakeContext({"HUBSPOT_WORKFLOW_API_KEYS": "k1", "HUBSPOT_CLIENT_SECRETS": "s"}))


def test_workflow_signature_with_wrong_secret():
    signature = hashlib.sha256(b"x").hexdigest()
    with pytest.raises(SignatureError, match=re.escape(webhook.MISMATCH)):
        verify_workflow(signed(signature, "v2"), config(SDK_SECRET))
