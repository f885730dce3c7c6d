"""The runs of restorecheck: one row per run, its phases, tables and findings.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rc_run",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(200), nullable=False),
        sa.Column("command", sa.String(20), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),  # UTC, naive (one meaning in every backend)
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.Column("verdict", sa.String(10), nullable=False),
        sa.Column("exit_code", sa.Integer, nullable=False),
        # the restore verified (the verdict before the between-nights checks was pass): the runs
        # the drift, rto_trend and backup_size checks compare with
        sa.Column("verified", sa.Boolean, nullable=False),
        sa.Column("engine", sa.String(20), nullable=False),
        sa.Column("source", sa.Text),
        sa.Column("backup_path", sa.Text),
        sa.Column("backup_format", sa.String(20)),
        sa.Column("backup_bytes", sa.BigInteger),
        sa.Column("backup_sha256", sa.String(64)),
        sa.Column("rows_verified", sa.BigInteger),
        sa.Column("restore_seconds", sa.Float),
        sa.Column("total_seconds", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("tool_version", sa.String(40), nullable=False),
    )
    op.create_index("rc_run_job_started", "rc_run", ["job", "started_at"])
    op.create_table(
        "rc_phase",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("rc_run.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("phase", sa.String(40), primary_key=True),
        sa.Column("seconds", sa.Float, nullable=False),
    )
    op.create_table(
        "rc_table",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("rc_run.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("rows_expected", sa.BigInteger),
        sa.Column("rows_restored", sa.BigInteger),
        sa.Column("checksum_expected", sa.Text),
        sa.Column("checksum_restored", sa.Text),
        sa.Column("match", sa.Boolean, nullable=False),
    )
    op.create_table(
        "rc_finding",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("rc_run.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("check_id", sa.String(40), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("object", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rc_finding")
    op.drop_table("rc_table")
    op.drop_table("rc_phase")
    op.drop_index("rc_run_job_started", "rc_run")
    op.drop_table("rc_run")
