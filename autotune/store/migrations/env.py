"""Alembic environment for brian2-autotune's own tables (own version table, shared database)."""

from __future__ import annotations

from alembic import context

from autotune.store.models import VERSION_TABLE, Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,
    # Optuna's tables share the database: never let autogenerate touch them.
    include_name=lambda name, type_, parent: type_ != "table" or str(name).startswith("autotune_"),
)
with context.begin_transaction():
    context.run_migrations()
