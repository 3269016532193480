"""Count the rows of study_sessions as they change, so that a page's `total` reads one row
instead of counting a table of millions.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

COUNTED = ("study_sessions",)
PG_SLOTS = 16
"""PostgreSQL spreads a table's count over rows that concurrent writers pick by backend, so that
they rarely wait for each other's row lock; SQLite, one writer at a time, needs one."""

PG_FUNCTION = f"""
CREATE FUNCTION count_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE row_counts SET n = 0 WHERE table_name = TG_TABLE_NAME;
    ELSIF TG_OP = 'INSERT' THEN
        UPDATE row_counts SET n = n + (SELECT count(*) FROM changed)
        WHERE table_name = TG_TABLE_NAME AND slot = pg_backend_pid() % {PG_SLOTS};
    ELSE
        UPDATE row_counts SET n = n - (SELECT count(*) FROM changed)
        WHERE table_name = TG_TABLE_NAME AND slot = pg_backend_pid() % {PG_SLOTS};
    END IF;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "row_counts",
        sa.Column("table_name", sa.String(100), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("table_name", "slot", name="pk_row_counts"),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute(PG_FUNCTION)
    for table in COUNTED:
        op.execute(f"INSERT INTO row_counts (table_name, slot, n) SELECT '{table}', 0, count(*) FROM {table}")
        for slot in range(1, PG_SLOTS if postgresql else 1):
            op.execute(f"INSERT INTO row_counts (table_name, slot, n) VALUES ('{table}', {slot}, 0)")
        if postgresql:
            for event, rows in (("INSERT", "NEW"), ("DELETE", "OLD")):
                op.execute(
                    f"CREATE TRIGGER {table}_counted_{event.lower()} AFTER {event} ON {table} "
                    f"REFERENCING {rows} TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION count_rows()"
                )
            op.execute(
                f"CREATE TRIGGER {table}_counted_truncate AFTER TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION count_rows()"
            )
        else:
            for event, change in (("INSERT", "+"), ("DELETE", "-")):
                op.execute(
                    f"CREATE TRIGGER {table}_counted_{event.lower()} AFTER {event} ON {table} BEGIN "
                    f"UPDATE row_counts SET n = n {change} 1 WHERE table_name = '{table}'; END"
                )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in COUNTED:
        events = ("insert", "delete", "truncate") if postgresql else ("insert", "delete")
        for event in events:
            op.execute(f"DROP TRIGGER {table}_counted_{event}" + (f" ON {table}" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION count_rows()")
    op.drop_table("row_counts")
