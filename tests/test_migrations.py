"""The migrations build exactly the tables the models describe, on the test's database and both ways."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from integration.store.migrate import alembic_config, current, upgrade
from integration.store.models import Base


def differences(engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def downgraded(tmp_path: Path, revision: str):
    """A migrated SQLite file taken back down to ``revision``: its engine."""
    url = f"sqlite:///{tmp_path / 'migrations.db'}"
    engine = create_engine(url)
    upgrade(engine)
    config = alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
    return engine


def test_the_migrated_database_matches_the_models(migrated_engine):
    # SQLite by default, PostgreSQL when DATABASE_URL names one: the suite's own database.
    assert current(migrated_engine) == "0007"
    assert differences(migrated_engine) == []


def test_the_deal_migration_goes_down_and_up_again(tmp_path: Path):
    engine = downgraded(tmp_path, "0002")
    assert current(engine) == "0002"
    upgrade(engine)
    assert differences(engine) == []
    engine.dispose()


def test_the_report_index_migration_goes_down_and_up_again(tmp_path: Path):
    engine = downgraded(tmp_path, "0004")
    assert current(engine) == "0004" and differences(engine) != []
    upgrade(engine)
    assert current(engine) == "0007" and differences(engine) == []
    engine.dispose()
