"""Request and response bodies; requests forbid unknown fields (no mass assignment)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, Field

from common.schemas import StrictModel


class TokenRequest(StrictModel):
    lesson_id: uuid.UUID


class TokenResponse(BaseModel):
    token: str
    expires_in: int
    manifest_url: str
    session_id: uuid.UUID
    # Per-viewer forensic mark for the player to overlay (also in the token as `wm`).
    watermark: str
    # Where to start (the last heartbeat's position of this lesson; 0 once it was watched to the end).
    resume_position_seconds: float = 0.0
    # POST /sessions/{session_id}/heartbeat this often while the player is open.
    heartbeat_interval_seconds: int


class HeartbeatRequest(StrictModel):
    # The player's current position in the lesson; 24 h is far beyond any lesson.
    position_seconds: float = Field(ge=0, le=86_400, allow_inf_nan=False)


class HeartbeatResponse(BaseModel):
    session_id: uuid.UUID
    position_seconds: float
    watched_seconds: float
    heartbeat_interval_seconds: int
    watermark: str


class LessonProgress(BaseModel):
    lesson_id: uuid.UUID
    position_seconds: float
    watched_seconds: float
    duration_seconds: float | None
    completed: bool


class ProgressTotals(BaseModel):
    user_id: uuid.UUID
    course_id: uuid.UUID
    # Whole seconds (rounded); the ratio is computed before rounding.
    watched_seconds: int
    total_seconds: int
    # 0..1: watched / total over the course's video lessons (billing's refund policy reads it).
    watched_ratio: float


class CourseProgress(ProgressTotals):
    completion_percent: float
    completed_lessons: int
    total_lessons: int
    lessons: list[LessonProgress]


class WatermarkRecord(BaseModel):
    watermark: str
    session_id: uuid.UUID
    # None once the user was erased (the audit row is kept anonymised).
    user_id: uuid.UUID | None
    asset_id: uuid.UUID
    lesson_id: uuid.UUID
    course_id: uuid.UUID
    issued_at: dt.datetime
    user_erased_at: dt.datetime | None


class WatermarkLookup(BaseModel):
    watermark: str
    sessions: list[WatermarkRecord]


class WatermarkSuspect(BaseModel):
    """A session whose codeword the recording matches at `matching_positions` of `positions`;
    `false_match_probability`: how likely an innocent session (any of the asset's) matches as well."""

    matching_positions: int
    positions: int
    false_match_probability: float
    sessions: list[WatermarkRecord]


class WatermarkTrace(BaseModel):
    """A leaked recording traced through its A/B segment marks.

    outcome: `identified` (one session, `confidence` = 1 - false-accusation probability), `mixed`
    (segments of two sessions stitched together: both listed, nobody accused), `unidentified`
    (too short or no significant match), `no_matching_asset` (not a watermarked asset's video).
    """

    outcome: Literal["identified", "mixed", "unidentified", "no_matching_asset", "unaligned"]
    asset_id: uuid.UUID | None = None
    positions: int = 0
    offset_seconds: float = 0.0
    alignment: float = 0.0
    confidence: float = 0.0
    suspects: list[WatermarkSuspect] = []
