"""Canonical lead field names, built-in activity kinds and the value helpers rules use.

Connectors map their CRM's fields to the names in ``LEAD_FIELDS``; a field they do not map
keeps its CRM name, so a rules file may still reference custom fields by that name.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import phonenumbers

#: The canonical lead fields, each with what it holds and how scoring uses it.
LEAD_FIELDS: Mapping[str, str] = {
    "email": "Email address. Its domain drives the free-mail, disposable, student and competitor "
             "checks; its local part the made-up-address check.",
    "first_name": "Given name.",
    "last_name": "Family name.",
    "company": "Company or organisation name as typed or enriched.",
    "job_title": "Job title as typed; the student check looks for words like 'student'.",
    "phone": "Main phone number, any format; validated with the lead's country as the region.",
    "mobile_phone": "Mobile number; a lead counts as having a phone if either number is valid.",
    "country": "ISO-2 code (DE) or an English country name (Germany); rules see the ISO-2 code.",
    "state": "State, province or region.",
    "city": "City.",
    "industry": "Industry as the CRM names it.",
    "employees": "Number of employees (a number).",
    "annual_revenue": "Annual revenue (a number, in the CRM's currency).",
    "website": "Company website; its domain is also used by the competitor check.",
    "lead_source": "Where the lead first came from (the CRM's lead source).",
    "lead_status": "The CRM's lead status.",
    "lifecycle_stage": "The CRM's lifecycle stage.",
    "owner_id": "The CRM user who owns the lead.",
    "do_not_contact": "True when the person asked not to be contacted.",
}

#: Signal kinds the web intake and connectors produce; a rules file may declare more.
BUILTIN_ACTIVITY_KINDS: frozenset[str] = frozenset({
    "page_view", "content_download", "form_submit", "event_attended", "trial_signup",
    "chat_intent", "email_open", "email_click", "unsubscribe", "bounce",
    "contact_request", "do_not_contact",
})

#: Country names people type that are not the English short names phonenumbers knows.
COUNTRY_ALIASES: Mapping[str, str] = {
    "usa": "US", "u.s.": "US", "u.s.a.": "US", "united states of america": "US", "america": "US",
    "uk": "GB", "u.k.": "GB", "great britain": "GB", "england": "GB", "scotland": "GB",
    "wales": "GB", "northern ireland": "GB", "deutschland": "DE", "österreich": "AT",
    "schweiz": "CH", "suisse": "CH", "españa": "ES", "italia": "IT", "nederland": "NL",
    "holland": "NL", "the netherlands": "NL", "czech republic": "CZ", "russia": "RU",
    "south korea": "KR", "korea": "KR", "uae": "AE", "türkiye": "TR", "turkey": "TR",
}


def _english_locale_data() -> Mapping[str, Mapping[str, str]]:
    """Return phonenumbers' region names by locale (``LOCALE_DATA``) without the geocoder.

    The table lives in ``phonenumbers/geodata/locale.py``, but importing it through its package
    first runs ``phonenumbers/geodata/__init__.py``, which loads ~40 MB of per-prefix place names
    (0.4-0.9 s) that scoring never uses. The file alone loads in ~10 ms.
    """
    path = Path(phonenumbers.__file__).parent / "geodata" / "locale.py"
    spec = importlib.util.spec_from_file_location("phonenumbers.geodata.locale", path)
    if spec is None or spec.loader is None:  # a future layout: take the slow, documented way
        from phonenumbers.geocoder import LOCALE_DATA  # type: ignore[attr-defined]

        return LOCALE_DATA
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LOCALE_DATA


@lru_cache(maxsize=1)
def _country_names() -> dict[str, str]:
    # Only needed when a lead has a country name rather than a code.
    names: dict[str, str] = {}
    for region, by_locale in _english_locale_data().items():
        name = by_locale.get("en", "")
        while name.startswith("*"):
            name = by_locale.get(name[1:], "")
        if name:
            names[name.casefold()] = region
    return names


@lru_cache(maxsize=4096)
def country_code(value: str) -> str | None:
    """Return the ISO-2 region code for a code or country name, or None if unknown."""
    text = value.strip()
    if len(text) == 2 and text.isalpha():
        code = "GB" if text.upper() == "UK" else text.upper()
        return code if code in phonenumbers.SUPPORTED_REGIONS else None
    folded = text.casefold()
    return COUNTRY_ALIASES.get(folded) or _country_names().get(folded)


def as_text(value: Any) -> str:
    """Return a value as case-folded, trimmed text, the form text comparisons use."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().casefold()


def as_number(value: Any) -> float | None:
    """Return a number for ints, floats and numeric text ("1,200"), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).replace(",", "").replace("_", "").strip())
    except ValueError:
        return None


def is_present(value: Any) -> bool:
    """Return True unless the value is missing, blank text or an empty collection."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | tuple | set | dict):
        return bool(value)
    return True


def is_truthy(value: Any) -> bool:
    """Return True for true-ish CRM values: True, 1, "true", "yes", "1"."""
    if isinstance(value, str):
        return value.strip().casefold() in {"true", "yes", "1", "y"}
    return bool(value)


def split_email(email: Any) -> tuple[str, str]:
    """Return (local part without +tag, domain), both lower-case; ("", "") if not an address."""
    if not isinstance(email, str):
        return "", ""
    local, sep, domain = email.strip().lower().rpartition("@")
    if not sep or not local or "." not in domain:
        return "", ""
    return local.split("+", 1)[0], domain.strip(".")


def website_domain(url: Any) -> str:
    """Return the host of a website value (``https://www.acme.com/x`` -> ``acme.com``)."""
    if not isinstance(url, str) or not url.strip():
        return ""
    host = url.strip().lower().split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return host[4:] if host.startswith("www.") else host


def condition_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The lead's fields as conditions test them (fit, overrides, routes): ``country`` as its
    ISO-2 code ("Germany" and "de" are DE; an unknown name stays, trimmed) and ``email_domain``
    worked out from ``email`` unless given."""
    values = dict(fields)
    country = values.get("country")
    if isinstance(country, str) and country.strip():
        values["country"] = country_code(country) or country.strip()
    _local, domain = split_email(values.get("email"))
    values.setdefault("email_domain", domain or None)
    return values
