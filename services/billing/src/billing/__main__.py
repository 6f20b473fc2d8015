"""`python -m billing migrate`: one-shot commands for operators and CI."""

from __future__ import annotations

import argparse

from billing import events
from billing.main import MIGRATIONS_DIR
from billing.settings import BillingSettings
from common import cli
from common.events import tooling


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m billing")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply migrations and declare the service's queues")
    tooling.add_parser(sub)
    args = parser.parse_args()
    settings = BillingSettings()
    if args.command == "migrate":
        cli.migrate(settings, MIGRATIONS_DIR, events.handlers.routing_keys)
    elif args.command == "events":
        tooling.run(settings, args)


if __name__ == "__main__":
    main()
