"""`python -m catalog migrate | events ...`: the one-shot schema step and the event tooling (common.events.tooling)."""

from __future__ import annotations

import argparse

from catalog import events
from catalog.main import MIGRATIONS_DIR
from catalog.settings import CatalogSettings
from common import cli
from common.events import tooling


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m catalog")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply migrations and declare the queues of consumed events")
    tooling.add_parser(sub)
    args = parser.parse_args()
    if args.command == "migrate":
        cli.migrate(CatalogSettings(), MIGRATIONS_DIR, events.handlers.routing_keys)
    elif args.command == "events":
        tooling.run(CatalogSettings(), args)


if __name__ == "__main__":
    main()
