"""Playback: tokens per second, and manifest latency for assets of 10 and 2,000 segments.

Self-contained and short: auth (real) + a stand-in catalog + playback, in process, on the local
PostgreSQL and Redis (a throw-away database and key prefix), with two synthetic HLS assets in a
temporary media root. In-process ASGI calls measure the service itself, not a network.

    uv run python bench/playback_bench.py --seconds 5 --concurrency 8

Also times the signing step alone (Nginx secure_link and CloudFront RSA policy), which must cost
the same for 10 segments as for 2,000: one signature per manifest, then string concatenation.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

# bench/ is sys.path[0] when run as `uv run python bench/playback_bench.py`.
from loadgen import run
from starlette.routing import Mount

from auth.main import create_app as create_auth_app
from auth.settings import AuthSettings
from common.app import compose_services
from common.events.bus import InProcessBus
from common.http import LazyASGITransport
from common.testing import (
    REDIS_URL,
    in_process_settings,
    postgres_database,
    serve_in_process,
    unique_name,
)
from playback import cdn, hls, service, signing
from playback.main import create_app as create_playback_app
from playback.media import create_media_app
from playback.settings import PlaybackSettings

COURSE = uuid.uuid4()
SEGMENTS = (10, 2000)
CLIENT_SECRET = "bench-playback-secret-123456"


def write_asset(root: Path, segments: int) -> uuid.UUID:
    asset = uuid.uuid4()
    (root / str(asset) / "720p").mkdir(parents=True)
    (root / str(asset) / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720\n720p/index.m3u8\n")
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:4", "#EXT-X-MEDIA-SEQUENCE:0",
             "#EXT-X-PLAYLIST-TYPE:VOD"]
    for index in range(segments):
        lines += ["#EXTINF:4.000,", f"segment_{index:05d}.ts"]
    (root / str(asset) / "720p" / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))
    return asset


def stand_in_catalog(lessons: dict[uuid.UUID, uuid.UUID]) -> FastAPI:
    """Catalog's internal lesson route (docs/contracts.md) for the synthetic lessons."""
    app = FastAPI()

    @app.get("/internal/lessons/{lesson_id}")
    async def lesson(lesson_id: uuid.UUID) -> dict[str, Any]:
        return {"lesson_id": str(lesson_id), "course_id": str(COURSE), "asset_id": str(lessons[lesson_id]),
                "is_preview": False, "course_status": "published", "kind": "video"}

    @app.get("/internal/enrollments/check")
    async def check() -> dict[str, bool]:
        return {"enrolled": True}

    return app


def micro(name: str, fn: Callable[[], object], repeat: int) -> None:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    print(f"{name:<46} {(time.perf_counter() - start) / repeat * 1e6:9.1f} us/manifest")


def signing_costs(root: Path, assets: dict[int, uuid.UUID]) -> None:
    print("\nsigning step alone (one signature per manifest, then concatenation):")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signers: dict[str, cdn.MediaSigner] = {
        "nginx": cdn.NginxSecureLinkSigner("bench-secret"),
        "cloudfront": cdn.CloudFrontMediaSigner(key_pair_id="KBENCH", private_key=key,
                                                media_base_url="https://media.example"),
    }
    for label, signer in signers.items():
        micro(f"  {label} sign only", lambda s=signer: s.sign(str(uuid.uuid4()), 2_000_000_000), 200)
        for segments, asset in assets.items():
            template = hls.media_template((root / str(asset) / "720p" / "index.m3u8").read_text(), "720p")
            micro(f"  {label} sign + fill {segments:>4} segments",
                  lambda s=signer, t=template, a=str(asset): service.sign_media_playlist(
                      t, signer=s, media_base_url="https://media.example", asset_id=a,
                      expires=2_000_000_000), 200)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0, help="per scenario (keep runs short)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as media, postgres_database(["auth", "playback"]) as urls:
        root = Path(media)
        assets = {segments: write_asset(root, segments) for segments in SEGMENTS}
        lessons = {uuid.uuid4(): asset for asset in assets.values()}
        lesson_of = {asset: lesson for lesson, asset in lessons.items()}
        transport, bus = LazyASGITransport(), InProcessBus()
        auth_app = create_auth_app(AuthSettings(**in_process_settings(urls["auth"]),
                                                service_clients=f"playback:{CLIENT_SECRET}",
                                                log_level="WARNING"), bus=bus, http_transport=transport)
        settings = PlaybackSettings(**in_process_settings(urls["playback"]), service_client_secret=CLIENT_SECRET,
                                    token_private_key=signing.generate_pem().decode(), media_root=root,
                                    redis_url=REDIS_URL, redis_key_prefix=f"{unique_name('bench')}:",
                                    max_concurrent_streams=4, log_level="WARNING")
        playback_app = create_playback_app(settings, bus=bus, http_transport=transport)
        app = compose_services({"auth": auth_app, "catalog": stand_in_catalog(lessons), "playback": playback_app},
                               bus=bus, extra_routes=[Mount("/media", app=create_media_app(settings))])
        async with serve_in_process(app, transport) as client:
            users: list[tuple[uuid.UUID, dict[str, str]]] = []
            for _ in range(args.users):
                email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
                created = await client.post("/api/auth/register", json={
                    "email": email, "password": "bench passphrase 123", "full_name": "Bench"})
                login = await client.post("/api/auth/login", json={"email": email,
                                                                    "password": "bench passphrase 123"})
                users.append((uuid.UUID(created.json()["id"]),
                              {"Authorization": f"Bearer {login.json()['access_token']}"}))
            runtime = playback_app.state.runtime
            async with runtime.db.transaction() as session:
                for user_id, _ in users:
                    await service.record_enrollment(db_session=session, user_id=user_id, course_id=COURSE,
                                                    version=1, active=True)

            print(f"playback bench: {args.seconds:.0f} s per scenario, concurrency {args.concurrency}, "
                  f"{args.users} users (PostgreSQL + Redis, in-process ASGI)")
            turn = 0

            async def token() -> int:
                nonlocal turn
                turn += 1
                _, headers = users[turn % len(users)]
                response = await client.post("/api/playback/token", headers=headers,
                                             json={"lesson_id": str(lesson_of[assets[10]])})
                return response.status_code

            print((await run(token, args.concurrency, seconds=args.seconds)).line("POST /token"))

            for segments, asset in assets.items():
                _, headers = users[0]
                issued = (await client.post("/api/playback/token", headers=headers,
                                            json={"lesson_id": str(lesson_of[asset])})).json()
                variant = issued["manifest_url"].replace("master.m3u8", "720p/index.m3u8")

                async def manifest(url: str = variant, expected: int = segments) -> int:
                    response = await client.get(url)
                    assert response.status_code != 200 or response.text.count(".ts?md5=") == expected
                    return response.status_code

                result = await run(manifest, args.concurrency, seconds=args.seconds)
                print(result.line(f"GET media playlist {segments:>4} segments"))
        signing_costs(root, assets)


if __name__ == "__main__":
    asyncio.run(main())
