"""The compiled twin of scoring's hot path, used when it is built and matches the source.

Installing leadloop (``pip install .``, or ``pip install -e .`` as ``scripts/bootstrap.sh``
does) compiles the modules in ``MODULES`` with mypyc, from these very files, into the package
``leadloop_native`` (``setup.py``). It is the same code, only compiled (about 1.5x faster); the
pure modules stay the source of truth and the fallback:

- ``LEADLOOP_PURE_PYTHON=1`` turns the compiled twin off;
- a twin built from other source (a file changed since the build) is ignored, with a warning,
  so an edit is never shadowed by a stale build;
- no twin built (no compiler, a platform mypyc does not support): pure Python, same results.

``implementation()`` is the one place that chooses. This module imports nothing heavy at the
top: ``setup.py`` and ``scripts/bootstrap.sh`` load it on its own.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from scoring.model import NextChange, ScoreResult
    from scoring.prepared import PreparedRules

#: The modules compiled, in import order (each imports only those before it). They import each
#: other relatively (``from .fields import ...``) and the rest of scoring absolutely, so the twin is
#: a plain copy of them: its modules use each other and the pure ``scoring.model``, ``rules``, ... .
#: ``phones`` stays interpreted: it unpacks tuples from phonenumbers internals whose stubs say less
#: than they return, which compiled code would check (and its time is in the regex engine anyway).
MODULES: tuple[str, ...] = ("wording", "fields", "checks", "matchers", "prepared", "engine", "segment", "timeline")
#: The compiled package's name.
PACKAGE = "leadloop_native"
#: Set to 1 (or true/yes) to score with the pure-Python modules even when the twin is built.
PURE_PYTHON_VARIABLE = "LEADLOOP_PURE_PYTHON"


def source_digest(directory: Path | None = None) -> str:
    """Return the SHA-256 over the compiled modules' source files, in ``MODULES`` order."""
    directory = directory or Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in MODULES:
        digest.update(name.encode() + b"\0" + (directory / f"{name}.py").read_bytes() + b"\0")
    return digest.hexdigest()


def pure_python_requested() -> bool:
    """Return True when ``LEADLOOP_PURE_PYTHON`` asks for the pure-Python modules."""
    return os.environ.get(PURE_PYTHON_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


def built_digest() -> str | None:
    """Return the ``source_digest()`` the installed twin was built from, or None when none is installed."""
    try:
        import leadloop_native  # type: ignore[import-not-found]  # built by setup.py
    except ImportError:
        return None
    return getattr(leadloop_native, "SOURCE_DIGEST", None)


@cache
def twin() -> ModuleType | None:
    """Return the ``leadloop_native`` package if it is built, current and wanted, else None."""
    if pure_python_requested():
        return None
    built = built_digest()
    if built is None:
        return None
    if built != source_digest():
        warnings.warn("the compiled scoring modules (leadloop_native) were built from other source; "
                      "scoring runs as pure Python until leadloop is installed again (scripts/bootstrap.sh)",
                      RuntimeWarning, stacklevel=3)
        return None
    try:
        import leadloop_native  # type: ignore[import-not-found]
        from leadloop_native import engine, prepared, timeline  # type: ignore[import-not-found]  # noqa: F401
    except ImportError as err:  # a build for another Python or a broken install
        warnings.warn(f"the compiled scoring modules do not load ({err}); scoring runs as pure Python",
                      RuntimeWarning, stacklevel=3)
        return None
    return leadloop_native


class Implementation(NamedTuple):
    """What scoring runs; the twin's ``score_lead`` needs rules made by the twin's ``prepare_rules``."""

    #: ``"compiled"`` or ``"pure Python"``.
    name: str
    #: ``scoring.score_lead``.
    score_lead: Callable[..., ScoreResult]
    #: What ``scoring.rules.load_rules`` prepares ``Rules.prepared`` with.
    prepare_rules: Callable[[Mapping[str, Any]], PreparedRules]


def implementation() -> Implementation:
    """Return the twin's ``score_lead`` and ``prepare_rules`` when ``twin()`` has it, else the pure ones.

    The one place that chooses: ``scoring.score_lead`` and ``scoring.rules.load_rules`` take theirs
    from here.
    """
    compiled = twin()
    if compiled is not None:
        return Implementation("compiled", compiled.engine.score_lead, compiled.prepared.prepare_rules)
    from scoring import engine, prepared  # not at the top: they import the scoring package

    return Implementation("pure Python", engine.score_lead, prepared.prepare_rules)


def next_change_function() -> Callable[..., NextChange | None]:
    """Return ``next_change`` from the twin when ``twin()`` has it, else the pure one (``scoring.timeline``).

    It reads ``Rules.prepared``, so it comes from the same side as ``implementation().prepare_rules``.
    """
    compiled = twin()
    if compiled is not None:
        return compiled.timeline.next_change
    from scoring import timeline  # not at the top: it imports the scoring package

    return timeline.next_change


def active() -> str:
    """Return ``"compiled"`` or ``"pure Python"``: what ``score_lead`` runs as in this process."""
    return implementation().name
