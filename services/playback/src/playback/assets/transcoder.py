"""ffprobe + ffmpeg: a source video in, an HLS ladder out (the layout playback/hls.py serves).

Output folder:
    master.m3u8                 written here (not by ffmpeg), variants as `<rendition>/index.m3u8`
    <rendition>/index.m3u8      VOD media playlist
    <rendition>/segment_000.ts  MPEG-TS segments, keyframe-aligned every `segment_seconds`
    thumbnail.jpg

One ffmpeg process decodes the source once and encodes every rendition; `-progress` reports the
encoded position, which becomes the asset's progress percentage.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import math
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from playback import forensic, forensic_detect

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rung:
    name: str
    height: int
    video_kbps: int
    audio_kbps: int = 96


# Renditions taller than the source are skipped (no upscaling); the lowest one is always produced.
LADDER = (Rung("360p", 360, 800), Rung("720p", 720, 2800))


class NotAVideo(ValueError):
    """The upload cannot be decoded as a video: the asset fails for good (no retry)."""


class TranscodeError(RuntimeError):
    """ffmpeg failed on a decodable source (may be transient: the job is retried)."""


@dataclass(frozen=True)
class Probe:
    duration: float
    width: int
    height: int
    has_audio: bool


@dataclass(frozen=True)
class Rendition:
    name: str
    width: int
    height: int
    bandwidth: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TranscodeResult:
    duration: float
    renditions: list[Rendition]
    thumbnail: bool
    # A/B watermarking: the detector's reference (forensic_detect.Reference bytes), stored off the served prefix.
    forensic_reference: bytes | None = None


def _die_with_parent() -> None:
    """ffmpeg must not outlive a worker that is killed (SIGKILL included): Linux PR_SET_PDEATHSIG."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


async def _run(args: list[str], limit_seconds: float) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), limit_seconds)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    return process.returncode or 0, stdout, stderr


async def probe(source: Path, limit_seconds: float = 60) -> Probe:
    """Duration, size and audio presence; anything ffprobe cannot read as a video is NotAVideo."""
    code, out, err = await _run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                                 "-show_streams", str(source)], limit_seconds)
    if code != 0:
        message = err.decode(errors="replace").strip().splitlines()
        raise NotAVideo(f"not a readable media file: {message[-1] if message else 'ffprobe failed'}"[:400])
    data = json.loads(out or b"{}")
    streams = data.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    if video is None:
        raise NotAVideo("the file has no video stream")
    try:
        duration = float(data.get("format", {}).get("duration") or video.get("duration") or 0)
        width, height = int(video["width"]), int(video["height"])
    except (KeyError, TypeError, ValueError) as exc:
        raise NotAVideo("the video stream has no usable size or duration") from exc
    if duration <= 0 or width <= 0 or height <= 0:
        raise NotAVideo("the video has no duration or picture size")
    return Probe(duration=duration, width=width, height=height,
                 has_audio=any(s.get("codec_type") == "audio" for s in streams))


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def plan_ladder(source: Probe, ladder: tuple[Rung, ...] = LADDER) -> list[tuple[Rung, int, int]]:
    """(rung, width, height) for each rendition: aspect ratio kept, even sizes, never upscaled.

    A rung names the short side ("720p" is 1280x720 landscape, 720x1280 portrait).
    """
    short = min(source.width, source.height)
    rungs = [r for r in ladder if r.height <= short] or [ladder[0]]
    planned = []
    for rung in rungs:
        scale = min(rung.height, short) / short
        planned.append((rung, _even(source.width * scale), _even(source.height * scale)))
    return planned


def _variants(plan: list[tuple[Rung, int, int]], ab: bool) -> list[tuple[Rung, str]]:
    """(rung, output stream name) per encoded stream: one per rung, or its A and B variants."""
    return [(rung, f"{rung.name}_{v}" if ab else rung.name) for rung, _, _ in plan
            for v in (forensic.VARIANTS if ab else ("",))]


def ffmpeg_args(source: Path, out: Path, info: Probe, plan: list[tuple[Rung, int, int]], *,
                segment_seconds: int, preset: str, ab: bool = False) -> list[str]:
    """One ffmpeg run; with `ab` every rendition is encoded twice, +mark (A) and -mark (B), on the
    same forced keyframes, into `<out>/AB_SCRATCH/<rendition>_<a|b>/` (see `_arrange_variants`)."""
    count = len(plan)
    split = f"[0:v:0]split={count}" + "".join(f"[s{i}]" for i in range(count))
    if ab:
        scales = ";".join(
            f"[s{i}]scale={w}:{h}:flags=bicubic,format=yuv420p,split=2[p{i}a][p{i}b];"
            f"[p{i}a]{forensic_detect.mark_filter(+1)}[v{i}a];[p{i}b]{forensic_detect.mark_filter(-1)}[v{i}b]"
            for i, (_, w, h) in enumerate(plan))
        labels = [f"v{i}{v}" for i in range(count) for v in forensic.VARIANTS]
    else:
        scales = ";".join(f"[s{i}]scale={w}:{h}:flags=bicubic,format=yuv420p[v{i}]"
                          for i, (_, w, h) in enumerate(plan))
        labels = [f"v{i}" for i in range(count)]
    streams = _variants(plan, ab)
    args = ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(source),
            "-filter_complex", f"{split};{scales}"]
    for label in labels:
        args += ["-map", f"[{label}]"]
        if info.has_audio:
            args += ["-map", "0:a:0"]
    args += ["-c:v", "libx264", "-preset", preset, "-profile:v", "main", "-sc_threshold", "0",
             # A keyframe at every segment boundary: segments start decodable, all renditions aligned.
             "-force_key_frames", f"expr:gte(t,n_forced*{segment_seconds})"]
    for i, (rung, _) in enumerate(streams):
        args += [f"-b:v:{i}", f"{rung.video_kbps}k", f"-maxrate:v:{i}", f"{rung.video_kbps * 107 // 100}k",
                 f"-bufsize:v:{i}", f"{rung.video_kbps * 3 // 2}k"]
    if info.has_audio:
        args += ["-c:a", "aac", "-b:a", f"{plan[0][0].audio_kbps}k", "-ac", "2", "-ar", "48000"]
    stream_map = " ".join(
        f"v:{i},a:{i},name:{name}" if info.has_audio else f"v:{i},name:{name}"
        for i, (_, name) in enumerate(streams))
    target = out / AB_SCRATCH if ab else out
    args += ["-map_metadata", "-1", "-f", "hls", "-hls_time", str(segment_seconds),
             "-hls_playlist_type", "vod", "-hls_list_size", "0", "-hls_flags", "independent_segments",
             "-hls_segment_type", "mpegts",
             "-hls_segment_filename", str(target / "%v" / "segment_%03d.ts"),
             "-var_stream_map", stream_map,
             "-progress", "pipe:1", "-nostats",
             str(target / "%v" / "index.m3u8")]
    return args


AB_SCRATCH = "ab-scratch"
# (rendition, plain segment name, variant) -> the variant's unguessable file name (forensic.variant_file).
VariantNamer = Callable[[str, str, str], str]


def _segment_names(playlist: str) -> list[str]:
    return [line.strip() for line in playlist.splitlines() if line.strip() and not line.startswith("#")]


def _arrange_variants(out: Path, plan: list[tuple[Rung, int, int]], namer: VariantNamer) -> list[list[Path]]:
    """Move each rendition's A and B segments to `<rendition>/<unguessable name>` and write its
    playlist (A's, with plain names as positions and forensic.AB_MARKER); returns the first
    rendition's [A files, B files] in position order (the detector's reference is made from them)."""
    scratch = out / AB_SCRATCH
    first: list[list[Path]] = []
    for rung, _, _ in plan:
        playlists = {v: (scratch / f"{rung.name}_{v}" / "index.m3u8") for v in forensic.VARIANTS}
        if not all(p.is_file() for p in playlists.values()):
            raise TranscodeError(f"ffmpeg wrote no playlist for {rung.name}")
        texts = {v: p.read_text() for v, p in playlists.items()}
        names = {v: _segment_names(t) for v, t in texts.items()}
        if names["a"] != names["b"] or not names["a"]:
            raise TranscodeError(f"A and B variants of {rung.name} are not segmented alike")
        moved = [[out / rung.name / namer(rung.name, name, v) for name in names[v]] for v in forensic.VARIANTS]
        for v, targets in zip(forensic.VARIANTS, moved, strict=True):
            for name, target in zip(names[v], targets, strict=True):
                (scratch / f"{rung.name}_{v}" / name).replace(target)
        first = first or moved
        header, _, rest = texts["a"].partition("\n")
        (out / rung.name / "index.m3u8").write_text(f"{header}\n{forensic.AB_MARKER}\n{rest}")
    shutil.rmtree(scratch)
    return first


def master_playlist(renditions: list[Rendition], has_audio: bool) -> str:
    codecs = "avc1.4d401f,mp4a.40.2" if has_audio else "avc1.4d401f"
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for r in renditions:
        lines.append(f'#EXT-X-STREAM-INF:BANDWIDTH={r.bandwidth},RESOLUTION={r.width}x{r.height},'
                     f'CODECS="{codecs}"')
        lines.append(f"{r.name}/index.m3u8")
    return "\n".join(lines) + "\n"


ProgressCallback = Callable[[int], Awaitable[None]]


async def _encode(args: list[str], duration: float, limit_seconds: float, on_progress: ProgressCallback) -> None:
    process = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent)
    assert process.stdout is not None and process.stderr is not None
    stderr_task = asyncio.create_task(process.stderr.read())

    async def follow() -> None:
        assert process.stdout is not None
        last = -1
        async for raw in process.stdout:
            key, _, value = raw.decode(errors="replace").strip().partition("=")
            if key == "out_time_us" and value.lstrip("-").isdigit():
                percent = max(0, min(99, math.floor(int(value) / 1e6 / duration * 100)))
                if percent > last:
                    last = percent
                    await on_progress(percent)

    try:
        async with asyncio.timeout(limit_seconds):
            await follow()
            code = await process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        stderr_task.cancel()
        raise
    stderr = (await stderr_task).decode(errors="replace").strip()
    if code != 0:
        raise TranscodeError(f"ffmpeg exited with {code}: {stderr[-300:]}")


async def transcode(source: Path, out: Path, *, segment_seconds: int = 4, preset: str = "veryfast",
                    limit_seconds: float = 3600, on_progress: ProgressCallback | None = None,
                    ladder: tuple[Rung, ...] = LADDER, variant_namer: VariantNamer | None = None) -> TranscodeResult:
    """Probe, encode the ladder, write the master playlist and a thumbnail into `out`; with a
    `variant_namer`, every segment in A and B variants and the detector's reference too."""
    info = await probe(source)
    plan = plan_ladder(info, ladder)
    for rung, _, _ in plan:
        (out / rung.name).mkdir(parents=True, exist_ok=True)

    async def ignore(_: int) -> None:
        return None

    ab = variant_namer is not None
    for _, name in _variants(plan, ab) if ab else []:
        (out / AB_SCRATCH / name).mkdir(parents=True, exist_ok=True)
    await _encode(ffmpeg_args(source, out, info, plan, segment_seconds=segment_seconds, preset=preset, ab=ab),
                  info.duration, limit_seconds, on_progress or ignore)
    reference = None
    if variant_namer is not None:
        a_files, b_files = await asyncio.to_thread(_arrange_variants, out, plan, variant_namer)
        built = await asyncio.to_thread(forensic_detect.build_reference, a_files, b_files, width=info.width,
                                        height=info.height, segment_seconds=segment_seconds)
        reference = built.to_bytes()
    renditions = [Rendition(rung.name, w, h, (rung.video_kbps + (rung.audio_kbps if info.has_audio else 0))
                            * 1000 * 11 // 10) for rung, w, h in plan]
    for r in renditions:
        if not (out / r.name / "index.m3u8").is_file():
            raise TranscodeError(f"ffmpeg wrote no playlist for {r.name}")
    (out / "master.m3u8").write_text(master_playlist(renditions, info.has_audio))
    at = f"{min(1.0, info.duration / 2):.3f}"
    code, _, _ = await _run(["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-ss", at,
                             "-i", str(source), "-frames:v", "1", "-vf", "scale=-2:360", "-q:v", "4",
                             str(out / "thumbnail.jpg")], min(limit_seconds, 120))
    thumbnail = code == 0 and (out / "thumbnail.jpg").is_file()
    if not thumbnail:
        log.warning("thumbnail extraction failed", extra={"source": source.name})
    return TranscodeResult(duration=round(info.duration, 3), renditions=renditions, thumbnail=thumbnail,
                           forensic_reference=reference)
