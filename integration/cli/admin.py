"""Running leadloop: ``db upgrade``, ``worker``, ``cron``, ``sign``, ``demo`` and ``stop``."""

from __future__ import annotations

from pathlib import Path

import click

from integration.cli.errors import OK, SETUP, CliError
from integration.cli.output import note, out
from integration.cli.runtime import Runtime, pass_runtime


@click.group(short_help="The database schema: db upgrade.")
def db() -> None:
    """The database schema."""


@db.command("upgrade", short_help="Apply the database migrations.")
@pass_runtime
def db_upgrade(runtime: Runtime) -> int:
    """Apply the database migrations (Alembic); running it again changes nothing."""
    from integration.store.migrate import current, upgrade

    engine = runtime.engine(check_schema=False)
    upgrade(engine)
    out(f"database at revision {current(engine)}")
    return OK


@click.command(short_help="Run an RQ worker (with RQ's scheduler).")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty instead of waiting for more work.")
@click.option("--fork", is_flag=True,
              help="Run each job in a forked work horse (RQ's Worker) instead of in this process.")
@click.option("--simple", is_flag=True, help="Run each job in this process (the default; kept for scripts).")
@pass_runtime
def worker(runtime: Runtime, burst: bool, fork: bool, simple: bool) -> int:
    """Run an RQ worker, with RQ's scheduler for delayed jobs (retries, batched flushes, SLA checks).

    Jobs run in this process, reusing its connections (no fork per job); --fork gives each
    job a forked work horse. It keeps running through Redis outages (it connects again with backoff).
    """
    if fork and simple:
        raise click.UsageError("--fork and --simple exclude each other")
    from integration import services
    from integration.pipeline.workers import run_worker

    svc = runtime.services()
    services.install(svc)  # the jobs reach these services through services.current()
    run_worker(svc, burst=burst, fork=fork)
    return OK


@click.command(short_help="Run the periodic jobs (sweeper, SLA checks).")
@pass_runtime
def cron(runtime: Runtime) -> int:
    """Run the periodic jobs: the sweeper every minute and the overdue SLA checks.

    It keeps running through Redis outages (it connects again with backoff).
    """
    from integration.pipeline.workers import run_cron

    run_cron(runtime.services())
    return OK


@click.command(short_help="Sign a request body from stdin for the intake.")
@pass_runtime
def sign(runtime: Runtime) -> int:
    """Print the X-Leadloop-Signature header for a request body read from stdin.

    The body is signed with the first secret of LEADLOOP_EVENTS_SECRETS, for POST
    /webhooks/events. Example: leadloop sign < body.json
    """
    from connectors.base import secret_list
    from integration.web.intake import sign as signature

    secrets = secret_list(runtime.config["LEADLOOP_EVENTS_SECRETS"])
    if not secrets:
        raise CliError("LEADLOOP_EVENTS_SECRETS is not set: set it to the intake's signing secret(s)", SETUP)
    stdin = click.get_binary_stream("stdin")
    if stdin.isatty():
        note("reading the request body from stdin; end it with Ctrl-D")
    out(signature(stdin.read(), secrets[0]))
    return OK


@click.command(short_help="Replay the demo data set on embedded defaults.")
@click.option("--leads", type=click.IntRange(min=1), default=600, show_default=True,
              help="How many leads the generated data set has.")
@click.option("--seed", type=int, default=7, show_default=True,
              help="Seed of the data set: the same seed gives the same leads and events.")
@click.option("--keep", is_flag=True, help="Keep the previous demo database instead of starting afresh.")
@click.option("--serve", is_flag=True, help="After the summary, keep the web app and its dashboard running "
              "until Ctrl-C.")
def demo(leads: int, seed: int, keep: bool, serve: bool) -> int:
    """Run the web app and a worker on embedded defaults and replay the demo data set.

    SQLite and an embedded Redis in instance/demo, CRM writes in shadow mode (recorded, never
    sent). Ends with a summary, the funnel and the dashboard's address with its token; the web
    app, the worker and the embedded Redis are stopped when it ends, also on Ctrl-C.
    """
    from integration.demo.runner import run_demo

    return run_demo(leads=leads, seed=seed, keep=keep, serve=serve)


@click.command(short_help="Stop an embedded Redis left running.")
@click.argument("folders", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@pass_runtime
def stop(runtime: Runtime, folders: tuple[Path, ...]) -> int:
    """Stop an embedded Redis left running, e.g. by a demo that was killed.

    FOLDERS are instance folders (where redis.pid and redis.sock live). By default: the folder
    of LEADLOOP_INSTANCE_DIR and the demo's. Processes still using that Redis lose it.
    """
    from integration.demo.runner import DEMO_DIR
    from integration.embedded_redis import stop_embedded_redis

    candidates = list(folders) or [Path(runtime.config["LEADLOOP_INSTANCE_DIR"]), DEMO_DIR]
    stopped = 0
    for folder in dict.fromkeys(path.resolve() for path in candidates):
        pid = stop_embedded_redis(folder)
        if pid is not None:
            out(f"stopped the embedded Redis in {folder} (pid {pid})")
            stopped += 1
    if not stopped:
        out("no embedded Redis running in " + " or ".join(str(path) for path in candidates))
    return OK
