"""Create groups, study_activities and study_sessions.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", key, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_groups"),
    )
    op.create_table(
        "study_activities",
        sa.Column("id", key, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("preview_url", sa.String(2000), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_study_activities"),
    )
    op.create_table(
        "study_sessions",
        sa.Column("id", key, primary_key=True, autoincrement=False),
        sa.Column("group_id", key, nullable=False),
        sa.Column("study_activity_id", key, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_study_sessions"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_study_sessions_group_id_groups"),
        sa.ForeignKeyConstraint(
            ["study_activity_id"], ["study_activities.id"], name="fk_study_sessions_study_activity_id_study_activities"
        ),
    )
    op.create_index("ix_study_sessions_group_id", "study_sessions", ["group_id"])
    op.create_index("ix_study_sessions_study_activity_id", "study_sessions", ["study_activity_id"])
    op.create_index("ix_study_sessions_created_at_id", "study_sessions", ["created_at", "id"])


def downgrade() -> None:
    op.drop_table("study_sessions")
    op.drop_table("study_activities")
    op.drop_table("groups")
