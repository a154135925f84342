"""``leadloop setup CRM`` and ``leadloop doctor CRM``: the CRM admin's commands."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from connectors import registry
from connectors.base import Connector, SetupError
from integration.cli.errors import FAILURE, OK, SETUP, CliError
from integration.cli.output import note, out
from integration.cli.runtime import Runtime, pass_runtime


class RegisteredCrm(click.Choice):
    """The names in the connector registry, read when the command runs (not when it is defined)."""

    def __init__(self) -> None:
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        return tuple(sorted(registry()))

    @choices.setter
    def choices(self, _value: object) -> None:  # click.Choice.__init__ assigns it
        pass


crm_argument = click.argument("crm", type=RegisteredCrm())


@click.command(short_help="Create the CRM fields; print the webhook setup.")
@crm_argument
@click.option("--dry-run", is_flag=True, help="Show what would be created or changed, and change nothing.")
@click.option("--project", "project_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the CRM's app definition into this folder instead (HubSpot: the developer-platform "
                   "project to upload with hs project upload); needs no credentials.")
@click.option("--overwrite", is_flag=True, help="With --project: replace files that differ.")
@pass_runtime
def setup(runtime: Runtime, crm: str, dry_run: bool, project_dir: Path | None, overwrite: bool) -> int:
    """Create leadloop's fields in the CRM and print the webhook setup and a check list.

    Running it again changes nothing that is already in place. Exit code 0 when everything is
    in place, 1 when something is left to do, 2 when credentials are missing.

    With --project DIR it writes the app definition the CRM installs from (for HubSpot, a
    developer-platform project with the scopes and webhook subscriptions leadloop needs) and
    calls no API: upload it, install the app, then set the token and secret and run setup again.
    """
    connector = registry()[crm]
    if project_dir is not None:
        return _write_project(connector, runtime, project_dir, overwrite)
    run_setup = connector.run_setup
    if run_setup is None:
        note(f"{crm}: this connector has no setup command")
        return FAILURE
    require_credentials(crm, runtime.config)
    svc = runtime.services(database=False)
    return run_setup(svc.config, svc.redis, dry_run=dry_run, echo=out)


def _write_project(connector: Connector, runtime: Runtime, directory: Path, overwrite: bool) -> int:
    if connector.write_project is None:
        raise CliError(f"{connector.name}: --project is not offered for this CRM", SETUP)
    try:
        written = connector.write_project(str(directory), runtime.config, overwrite=overwrite)
    except SetupError as exc:  # the connector's own refusal (a missing PUBLIC_BASE_URL, a clash)
        raise CliError(f"{connector.name} project: {exc}", SETUP) from None
    out(f"{connector.name} project in {directory}: "
        + (f"wrote {', '.join(str(path.relative_to(directory)) for path in written)}" if written
           else "already up to date"))
    return OK


@click.command(short_help="Check the CRM connection and fields.")
@crm_argument
@pass_runtime
def doctor(runtime: Runtime, crm: str) -> int:
    """Check the CRM connection: credentials, permissions, leadloop's fields, API limits.

    Exit code 0 when every check passes, 1 when one fails, 2 when credentials are missing.
    """
    run_doctor = registry()[crm].run_doctor
    if run_doctor is None:
        note(f"{crm}: this connector has no doctor command")
        return FAILURE
    require_credentials(crm, runtime.config)
    svc = runtime.services(database=False)
    return run_doctor(svc.config, svc.redis, echo=out)


def require_credentials(crm: str, config: Mapping[str, Any]) -> None:
    """Raise ``CliError`` (exit 2) naming the variables to set when no credential flow is complete."""
    flows = registry()[crm].credentials
    if not flows:
        return
    missing = [(label, [name for name in names if not _any_set(name, config)]) for label, names in flows]
    if any(not names for _label, names in missing):
        return
    options = [_names(names) + (f" for the {label}" if len(flows) > 1 else "") for label, names in missing]
    raise CliError(f"{crm}: no API credentials: set {', or '.join(options)}", SETUP)


def _any_set(name: str, config: Mapping[str, Any]) -> bool:
    return any(str(config.get(one) or "").strip() for one in name.split("|"))


def _names(names: list[str]) -> str:
    spelled = [name.replace("|", " (or ") + (")" if "|" in name else "") for name in names]
    return spelled[0] if len(spelled) == 1 else ", ".join(spelled[:-1]) + " and " + spelled[-1]
