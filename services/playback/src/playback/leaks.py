"""Tracing a leaked recording to the playback session it came from.

The recording is matched against the A/B reference of each watermarked asset (or the one named),
its bits decoded against the codewords of the sessions the watermark log holds for that asset, and
the verdict returned with the sessions' log rows. Used by `python -m playback watermark identify`
and the admin route; both only read.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import sqlalchemy as sa

from common.db import Database
from playback import forensic, forensic_detect
from playback.assets.service import forensic_reference_key
from playback.assets.storage import Storage
from playback.models import WatermarkIssued
from playback.schemas import WatermarkRecord, WatermarkSuspect, WatermarkTrace
from playback.settings import PlaybackSettings

# Below this mean fingerprint similarity the recording is not taken to show the asset at all.
MIN_ALIGNMENT = 0.5
REFERENCE_PREFIX = "forensics/"


async def _asset_ids(storage: Storage, asset_id: uuid.UUID | None) -> list[uuid.UUID]:
    if asset_id is not None:
        return [asset_id]
    found = []
    for key in await storage.list_keys(REFERENCE_PREFIX):
        name = key.removeprefix(REFERENCE_PREFIX).removesuffix(".npz")
        try:
            found.append(uuid.UUID(name))
        except ValueError:
            continue
    return found


async def _best_asset(storage: Storage, recording: Path | list[Path], asset_ids: list[uuid.UUID]
                      ) -> tuple[uuid.UUID, forensic_detect.Reference, forensic_detect.Floats] | None:
    """The asset whose reference the recording aligns with best (frames decoded once per size)."""
    decoded: dict[tuple[int, int], forensic_detect.Floats] = {}
    best: tuple[float, uuid.UUID, forensic_detect.Reference, forensic_detect.Floats] | None = None
    for asset_id in asset_ids:
        raw = await storage.read_bytes(forensic_reference_key(asset_id))
        if raw is None:
            continue
        reference = forensic_detect.Reference.from_bytes(raw)
        if reference.size not in decoded:
            decoded[reference.size] = await asyncio.to_thread(forensic_detect.decode_frames, recording,
                                                              reference.size)
        frames = decoded[reference.size]
        if len(frames) < 2:
            continue
        _, similarity = await asyncio.to_thread(forensic_detect.align, reference, frames)
        if best is None or similarity > best[0]:
            best = (similarity, asset_id, reference, frames)
    if best is None or best[0] < MIN_ALIGNMENT:
        return None
    return best[1], best[2], best[3]


async def identify_recording(*, db: Database, storage: Storage, settings: PlaybackSettings,
                             recording: Path | list[Path], asset_id: uuid.UUID | None = None) -> WatermarkTrace:
    """Raises ValueError when the recording cannot be decoded as video."""
    match = await _best_asset(storage, recording, await _asset_ids(storage, asset_id))
    if match is None:
        return WatermarkTrace(outcome="no_matching_asset", asset_id=asset_id)
    found_asset, reference, frames = match
    async with db.session() as session:
        rows = list(await session.scalars(sa.select(WatermarkIssued).where(WatermarkIssued.asset_id == found_asset)))
    key = forensic.code_key(settings.secure_link_secret.get_secret_value())
    verdict = await asyncio.to_thread(forensic_detect.detect, reference, frames, [r.watermark for r in rows], key,
                                      str(found_asset))
    by_mark: dict[str, list[WatermarkIssued]] = {}
    for row in rows:
        by_mark.setdefault(row.watermark, []).append(row)
    suspects = [WatermarkSuspect(matching_positions=c.matches, positions=c.positions,
                                 false_match_probability=c.false_match_probability,
                                 sessions=[WatermarkRecord.model_validate(r, from_attributes=True)
                                           for r in by_mark.get(c.watermark, [])])
                for c in verdict.candidates]
    return WatermarkTrace(outcome=verdict.outcome, asset_id=found_asset, positions=verdict.positions,
                          offset_seconds=verdict.offset_seconds, alignment=verdict.alignment,
                          confidence=round(verdict.confidence, 9), suspects=suspects)
