"""Marshmallow field types of the rules file, with messages written for the person editing it."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields

DURATION_UNITS: Mapping[str, int] = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")


def duration_seconds(text: str) -> int:
    """Return the seconds of a duration like ``"30d"`` (m, h, d, w); raise ValueError."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(text)
    return int(match.group(1)) * DURATION_UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """Return the shortest exact spelling of a duration in d, h or m (``1209600`` -> ``14d``)."""
    for unit in ("d", "h", "m"):
        if seconds % DURATION_UNITS[unit] == 0:
            return f"{int(seconds // DURATION_UNITS[unit])}{unit}"
    return f"{int(seconds // 60)}m"


def unknown_key_message(key: str, known: list[str], what: str = "key") -> str:
    """Return 'unknown key' with a did-you-mean hint when a known key is close."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f'unknown {what} "{key}"' + (f' (did you mean "{close[0]}"?)' if close else "")


class Duration(fields.Field):
    """A duration like ``30d``; loads to its canonical spelling."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        try:
            seconds = duration_seconds(value)
        except ValueError:
            raise ValidationError('must be a duration like "30d" (m, h, d or w)') from None
        if seconds <= 0:
            raise ValidationError("must be longer than zero")
        return format_duration(seconds)


class Number(fields.Field):
    """An int or float; text and booleans are mistakes here."""

    def __init__(self, *, at_least: float | None = None, message: str = "", whole: bool = False,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.at_least, self.message, self.whole = at_least, message, whole

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> float | int:
        if isinstance(value, bool) or not isinstance(value, int if self.whole else int | float):
            raise ValidationError("must be a whole number" if self.whole else "must be a number")
        if self.at_least is not None and value < self.at_least:
            raise ValidationError(self.message or f"must be {self.at_least:g} or more")
        return value


class Text(fields.Field):
    """Non-empty text, optionally restricted to ``choices``."""

    def __init__(self, *, choices: tuple[str, ...] = (), what: str = "value", **kwargs: Any):
        super().__init__(**kwargs)
        self.choices, self.what = choices, what

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValidationError("must be text")
        if self.choices and value not in self.choices:
            raise ValidationError(f'unknown {self.what} "{value}" (use {one_of(self.choices)})')
        return value.strip()


class Names(fields.Field):
    """One text value or a list of them; loads to a list."""

    def __init__(self, *, choices: tuple[str, ...] = (), what: str = "value", **kwargs: Any):
        super().__init__(**kwargs)
        self.item = Text(choices=choices, what=what)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list[str]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ValidationError("must not be an empty list")
        errors: dict[int, list[str]] = {}
        loaded = []
        for index, item in enumerate(items):
            try:
                loaded.append(self.item.deserialize(item))
            except ValidationError as err:
                errors[index] = err.messages  # type: ignore[assignment]
        if errors:
            raise ValidationError(errors if isinstance(value, list) else errors[0])
        return loaded


class Scalar(fields.Field):
    """One value: text, a number or true/false."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str | int | float | bool):
            raise ValidationError("must be one value (text, a number or true/false); use in for a list")
        return value


class Scalars(fields.Field):
    """A scalar (text, number, true/false) or a list of scalars; loads to a list."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list[Any]:
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, str | int | float | bool) for v in items):
            raise ValidationError("must be a value or a list of values (text, numbers, true/false)")
        return items


class Regex(fields.Field):
    """A regular expression, checked by compiling it."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError("must be text")
        try:
            re.compile(value)
        except re.error as err:
            raise ValidationError(f"not a valid regular expression ({err})") from None
        return value


class MappingOf(fields.Field):
    """A mapping of names to values of one field type, errors keyed by the name."""

    def __init__(self, values: fields.Field, **kwargs: Any):
        super().__init__(**kwargs)
        self.values = values

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise ValidationError("must be a mapping of names to values")
        errors: dict[str, Any] = {}
        loaded = {}
        for name, item in value.items():
            try:
                loaded[str(name)] = self.values.deserialize(item)
            except ValidationError as err:
                errors[str(name)] = err.messages
        if errors:
            raise ValidationError(errors)
        return loaded


def one_of(choices: tuple[str, ...]) -> str:
    """Return choices as plain words: ``a, b or c``."""
    return ", ".join(choices[:-1]) + " or " + choices[-1] if len(choices) > 1 else choices[0]
