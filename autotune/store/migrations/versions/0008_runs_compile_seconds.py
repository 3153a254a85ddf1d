"""Record the seconds each run spent compiling its generated code (``compile_seconds``): a
script whose only run of a configuration was cold has its warm set-up measured, not guessed
from another model's build.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``compile_seconds`` to runs."""
    with op.batch_alter_table("autotune_runs") as batch:
        batch.add_column(sa.Column("compile_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    with op.batch_alter_table("autotune_runs") as batch:
        batch.drop_column("compile_seconds")
