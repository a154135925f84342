"""Table tests of the per-value checks behind the negative signals."""

from __future__ import annotations

import pytest

from scoring.checks import (
    DISPOSABLE_DOMAINS,
    FREE_MAIL_DOMAINS,
    domain_matches,
    gibberish_points,
    looks_gibberish,
    phone_status,
    suffix_matcher,
)
from scoring.fields import as_number, as_text, country_code, split_email, website_domain

REAL_LOCAL_PARTS = [
    "anna.mueller", "j.doe", "jsmith", "bschmidt", "kmcdonald", "info", "sales.team", "peter_k1985",
    "mark42", "lisa.wong+news", "wojciech.szczepanski", "thorsten.schwarzkopf", "zbigniew.brzezinski",
    "mkrtchyan", "dmitriy.ivanov", "nguyen.van.anh", "xu.li", "mgmt", "jdk", "hr", "ljubljana.office",
    "christopher.mcknight", "olusegun.adeyemi", "siobhan.oneill",
]
MADE_UP_LOCAL_PARTS = [
    "sdfslk522", "asdfgh", "qwerty123", "xkcdjq", "fjdksla", "hjkhjk88", "a1b2c3d4", "x9k2m7q",
    "zzzzzz", "cdhjksd", "wqxzvt92", "lkjhgf",
]


@pytest.mark.parametrize("local", REAL_LOCAL_PARTS)
def test_real_addresses_do_not_look_made_up(local: str) -> None:
    assert not looks_gibberish(local), gibberish_points(local)


@pytest.mark.parametrize("local", MADE_UP_LOCAL_PARTS)
def test_keyboard_mashed_addresses_look_made_up(local: str) -> None:
    assert looks_gibberish(local), gibberish_points(local)


@pytest.mark.parametrize(("local", "points"), [
    ("sdfslk522", 4),      # no vowels (2) + 5-consonant run (1) + digit tail 522 (1)
    ("qwerty123", 3),      # keyboard run (2) + digit tail (1)
    ("anna1985", 0),       # a year is not a suspicious digit tail
    ("jsmith", 1),         # initial + surname: few vowels alone is not enough
    ("a1b2c3d4", 2),       # letters and digits alternating
])
def test_gibberish_points_add_up_as_documented(local: str, points: int) -> None:
    assert gibberish_points(local) == points


@pytest.mark.parametrize(("number", "region", "status"), [
    ("+49 30 901820", None, "valid"),
    ("030 901820", "DE", "valid"),
    ("(415) 123-4567", "US", "invalid"),      # no US area/exchange starts with 1
    ("(650) 253-0000", "US", "valid"),
    ("12345", "DE", "invalid"),
    ("not a phone", "GB", "invalid"),
    ("0171 1234567", None, "unknown"),         # national format, region unknown
    ("+44 20 7946 0958", "DE", "valid"),       # an international number ignores the region
])
def test_phone_status(number: str, region: str | None, status: str) -> None:
    assert phone_status(number, region) == status


@pytest.mark.parametrize(("domain", "listed_in", "expected"), [
    ("gmail.com", FREE_MAIL_DOMAINS, True),
    ("web.de", FREE_MAIL_DOMAINS, True),
    ("acme-logistics.com", FREE_MAIL_DOMAINS, False),
    ("mailinator.com", DISPOSABLE_DOMAINS, True),
    ("gmail.com", DISPOSABLE_DOMAINS, False),
    ("ox.ac.uk", suffix_matcher([".ac.uk", "edu"]), True),
    ("cs.stanford.edu", suffix_matcher([".ac.uk", "edu"]), True),
    ("education.com", suffix_matcher([".ac.uk", "edu"]), False),
    ("eu.rival.com", suffix_matcher(["rival.com"]), True),
    ("notrival.com", suffix_matcher(["rival.com"]), False),
])
def test_domain_matches_domain_and_parents(domain: str, listed_in: frozenset[str], expected: bool) -> None:
    assert domain_matches(domain, listed_in) is expected


@pytest.mark.parametrize(("value", "code"), [
    ("DE", "DE"), ("de", "DE"), ("Germany", "DE"), ("germany ", "DE"), ("Deutschland", "DE"),
    ("UK", "GB"), ("United Kingdom", "GB"), ("USA", "US"), ("Atlantis", None), ("XX", None),
])
def test_country_code(value: str, code: str | None) -> None:
    assert country_code(value) == code


@pytest.mark.parametrize(("email", "parts"), [
    ("Ada.Lovelace+news@Acme.COM", ("ada.lovelace", "acme.com")),
    ("no-at-sign", ("", "")),
    ("x@localhost", ("", "")),
    (None, ("", "")),
])
def test_split_email(email: object, parts: tuple[str, str]) -> None:
    assert split_email(email) == parts


def test_value_helpers() -> None:
    assert website_domain("https://www.Acme.com:8443/about") == "acme.com"
    assert as_number("1,200") == 1200.0 and as_number(True) is None and as_number("many") is None
    assert as_text(50.0) == "50" and as_text(" Logistics ") == "logistics" and as_text(True) == "true"
