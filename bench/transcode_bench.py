"""Transcode cost on this machine: seconds of work per minute of video, and the worker's memory.

Runs the worker's own code path (`playback.assets.transcoder.transcode`: ffprobe, one ffmpeg
encoding the 360p+720p ladder, thumbnail) on a generated 720p/30 fps source with audio, in a child
process per run, and reports wall time, ffmpeg CPU time and peak RSS of the Python process (what
`python -m playback.worker` holds) and of ffmpeg. Bounded: one short source, loopback only.

    uv run python bench/transcode_bench.py --seconds 20 --size 1280x720 --runs 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import asyncio, json, resource, sys, time
from pathlib import Path
import playback.worker  # the worker's imports (FastAPI, SQLAlchemy, aio-pika, boto3): its baseline RSS
from playback.assets import transcoder

async def main() -> None:
    source, out, preset = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    started = time.perf_counter()
    result = await transcoder.transcode(source, out, preset=preset)
    wall = time.perf_counter() - started
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"wall": wall, "duration": result.duration,
                      "renditions": [r.name for r in result.renditions],
                      "python_rss_mb": me.ru_maxrss / 1024, "ffmpeg_rss_mb": kids.ru_maxrss / 1024,
                      "ffmpeg_cpu": kids.ru_utime + kids.ru_stime}))

asyncio.run(main())
"""


def make_source(path: Path, seconds: int, size: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-shortest", str(path)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20, help="length of the generated source")
    parser.add_argument("--size", default="1280x720", help="source picture size")
    parser.add_argument("--preset", default="veryfast", help="x264 preset (PLAYBACK_TRANSCODE_PRESET)")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.mp4"
        started = time.perf_counter()
        make_source(source, args.seconds, args.size)
        print(f"source: {args.seconds}s {args.size}@30 + AAC, {source.stat().st_size / 1e6:.1f} MB "
              f"(generated in {time.perf_counter() - started:.1f}s)")
        for run in range(1, args.runs + 1):
            out = Path(tmp) / f"out{run}"
            out.mkdir()
            done = subprocess.run([sys.executable, "-c", CHILD, str(source), str(out), args.preset],
                                  check=True, capture_output=True, text=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            per_minute = r["wall"] / r["duration"] * 60
            print(f"run {run}: ladder {'+'.join(r['renditions'])}, {r['wall']:.1f}s wall for {r['duration']:.0f}s "
                  f"of video = {per_minute:.0f}s per minute of video ({r['duration'] / r['wall']:.1f}x realtime); "
                  f"ffmpeg CPU {r['ffmpeg_cpu']:.1f}s ({r['ffmpeg_cpu'] / r['wall']:.1f} cores); "
                  f"peak RSS: worker python {r['python_rss_mb']:.0f} MB, ffmpeg {r['ffmpeg_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
