"""The A/B mark in the pixels, the reference kept at transcode time, and the detector.

The mark: variant A lightens two opposite quadrants and darkens the other two by a 1.5 % veil,
variant B the reverse (`mark_filter`): about 2 luma levels either way, invisible-ish on moving
pictures. Being the lowest spatial frequency there is, it survives re-encoding (it lives in the
DC coefficients), scaling (defined on the picture's halves) and small crops.

The reference (`forensics/<asset>.npz`, outside the served prefix): the unmarked content of each
segment position as a tiny mean frame (`ANALYSIS_WIDTH` wide), and a coarse per-sample
fingerprint used to find where a partial recording starts.

Detection: decode the recording to the same tiny grey frames at `SAMPLE_RATE` per second, align it
on the fingerprint (FFT cross-correlation), then for each segment position fully covered fit
recording = alpha * content + beta + s * mark, where content = (A + B) / 2 and mark = (A - B) / 2
as stored for that position: the sign of s says A or B. The bits are matched against
the codewords of the sessions issued for the asset (`playback.forensic.codeword`).
"""

from __future__ import annotations

import io
import itertools
import math
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from playback import forensic

MARK_ALPHA = 0.015  # A and B differ by about 2 x 0.015 x 255 = 4 luma levels (of 255)
SAMPLE_RATE = 4  # analysis frames per second
ANALYSIS_WIDTH = 32
GRID = (6, 8)  # fingerprint blocks (rows, columns)
# A session is accused when the chance that a random (innocent) codeword matches as well, over all
# candidates, is below this; a mix of two sessions is reported as such, never as one accusation.
FALSE_ACCUSATION_BOUND = 1e-3
MIN_POSITIONS = 8
CROP_STEPS = (0.0, 0.015, 0.03, 0.045)  # fractions of the picture a recording may have lost per side
Floats = npt.NDArray[np.float64]


def mark_filter(sign: int, alpha: float = MARK_ALPHA) -> str:
    """ffmpeg filters marking variant A (sign +1) or B (-1): a faint light/dark veil over the
    quadrant checkerboard (top-left and bottom-right lighter for A, darker for B; the other two the
    reverse). `drawbox` blends in C at any resolution (the per-pixel expression of `geq` cost
    several times the encode itself at 720p)."""
    light, dark = (f"white@{alpha}", f"black@{alpha}") if sign > 0 else (f"black@{alpha}", f"white@{alpha}")
    boxes = [("0", "0", light), ("iw/2", "ih/2", light), ("iw/2", "0", dark), ("0", "ih/2", dark)]
    return ",".join(f"drawbox=x={x}:y={y}:w=iw/2:h=ih/2:color={color}:t=fill" for x, y, color in boxes)


def analysis_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of analysis frames: ANALYSIS_WIDTH wide, the source's aspect, multiples of GRID."""
    rows = max(GRID[0], round(ANALYSIS_WIDTH * height / width / GRID[0]) * GRID[0])
    return ANALYSIS_WIDTH, rows


def decode_frames(source: Path | Sequence[Path], size: tuple[int, int], limit_seconds: float = 1800) -> Floats:
    """Grey frames (n, h, w) at SAMPLE_RATE per second; several files (in order) are one stream."""
    width, height = size
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(source, Path):
            inputs = ["-i", str(source)]
        elif all(p.suffix == ".ts" for p in source):
            # MPEG-TS segments join byte for byte with continuous timestamps (the demuxer would pad each).
            inputs = ["-i", "concat:" + "|".join(str(p) for p in source)]
        else:
            listing = Path(tmp) / "list.txt"
            listing.write_text("".join(f"file '{Path(p).resolve().as_posix()}'\n" for p in source))
            inputs = ["-f", "concat", "-safe", "0", "-i", str(listing)]
        run = subprocess.run(
            ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", *inputs, "-map", "0:v:0",
             "-vf", f"setpts=PTS-STARTPTS,fps={SAMPLE_RATE},scale={width}:{height}:flags=area,format=gray",
             "-f", "rawvideo", "-"], capture_output=True, timeout=limit_seconds, check=False)
    if run.returncode != 0:
        raise ValueError(f"cannot decode the recording: {run.stderr.decode(errors='replace')[-300:]}")
    frames = np.frombuffer(run.stdout, dtype=np.uint8)
    usable = len(frames) // (width * height)
    return frames[: usable * width * height].reshape(usable, height, width).astype(np.float64)


def _blocks(frames: Floats) -> Floats:
    """(n, h, w) -> (n, rows * cols) block means: coarse enough that a crop of a few pixels or a
    rescale moves little between blocks, fine enough to keep the quadrant mark."""
    n, h, w = frames.shape
    rows, cols = GRID
    return frames.reshape(n, rows, h // rows, cols, w // cols).mean(axis=(2, 4)).reshape(n, rows * cols)


def _fingerprint(frames: Floats) -> Floats:
    """Per-frame block means less their mean over time (what moves, not the static background),
    centred and normalised per frame (brightness/contrast changes cancel out)."""
    blocks = _blocks(frames)
    blocks -= blocks.mean(axis=0, keepdims=True)
    blocks -= blocks.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(blocks, axis=1, keepdims=True)
    return blocks / np.where(norms > 1e-6, norms, 1.0)


@dataclass(frozen=True)
class Reference:
    segment_seconds: float
    content: Floats  # (positions, h, w): each position's unmarked mean frame, (A + B) / 2
    mark: Floats  # (positions, h, w): (A - B) / 2, the mark as it survived encoding
    fingerprint: Floats  # (samples, features)

    @property
    def size(self) -> tuple[int, int]:
        return self.content.shape[2], self.content.shape[1]

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, segment_seconds=np.array(self.segment_seconds),
                            content=self.content.astype(np.float32), mark=self.mark.astype(np.float32),
                            fingerprint=self.fingerprint.astype(np.float16))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Reference:
        with np.load(io.BytesIO(raw)) as data:
            return cls(segment_seconds=float(data["segment_seconds"]),
                       content=data["content"].astype(np.float64), mark=data["mark"].astype(np.float64),
                       fingerprint=data["fingerprint"].astype(np.float64))


def _segment_samples(segment_seconds: float) -> tuple[int, int]:
    """(samples per segment, samples skipped at each end so a slightly misaligned start still fits)."""
    per = max(1, round(segment_seconds * SAMPLE_RATE))
    return per, 1 if per >= 4 else 0


def _position_means(frames: Floats, positions: int, segment_seconds: float) -> Floats:
    """Mean frame of each position over the samples `mark_scores` looks at (the same window)."""
    per, margin = _segment_samples(segment_seconds)
    last = len(frames) - 1
    return np.stack([frames[min(i * per + margin, last):max((i + 1) * per - margin, 1)].mean(axis=0)
                     for i in range(positions)])


def build_reference(a_segments: Sequence[Path], b_segments: Sequence[Path], *, width: int, height: int,
                    segment_seconds: float) -> Reference:
    """At transcode time, from one rendition's encoded A and B segments (position order)."""
    size = analysis_size(width, height)
    a_frames, b_frames = decode_frames(a_segments, size), decode_frames(b_segments, size)
    a_means = _position_means(a_frames, len(a_segments), segment_seconds)
    b_means = _position_means(b_frames, len(b_segments), segment_seconds)
    return Reference(segment_seconds=segment_seconds, content=(a_means + b_means) / 2,
                     mark=(a_means - b_means) / 2, fingerprint=_fingerprint((a_frames + b_frames[:len(a_frames)]) / 2
                                                                            if len(b_frames) >= len(a_frames)
                                                                            else a_frames))


def align(reference: Reference, frames: Floats) -> tuple[int, float]:
    """(offset in samples of the recording's first frame within the reference, mean similarity)."""
    ref, rec = reference.fingerprint, _fingerprint(frames)
    size = len(ref) + len(rec)
    spectrum = np.fft.rfft(ref, size, axis=0) * np.conj(np.fft.rfft(rec, size, axis=0))
    correlation = np.fft.irfft(spectrum, size, axis=0).sum(axis=1)  # index k: offset k (negative wrap)
    offsets = np.arange(size)
    offsets = np.where(offsets < len(ref), offsets, offsets - size)
    overlap = np.minimum(len(ref) - offsets, len(rec)) - np.maximum(0, -offsets)
    minimum = min(len(rec), max(2 * SAMPLE_RATE, len(rec) // 2))
    score = np.where(overlap >= minimum, correlation / np.maximum(overlap, 1), -np.inf)
    best = int(np.argmax(score))
    return int(offsets[best]), float(score[best])


def _crop(images: Floats, left: float, top: float, right: float, bottom: float) -> Floats:
    """The (…, h, w) images' sub-rectangle (fractions cut from each side) stretched back to (h, w), bilinear."""
    h, w = images.shape[-2:]

    def axis(size: int, low: float, high: float) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], Floats]:
        at = np.clip((low + (np.arange(size) + 0.5) / size * (1 - low - high)) * size - 0.5, 0, size - 1)
        first = np.floor(at).astype(np.intp)
        return first, np.minimum(first + 1, size - 1), at - first

    y0, y1, fy = axis(h, top, bottom)
    x0, x1, fx = axis(w, left, right)
    rows = images[..., y0, :] * (1 - fy)[:, None] + images[..., y1, :] * fy[:, None]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx


def _windows(reference: Reference, frames: Floats, offset: int) -> dict[int, Floats]:
    """Position -> the recording's mean frame over that position's window, for the positions it covers."""
    per, margin = _segment_samples(reference.segment_seconds)
    seen = {}
    for position in range(len(reference.content)):
        start, stop = position * per + margin - offset, (position + 1) * per - margin - offset
        if start >= 0 and stop <= len(frames) and stop > start:
            seen[position] = frames[start:stop].mean(axis=0)
    return seen


def register(reference: Reference, seen: dict[int, Floats]) -> tuple[float, ...]:
    """The crop (left, top, right, bottom fractions) under which the reference best explains what
    the recording shows: a recording cropped a little is compared with the same part of the picture."""
    positions = sorted(seen)[:: max(1, len(seen) // 40)]
    if not positions:
        return (0.0, 0.0, 0.0, 0.0)
    observed = np.stack([seen[p] for p in positions]).reshape(len(positions), -1)
    best: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    best_error = np.inf
    for crop in itertools.product(CROP_STEPS, repeat=4):
        content = _crop(reference.content[positions], *crop).reshape(len(positions), -1)
        design = np.stack([content, np.ones_like(content)], axis=-1)  # per position: alpha, beta
        error = 0.0
        for x, y in zip(design, observed, strict=True):
            _, residual, *_ = np.linalg.lstsq(x, y, rcond=None)
            error += float(residual[0]) if len(residual) else 0.0
        if error < best_error:
            best, best_error = crop, error
    return best


def mark_scores(reference: Reference, frames: Floats, offset: int) -> dict[int, float]:
    """Position -> s (about +1: A, -1: B) for every position the recording covers."""
    seen_frames = _windows(reference, frames, offset)
    crop = register(reference, seen_frames)
    contents, marks = _blocks(_crop(reference.content, *crop)), _blocks(_crop(reference.mark, *crop))
    scores: dict[int, float] = {}
    for position, frame in seen_frames.items():
        seen = _blocks(frame[None])[0]
        mark = marks[position]
        design = np.column_stack([contents[position], np.ones_like(mark), mark])
        coefficients, *_ = np.linalg.lstsq(design, seen, rcond=None)
        scores[position] = float(coefficients[2])
    return scores


def _binomial_tail(matches: int, trials: int) -> float:
    """P(X >= matches) for X ~ Binomial(trials, 1/2): how often a random codeword does as well."""
    return sum(math.comb(trials, k) for k in range(matches, trials + 1)) / 2**trials


@dataclass(frozen=True)
class Candidate:
    watermark: str
    matches: int
    positions: int
    false_match_probability: float


@dataclass
class Verdict:
    """`identified` (one session), `mixed` (two sessions' segments, reported not accused),
    `unidentified` (nothing significant), or `no_reference`/`unaligned` for unusable input."""

    outcome: str
    asset_id: str | None = None
    positions: int = 0
    alignment: float = 0.0
    offset_seconds: float = 0.0
    bits: dict[int, int] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)
    confidence: float = 0.0


def identify(scores: dict[int, float], watermarks: Sequence[str], key: bytes) -> tuple[str, list[Candidate], float]:
    """Maximum-likelihood decoding against the issued codewords: (outcome, the sessions it names,
    confidence). Identified: the one session; mixed: the two; otherwise nobody."""
    if len(scores) < MIN_POSITIONS or not watermarks:
        return "unidentified", [], 0.0
    positions = sorted(scores)
    observed = np.array([1 if scores[p] < 0 else 0 for p in positions])
    length = positions[-1] + 1
    codes = {mark: np.frombuffer(forensic.codeword(key, mark, length), dtype=np.uint8)[positions]
             for mark in set(watermarks)}
    ranked = []
    for mark, code in codes.items():
        matches = int((code == observed).sum())
        p_value = min(1.0, len(codes) * _binomial_tail(matches, len(positions)))
        ranked.append(Candidate(mark, matches, len(positions), p_value))
    ranked.sort(key=lambda c: (c.false_match_probability, -c.matches))
    best = ranked[0]
    significant = [c for c in ranked if c.false_match_probability <= FALSE_ACCUSATION_BOUND]
    if len(ranked) >= 2:
        # Two sessions that together explain (almost) every position and each explain much more than
        # chance: a recording stitched from both. Nobody is accused on its strength.
        first, second = codes[ranked[0].watermark], codes[ranked[1].watermark]
        explained = int(((first == observed) | (second == observed)).sum())
        both_well = all(c.matches >= 0.7 * c.positions for c in ranked[:2])
        if explained >= 0.95 * len(positions) and both_well and best.matches < 0.9 * best.positions:
            return "mixed", ranked[:2], 0.0
    if significant and best.matches >= 0.8 * best.positions and (
            len(significant) == 1 or significant[1].matches < 0.6 * significant[1].positions):
        return "identified", [best], 1.0 - best.false_match_probability
    # No names without a finding: the sessions that matched by chance are innocent viewers.
    return "unidentified", [], 0.0


def detect(reference: Reference, frames: Floats, watermarks: Sequence[str], key: bytes,
           asset_id: str | None = None) -> Verdict:
    if len(frames) < 2:
        return Verdict("unaligned", asset_id)
    offset, similarity = align(reference, frames)
    scores = mark_scores(reference, frames, offset)
    outcome, candidates, confidence = identify(scores, watermarks, key)
    return Verdict(outcome, asset_id, positions=len(scores), alignment=round(similarity, 4),
                   offset_seconds=round(offset / SAMPLE_RATE, 2),
                   bits={p: int(s < 0) for p, s in scores.items()}, candidates=candidates,
                   confidence=confidence)
