"""The phone fast path (``scoring.phones``) answers exactly as ``phonenumbers`` does."""

from __future__ import annotations

import random
from collections.abc import Iterator

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from scoring.phones import fast_phone_valid, library_phone_valid

TYPES = [value for name, value in vars(PhoneNumberType).items() if name.isupper() and isinstance(value, int)]
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
FORMATS = (PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.NATIONAL)


def _examples() -> Iterator[tuple[phonenumbers.PhoneNumber, str]]:
    for region in REGIONS:
        for number_type in TYPES:
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None:
                yield example, region
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            yield example, "001"


def _mutate(rng: random.Random, digits: str) -> str:
    roll, at = rng.random(), rng.randrange(len(digits) + 1)
    if roll < 0.3:
        return digits[:at] + rng.choice("0123456789") + digits[at:]
    if roll < 0.6 and len(digits) > 1:
        return digits[:at] + digits[at + 1:]
    if roll < 0.9 and digits:
        at = min(at, len(digits) - 1)
        return digits[:at] + rng.choice("0123456789") + digits[at + 1:]
    return digits + rng.choice("0123456789") * rng.randint(1, 3)


def _separate(rng: random.Random, digits: str) -> str:
    """Spread digits into groups with spaces, dashes, dots or a parenthesised first group."""
    groups, rest = [], digits
    while rest:
        size = rng.randint(1, 4)
        groups.append(rest[:size])
        rest = rest[size:]
    separator = rng.choice([" ", "-", ".", " - ", "", " "])
    if len(groups) > 1 and rng.random() < 0.3:
        groups[0] = f"({groups[0]})"
    return separator.join(groups)


def _numbers(seed: int) -> Iterator[tuple[str, str | None]]:
    rng = random.Random(seed)
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    for example, home in _examples():
        code, national = example.country_code, phonenumbers.national_significant_number(example)
        regions = [None, home if home != "001" else None, rng.choice(REGIONS), "DE", "US", "GB"]
        for number_format in FORMATS:
            text = phonenumbers.format_number(example, number_format)
            yield text, rng.choice(regions)
            yield text.replace(" ", rng.choice(["-", ".", ""])), rng.choice(regions)
        for _ in range(6):
            digits = national if rng.random() < 0.3 else _mutate(rng, national)
            cc = str(code) if rng.random() < 0.8 else str(rng.choice(codes))
            prefix = rng.choice(["+", "+", "00", "011", "", "0", "+0", cc[:1]])
            yield prefix + (cc if prefix != "0" else "") + " " + _separate(rng, digits), rng.choice(regions)
            yield _separate(rng, digits), rng.choice(regions)
            yield "0" + _separate(rng, digits), rng.choice(regions)
            yield cc + _separate(rng, digits), home if home != "001" else None
    for _ in range(6000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 19)))
        text = rng.choice(["+", "", "", "00", "0"]) + _separate(rng, digits)
        yield text, rng.choice([None, "DE", "US", "GB", "FR", "NL", "IT", "CA", rng.choice(REGIONS)])


def test_fast_path_equals_library() -> None:
    checked = fast = 0
    mismatches = []
    for text, region in _numbers(11):
        checked += 1
        answer = fast_phone_valid(text, region)
        if answer is None:
            continue
        fast += 1
        if answer != library_phone_valid(text, region):
            mismatches.append((text, region, answer))
    assert not mismatches[:20]
    assert checked > 30_000
    assert fast > 0.85 * checked  # most shapes take the fast path, else it is not worth having


def test_other_shapes_go_to_the_library() -> None:
    for text in ("+49 30 1234567 ext. 12", "+1 800 FLOWERS", "tel:+49-30-1234567", "+４９ ３０ 1234567",
                 "030/1234567", "+49 30 1234567#", "12", "+49 (0) 30 1234567 x 5"):
        assert fast_phone_valid(text, "DE") is None, text
    assert fast_phone_valid("030 1234567", None) is None
    assert fast_phone_valid("030 1234567", "XX") is None
