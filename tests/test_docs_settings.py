"""The README's configuration tables name every setting leadloop and its connectors read."""

from __future__ import annotations

import re
from pathlib import Path

from connectors import registry
from integration.config import SETTINGS

README = Path(__file__).parents[1] / "README.md"


def documented_settings(text: str) -> set[str]:
    """The variables named in backticks in the first column of the README's tables."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_every_setting_is_in_the_readme():
    documented = documented_settings(README.read_text())
    read = set(SETTINGS) | {name for connector in registry().values() for name in connector.settings}
    assert sorted(read - documented) == []


def test_a_missing_setting_is_noticed():
    assert documented_settings("| `DATABASE_URL` | x | y |\n| other | `NOT_A_SETTING` |") == {"DATABASE_URL"}
