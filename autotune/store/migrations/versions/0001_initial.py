"""Initial schema: hosts, workloads, calibrations, trials, profiles.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the first version of every table."""
    op.create_table(
        "autotune_hosts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True, index=True),
        sa.Column("components", sa.JSON, nullable=False),
        sa.Column("info", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "autotune_workloads",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("signature", sa.String(64), nullable=False, unique=True, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("size", sa.Integer, nullable=True),
        sa.Column("path", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "autotune_calibrations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("host_id", sa.Integer, sa.ForeignKey("autotune_hosts.id"), nullable=False,
                  index=True),
        sa.Column("workload_id", sa.Integer, sa.ForeignKey("autotune_workloads.id"),
                  nullable=False, index=True),
        sa.Column("study_name", sa.String(300), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("load", sa.JSON, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "autotune_trials",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("calibration_id", sa.Integer, sa.ForeignKey("autotune_calibrations.id"),
                  nullable=False, index=True),
        sa.Column("config_key", sa.String(100), nullable=False, index=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("phases", sa.JSON, nullable=False),
        sa.Column("cold", sa.Boolean, nullable=False),
        sa.Column("peak_rss", sa.BigInteger, nullable=True),
        sa.Column("observables", sa.JSON, nullable=False),
        sa.Column("neurons", sa.Float, nullable=True),
        sa.Column("synapses", sa.Float, nullable=True),
        sa.Column("spikes_per_second", sa.Float, nullable=True),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "autotune_profiles",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("host_id", sa.Integer, sa.ForeignKey("autotune_hosts.id"), nullable=False,
                  index=True),
        sa.Column("workload_id", sa.Integer, sa.ForeignKey("autotune_workloads.id"),
                  nullable=False, index=True),
        sa.Column("calibration_id", sa.Integer, sa.ForeignKey("autotune_calibrations.id"),
                  nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, index=True),
        sa.Column("workload_signature", sa.String(64), nullable=False, index=True),
        sa.Column("best_config", sa.JSON, nullable=True),
        sa.Column("target_duration", sa.Float, nullable=False),
        sa.Column("format_version", sa.Integer, nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop every table (data is lost)."""
    for table in ("autotune_profiles", "autotune_trials", "autotune_calibrations",
                  "autotune_workloads", "autotune_hosts"):
        op.drop_table(table)
