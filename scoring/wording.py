"""Plain words for reasons and the one-line summary a sales rep reads in the CRM."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: What a signal of each kind did, for reasons; ``{asset}`` is the asset's display name.
KIND_PHRASES: Mapping[str, str] = {
    "page_view": "viewed {asset}",
    "content_download": "downloaded {asset}",
    "form_submit": "submitted {asset}",
    "event_attended": "attended {asset}",
    "trial_signup": "signed up for {asset}",
    "chat_intent": "asked in chat about {asset}",
    "email_open": "opened {asset}",
    "email_click": "clicked {asset}",
    "unsubscribe": "unsubscribed",
    "bounce": "email bounced",
    "contact_request": "asked to be contacted",
    "do_not_contact": "asked not to be contacted",
}
#: What ``{asset}`` becomes when the signal names no known asset.
KIND_FALLBACK_OBJECTS: Mapping[str, str] = {
    "page_view": "a page", "content_download": "content", "form_submit": "a form",
    "event_attended": "an event", "trial_signup": "a trial", "chat_intent": "our offer",
    "email_open": "an email", "email_click": "an email link",
}
#: Default reason words of each negative signal; ``{detail}`` is filled in by the engine.
NEGATIVE_TEXTS: Mapping[str, str] = {
    "free_mail": "free-mail address ({detail})",
    "disposable": "disposable email address ({detail})",
    "gibberish": "email address looks made up ({detail})",
    "missing_phone": "no phone number",
    "invalid_phone": "phone number is not valid ({detail})",
    "student": "looks like a student ({detail})",
    "competitor": "works for a competitor ({detail})",
    "bounce": "email bounced ({detail})",
    "unsubscribe": "unsubscribed from email ({detail})",
}
MINUS = "\u2212"
SUMMARY_LIMIT = 255


_POINTS_TEXT: dict[float, str] = {}


def format_points(points: float) -> str:
    """Return signed points as people write them: ``+25``, ``−7.5``, ``0``."""
    text = _POINTS_TEXT.get(points)
    if text is None:
        number = f"{abs(points):.1f}".removesuffix(".0")
        text = "+" + number if points > 0 else MINUS + number if points < 0 else "0"
        if len(_POINTS_TEXT) < 100_000:  # points are rounded to 0.1, so few distinct values
            _POINTS_TEXT[points] = text
    return text


_DAYS_AGO: dict[int, str] = {}


def describe_age(seconds: float) -> str:
    """Return how long ago something happened: ``just now``, ``5 hours ago``, ``3 days ago``."""
    if seconds >= 172800:
        days = int(seconds // 86400)
        # Most reasons are days old, so the few distinct day counts are formatted once.
        text = _DAYS_AGO.get(days)
        if text is None:
            text = f"{days} days ago"
            if len(_DAYS_AGO) < 10_000:
                _DAYS_AGO[days] = text
        return text
    if seconds >= 86400:
        return "1 day ago"
    if seconds >= 7200:
        return f"{int(seconds // 3600)} hours ago"
    if seconds >= 3600:
        return "1 hour ago"
    return f"{int(seconds // 60)} minutes ago" if seconds >= 120 else "just now"


def describe_decay(decay: Mapping[str, Any]) -> str:
    """Return ``decays 50% per 14d`` or ``counts for 90d`` (empty without decay)."""
    if "half_life" in decay:
        return f"decays 50% per {decay['half_life']}"
    if "lifespan" in decay:
        return f"counts for {decay['lifespan']}"
    return ""


def fill_asset(template: str, name: str) -> str:
    """Return the template with ``{asset}`` replaced (no other formatting is applied)."""
    return template.replace("{asset}", name) if "{asset}" in template else template


def build_summary(head: str, items: Iterable[str], limit: int = SUMMARY_LIMIT) -> str:
    """Return ``head: item; item; …`` cut at whole items to at most ``limit`` characters."""
    text = head[:limit]
    parts = [text]
    length = len(text)
    separator = ": "
    for item in items:
        grown = length + len(separator) + len(item)
        if grown > limit:
            text = "".join(parts)
            return text if length + 2 > limit else text + " …"
        parts += (separator, item)
        length, separator = grown, "; "
    return "".join(parts)
