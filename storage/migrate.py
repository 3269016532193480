"""Bring a database to the newest schema, and give a fresh one its starting rows."""

from __future__ import annotations

import contextlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, exc, insert, select, text

from storage import vocabulary
from storage.engine import transaction
from storage.schema import groups, study_activities, word_groups, words

MIGRATIONS = Path(__file__).parent / "migrations"

GROUPS = [
    {"id": 1, "name": "Core Verbs"},
    {"id": 2, "name": "Core Adjectives"},
    {"id": 3, "name": "Food and Drink"},
    {"id": 4, "name": "Travel Phrases"},
]
STUDY_ACTIVITIES = [
    {
        "id": 1,
        "name": "Typing Tutor",
        "url": "http://localhost:8080/typing-tutor",
        "preview_url": "http://localhost:8080/assets/typing-tutor.png",
    },
    {
        "id": 2,
        "name": "Flashcards",
        "url": "http://localhost:8080/flashcards",
        "preview_url": "http://localhost:8080/assets/flashcards.png",
    },
    {
        "id": 3,
        "name": "Sentence Builder",
        "url": "http://localhost:8080/sentence-builder",
        "preview_url": "http://localhost:8080/assets/sentence-builder.png",
    },
]


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


HEAD = ScriptDirectory.from_config(_config()).get_current_head()
"""The revision this code's schema is at."""


def revision(conn: Connection) -> str | None:
    """The revision the database's schema is at; None if it was never migrated."""
    # In a transaction, which PostgreSQL ends at a failed statement, the read goes in a savepoint;
    # in autocommit (storage.database's reads on PostgreSQL) there is none to keep.
    autocommit = conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
    try:
        with contextlib.nullcontext() if autocommit else conn.begin_nested():
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except exc.OperationalError as error:
        if "alembic_version" not in str(error.orig):
            raise
        return None
    except exc.ProgrammingError:  # PostgreSQL: relation "alembic_version" does not exist
        return None


MIGRATION_LOCK = 4_715_031_270
"""PostgreSQL advisory lock key that upgrade and seed hold: hosts that start at once over one
database take turns, and the second finds the work done (SQLite: the write lock does this)."""


def _one_at_a_time(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})


def upgrade(engine: Engine) -> None:
    """Run every migration the database has not had yet."""
    config = _config()
    with transaction(engine, write=True) as conn:
        _one_at_a_time(conn)
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def seed(engine: Engine) -> None:
    """Add the starting groups, study activities and words that are missing; rows already there
    stay."""
    words_, memberships = vocabulary.rows()
    with transaction(engine, write=True) as conn:
        _one_at_a_time(conn)
        for table, rows in ((groups, GROUPS), (study_activities, STUDY_ACTIVITIES), (words, words_)):
            present = set(conn.execute(select(table.c.id)).scalars())
            missing = [row for row in rows if row["id"] not in present]
            if missing:
                conn.execute(insert(table), missing)
        present_pairs = {(g, w) for g, w in conn.execute(select(word_groups.c.group_id, word_groups.c.word_id))}
        missing_pairs = [m for m in memberships if (m["group_id"], m["word_id"]) not in present_pairs]
        if missing_pairs:
            conn.execute(insert(word_groups), missing_pairs)
