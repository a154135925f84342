#!/usr/bin/env bash
# Development only, before the first release: regenerate migration 0001 from the models.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PY:-.venv/bin/python}
rm -f integration/store/migrations/versions/0001_initial_schema.py /tmp/leadloop-autogen.db
"$py" - <<'PY'
from alembic import command
from integration.store.migrate import alembic_config
command.revision(alembic_config("sqlite:////tmp/leadloop-autogen.db"), message="initial schema",
                 autogenerate=True, rev_id="0001")
PY
f=integration/store/migrations/versions/0001_initial_schema.py
sed -i "s/astext_type=Text()/astext_type=sa.Text()/g; s/integration.store.models.Stamp(timezone=True)/sa.DateTime(timezone=True)/g; /# ### /d" "$f"
"${RUFF:-.venv/bin/ruff}" format -q "$f"
