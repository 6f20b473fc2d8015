"""`python -m catalog migrate`: the one-shot schema step for operators, CI and the k8s job."""

from __future__ import annotations

import argparse

from catalog import events
from catalog.main import MIGRATIONS_DIR
from catalog.settings import CatalogSettings
from common import cli


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m catalog")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply migrations and declare the queues of consumed events")
    args = parser.parse_args()
    if args.command == "migrate":
        cli.migrate(CatalogSettings(), MIGRATIONS_DIR, events.HANDLERS)


if __name__ == "__main__":
    main()
