"""`python -m playback migrate | generate-token-key | watermark identify`: one-shot commands for
operators and CI."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path

from common import cli
from common.events import tooling
from playback import events, signing
from playback.assets.jobs import declare_transcode_queues
from playback.main import MIGRATIONS_DIR
from playback.settings import PlaybackSettings


def _recording(path: Path) -> Path | list[Path] | None:
    """A file, or a folder's files in name order (segments as downloaded), or None."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file())
    return path if path.is_file() else None


async def _identify(source: Path | list[Path], asset_id: uuid.UUID | None) -> int:
    from common.db import Database
    from playback import leaks
    from playback.assets.storage import open_storage

    settings = PlaybackSettings()
    db = Database(settings.database_url.get_secret_value(), settings.db_schema, 1)
    try:
        trace = await leaks.identify_recording(db=db, storage=open_storage(settings), settings=settings,
                                               recording=source, asset_id=asset_id)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    finally:
        await db.dispose()
    sys.stdout.write(trace.model_dump_json(indent=2) + "\n")
    return 0 if trace.outcome == "identified" else 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m playback")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply migrations and declare the service's queues (events and transcode jobs)")
    sub.add_parser("generate-token-key",
                   help="print a new Ed25519 PEM for PLAYBACK_TOKEN_PRIVATE_KEY(_FILE) to stdout")
    watermark = sub.add_parser("watermark", help="forensic watermark tools").add_subparsers(
        dest="watermark_command", required=True)
    identify = watermark.add_parser(
        "identify", help="trace a leaked recording (a video file, or a folder of its segments in name order) "
                         "to the playback session it came from; prints the verdict as JSON")
    identify.add_argument("recording", type=Path)
    identify.add_argument("--asset", type=uuid.UUID, default=None,
                          help="the asset it shows (default: every watermarked asset is tried)")
    tooling.add_parser(sub)
    args = parser.parse_args()
    if args.command == "events":
        tooling.run(PlaybackSettings(), args)
    elif args.command == "migrate":
        settings = PlaybackSettings()
        cli.migrate(settings, MIGRATIONS_DIR, events.handlers.routing_keys)
        if settings.broker_url:
            # The job queues exist before the API or a worker starts, so no transcode job is unroutable.
            asyncio.run(declare_transcode_queues(settings))
    elif args.command == "watermark":
        source = _recording(args.recording)
        if source is None:
            sys.exit(f"no such file or folder: {args.recording}")
        sys.exit(asyncio.run(_identify(source, args.asset)))
    elif args.command == "generate-token-key":
        sys.stdout.write(signing.generate_pem().decode())


if __name__ == "__main__":
    main()
