"""Shared material for the rules lab tests: histories written straight into the store, and the
``leadloop`` command run in-process on the test's settings."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from integration.cli.main import main
from integration.store.models import Event, Lead, Transition

ROOT = Path(__file__).parents[1]
SHIPPED = ROOT / "rules" / "leadloop.yaml"
#: A good fit: grade B (manager 8, size 10, country 5, company 5), a valid phone.
FIT = {"first_name": "Ada", "company": "Acme Logistics", "job_title": "Operations Manager",
       "phone": "+49 30 1234567", "country": "DE", "employees": 250}
_keys = itertools.count(1)


def add_lead(session: Any, crm_id: str, fields: dict[str, Any], created: datetime, *,
             email: str | None = None) -> Lead:
    """A HubSpot lead whose fields arrive with a ``lead_created`` event at ``created``."""
    lead = Lead(crm="hubspot", crm_id=crm_id, email=email or f"p{crm_id}@firm{crm_id}.example", fields=dict(fields),
                field_times={}, created_at=created, updated_at=created)
    session.add(lead)
    session.flush()
    add_event(session, lead, "lead_created", created, fields=fields)
    return lead


def add_event(session: Any, lead: Lead, kind: str, at: datetime, *, fields: dict[str, Any] | None = None,
              **properties: Any) -> None:
    """One processed event of the lead."""
    session.add(Event(source="hubspot" if kind == "lead_created" else "web", event_key=f"lab-{next(_keys)}",
                      lead_id=lead.id, kind=kind, occurred_at=at, received_at=at, fields=fields or {},
                      properties=properties, processed_at=at))


def add_outcome(session: Any, lead: Lead, stage: str, at: datetime, *, cause: str = "disposition") -> None:
    """A stage change sales made (accepted, won, lost) or a rejection (recycled)."""
    session.add(Transition(lead_id=lead.id, from_stage="mql", to_stage=stage, cause=cause, detail={},
                           rules_version="x", at=at))


def rules_with(tmp_path: Path, name: str, change: Any) -> Path:
    """The shipped rules changed by ``change(data)``, written to ``tmp_path/name``."""
    data = yaml.safe_load(SHIPPED.read_text())
    change(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def leadloop(config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str) -> tuple[int, str, str]:
    """``leadloop ARGS`` in-process on the test's settings: (exit code, stdout, stderr)."""
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
