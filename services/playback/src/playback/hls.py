"""HLS playlist rewriting: per-viewer variant URLs in the master, signed segment URLs in media playlists.

Assets come from our own packaging, but every URI is still validated: a playlist must never be able
to point a signed URL outside its asset's prefix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

RENDITION_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
_RENDITION = re.compile(RENDITION_PATTERN)
_SEGMENT_PART = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
_URI_ATTRIBUTE = re.compile(r'URI="([^"]*)"')
# Tags whose URI attribute names something to rewrite (EXT-X-KEY is left to a key server).
_MASTER_URI_TAGS = ("#EXT-X-MEDIA:", "#EXT-X-I-FRAME-STREAM-INF:")
_MEDIA_URI_TAGS = ("#EXT-X-MAP:",)


class PlaylistError(ValueError):
    """The stored playlist references something outside the shape we serve."""


def is_valid_rendition(name: str) -> bool:
    return bool(_RENDITION.match(name))


def is_safe_relative_path(path: str) -> bool:
    """A relative path of plain names: no scheme, no leading slash, no '.' or '..' parts."""
    parts = path.split("/")
    return bool(parts) and all(_SEGMENT_PART.match(p) and p not in (".", "..") for p in parts)


def variant_rendition(uri: str) -> str:
    """'360p/index.m3u8' -> '360p'; anything else is refused."""
    rendition, sep, rest = uri.partition("/")
    if not sep or rest != "index.m3u8" or not is_valid_rendition(rendition):
        raise PlaylistError(f"unsupported variant URI in master playlist: {uri!r}")
    return rendition


def _rewrite(text: str, uri_tags: tuple[str, ...], rewrite: Callable[[str], str]) -> str:
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith(uri_tags):
                line = _URI_ATTRIBUTE.sub(lambda m: f'URI="{rewrite(m.group(1))}"', line)
            lines.append(line)
        else:
            lines.append(rewrite(line))
    if not lines or lines[0] != "#EXTM3U":
        raise PlaylistError("not an HLS playlist")
    return "\n".join(lines) + "\n"


def rewrite_master(text: str, variant_url: Callable[[str], str]) -> str:
    """Point every variant at the per-viewer variant route (`variant_url(rendition)`)."""
    return _rewrite(text, _MASTER_URI_TAGS, lambda uri: variant_url(variant_rendition(uri)))


def media_duration(text: str) -> float:
    """Sum of EXTINF durations in seconds."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#EXTINF:"):
            value = line[len("#EXTINF:"):].split(",", 1)[0].strip()
            try:
                total += float(value)
            except ValueError as exc:
                raise PlaylistError(f"bad EXTINF duration: {value!r}") from exc
    return total


def link_expiry(text: str, now: float, grace_seconds: int) -> int:
    """Signed links outlive the whole media by `grace_seconds` (pauses, clock skew)."""
    return math.ceil(now + media_duration(text) + grace_seconds)


def rewrite_media(text: str, rendition: str, segment_url: Callable[[str], str]) -> str:
    """Every segment (and EXT-X-MAP init section) becomes `segment_url('<rendition>/<segment>')`."""
    if not is_valid_rendition(rendition):
        raise PlaylistError(f"bad rendition {rendition!r}")

    def one(uri: str) -> str:
        if not is_safe_relative_path(uri):
            raise PlaylistError(f"unsupported segment URI: {uri!r}")
        return segment_url(f"{rendition}/{uri}")

    return _rewrite(text, _MEDIA_URI_TAGS, one)


# Markers around each URI of a media template; they can never occur in a playlist we accept.
_URI_OPEN, _URI_CLOSE = "\x00", "\x01"


def media_template(text: str, rendition: str) -> str:
    """`rewrite_media` done once per playlist: every URI ('<rendition>/<file>') between markers, so a
    viewer's copy is two C-level `str.replace` calls (`fill_template`) whatever the segment count."""
    if _URI_OPEN in text or _URI_CLOSE in text:
        raise PlaylistError("control characters in playlist")
    return rewrite_media(text, rendition, lambda path: f"{_URI_OPEN}{path}{_URI_CLOSE}")


def fill_template(template: str, prefix: str, suffix: str) -> str:
    """Each URI becomes prefix + '<rendition>/<file>' + suffix."""
    return template.replace(_URI_OPEN, prefix).replace(_URI_CLOSE, suffix)
