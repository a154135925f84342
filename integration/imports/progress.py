"""Resumable imports: the ``imports`` table row of one import, read at the start, moved per batch.

An import is keyed by its source and what identifies its input (``file_key``: a digest of the
mapping and the files; a backfill: the CRM and the start of its window). Each batch writes its
rows and its new position in one transaction, so after a crash the rerun starts right after
the last committed batch: nothing twice, nothing lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.store.models import ImportProgress

#: Bytes read at a time when hashing a file.
CHUNK = 1 << 20


def file_key(mapping_text: str, paths: Iterable[Path | None]) -> str:
    """Return ``sha256:<hex>`` of the mapping's text and each file's bytes (a missing one counts as empty)."""
    digest = hashlib.sha256(mapping_text.encode("utf-8"))
    for path in paths:
        digest.update(b"\0file\0")
        if path is None:
            continue
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def find_import(session: Session, source: str, key: str) -> ImportProgress | None:
    """Return the import of ``source`` keyed ``key``, or None if it never started."""
    return session.scalars(select(ImportProgress).where(ImportProgress.source == source,
                                                        ImportProgress.key == key)).first()


def start_import(session: Session, source: str, key: str, crm: str, now: datetime) -> ImportProgress:
    """Return the import keyed ``(source, key)``, created (and committed) when new."""
    found = find_import(session, source, key)
    if found is not None:
        return found
    progress = ImportProgress(source=source, key=key, crm=crm, position={}, counts={}, started_at=now,
                              updated_at=now)
    session.add(progress)
    session.commit()
    return progress


def advance(progress: ImportProgress, phase: str, position: Any, now: datetime, **counts: int) -> None:
    """Move ``phase`` to ``position`` and add ``counts``; the caller's commit makes it durable."""
    progress.position = {**(progress.position or {}), phase: position}
    totals = dict(progress.counts or {})
    for name, value in counts.items():
        totals[name] = totals.get(name, 0) + value
    progress.counts = totals
    progress.updated_at = now


def finish(session: Session, progress: ImportProgress, now: datetime) -> None:
    """Mark the import done (a rerun of the same input then does nothing) and commit."""
    progress.finished_at = progress.updated_at = now
    session.commit()
