"""Forensic A/B watermarking: which variant of each segment a viewer gets, and the code behind it.

Every segment of a watermarked rendition exists twice (A and B, same boundaries, told apart by a
faint mark: see `playback.forensic_detect`). A viewer's media playlist picks A or B at position i
from bit i of the session's codeword, so any recording of it carries that codeword.

The code: a keyed pseudo-random binary codeword per session (HMAC of the watermark, stretched with
SHAKE-256), one bit per segment position. It is a random error-correcting code decoded by maximum
likelihood against the codewords actually issued for the asset (the watermark log): any subset of
positions (a few minutes of the lesson, segments lost or misread after re-encoding) still
identifies the session, with a false-accusation probability the detector computes. A fixed-block
code (Reed-Solomon over the 80-bit watermark) would need every block's positions, and more
segments than a short lesson has.

Segment files get unguessable names (`segment_007.<hmac>.ts`): one signature covers the whole asset
prefix (Nginx `secure_link`, CloudFront policy `<asset>/*`), so a viewer could otherwise fetch the
other variant and strip their mark. The media playlist stored with the asset keeps the plain
names (`segment_007.ts`) as positions; only the manifest route, holding the key, knows the files.

This module is on the manifest hot path: no numpy, no I/O; a viewer's playlist is one
`str.join` over precomputed pieces.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import operator
from dataclasses import dataclass

# First line after #EXTM3U of a media playlist whose segments exist as A/B variants (an HLS comment:
# players ignore it; the manifest route strips it).
AB_MARKER = "# triple-academy forensic-ab v1"
VARIANTS = ("a", "b")
_URI_OPEN, _URI_CLOSE = "\x00", "\x01"  # hls.media_template's markers around each URI


def _derive(secret: str, label: bytes) -> bytes:
    return hmac.new(secret.encode(), label, hashlib.sha256).digest()


@functools.cache
def names_key(secret: str) -> bytes:
    """Key of the variant file names (derived from the secure-link secret, its own label)."""
    return _derive(secret, b"triple-academy/forensic-names/v1")


@functools.cache
def code_key(secret: str) -> bytes:
    """Key of the session codewords."""
    return _derive(secret, b"triple-academy/forensic-code/v1")


def variant_file(key: bytes, asset_id: str, rendition: str, plain_name: str, variant: str) -> str:
    """'segment_007.ts' -> 'segment_007.<16 base32 chars>.ts' for variant 'a' or 'b'."""
    digest = hmac.new(key, f"{asset_id}/{rendition}/{plain_name}/{variant}".encode(), hashlib.sha256).digest()
    stem, dot, suffix = plain_name.rpartition(".")
    tag = base64.b32encode(digest[:10]).decode().lower()
    return f"{stem}.{tag}.{suffix}" if dot else f"{plain_name}.{tag}"


_BIT_BYTES = str.maketrans("01", "\x00\x01")


def codeword(key: bytes, watermark: str, length: int) -> bytes:
    """The session's bits for positions 0..length-1 as bytes of 0 (variant A) or 1 (variant B);
    made with C-level string operations only (it runs on every media playlist request)."""
    seed = hmac.new(key, watermark.encode(), hashlib.sha256).digest()
    raw = hashlib.shake_256(seed).digest((length + 7) // 8)
    return format(int.from_bytes(raw, "big"), f"0{8 * len(raw)}b")[:length].translate(_BIT_BYTES).encode()


def is_ab_playlist(text: str) -> bool:
    return AB_MARKER in text.split("\n", 2)[:2]


@dataclass(frozen=True)
class ABTemplate:
    """A media template (`hls.media_template`) cut at its segment URIs: `choices[i]` holds the text
    up to and including position i's URI for variant A and for variant B; `tail` follows the last."""

    choices: tuple[tuple[str, str], ...]
    tail: str

    @property
    def positions(self) -> int:
        return len(self.choices)


def ab_template(template: str, *, key: bytes, asset_id: str) -> ABTemplate | None:
    """None for a playlist without A/B variants; built once per (asset, rendition) and cached."""
    if AB_MARKER not in template:
        return None
    template = template.replace(AB_MARKER + "\n", "", 1)
    choices: list[tuple[str, str]] = []
    rest = template
    while _URI_OPEN in rest:
        before, _, after = rest.partition(_URI_OPEN)
        uri, _, rest = after.partition(_URI_CLOSE)
        rendition, _, plain = uri.rpartition("/")
        head = f"{before}{_URI_OPEN}{rendition}/"
        choices.append(tuple(  # type: ignore[arg-type]
            f"{head}{variant_file(key, asset_id, rendition, plain, v)}{_URI_CLOSE}" for v in VARIANTS))
    return ABTemplate(choices=tuple(choices), tail=rest)


def viewer_template(ab: ABTemplate, bits: bytes) -> str:
    """The viewer's media template: variant bits[i] at position i (one C-level join)."""
    return "".join(map(operator.getitem, ab.choices, bits)) + ab.tail
