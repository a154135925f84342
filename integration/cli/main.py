"""The ``leadloop`` command (click): the group, its commands, and ``main`` with the exit codes.

Each command group lives in its own module (``admin``, ``rules``, ``leads``, ``writes``,
``crm``, ``imports``, ``explain``, ``reports``); ``main`` runs the group with ``standalone_mode``
off, so tests call it in-process, and turns every known failure into one line on stderr and an exit
code (``errors``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from integration.cli import admin, crm, explain, imports, leads, reports, rules, writes
from integration.cli.errors import CLOSED_PIPE, INTERRUPTED, OK, describe
from integration.cli.output import note
from integration.cli.runtime import Runtime


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="leadloop", message="%(prog)s %(version)s",
                      help="Show the version and exit.")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """leadloop: qualify leads by written rules, hand them to sales in the CRM, and show why.

    Settings come from environment variables (the README's Configuration table). Without
    DATABASE_URL and REDIS_URL the commands use a SQLite file and an embedded Redis in the
    instance folder; a command that starts the embedded Redis stops it when it ends.

    Exit codes: 0 done; 1 not found or failed; 2 usage or setup problem (bad setting, no
    schema, missing credentials); 130 interrupted; 141 output closed early.
    """
    runtime = ctx.ensure_object(Runtime)
    ctx.call_on_close(runtime.close)


for command in (admin.db, admin.worker, admin.cron, rules.rules, leads.lead, writes.outbox,
                writes.dead_letters, crm.setup, crm.doctor, rules.rescore, admin.sign, admin.demo,
                admin.stop, imports.import_group, explain.explain, reports.report):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``leadloop`` with ``argv`` (default: the process's arguments); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    runtime = Runtime()
    try:
        with cli.make_context("leadloop", args, obj=runtime) as ctx:
            result = cli.invoke(ctx)
        return result if isinstance(result, int) else OK
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code
    except click.ClickException as exc:  # usage errors: exit 2 with click's message
        exc.show()
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        note("interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        _discard_stdout()
        return CLOSED_PIPE
    except Exception as exc:
        error = describe(exc, runtime.database_url, runtime.redis)
        if error is None:
            raise
        note(str(error))
        return error.exit_code


def _discard_stdout() -> None:
    """The reader went away (``leadloop outbox | head -1``): send what is still buffered nowhere,
    so the interpreter's final flush does not fail again (Python's documented recipe)."""
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
