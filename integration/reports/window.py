"""What a report covers: the time window and the dimension it is grouped by (``ReportQuery``).

The window selects each report's subjects by their business time (when they happened, not when
leadloop processed them): the funnel's leads by their first touch (their earliest event, else
the creation of their record), the hand-offs by the time of the hand-off, the deals won by their
close... Outcomes count to date. So a replayed, delayed or imported history gives the same report
as a live one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: The dimensions a report may be grouped by, and what each one is.
DIMENSIONS: dict[str, str] = {
    "cohort": "the month of the lead's first touch (2026-03)",
    "source": "the lead's lead source field (the CRM's lead source)",
    "campaign": "the campaign of the lead's first event that names one",
    "band": "the band at the lead's last hand-off",
    "owner": "the lead's owner (a CRM user id)",
    "team": "the team the lead was last routed to",
}
#: The group of a report that is not grouped (``by`` None).
ALL = "all"
#: The group of leads with no value for the dimension.
NONE = "(none)"


@dataclass(frozen=True)
class ReportQuery:
    """One report's window and grouping: its subjects in ``[since, until)``, grouped by ``by``."""

    #: Aware UTC bounds; None: open on that side.
    since: datetime | None = None
    until: datetime | None = None
    #: A name from ``DIMENSIONS``, or None for one group called ``all``.
    by: str | None = None

    def __post_init__(self) -> None:
        if self.by is not None and self.by not in DIMENSIONS:
            raise ValueError(f"unknown dimension {self.by!r}: use one of {', '.join(DIMENSIONS)}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
