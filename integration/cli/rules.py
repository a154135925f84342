"""``leadloop rules check`` and ``leadloop rules compare``: the rules file before it goes live."""

from __future__ import annotations

import re
from pathlib import Path

import click

from integration.cli.errors import FAILURE, OK
from integration.cli.output import note, out
from integration.cli.runtime import Runtime, pass_runtime


@click.group(short_help="The rules file: check, compare.")
def rules() -> None:
    """The rules file: check it, and see what a change would do before it goes live."""


@rules.command("check", short_help="Validate a rules file and summarise it.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def check(file: Path) -> int:
    """Validate the rules file FILE: a summary when it is sound, else every mistake with its place.

    Exit code 0 when it is sound, 1 when it has mistakes or cannot be read. Owner ids still
    left as REPLACE-... placeholders are named in a warning.
    """
    from connectors import status_fields
    from scoring import check_rules_text

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        note(f"{file}: cannot read: {exc.strerror}")
        return FAILURE
    ok, report = check_rules_text(text, str(file), status_fields())
    (out if ok else note)(report)
    placeholders = sorted(set(re.findall(r"REPLACE-[\w-]*", text)))
    if ok and placeholders:
        note(f"warning: owner ids still to fill in with your CRM's user ids: {', '.join(placeholders)}")
    return OK if ok else FAILURE


@rules.command("compare", short_help="What a candidate rules file would change.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_runtime
def compare(runtime: Runtime, file: Path) -> int:
    """Score the stored history under the live rules and under FILE, and report the difference.

    MQLs added and removed, band moves, and how many leads sales won or rejected each rules file
    would have caught. Nothing is written.
    """
    from connectors import status_fields
    from integration.reports.rules_compare import compare as compare_rules
    from integration.reports.rules_compare import render
    from scoring import load_rules_file

    live = runtime.rules()
    candidate = load_rules_file(str(file), status_fields())
    with runtime.sessions()() as session:
        report = compare_rules(session, live, candidate, runtime.now())
    out(render(report, live, candidate))
    return OK
