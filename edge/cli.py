"""The `study-sessions` command that an installed package brings:

    study-sessions serve     migrate and seed the database, then serve (what `python app.py` does)
    study-sessions migrate   bring the database's schema up to date, seed it, and exit: the admin
                             step of a deploy, run once before the workers start

Both read their settings from the environment variables the README lists."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from edge.logs import configure_logging, log
from edge.settings import settings_or_exit
from edge.startup import prepare_database


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the command that `argv` names (the process's arguments by default)."""
    parser = argparse.ArgumentParser(
        prog="study-sessions",
        description="The study sessions service. Settings come from environment variables (see the README).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="migrate and seed the database, then serve on HOST:PORT until stopped")
    commands.add_parser("migrate", help="bring the database's schema up to date and seed it, then exit")
    arguments = parser.parse_args(argv)
    if arguments.command == "migrate":
        settings = settings_or_exit()
        configure_logging(settings.log_level)
        prepare_database(settings)
        log.info("database up to date")
        return
    import app  # the composition root: reads the settings and builds the service on import

    app.main()


if __name__ == "__main__":
    main()
