"""Words, which groups they belong to, and the review items of study sessions; with the counts of
right and wrong answers per session and per word, kept by triggers as reviews come and go.
"""

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision = "0005"
down_revision = "0004"

key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# What a review adds to (and, deleted, takes from) its session's counts and its word's.
COUNTED = (("review_counts", "study_session_id"), ("word_review_counts", "word_id"))

PG_FUNCTION = """
CREATE FUNCTION count_reviews() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO review_counts (study_session_id, reviews, correct)
        SELECT study_session_id, count(*), count(*) FILTER (WHERE correct) FROM changed GROUP BY study_session_id
        ON CONFLICT (study_session_id) DO UPDATE
        SET reviews = review_counts.reviews + excluded.reviews, correct = review_counts.correct + excluded.correct;
        INSERT INTO word_review_counts (word_id, reviews, correct)
        SELECT word_id, count(*), count(*) FILTER (WHERE correct) FROM changed GROUP BY word_id
        ON CONFLICT (word_id) DO UPDATE
        SET reviews = word_review_counts.reviews + excluded.reviews,
            correct = word_review_counts.correct + excluded.correct;
    ELSE
        UPDATE review_counts
        SET reviews = review_counts.reviews - gone.reviews, correct = review_counts.correct - gone.correct
        FROM (SELECT study_session_id, count(*) AS reviews, count(*) FILTER (WHERE correct) AS correct
              FROM changed GROUP BY study_session_id) AS gone
        WHERE review_counts.study_session_id = gone.study_session_id;
        UPDATE word_review_counts
        SET reviews = word_review_counts.reviews - gone.reviews, correct = word_review_counts.correct - gone.correct
        FROM (SELECT word_id, count(*) AS reviews, count(*) FILTER (WHERE correct) AS correct
              FROM changed GROUP BY word_id) AS gone
        WHERE word_review_counts.word_id = gone.word_id;
    END IF;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "words",
        sa.Column("id", key, primary_key=True),
        sa.Column("kanji", sa.String(100), nullable=False, comment="The word as it is written."),
        sa.Column("romaji", sa.String(200), nullable=False, comment="How it is read, in Hepburn romaji."),
        sa.Column("english", sa.String(500), nullable=False, comment="What it means."),
        sa.Column("parts", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_words"),
    )
    op.create_table(
        "word_groups",
        sa.Column("word_id", key, nullable=False),
        sa.Column("group_id", key, nullable=False),
        sa.PrimaryKeyConstraint("group_id", "word_id", name="pk_word_groups"),
        sa.ForeignKeyConstraint(["word_id"], ["words.id"], name="fk_word_groups_word_id_words"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name="fk_word_groups_group_id_groups"),
    )
    op.create_table(
        "review_items",
        sa.Column("id", key, primary_key=True),
        sa.Column("study_session_id", key, nullable=False),
        sa.Column("word_id", key, nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_review_items"),
        sa.ForeignKeyConstraint(
            ["study_session_id"], ["study_sessions.id"], name="fk_review_items_study_session_id_study_sessions"
        ),
        sa.ForeignKeyConstraint(["word_id"], ["words.id"], name="fk_review_items_word_id_words"),
    )
    op.create_index("ix_review_items_study_session_id_id", "review_items", ["study_session_id", "id"])
    op.create_index("ix_review_items_word_id", "review_items", ["word_id"])
    for table, column, referred in (
        ("review_counts", "study_session_id", "study_sessions"),
        ("word_review_counts", "word_id", "words"),
    ):
        op.create_table(
            table,
            sa.Column(column, key, nullable=False),
            sa.Column("reviews", sa.BigInteger(), nullable=False),
            sa.Column("correct", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint(column, name=f"pk_{table}"),
            sa.ForeignKeyConstraint([column], [f"{referred}.id"], name=f"fk_{table}_{column}_{referred}"),
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        for event, rows in (("INSERT", "NEW"), ("DELETE", "OLD")):
            op.execute(
                f"CREATE TRIGGER review_items_counted_{event.lower()} AFTER {event} ON review_items "
                f"REFERENCING {rows} TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION count_reviews()"
            )
    else:
        for table, column in COUNTED:
            op.execute(
                f"CREATE TRIGGER review_items_counted_{table}_insert AFTER INSERT ON review_items BEGIN "
                f"INSERT INTO {table} ({column}, reviews, correct) VALUES (NEW.{column}, 1, NEW.correct) "
                f"ON CONFLICT ({column}) DO UPDATE SET reviews = reviews + 1, correct = correct + NEW.correct; END"
            )
            op.execute(
                f"CREATE TRIGGER review_items_counted_{table}_delete AFTER DELETE ON review_items BEGIN "
                f"UPDATE {table} SET reviews = reviews - 1, correct = correct - OLD.correct "
                f"WHERE {column} = OLD.{column}; END"
            )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute("DROP TRIGGER review_items_counted_insert ON review_items")
        op.execute("DROP TRIGGER review_items_counted_delete ON review_items")
        op.execute("DROP FUNCTION count_reviews()")
    for table in ("word_review_counts", "review_counts", "review_items", "word_groups", "words"):
        op.drop_table(table)
