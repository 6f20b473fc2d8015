"""Forensic A/B watermarking: what it costs at transcode time and how well it traces.

1. Cost: the worker's transcode (`playback.assets.transcoder.transcode`, the 360p+720p ladder when
   the source allows) of one generated source, without and with A/B variants: wall time, ffmpeg CPU
   time, stored bytes (the detector's reference included).
2. Accuracy: `--viewers` sessions drawn from a pool of `--pool` issued watermarks get their variant
   sequence (`playback.forensic.codeword`); each recording (the viewer's segments from a random start,
   `--lengths` positions long, re-encoded at each `--qualities` bitrate and scaled to half size) goes
   through the detector. Reported per cell: right session identified / nobody accused / someone else
   accused. Then stitched recordings of two viewers: how many accused an innocent.

    uv run python bench/watermark_bench.py                 # ~3-5 min on a quiet 2-core machine
    uv run python bench/watermark_bench.py --seconds 30 --size 640x360 --viewers 3
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from playback import forensic, forensic_detect
from playback.assets import transcoder

SECRET = "bench-secret"


def make_source(path: Path, seconds: int, size: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-shortest", str(path)], check=True)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stored_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def transcode(source: Path, out: Path, *, ab: bool, segment_seconds: int, asset_id: str
              ) -> tuple[float, float, int, transcoder.TranscodeResult]:
    key = forensic.names_key(SECRET)
    namer = (lambda rendition, name, variant: forensic.variant_file(key, asset_id, rendition, name, variant)) \
        if ab else None
    cpu, started = children_cpu(), time.perf_counter()
    result = asyncio.run(transcoder.transcode(source, out, segment_seconds=segment_seconds, variant_namer=namer))
    wall = time.perf_counter() - started
    size = stored_bytes(out) + len(result.forensic_reference or b"")
    return wall, children_cpu() - cpu, size, result


def record(files: list[Path], target: Path, bitrate: str) -> Path:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-i", "concat:" + "|".join(str(f) for f in files), "-vf", "scale=iw/2:-2",
                    "-c:v", "libx264", "-preset", "ultrafast", "-b:v", bitrate, "-an", str(target)], check=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=48, help="length of the generated source")
    parser.add_argument("--size", default="640x360", help="source picture size (1280x720 adds the 720p rung)")
    parser.add_argument("--segment-seconds", type=int, default=2)
    parser.add_argument("--viewers", type=int, default=3)
    parser.add_argument("--pool", type=int, default=200, help="issued watermarks the detector chooses among")
    parser.add_argument("--lengths", default="8,12,24", help="recording lengths in segment positions")
    parser.add_argument("--qualities", default="400k,150k,60k", help="re-encode bitrates of the recordings")
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    asset_id = str(uuid.uuid4())
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "source.mp4"
        make_source(source, args.seconds, args.size)
        plain = transcode(source, tmp / "plain", ab=False, segment_seconds=args.segment_seconds, asset_id=asset_id)
        marked = transcode(source, tmp / "ab", ab=True, segment_seconds=args.segment_seconds, asset_id=asset_id)
        ladder = "+".join(r.name for r in plain[3].renditions)
        print(f"source {args.seconds}s {args.size}@30 + AAC, ladder {ladder}, {args.segment_seconds}s segments")
        print(f"  one variant: {plain[0]:.1f}s wall, {plain[1]:.1f}s ffmpeg CPU, {plain[2] / 1e6:.2f} MB stored")
        print(f"  A/B:         {marked[0]:.1f}s wall, {marked[1]:.1f}s ffmpeg CPU, {marked[2] / 1e6:.2f} MB stored "
              f"(reference {len(marked[3].forensic_reference or b'') / 1e3:.0f} kB)")
        print(f"  extra: x{marked[0] / plain[0]:.2f} wall, x{marked[1] / max(plain[1], 1e-9):.2f} CPU, "
              f"x{marked[2] / plain[2]:.2f} storage")

        reference = forensic_detect.Reference.from_bytes(marked[3].forensic_reference or b"")
        rendition = marked[3].renditions[0].name
        playlist = (tmp / "ab" / rendition / "index.m3u8").read_text()
        names = [line for line in playlist.splitlines() if line and not line.startswith("#")]
        names_key, code_key = forensic.names_key(SECRET), forensic.code_key(SECRET)
        pool = [f"WM{rng.getrandbits(64):016X}" for _ in range(args.pool)]
        viewers = pool[:args.viewers]

        def files(mark: str) -> list[Path]:
            bits = forensic.codeword(code_key, mark, len(names))
            return [tmp / "ab" / rendition / forensic.variant_file(names_key, asset_id, rendition, name, "ab"[bit])
                    for name, bit in zip(names, bits, strict=True)]

        def trace(recording: Path) -> forensic_detect.Verdict:
            frames = forensic_detect.decode_frames(recording, reference.size)
            return forensic_detect.detect(reference, frames, pool, code_key)

        print(f"\naccuracy: {args.viewers} viewers per cell, {args.pool} issued watermarks, recordings scaled to "
              "half size; right / nobody accused / wrong person accused")
        qualities = args.qualities.split(",")
        print("  positions (seconds) " + "".join(f"{q:>16}" for q in qualities))
        for length in (int(n) for n in args.lengths.split(",")):
            length = min(length, len(names))
            cells = []
            for quality in qualities:
                right = nobody = wrong = 0
                for viewer in viewers:
                    start = rng.randrange(0, len(names) - length + 1)
                    verdict = trace(record(files(viewer)[start:start + length], tmp / "leak.mp4", quality))
                    if verdict.outcome == "identified":
                        right += verdict.candidates[0].watermark == viewer
                        wrong += verdict.candidates[0].watermark != viewer
                    else:
                        nobody += 1
                cells.append(f"{right}/{nobody}/{wrong}")
            label = f"{length} ({length * args.segment_seconds}s)"
            print(f"  {label:<20}" + "".join(f"{cell:>16}" for cell in cells))

        accused_innocent = named_colluders = 0
        pairs = [(viewers[i], viewers[(i + 1) % len(viewers)]) for i in range(len(viewers))]
        for first, second in pairs:
            mixed = [a if rng.random() < 0.5 else b for a, b in zip(files(first), files(second), strict=True)]
            verdict = trace(record(mixed, tmp / "collusion.mp4", qualities[0]))
            accused = {verdict.candidates[0].watermark} if verdict.outcome == "identified" else set()
            accused_innocent += bool(accused - {first, second})
            named_colluders += verdict.outcome == "mixed"
        print(f"\ncollusion (two viewers' segments mixed at random, {qualities[0]}): {len(pairs)} recordings, "
              f"{named_colluders} reported as mixed, {accused_innocent} accused an innocent session")


if __name__ == "__main__":
    main()
