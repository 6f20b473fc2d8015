"""`python -m playback migrate | generate-token-key`: one-shot commands for operators and CI."""

from __future__ import annotations

import argparse
import asyncio
import sys

from common import cli
from common.events import tooling
from playback import events, signing
from playback.assets.jobs import declare_transcode_queues
from playback.main import MIGRATIONS_DIR
from playback.settings import PlaybackSettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m playback")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply migrations and declare the service's queues (events and transcode jobs)")
    sub.add_parser("generate-token-key",
                   help="print a new Ed25519 PEM for PLAYBACK_TOKEN_PRIVATE_KEY(_FILE) to stdout")
    tooling.add_parser(sub)
    args = parser.parse_args()
    if args.command == "events":
        tooling.run(PlaybackSettings(), args)
    elif args.command == "migrate":
        settings = PlaybackSettings()
        cli.migrate(settings, MIGRATIONS_DIR, events.HANDLERS)
        if settings.broker_url:
            # The job queues exist before the API or a worker starts, so no transcode job is unroutable.
            asyncio.run(declare_transcode_queues(settings))
    elif args.command == "generate-token-key":
        sys.stdout.write(signing.generate_pem().decode())


if __name__ == "__main__":
    main()
