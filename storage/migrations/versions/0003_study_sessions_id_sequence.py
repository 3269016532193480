"""On PostgreSQL, a sequence for the ids the server picks, past every id already taken.
(SQLite picks them itself: an INTEGER PRIMARY KEY is the rowid.)
"""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE SEQUENCE study_sessions_id_seq AS bigint MINVALUE 1 OWNED BY study_sessions.id")
    op.execute("SELECT setval('study_sessions_id_seq', max(id)) FROM study_sessions HAVING max(id) IS NOT NULL")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP SEQUENCE study_sessions_id_seq")
