"""Record which phase of a profile-guided build a run was (``generate``: the instrumented run
that took the profile, whose times say nothing of a run with it; ``use``), so that later runs of
the script learn only from runs built with the profile.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``pgo_phase`` to runs."""
    with op.batch_alter_table("autotune_runs") as batch:
        batch.add_column(sa.Column("pgo_phase", sa.String(10), nullable=True))


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    with op.batch_alter_table("autotune_runs") as batch:
        batch.drop_column("pgo_phase")
