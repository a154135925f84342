"""Salesforce OAuth: JWT bearer flow (preferred for a server) or the refresh-token flow.

The access token and the ``instance_url`` it belongs to are cached in Redis under
``leadloop:salesforce:token`` so every worker shares one session. ``instance_url`` always comes
from the token response, never from configuration
(https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_refresh_token_flow.htm).
Tokens, keys and secrets never appear in exceptions or logs.

Flow selection: a private key (``SALESFORCE_PRIVATE_KEY`` or ``SALESFORCE_PRIVATE_KEY_FILE``)
selects the JWT bearer flow; otherwise ``SALESFORCE_REFRESH_TOKEN`` selects the refresh-token
flow.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import requests

from connectors.base import CrmAuthError, CrmError

TOKEN_KEY = "leadloop:salesforce:token"
DEFAULT_LOGIN_URL = "https://login.salesforce.com"
#: Salesforce's default session timeout is 2 h; a 401 INVALID_SESSION_ID refreshes early anyway.
DEFAULT_TOKEN_TTL = 3600
#: SSF ``login.py`` uses now + 3 minutes for ``exp``.
JWT_LIFETIME = 180
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TIMEOUT = (10, 30)


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and the org instance it is valid for."""

    access_token: str
    instance_url: str

    def __repr__(self) -> str:  # never print the token itself
        return f"Token(instance_url={self.instance_url!r})"


class SalesforceAuth:
    """Gets, caches and drops Salesforce access tokens."""

    def __init__(self, config: Mapping[str, Any], redis: Any = None,
                 session: requests.Session | None = None):
        self.config = config
        self.redis = redis
        self.session = session or requests.Session()
        self.login_url = (config.get("SALESFORCE_LOGIN_URL") or DEFAULT_LOGIN_URL).rstrip("/")
        self.ttl = int(config.get("SALESFORCE_TOKEN_TTL") or DEFAULT_TOKEN_TTL)
        #: Used instead of Redis when there is none (one-off CLI runs).
        self._memory: Token | None = None

    # --- cache -------------------------------------------------------------------------------

    def token(self) -> Token:
        """Return the cached token, or log in and cache a new one. Raises ``CrmAuthError``."""
        if self.redis is None:
            self._memory = self._memory or self.login()
            return self._memory
        cached = self.redis.get(TOKEN_KEY)
        if cached:
            try:
                data = json.loads(cached)
                return Token(data["access_token"], data["instance_url"])
            except (ValueError, KeyError, TypeError):
                pass  # a corrupt entry is replaced below
        token = self.login()
        payload = {"access_token": token.access_token, "instance_url": token.instance_url}
        self.redis.set(TOKEN_KEY, json.dumps(payload), ex=self.ttl)
        return token

    def invalidate(self, token: Token) -> None:
        """Drop ``token`` from the cache unless another worker already replaced it."""
        if self.redis is None:
            self._memory = None
            return
        cached = self.redis.get(TOKEN_KEY)
        try:
            current = json.loads(cached)["access_token"] if cached else None
        except (ValueError, KeyError, TypeError):
            current = token.access_token
        if current == token.access_token:
            self.redis.delete(TOKEN_KEY)

    # --- flows -------------------------------------------------------------------------------

    def login(self) -> Token:
        """Run the configured OAuth flow and return a fresh token (not cached)."""
        client_id = self.config.get("SALESFORCE_CLIENT_ID")
        if not client_id:
            raise CrmAuthError("SALESFORCE_CLIENT_ID is not set")
        key = self._private_key()
        if key:
            username = self.config.get("SALESFORCE_USERNAME")
            if not username:
                raise CrmAuthError("SALESFORCE_USERNAME is not set (needed for the JWT bearer flow)")
            form = {"grant_type": JWT_GRANT, "assertion": self.jwt_assertion(client_id, username, key)}
        elif self.config.get("SALESFORCE_REFRESH_TOKEN"):
            form = {
                "grant_type": "refresh_token",
                "refresh_token": self.config["SALESFORCE_REFRESH_TOKEN"],
                "client_id": client_id,
            }
            if self.config.get("SALESFORCE_CLIENT_SECRET"):
                form["client_secret"] = self.config["SALESFORCE_CLIENT_SECRET"]
        else:
            raise CrmAuthError(
                "no Salesforce credentials: set SALESFORCE_PRIVATE_KEY_FILE (or SALESFORCE_PRIVATE_KEY) "
                "for the JWT bearer flow, or SALESFORCE_REFRESH_TOKEN"
            )
        return self._token_request(form)

    def jwt_assertion(self, client_id: str, username: str, private_key: str) -> str:
        """Return the RS256 JWT for the bearer flow (iss, sub, aud, exp)."""
        claims = {
            "iss": client_id,
            "sub": username,
            "aud": self.login_url,
            "exp": int(time.time()) + JWT_LIFETIME,
        }
        try:
            return jwt.encode(claims, private_key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError):
            raise CrmAuthError("the Salesforce private key is not a usable RSA PEM key") from None

    def _private_key(self) -> str | None:
        text = self.config.get("SALESFORCE_PRIVATE_KEY")
        if text:
            # Env files often carry a PEM on one line with literal "\n" separators.
            return text.replace("\\n", "\n") if "\n" not in text else text
        path = self.config.get("SALESFORCE_PRIVATE_KEY_FILE")
        if not path:
            return None
        try:
            return Path(path).read_text()
        except OSError as exc:
            raise CrmAuthError(f"cannot read SALESFORCE_PRIVATE_KEY_FILE: {exc.strerror}") from None

    def _token_request(self, form: Mapping[str, str]) -> Token:
        url = f"{self.login_url}/services/oauth2/token"
        try:
            response = self.session.post(url, data=form, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise CrmError(f"Salesforce token request failed: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise CrmError(f"Salesforce token endpoint answered {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code != 200 or not isinstance(data, dict):
            error = data.get("error", "") if isinstance(data, dict) else ""
            description = data.get("error_description", "") if isinstance(data, dict) else ""
            status = f"{response.status_code} {error}".strip()
            raise CrmAuthError(f"Salesforce refused the token request ({status}): {description}")
        access_token, instance_url = data.get("access_token"), data.get("instance_url")
        if not access_token or not isinstance(instance_url, str) or not instance_url.startswith("https://"):
            raise CrmAuthError("Salesforce token response lacks access_token or an https instance_url")
        return Token(access_token, instance_url.rstrip("/"))
