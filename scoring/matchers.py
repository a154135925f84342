"""Matching signals to rules: assets, URL globs, property checks and field tests.

``SignalRouter`` decides once per (kind, asset id, url) which rules and conditions a signal
feeds, so the engine does a dict lookup per signal instead of running every matcher.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .fields import as_number, as_text, is_present, is_truthy

#: What a kind-index entry feeds: an engagement rule, a signal condition, a negative signal
#: (also the positions of those target lists in a ``Route``).
TARGET_RULE, TARGET_CONDITION, TARGET_NEGATIVE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Asset:
    id: str
    name: str
    intent: str
    tags: frozenset[str]


@dataclass(slots=True)
class SignalMatcher:
    """Which signals a rule or condition looks at, beyond the event kind it is indexed by."""

    assets: frozenset[str] | None = None
    intents: frozenset[str] | None = None
    tags: frozenset[str] | None = None
    url: re.Pattern[str] | None = None
    properties: tuple[tuple[str, frozenset[str]], ...] = ()

    def matches_static(self, asset: Asset | None, url: Any) -> bool:
        """Return whether the asset and URL fit (everything but ``properties``)."""
        if self.assets is not None and (asset is None or asset.id not in self.assets):
            return False
        if self.intents is not None and (asset is None or asset.intent not in self.intents):
            return False
        if self.tags is not None and (asset is None or self.tags.isdisjoint(asset.tags)):
            return False
        return self.url is None or (isinstance(url, str) and self.url.match(url) is not None)

    def matches_properties(self, properties: Mapping[str, Any]) -> bool:
        for name, allowed in self.properties:
            value = properties.get(name)
            if value is None or as_text(value) not in allowed:
                return False
        return True


#: What one signal feeds: (engagement rules it counts for outright, (rule, matcher) pairs whose
#: property checks still have to pass, (condition, matcher) pairs, (negative signal, matcher)
#: pairs, the label rules record, the label conditions record); a None matcher has nothing left
#: to check. None when the signal feeds nothing.
Route = tuple[
    tuple[int, ...],
    tuple[tuple[int, "SignalMatcher"], ...],
    tuple[tuple[int, "SignalMatcher | None"], ...],
    tuple[tuple[str, "SignalMatcher | None"], ...],
    str,
    str,
]


class SignalRouter:
    """Decides once per (kind, asset id, url) which rules and conditions a signal feeds.

    Leads share kinds, assets and pages, so the answer is cached; only property checks
    (``property: {form: demo}``) run per signal.
    """

    MAX_CACHED = 200_000

    def __init__(self, by_kind: Mapping[str, list[tuple[int, Any, SignalMatcher]]],
                 any_kind: list[tuple[int, Any, SignalMatcher]], assets: Mapping[str, Asset],
                 asset_for_url: Callable[[str], Asset | None]):
        self.by_kind, self.any_kind = by_kind, any_kind
        self.assets, self.asset_for_url = assets, asset_for_url
        #: Routes by kind, then by asset id (signals naming an asset) or by URL (all others);
        #: two plain lookups cost less than one on a (kind, asset, url) tuple.
        self.by_asset: dict[str, dict[Any, Route | None]] = {}
        self.by_url: dict[str, dict[Any, Route | None]] = {}
        self.cached = 0

    def route(self, kind: str, asset_id: Any, url: Any) -> Route | None:
        """Return what a signal of this kind, asset id and URL feeds (None: nothing)."""
        if asset_id is not None:
            asset = self.assets.get(asset_id) if isinstance(asset_id, str) else None
        else:
            asset = self.asset_for_url(url) if isinstance(url, str) and url else None
        found: tuple[list[tuple[Any, SignalMatcher | None]], ...] = ([], [], [])
        for code, target, matcher in (*self.by_kind.get(kind, ()), *self.any_kind):
            if matcher.matches_static(asset, url):
                found[code].append((target, matcher if matcher.properties else None))
        route: Route | None = None
        if any(found):
            rule_label = asset.name if asset is not None else (asset_id if isinstance(asset_id, str) else "")
            rules = found[TARGET_RULE]
            route = (tuple(index for index, matcher in rules if matcher is None),
                     tuple((index, matcher) for index, matcher in rules if matcher is not None),
                     tuple(found[TARGET_CONDITION]), tuple(found[TARGET_NEGATIVE]),
                     rule_label, asset.name if asset is not None else "")
        if self.cached >= self.MAX_CACHED:
            self.by_asset.clear()
            self.by_url.clear()
            self.cached = 0
        cache = self.by_asset if asset_id is not None else self.by_url
        known = cache.get(kind)
        if known is None:
            known = cache[kind] = {}
        known[asset_id if asset_id is not None else url] = route
        self.cached += 1
        return route


def url_pattern(globs: list[str]) -> re.Pattern[str]:
    """Return one regex for URL globs; a glob starting with ``/`` matches the URL's path."""
    parts = []
    for glob in globs:
        body = fnmatch.translate(glob)
        parts.append(r"(?:[a-z][a-z0-9+.-]*://[^/]*)?" + body if glob.startswith("/") else body)
    return re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE)


def field_test(check: Mapping[str, Any]) -> Callable[[Any], bool]:
    """Return a predicate on a field value for one field check (operators in FIELD_OPERATORS).

    The one condition language of the rules file: fit rules, ``when_any`` conditions on a field
    and hand-off routes all test a lead field with this. Text compares trimmed and ignoring case;
    a missing value holds only for ``not_in`` and ``present: false``.
    """
    if "equals" in check:
        expected = check["equals"]
        if isinstance(expected, bool):
            return lambda value: value is not None and is_truthy(value) == expected
        if isinstance(expected, int | float):
            return lambda value: as_number(value) == expected
        text = as_text(expected)
        return lambda value: value is not None and as_text(value) == text
    if "in" in check:
        options = frozenset(as_text(option) for option in check["in"])
        return lambda value: is_present(value) and as_text(value) in options
    if "not_in" in check:
        excluded = frozenset(as_text(option) for option in check["not_in"])
        return lambda value: not is_present(value) or as_text(value) not in excluded
    if "contains" in check:
        parts = tuple(as_text(part) for part in check["contains"])
        return lambda value: is_present(value) and any(part in as_text(value) for part in parts)
    if "regex" in check:
        pattern = re.compile(check["regex"], re.IGNORECASE)
        return lambda value: is_present(value) and pattern.search(str(value)) is not None
    if "present" in check:
        wanted = check["present"]
        return lambda value: is_present(value) == wanted
    low = check.get("min", -math.inf)
    high = check.get("max", math.inf)
    if "above" in check or "below" in check:
        above = check.get("above", -math.inf)
        below = check.get("below", math.inf)

        def in_open_range(value: Any) -> bool:
            number = as_number(value)
            return number is not None and low <= number <= high and above < number < below

        return in_open_range

    def in_range(value: Any) -> bool:
        number = as_number(value)
        return number is not None and low <= number <= high

    return in_range


def signal_matcher(spec: Mapping[str, Any]) -> SignalMatcher:
    """Return the matcher for the asset/intent/tag/url/property keys of a rule or condition."""
    return SignalMatcher(
        assets=frozenset(spec["asset"]) if "asset" in spec else None,
        intents=frozenset(spec["intent"]) if "intent" in spec else None,
        tags=frozenset(spec["tag"]) if "tag" in spec else None,
        url=url_pattern(spec["url"]) if "url" in spec else None,
        properties=tuple((name, frozenset(as_text(v) for v in values))
                         for name, values in sorted(spec.get("property", {}).items())),
    )


def asset_for_url(assets: Mapping[str, Asset], specs: Mapping[str, Any]) -> Callable[[str], Asset | None]:
    """Return a cached lookup of the asset whose ``urls`` match a URL (None if none does)."""
    patterns = [(url_pattern(spec["urls"]), assets[asset_id]) for asset_id, spec in specs.items()
                if spec.get("urls")]

    @lru_cache(maxsize=65536)
    def lookup(url: str) -> Asset | None:
        return next((asset for pattern, asset in patterns if pattern.match(url)), None)

    return lookup
