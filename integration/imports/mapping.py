"""The mapping file of ``leadloop import csv``: which columns make a lead, and how to read them.

Loaded with marshmallow like the rules file, and checked the same way: every mistake is reported
with its place (``fields.visits.type: unknown type "int" (use number, string, bool or date)``),
all at once. ``Mapping.read_lead`` and ``Mapping.read_activity`` turn one CSV row into what
leadloop stores, raising ``RowError`` with the reason when a cell cannot be read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from marshmallow import ValidationError, fields, validates_schema

from connectors.events import ACTIVITY_KINDS
from integration.imports.history import ImportedActivity, ImportedLead
from scoring.lifecycle_schemas import STAGES
from scoring.rules import flatten_errors
from scoring.rules_fields import MappingOf, Names, Text, one_of
from scoring.rules_schema import StrictSchema

#: The value types a column may have; ``string`` is the default.
COLUMN_TYPES: tuple[str, ...] = ("number", "string", "bool", "date")
#: Cells read as true / false by a ``bool`` column (compared lower-cased).
TRUE_WORDS = frozenset({"true", "yes", "y", "1", "t", "x"})
FALSE_WORDS = frozenset({"false", "no", "n", "0", "f"})
#: Stages a lead can be imported in (``new`` is where every lead starts).
IMPORT_STAGES: tuple[str, ...] = tuple(stage for stage in STAGES if stage != "new")
#: The activities file's columns when the mapping names none.
ACTIVITY_DEFAULTS = {"id": "id", "kind": "kind", "occurred_at": "occurred_at"}
_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,19}$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,79}$")


class MappingError(Exception):
    """A mapping file with mistakes; ``errors`` lists each as ``place: message``."""

    def __init__(self, errors: Sequence[str], source: str = "<mapping>") -> None:
        self.errors, self.source = list(errors), source
        count = len(self.errors)
        super().__init__("\n".join([f"{source}: {count} mistake{'s' if count != 1 else ''}"]
                                   + [f"  {line}" for line in self.errors]))


class RowError(ValueError):
    """A row that cannot be imported; the message says which column and why."""


# --- the schema ------------------------------------------------------------------------------

def _check_date_format(pattern: str) -> None:
    """Raise ValidationError unless ``pattern`` is a strptime pattern that reads back what it writes."""
    sample = datetime(2026, 11, 30, 13, 45, 10)
    if "%" not in pattern:
        raise ValidationError('must be a strptime pattern like "%d/%m/%Y %H:%M"')
    try:
        datetime.strptime(sample.strftime(pattern), pattern)
    except ValueError as err:
        raise ValidationError(f"not a usable strptime pattern ({err})") from None


class ColumnSchema(StrictSchema):
    column = Text(required=True)
    type = Text(choices=COLUMN_TYPES, what="type", load_default="string")
    format = Text()

    @validates_schema(skip_on_field_errors=True)
    def _format_for_dates(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "format" in data:
            if data["type"] != "date":
                raise ValidationError({"format": ["only a date column has a format (add type: date)"]})
            _check_date_format(data["format"])


class DateColumnSchema(StrictSchema):
    column = Text(required=True)
    format = Text()

    @validates_schema(skip_on_field_errors=True)
    def _format(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "format" in data:
            try:
                _check_date_format(data["format"])
            except ValidationError as err:
                raise ValidationError({"format": err.messages}) from None


class ColumnField(fields.Field):
    """A column name, or ``{column, type, format}``; ``dates`` makes it a date column."""

    def __init__(self, *, dates: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.dates = dates

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Column:
        if isinstance(value, str) and value.strip():
            return Column(value.strip(), "date" if self.dates else "string")
        if not isinstance(value, MappingABC):
            raise ValidationError("must be a column name or {column, type, format}" if not self.dates
                                  else "must be a column name or {column, format}")
        loaded = (DateColumnSchema() if self.dates else ColumnSchema()).load(value)
        return Column(loaded["column"].strip(), "date" if self.dates else loaded["type"], loaded.get("format"))


class OutcomeSchema(StrictSchema):
    column = Text(required=True)
    won = Names(load_default=list)
    lost = Names(load_default=list)

    @validates_schema(skip_on_field_errors=True)
    def _values(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data["won"] and not data["lost"]:
            raise ValidationError("list the cell values that mean won, lost, or both")
        both = {v.strip().lower() for v in data["won"]} & {v.strip().lower() for v in data["lost"]}
        if both:
            raise ValidationError({"lost": [f"{sorted(both)[0]!r} is listed under won too"]})


class ActivitiesSchema(StrictSchema):
    id = Text()
    kind = Text()
    occurred_at = ColumnField(dates=True)
    kinds = MappingOf(Text())
    properties = MappingOf(Text())


class Timezone(fields.Field):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> tzinfo:
        try:
            return ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f'unknown time zone "{value}" (use an IANA name like Europe/Berlin)') from None


class MappingSchema(StrictSchema):
    crm = Text(required=True)
    id = Text(required=True)
    email = Text()
    created_at = ColumnField(dates=True)
    timezone = Timezone(load_default=UTC)
    field_columns = MappingOf(ColumnField(), data_key="fields", load_default=dict)
    stages = MappingOf(ColumnField(dates=True), load_default=dict)
    outcome = fields.Nested(OutcomeSchema)
    activities = fields.Nested(ActivitiesSchema, load_default=dict)

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _names(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        # The names are checked on the file's own text: a section with other mistakes is not loaded.
        errors: dict[str, Any] = {}
        if "crm" in data and not _SOURCE_NAME.match(data["crm"]):
            errors["crm"] = ["must be a short lower-case source name (letters, digits, - or _; at most 20)"]
        fields_section, stages_section = original.get("fields"), original.get("stages")
        for name in fields_section if isinstance(fields_section, MappingABC) else {}:
            name = str(name)
            if name == "email":
                errors.setdefault("fields", {})[name] = ["the email has its own key: email: COLUMN"]
            elif not _FIELD_NAME.match(name):
                errors.setdefault("fields", {})[name] = ["a field name is letters, digits, _ . or - (at most 80)"]
        for stage in stages_section if isinstance(stages_section, MappingABC) else {}:
            stage = str(stage)
            if stage not in IMPORT_STAGES:
                errors.setdefault("stages", {})[stage] = [f'unknown stage "{stage}" (use {one_of(IMPORT_STAGES)})']
        if errors:
            raise ValidationError(errors)


# --- the loaded mapping ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Column:
    """One column and how its cells are read."""

    column: str
    type: str = "string"
    #: A strptime pattern for a date column; None: ISO 8601.
    format: str | None = None

    def read(self, row: MappingABC[str, str], zone: tzinfo) -> Any:
        """Return the cell's value (None for an empty cell); raise RowError naming the column."""
        cell = (row.get(self.column) or "").strip()
        if not cell:
            return None
        try:
            return _READERS[self.type](cell, self.format, zone)
        except ValueError as err:
            raise RowError(f'column "{self.column}": {err}') from None


def _number(cell: str, _format: str | None, _zone: tzinfo) -> int | float:
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(f"{cell!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{cell!r} is not a number")
    return value


def _bool(cell: str, _format: str | None, _zone: tzinfo) -> bool:
    word = cell.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{cell!r} is not true or false (yes/no, true/false, 1/0)")


def read_time(cell: str, pattern: str | None, zone: tzinfo) -> datetime:
    """Return the aware UTC time in ``cell`` (ISO 8601, or the strptime ``pattern``); a time without
    an offset is in ``zone``. Raises ValueError."""
    try:
        value = datetime.strptime(cell, pattern) if pattern else datetime.fromisoformat(cell.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{cell!r} is not a date" + (f' in the format "{pattern}"' if pattern else " (ISO 8601)")
                         ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _date(cell: str, pattern: str | None, zone: tzinfo) -> str:
    return read_time(cell, pattern, zone).isoformat()


_READERS = {"number": _number, "string": lambda cell, _f, _z: cell, "bool": _bool, "date": _date}


@dataclass(frozen=True)
class Mapping:
    """A loaded, valid mapping file."""

    crm: str
    id: str
    email: str | None
    created_at: Column | None
    timezone: tzinfo
    fields: dict[str, Column]
    stages: dict[str, Column]
    outcome: dict[str, Any] | None
    activities: dict[str, Any] = field(default_factory=dict)

    def lead_columns(self) -> dict[str, str]:
        """Each column the leads file must have -> the mapping key that names it."""
        named = {self.id: "id"}
        if self.email:
            named.setdefault(self.email, "email")
        if self.created_at:
            named.setdefault(self.created_at.column, "created_at")
        for name, column in self.fields.items():
            named.setdefault(column.column, f"fields.{name}")
        for stage, column in self.stages.items():
            named.setdefault(column.column, f"stages.{stage}")
        if self.outcome:
            named.setdefault(self.outcome["column"], "outcome.column")
        return named

    def activity_columns(self) -> dict[str, str]:
        """Each column the activities file must have -> the mapping key that names it."""
        named = {self.activity_column(key): f"activities.{key}" for key in ("id", "kind", "occurred_at")}
        for name, column in (self.activities.get("properties") or {}).items():
            named.setdefault(column, f"activities.properties.{name}")
        return named

    def activity_column(self, key: str) -> str:
        value = self.activities.get(key) or ACTIVITY_DEFAULTS[key]
        return value.column if isinstance(value, Column) else value

    def read_lead(self, row: MappingABC[str, str]) -> ImportedLead:
        """Return the lead in one row of the leads file; raise RowError."""
        crm_id = (row.get(self.id) or "").strip()
        if not crm_id:
            raise RowError(f'column "{self.id}": no id')
        if len(crm_id) > 64:
            raise RowError(f'column "{self.id}": an id is at most 64 characters')
        email = ((row.get(self.email) or "").strip().lower() or None) if self.email else None
        created_at = self.created_at.read(row, self.timezone) if self.created_at else None
        values = {}
        for name, column in self.fields.items():
            value = column.read(row, self.timezone)
            if value is not None:
                values[name] = value
        stages = []
        for stage, column in self.stages.items():
            at = column.read(row, self.timezone)
            if at is not None:
                stages.append((stage, datetime.fromisoformat(at)))
        stages.sort(key=lambda item: item[1])
        return ImportedLead(crm_id, email, datetime.fromisoformat(created_at) if created_at else None, values,
                            stages, self._outcome(row))

    def _outcome(self, row: MappingABC[str, str]) -> str | None:
        if not self.outcome:
            return None
        cell = (row.get(self.outcome["column"]) or "").strip().lower()
        if not cell:
            return None
        for verdict in ("won", "lost"):
            if cell in {value.strip().lower() for value in self.outcome[verdict]}:
                return verdict
        return None  # any other value: no outcome yet (an open lead)

    def read_activity(self, row: MappingABC[str, str], known_kinds: frozenset[str]) -> ImportedActivity:
        """Return the activity in one row of the activities file; raise RowError.

        ``known_kinds``: the activity kinds the live rules know (built-in ones and the file's own).
        """
        id_column, kind_column = self.activity_column("id"), self.activity_column("kind")
        crm_id = (row.get(id_column) or "").strip()
        if not crm_id:
            raise RowError(f'column "{id_column}": no id')
        cell = (row.get(kind_column) or "").strip()
        kind = (self.activities.get("kinds") or {}).get(cell, cell)
        if not kind:
            raise RowError(f'column "{kind_column}": no kind')
        if kind not in known_kinds | ACTIVITY_KINDS:
            raise RowError(f'column "{kind_column}": unknown activity kind "{kind}" (map it under activities.kinds, '
                           "or declare it in the rules file's activity_kinds)")
        occurred = self.activities.get("occurred_at") or Column(ACTIVITY_DEFAULTS["occurred_at"], "date")
        at = occurred.read(row, self.timezone)
        if at is None:
            raise RowError(f'column "{occurred.column}": no time')
        named = self.activities.get("properties")
        if named:
            properties = {name: (row.get(column) or "").strip() for name, column in named.items()}
        else:
            taken = {id_column, kind_column, occurred.column}
            properties = {column: (value or "").strip() for column, value in row.items()
                          if column not in taken and column is not None}
        return ImportedActivity(crm_id, kind, datetime.fromisoformat(at),
                                {name: value for name, value in properties.items() if value})


def missing_columns(named: dict[str, str], header: Sequence[str] | None, file: str) -> list[str]:
    """Mistakes for each column the mapping names that the file's header lacks."""
    present = set(header or ())
    return [f'{key}: column "{column}" is not in {file}\'s header' for column, key in named.items()
            if column not in present]


def load_mapping_text(text: str, source: str = "<mapping>") -> Mapping:
    """Return the ``Mapping`` in a YAML text; raise ``MappingError`` listing every mistake."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise MappingError([f"{where}: not valid YAML: {getattr(err, 'problem', None) or err}"], source) from None
    if not isinstance(raw, MappingABC):
        raise MappingError(["(top): must be a mapping with at least crm and id"], source)
    try:
        data = MappingSchema().load(raw)
    except ValidationError as err:
        raise MappingError(sorted(dict.fromkeys(flatten_errors(err.messages))), source) from None
    return Mapping(crm=data["crm"], id=data["id"].strip(), email=(data.get("email") or "").strip() or None,
                   created_at=data.get("created_at"), timezone=data["timezone"], fields=data["field_columns"],
                   stages=data["stages"], outcome=data.get("outcome"), activities=data["activities"])


def load_mapping(path: str | Path) -> Mapping:
    """Return the ``Mapping`` in a file; raise ``MappingError`` (also when it cannot be read)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise MappingError([f"cannot read the file: {getattr(err, 'strerror', None) or err}"], str(path)) from None
    return load_mapping_text(text, str(path))
