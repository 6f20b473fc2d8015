"""Request and response bodies; requests forbid unknown fields (no mass assignment)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

CourseStatus = Literal["draft", "published", "archived"]
LessonKind = Literal["video", "text"]
EnrollmentSource = Literal["order", "free", "admin"]

# Strict: money must arrive as an integer of minor units, never "49.00", 49.0 or true.
MinorUnits = Annotated[int, Field(strict=True, ge=0, le=100_000_000)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", min_length=1, max_length=120)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LessonCreate(StrictModel):
    title: Title
    kind: LessonKind
    asset_id: uuid.UUID | None = None
    is_preview: bool = False
    duration_seconds: Annotated[int, Field(strict=True, ge=0, le=86_400)] | None = None

    @model_validator(mode="after")
    def _asset_matches_kind(self) -> LessonCreate:
        if self.kind == "video" and self.asset_id is None:
            raise ValueError("a video lesson needs an asset_id")
        if self.kind == "text" and self.asset_id is not None:
            raise ValueError("a text lesson has no asset_id")
        return self


class SectionCreate(StrictModel):
    title: Title
    lessons: list[LessonCreate] = Field(default_factory=list, max_length=200)


class CourseCreate(StrictModel):
    title: Title
    slug: Slug | None = None
    subtitle: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] = ""
    description: Annotated[str, StringConstraints(max_length=20_000)] = ""
    price_amount: MinorUnits
    currency: Currency
    sections: list[SectionCreate] = Field(default_factory=list, max_length=100)


class LessonRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    kind: LessonKind
    position: int
    is_preview: bool
    duration_seconds: int | None
    asset_id: uuid.UUID | None


class SectionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    position: int
    lessons: list[LessonRead]


class CourseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    title: str
    subtitle: str
    description: str
    instructor_id: uuid.UUID
    price_amount: int
    currency: str
    is_free: bool
    status: CourseStatus
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
