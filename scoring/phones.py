"""Phone validity without ``phonenumbers.parse`` for the shapes leads type most, same answers.

``phonenumbers.parse`` plus ``is_valid_number`` costs 35-50 µs a number, mostly in generic text
normalisation (letters, full-width digits, extensions, RFC 3966) that a number made of ASCII
digits, one leading ``+`` and the separators `` ().-`` never needs. For those shapes this module
walks the same steps as the library (country code or IDD, the default region's own country code,
national prefix, length checks, region and type patterns) on phonenumbers' own metadata, with
its regexes compiled once per region (~8 µs a number). Anything else goes to the library
(``tests/test_scoring_fastpath_phones.py`` compares both on tens of thousands of numbers).
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, SUPPORTED_REGIONS, PhoneMetadata
from phonenumbers.phonenumberutil import (  # type: ignore[attr-defined]
    REGION_CODE_FOR_NON_GEO_ENTITY,
    ValidationResult,
    region_code_for_country_code,
)

try:  # the library's own steps for the rare branches; a release without them turns the fast path off
    from phonenumbers.phonenumberutil import _maybe_strip_national_prefix_carrier_code, _test_number_length
except ImportError:  # pragma: no cover
    _maybe_strip_national_prefix_carrier_code = _test_number_length = None  # type: ignore[assignment]

#: Off switch: False sends every number to the library.
FAST_PHONES = _test_number_length is not None

#: What the fast path accepts: an optional "+", then ASCII digits and `` ().-`` only.
_SIMPLE = re.compile(r"(\+?)[0-9 ().\-]+")
_NON_DIGITS = re.compile(r"[^0-9]")
#: ``phonenumbers.parse`` limits (``_MIN_LENGTH_FOR_NSN`` ...), named as there.
_MAX_INPUT_STRING_LENGTH = 250
_MIN_LENGTH_FOR_NSN, _MAX_LENGTH_FOR_NSN, _MAX_LENGTH_COUNTRY_CODE = 2, 17, 3
#: ``_test_number_length`` results after which ``parse`` keeps the national prefix.
_KEEP_PREFIX = (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY, ValidationResult.INVALID_LENGTH)
#: The order ``_number_type_helper`` tries the number types in; any match makes a number valid.
_TYPE_DESCS = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
               "voicemail", "fixed_line", "mobile")

#: ``_patterns_for_length`` by (region id, country code, length), filled on first use.
_BY_LENGTH: dict[tuple[str, int, int], tuple[re.Pattern[str], re.Pattern[str]] | bool] = {}


def fast_phone_valid(text: str, region: str | None) -> bool | None:
    """Return whether ``phonenumbers`` would parse ``text`` as a valid number, or None to ask it.

    ``text`` is stripped; ``region`` is the default region as ``phonenumbers.parse`` takes it.
    """
    if not FAST_PHONES or len(text) > _MAX_INPUT_STRING_LENGTH:
        return None
    shape = _SIMPLE.fullmatch(text)
    if shape is None or (region is not None and region not in SUPPORTED_REGIONS):
        return None
    digits = _NON_DIGITS.sub("", text)
    if len(digits) < 3:  # the library's "two digits" viability rule: leave it to the library
        return None
    if shape.group(1):
        return _international(digits, region)
    if region is None:
        return None
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.country_code is None:
        return None
    idd = _compiled(metadata.international_prefix) if metadata.international_prefix else None
    found = idd.match(digits) if idd is not None else None
    if found is not None and not digits.startswith("0", found.end()):
        return _international(digits[found.end():], region)
    country_code = metadata.country_code
    prefix = str(country_code)
    if digits.startswith(prefix):
        # The default region's own country code typed without "+": parse drops it when the
        # number only fits (or only stops being too long) without it.
        _, national, _ = _maybe_strip_national_prefix_carrier_code(digits[len(prefix):], metadata)
        general = metadata.general_desc
        if ((not _matches_pattern(digits, general) and _matches_pattern(national, general))
                or _test_number_length(digits, metadata) == ValidationResult.TOO_LONG):
            number_metadata = _metadata_for(country_code, region)
            return None if number_metadata is None else _finish(country_code, national, number_metadata)
    return _finish(country_code, digits, metadata)


def _international(digits: str, region: str | None) -> bool | None:
    """The number after "+" or an IDD; None where parse's error handling takes over."""
    if len(digits) <= _MIN_LENGTH_FOR_NSN:
        return False
    if digits[0] == "0":
        return None
    for size in range(1, min(len(digits), _MAX_LENGTH_COUNTRY_CODE) + 1):
        country_code = int(digits[:size])
        if country_code in COUNTRY_CODE_TO_REGION_CODE:
            metadata = _metadata_for(country_code, region)
            return None if metadata is None else _finish(country_code, digits[size:], metadata)
    return None


def _metadata_for(country_code: int, region: str | None) -> PhoneMetadata | None:
    number_region = region_code_for_country_code(country_code)
    if number_region == region:
        return PhoneMetadata.metadata_for_region(region)
    return PhoneMetadata.metadata_for_region_or_calling_code(country_code, number_region)


def _finish(country_code: int, national: str, metadata: PhoneMetadata) -> bool:
    """The end of ``parse`` (national prefix, lengths) and ``is_valid_number``."""
    if len(national) < _MIN_LENGTH_FOR_NSN:
        return False
    national_prefix = metadata.national_prefix_for_parsing
    if national_prefix and _compiled(national_prefix).match(national):
        _, stripped, _ = _maybe_strip_national_prefix_carrier_code(national, metadata)
        if stripped != national and _test_number_length(stripped, metadata) not in _KEEP_PREFIX:
            national = stripped
    if not _MIN_LENGTH_FOR_NSN <= len(national) <= _MAX_LENGTH_FOR_NSN:
        return False
    # The national significant number is ``national``: parse keeps its leading zeros.
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if regions is None:
        return False
    region: str | None = regions[0] if len(regions) == 1 else next((r for r in regions if _owns(r, national)), None)
    if region is None:
        return False
    found: PhoneMetadata | None
    if region == REGION_CODE_FOR_NON_GEO_ENTITY:
        found = PhoneMetadata.metadata_for_nongeo_region(country_code)
    else:
        found = PhoneMetadata.metadata_for_region(region)
        if found is None or found.country_code != country_code:
            return False
    return found is not None and _has_type(national, found)


def _owns(region: str, national: str) -> bool:
    """``_region_code_for_number_from_list``'s test for one region of a shared country code."""
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return False
    if metadata.leading_digits is not None:
        return _compiled(metadata.leading_digits).match(national) is not None
    return _has_type(national, metadata)


def _has_type(national: str, metadata: PhoneMetadata) -> bool:
    """Whether ``_number_type_helper`` returns anything but UNKNOWN."""
    key = (metadata.id, metadata.country_code or 0, len(national))  # metadata objects are not hashable
    found = _BY_LENGTH.get(key)
    if found is None:
        found = _BY_LENGTH[key] = _patterns_for_length(metadata, len(national))
    if found is False or found is True:
        return False
    return found[0].fullmatch(national) is not None and found[1].fullmatch(national) is not None


def _patterns_for_length(metadata: PhoneMetadata, length: int) -> tuple[re.Pattern[str], re.Pattern[str]] | bool:
    """The general pattern and one alternation of the type patterns numbers of ``length`` may match.

    ``_is_number_matching_desc`` skips a description whose possible lengths leave out the
    number's length and never matches one without a pattern. False: no number of this length
    can be valid.
    """
    general = metadata.general_desc
    if general is None or not general.national_number_pattern or (
            general.possible_length and length not in general.possible_length):
        return False
    # With the same fixed-line and mobile patterns the library does not try mobile on its own.
    names = _TYPE_DESCS[:-1] if metadata.same_mobile_and_fixed_line_pattern else _TYPE_DESCS
    descs = [getattr(metadata, name) for name in names]
    patterns = [desc.national_number_pattern for desc in descs if desc is not None and desc.national_number_pattern
                and (not desc.possible_length or length in desc.possible_length)]
    if not patterns:
        return False
    return _compiled(general.national_number_pattern), _compiled("|".join(f"(?:{p})" for p in patterns))


def _matches_pattern(national: str, desc: object) -> bool:
    """``_match_national_number`` without prefix matches."""
    pattern = getattr(desc, "national_number_pattern", None)
    return bool(pattern) and _compiled(pattern).fullmatch(national) is not None


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def library_phone_valid(text: str, region: str | None) -> bool:
    """Return what ``phonenumbers.parse`` and ``is_valid_number`` say (False on parse errors)."""
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(text, region))
    except phonenumbers.NumberParseException:
        return False
