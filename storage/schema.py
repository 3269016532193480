"""The tables, declared once; the migrations in storage/migrations create exactly these."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Sequence,
    String,
    Table,
    Text,
)

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

words = Table(
    "words",
    metadata,
    Column("id", Key, primary_key=True),
    Column("kanji", String(100), nullable=False, comment="The word as it is written."),
    Column("romaji", String(200), nullable=False, comment="How it is read, in Hepburn romaji."),
    Column("english", String(500), nullable=False, comment="What it means."),
    Column("parts", JSON, nullable=False),
)

word_groups = Table(
    "word_groups",
    metadata,
    Column("group_id", Key, ForeignKey("groups.id"), primary_key=True),
    Column("word_id", Key, ForeignKey("words.id"), primary_key=True),
)

review_items = Table(
    "review_items",
    metadata,
    Column("id", Key, primary_key=True),
    Column("study_session_id", Key, ForeignKey("study_sessions.id"), nullable=False),
    Column("word_id", Key, ForeignKey("words.id"), nullable=False, index=True),
    Column("correct", Boolean, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "study_session_id", "id"),
)


def _review_counts(name: str, column: str, referred: str) -> Table:
    """Reviews and right answers per `column`, kept by triggers (migration 0005) as reviews come
    and go."""
    return Table(
        name,
        metadata,
        Column(column, Key, ForeignKey(f"{referred}.id"), primary_key=True, autoincrement=False),
        Column("reviews", BigInteger, nullable=False),
        Column("correct", BigInteger, nullable=False),
    )


review_counts = _review_counts("review_counts", "study_session_id", "study_sessions")
"""A session's reviews and right answers."""
word_review_counts = _review_counts("word_review_counts", "word_id", "words")
"""A word's reviews and right answers, across every session."""
