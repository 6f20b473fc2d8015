"""Request and response bodies; requests forbid unknown fields (no mass assignment)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from common.schemas import StrictModel

CourseStatus = Literal["draft", "in_review", "published", "archived"]
CourseLevel = Literal["beginner", "intermediate", "advanced", "all"]
LessonKind = Literal["video", "text"]
EnrollmentSource = Literal["order", "free", "admin"]
CourseSort = Literal["relevance", "newest", "title", "price", "price_desc"]

# Strict: money must arrive as an integer of minor units, never "49.00", 49.0 or true.
MinorUnits = Annotated[int, Field(strict=True, ge=0, le=100_000_000)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$", max_length=3)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", min_length=1, max_length=120)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Subtitle = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
Description = Annotated[str, StringConstraints(max_length=20_000)]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$", max_length=5)]  # ISO 639-1 (+ region)
Tag = Annotated[str, BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
               StringConstraints(pattern=r"^[a-z0-9][a-z0-9+#.-]{0,39}$", max_length=40)]
Tags = Annotated[list[Tag], Field(max_length=20)]
CoverUrl = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=500)]
Duration = Annotated[int, Field(strict=True, ge=0, le=86_400)]
LessonBody = Annotated[str, StringConstraints(max_length=100_000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class LessonCreate(StrictModel):
    title: Title
    kind: LessonKind
    asset_id: uuid.UUID | None = None
    is_preview: bool = False
    # A hint until playback reports the asset ready; the asset's own duration then wins.
    duration_seconds: Duration | None = None
    body: LessonBody | None = None

    @model_validator(mode="after")
    def _asset_matches_kind(self) -> LessonCreate:
        if self.kind == "video" and self.asset_id is None:
            raise ValueError("a video lesson needs an asset_id")
        if self.kind == "text" and self.asset_id is not None:
            raise ValueError("a text lesson has no asset_id")
        if self.kind == "video" and self.body is not None:
            raise ValueError("a video lesson has no body")
        return self


class LessonUpdate(StrictModel):
    """Partial update; the kind of a lesson is fixed (delete and re-create to change it)."""

    title: Title | None = None
    asset_id: uuid.UUID | None = None
    is_preview: bool | None = None
    duration_seconds: Duration | None = None
    body: LessonBody | None = None


class SectionUpdate(StrictModel):
    title: Title


class SectionCreate(StrictModel):
    title: Title
    lessons: list[LessonCreate] = Field(default_factory=list, max_length=200)


class CourseCreate(StrictModel):
    title: Title
    slug: Slug | None = None
    subtitle: Subtitle = ""
    description: Description = ""
    price_amount: MinorUnits
    currency: Currency
    level: CourseLevel = "all"
    language: Language = "en"
    category: Slug | None = None
    tags: Tags = Field(default_factory=list)
    cover_image_url: CoverUrl | None = None
    # Co-instructors besides the creator (who is always the first instructor).
    instructor_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10)
    sections: list[SectionCreate] = Field(default_factory=list, max_length=100)


class CourseUpdate(StrictModel):
    """Partial update of a course's metadata; fields left out are unchanged."""

    title: Title | None = None
    slug: Slug | None = None
    subtitle: Subtitle | None = None
    description: Description | None = None
    price_amount: MinorUnits | None = None
    currency: Currency | None = None
    level: CourseLevel | None = None
    language: Language | None = None
    category: Slug | None = None
    tags: Tags | None = None
    cover_image_url: CoverUrl | None = None
    instructor_ids: list[uuid.UUID] | None = Field(default=None, max_length=10)


class StatusChange(StrictModel):
    status: CourseStatus


class SectionOrder(StrictModel):
    id: uuid.UUID
    lesson_ids: list[uuid.UUID] = Field(max_length=200)


class CurriculumOrder(StrictModel):
    """The whole curriculum in its new order: every section and every lesson exactly once
    (lessons may move between sections)."""

    sections: list[SectionOrder] = Field(max_length=100)


class CategoryCreate(StrictModel):
    # The columns' lengths (categories.slug, categories.name).
    slug: Annotated[Slug, StringConstraints(max_length=80)]
    name: Annotated[Title, StringConstraints(max_length=120)]


class CategoryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str


class LessonRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    kind: LessonKind
    position: int
    is_preview: bool
    duration_seconds: int | None
    asset_id: uuid.UUID | None
    body: str | None = None


class SectionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    position: int
    lessons: list[LessonRead]


class CourseRead(BaseModel):
    """Detail: the public view hides asset ids and text bodies of non-preview lessons."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    title: str
    subtitle: str
    description: str
    instructor_id: uuid.UUID
    instructor_ids: list[uuid.UUID]
    price_amount: int
    currency: str
    is_free: bool
    status: CourseStatus
    level: CourseLevel
    language: str
    category: CategoryRead | None
    tags: list[str]
    cover_image_url: str | None
    lesson_count: int
    duration_seconds: int
    created_at: dt.datetime
    updated_at: dt.datetime
    published_at: dt.datetime | None
    sections: list[SectionRead]


class CourseSummary(BaseModel):
    id: uuid.UUID
    slug: str
    title: str
    subtitle: str
    price_amount: int
    currency: str
    instructor_id: uuid.UUID
    lesson_count: int
    published_at: dt.datetime | None
    instructor_ids: list[uuid.UUID]
    level: CourseLevel
    language: str
    category: str | None  # slug
    tags: list[str]
    cover_image_url: str | None
    duration_seconds: int
    is_free: bool


class CoursePage(BaseModel):
    items: list[CourseSummary]
    total: int
    page: int
    page_size: int


class EnrollmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    status: Literal["active", "revoked"]
    source: EnrollmentSource
    version: int
    enrolled_at: dt.datetime = Field(validation_alias="updated_at")


class CourseEnrollment(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: uuid.UUID
    status: Literal["active", "revoked"]
    source: EnrollmentSource
    version: int
    order_id: uuid.UUID | None
    created_at: dt.datetime
    updated_at: dt.datetime


class CourseEnrollmentPage(BaseModel):
    items: list[CourseEnrollment]
    total: int
    page: int
    page_size: int


class AdminEnrollmentChange(StrictModel):
    user_id: uuid.UUID
    course_id: uuid.UUID
    reason: Reason


class AdminEnrollmentResult(BaseModel):
    enrollment: EnrollmentRead
    changed: bool  # false when the call found the enrollment already in the asked state


class AuditEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: dt.datetime
    actor_id: uuid.UUID | None
    action: Literal["grant", "revoke"]
    user_id: uuid.UUID | None
    course_id: uuid.UUID
    reason: str
    changed: bool


class AuditPage(BaseModel):
    items: list[AuditEntry]
    total: int
    page: int
    page_size: int


class MyEnrollment(BaseModel):
    course_id: uuid.UUID
    title: str
    slug: str
    enrolled_at: dt.datetime
    source: EnrollmentSource


class MyEnrollments(BaseModel):
    items: list[MyEnrollment]
    total: int


class InternalCourse(BaseModel):
    course_id: uuid.UUID
    title: str
    status: CourseStatus
    price_amount: int
    currency: str
    is_free: bool


class InternalLesson(BaseModel):
    lesson_id: uuid.UUID
    course_id: uuid.UUID
    kind: LessonKind  # beyond the contract's fields: lets playback refuse text lessons early
    asset_id: uuid.UUID | None
    is_preview: bool
    course_status: CourseStatus


class EnrollmentCheck(BaseModel):
    enrolled: bool


class InternalTaughtCourse(BaseModel):
    course_id: uuid.UUID
    title: str


class InternalInstructorCourses(BaseModel):
    """The courses a user teaches (billing: an instructor's revenue covers these and no others)."""

    user_id: uuid.UUID
    courses: list[InternalTaughtCourse]


class InternalCourseLesson(BaseModel):
    lesson_id: uuid.UUID
    kind: LessonKind
    asset_id: uuid.UUID | None
    is_preview: bool
    duration_seconds: int | None


class InternalCourseLessons(BaseModel):
    course_id: uuid.UUID
    lessons: list[InternalCourseLesson]
