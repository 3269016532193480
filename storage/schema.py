"""The tables, declared once; the migrations in storage/migrations create exactly these."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, MetaData, Sequence, String, Table, Text

from storage.types import UTCDateTime

# A 64-bit key; SQLite wants exactly INTEGER to make it the rowid, which picks server-side ids.
Key = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

groups = Table(
    "groups",
    metadata,
    Column("id", Key, primary_key=True),
    Column("name", String(200), nullable=False),
)

study_activities = Table(
    "study_activities",
    metadata,
    Column("id", Key, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("preview_url", String(2000), nullable=False),
)

study_sessions_id_seq = Sequence("study_sessions_id_seq", metadata=metadata)
"""PostgreSQL only (migration 0003): where storage.study_sessions takes the ids the server picks."""

study_sessions = Table(
    "study_sessions",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=False),
    Column("group_id", Key, ForeignKey("groups.id"), nullable=False, index=True),
    Column("study_activity_id", Key, ForeignKey("study_activities.id"), nullable=False, index=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "created_at", "id"),
)

row_counts = Table(
    "row_counts",
    metadata,
    Column("table_name", String(100), primary_key=True),
    Column("slot", Integer, primary_key=True, autoincrement=False),
    Column("n", BigInteger, nullable=False),
)
"""How many rows a table has, kept by triggers (migration 0002) as rows come and go: the sum of
a table's slots, read in one step where count(*) would read every row."""

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("client", String(100), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, index=True),
    Column("status", Integer),
    Column("body", Text),
    Column("headers", Text),
)
"""The first answer to a request sent with an Idempotency-Key (storage.idempotency)."""
