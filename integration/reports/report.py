"""``Report``: what every report returns, as JSON rows and as flat table rows (table, CSV)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Report:
    """A report's result: ``rows`` is exactly its JSON output (nested dicts allowed)."""

    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: The flat columns of ``table_rows``: nested keys joined with a dot (``entered.mql``).
    columns: list[str] = field(default_factory=list)

    def table_rows(self) -> list[list[Any]]:
        """Return one flat list per row, in ``columns`` order (None where a row has no value)."""
        flat = [flatten(row) for row in self.rows]
        return [[values.get(column) for column in self.columns] for values in flat]


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return ``row`` with nested dicts spread into ``outer.inner`` keys."""
    values: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            values.update(flatten(value, name + "."))
        else:
            values[name] = value
    return values


def columns_of(rows: list[dict[str, Any]], first: list[str] | None = None) -> list[str]:
    """Return the flat column names of ``rows`` in first-seen order (``first`` leading)."""
    names = list(first or [])
    for row in rows:
        for name in flatten(row):
            if name not in names:
                names.append(name)
    return names
