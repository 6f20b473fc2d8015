"""Request and response bodies; requests forbid unknown fields (no mass assignment)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenRequest(StrictModel):
    lesson_id: uuid.UUID


class TokenResponse(BaseModel):
    token: str
    expires_in: int
    manifest_url: str
    session_id: uuid.UUID
    watermark: str


class LessonInfo(BaseModel):
    """Catalog's GET /internal/lessons/{lesson_id} answer (unknown fields ignored)."""

    model_config = ConfigDict(extra="ignore")

    lesson_id: uuid.UUID
    course_id: uuid.UUID
    asset_id: uuid.UUID | None = None
    is_preview: bool = False
    course_status: str
    kind: str | None = None

    @property
    def is_video(self) -> bool:
        return self.asset_id is not None and self.kind in (None, "video")


class EnrollmentChanged(BaseModel):
    """Payload of catalog.enrollment.granted.v1 / revoked.v1 (fields playback needs)."""

    model_config = ConfigDict(extra="ignore")

    user_id: uuid.UUID
    course_id: uuid.UUID
    version: int = Field(ge=1)
