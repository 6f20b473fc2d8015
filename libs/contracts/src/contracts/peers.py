"""Answers of the internal HTTP routes (service token, the target as audience), one model each.

The caller reads them with `ServiceClient.get_model(path, Model)`: an answer outside the model
is the peer's failure (503), never the caller's 500. Unknown fields are ignored, so the answering
service may add fields; each model names its `service` and `route` (docs/contracts.md).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from contracts.events import Currency, Money


class PeerAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    service: ClassVar[str]
    route: ClassVar[str]


# --- catalog -------------------------------------------------------------------------------------


class CatalogCourse(PeerAnswer):
    """The course as catalog sells it now (billing: checkout)."""

    service = "catalog"
    route = "GET /internal/courses/{course_id}"

    course_id: uuid.UUID
    title: str
    status: str
    price_amount: Money
    currency: Currency
    is_free: bool


class TaughtCourse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    course_id: uuid.UUID
    title: str


class InstructorCourses(PeerAnswer):
    """The courses a user teaches (billing: an instructor's revenue covers these and no others)."""

    service = "catalog"
    route = "GET /internal/instructors/{user_id}/courses"

    user_id: uuid.UUID
    courses: list[TaughtCourse]


class CatalogLesson(PeerAnswer):
    """A lesson as playback needs it to hand out a stream."""

    service = "catalog"
    route = "GET /internal/lessons/{lesson_id}"

    lesson_id: uuid.UUID
    course_id: uuid.UUID
    kind: str | None = None
    asset_id: uuid.UUID | None = None
    is_preview: bool = False
    course_status: str

    @property
    def is_video(self) -> bool:
        return self.asset_id is not None and self.kind in (None, "video")


class EnrollmentCheck(PeerAnswer):
    service = "catalog"
    route = "GET /internal/enrollments/check"

    # Strict: only a JSON `true` is access.
    enrolled: bool = Field(strict=True)


class CourseLesson(BaseModel):
    model_config = ConfigDict(extra="ignore")

    lesson_id: uuid.UUID
    kind: str | None = None
    asset_id: uuid.UUID | None = None
    is_preview: bool = False
    duration_seconds: float | None = None


class CourseLessons(PeerAnswer):
    """A course's lessons (playback: course completion and progress totals)."""

    service = "catalog"
    route = "GET /internal/courses/{course_id}/lessons"

    course_id: uuid.UUID
    lessons: list[CourseLesson]


# --- auth ----------------------------------------------------------------------------------------


class AuthUser(PeerAnswer):
    """A live account (404 once erased): billing's receipts and invoices."""

    service = "auth"
    route = "GET /internal/users/{user_id}"

    user_id: uuid.UUID
    email: str
    full_name: str
    is_active: bool


# --- playback ------------------------------------------------------------------------------------


class WatchProgress(PeerAnswer):
    """Whole seconds over the course's video lessons; `watched_ratio` 0..1 (billing's refund policy)."""

    service = "playback"
    route = "GET /internal/progress"

    user_id: uuid.UUID
    course_id: uuid.UUID
    watched_seconds: int = Field(ge=0)
    total_seconds: int = Field(ge=0)
    watched_ratio: float = Field(ge=0, le=1)


class UserName(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: uuid.UUID
    full_name: str


class UserNames(PeerAnswer):
    """Every account's name, a page at a time by id (catalog: names on certificates)."""

    service = "auth"
    route = "GET /internal/user-names"

    items: list[UserName]


# --- the evidence trail (billing asks) -----------------------------------------------------------


class EvidenceEntry(BaseModel):
    """One record of the peer: when, what, the request (or event correlation) id that caused it,
    and the record's ids."""

    model_config = ConfigDict(extra="ignore")

    at: dt.datetime
    kind: str
    request_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


# Each answer: `entries`, and `truncated` when the peer gave only the newest `limit` of some kind.


class CatalogEvidence(PeerAnswer):
    service = "catalog"
    route = "GET /internal/users/{user_id}/evidence"
    entries: list[EvidenceEntry]
    truncated: bool = False


class PlaybackEvidence(PeerAnswer):
    service = "playback"
    route = "GET /internal/users/{user_id}/evidence"
    entries: list[EvidenceEntry]
    truncated: bool = False


class AccountEvidence(PeerAnswer):
    service = "auth"
    route = "GET /internal/users/{user_id}/evidence"
    entries: list[EvidenceEntry]
    truncated: bool = False


# --- the data export (auth asks) -----------------------------------------------------------------
# Records as the owning service presents them to the person: the archive's JSON, not read by code.

Records = list[dict[str, Any]]


class CatalogExport(PeerAnswer):
    service = "catalog"
    route = "GET /internal/users/{user_id}/export"

    enrollments: Records
    enrollment_history: Records
    certificates: Records
    completed_lessons: Records
    courses_taught: Records


class BillingExport(PeerAnswer):
    service = "billing"
    route = "GET /internal/users/{user_id}/export"

    orders: Records
    refunds: Records
    order_history: Records
    invoices: Records  # each with `pdf_base64` (the newest ones), which auth writes out as a file
    invoice_pdfs_truncated: bool = False


class PlaybackExport(PeerAnswer):
    service = "playback"
    route = "GET /internal/users/{user_id}/export"

    watch_progress: Records
    playback_sessions: Records
    playback_sessions_truncated: bool = False
    uploaded_assets: Records


PEER_ANSWERS: tuple[type[PeerAnswer], ...] = (
    CatalogCourse, InstructorCourses, CatalogLesson, EnrollmentCheck, CourseLessons, AuthUser, WatchProgress,
    UserNames, CatalogEvidence, PlaybackEvidence, AccountEvidence, CatalogExport, BillingExport, PlaybackExport)
