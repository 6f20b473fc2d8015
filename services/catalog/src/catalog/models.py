"""Catalog's tables: categories, courses and their curriculum, enrollments, the order facts and
asset facts behind them, the audit trail of hand-made enrollment changes, and certificates."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from common.db import UTCDateTime, request_id_column, utcnow

COURSE_STATUSES = ("draft", "in_review", "published", "archived")
COURSE_LEVELS = ("beginner", "intermediate", "advanced", "all")
LESSON_KINDS = ("video", "text")
ENROLLMENT_STATUSES = ("active", "revoked")
ENROLLMENT_SOURCES = ("order", "free", "admin")
ASSET_STATES = ("ready", "deleted")
AUDIT_ACTIONS = ("grant", "revoke")


def _one_of(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=name)


class Base(DeclarativeBase):
    pass


class Category(Base):
    __tablename__ = "categories"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(sa.String(80), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))


class Course(Base):
    """On PostgreSQL the table also has `search_vector`, a generated weighted tsvector stemmed with
    the configuration of the course's language (migration e4b27c9d1f03) with a GIN index; it is not
    mapped because SQLite has no equivalent (`include_in_autogenerate` keeps Alembic from dropping it)."""

    __tablename__ = "courses"
    __table_args__ = (
        _one_of("status", COURSE_STATUSES, "ck_courses_status"),
        _one_of("level", COURSE_LEVELS, "ck_courses_level"),
        sa.CheckConstraint("price_amount >= 0", name="ck_courses_price_not_negative"),
        sa.Index("ix_courses_status_published_at", "status", "published_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(sa.String(120), unique=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    subtitle: Mapped[str] = mapped_column(sa.String(300), default="")
    description: Mapped[str] = mapped_column(sa.Text, default="")
    instructor_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    price_amount: Mapped[int] = mapped_column(sa.Integer)  # minor units
    currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[str] = mapped_column(sa.String(16), default="draft")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    level: Mapped[str] = mapped_column(sa.String(16), default="all")
    language: Mapped[str] = mapped_column(sa.String(8), default="en", index=True)
    category_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("categories.id", ondelete="SET NULL", name="fk_courses_category_id"), nullable=True,
        index=True)
    tags: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    # The tags as one space-separated string: what LIKE search and the tsvector read.
    tags_text: Mapped[str] = mapped_column(sa.String(1000), default="")
    cover_image_url: Mapped[str | None] = mapped_column(sa.String(500), nullable=True)
    # Derived from the curriculum, kept up to date by every curriculum write and asset event,
    # so listing never aggregates lessons.
    lesson_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    duration_seconds: Mapped[int] = mapped_column(sa.Integer, default=0)

    # lazy="raise": in async code every load must be explicit (selectinload), never implicit IO.
    sections: Mapped[list[Section]] = relationship(
        order_by="Section.position", cascade="all, delete-orphan", lazy="raise")
    instructors: Mapped[list[CourseInstructor]] = relationship(
        order_by="CourseInstructor.position", cascade="all, delete-orphan", lazy="raise")
    category: Mapped[Category | None] = relationship(lazy="raise")

    @property
    def is_free(self) -> bool:
        return self.price_amount == 0

    @property
    def instructor_ids(self) -> list[uuid.UUID]:
        return [instructor.user_id for instructor in self.instructors]


class CourseInstructor(Base):
    """Who teaches (and may edit) a course; `courses.instructor_id` is the creator and first one."""

    __tablename__ = "course_instructors"

    course_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("courses.id", ondelete="CASCADE"),
                                                 primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, index=True)
    position: Mapped[int] = mapped_column(sa.Integer, default=1)


class Section(Base):
    __tablename__ = "sections"
    __table_args__ = (sa.UniqueConstraint("course_id", "position"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    course_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("courses.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(sa.Integer)
    title: Mapped[str] = mapped_column(sa.String(200))

    lessons: Mapped[list[Lesson]] = relationship(
        order_by="Lesson.position", cascade="all, delete-orphan", lazy="raise")


class Lesson(Base):
    __tablename__ = "lessons"
    __table_args__ = (
        sa.UniqueConstraint("section_id", "position"),
        _one_of("kind", LESSON_KINDS, "ck_lessons_kind"),
        sa.CheckConstraint("kind <> 'video' OR asset_id IS NOT NULL", name="ck_lessons_video_has_asset"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    section_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("sections.id", ondelete="CASCADE"))
    # Denormalised so "lessons of a course" and the internal lesson lookup need no join.
    course_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(sa.Integer)
    title: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(16))
    asset_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    is_preview: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    duration_seconds: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    body: Mapped[str | None] = mapped_column(sa.Text, nullable=True)  # text lessons


class KnownAsset(Base):
    """What playback told us about a video asset, in whatever order it told us.

    `deleted` is final: a late or redelivered `asset.ready` never brings a deleted asset back.
    """

    __tablename__ = "known_assets"
    __table_args__ = (_one_of("state", ASSET_STATES, "ck_known_assets_state"),)

    asset_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    state: Mapped[str] = mapped_column(sa.String(16))
    owner_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    duration_seconds: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Enrollment(Base):
    """One row per (user, course); revocation flips the status so `version` keeps growing."""

    __tablename__ = "enrollments"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "course_id"),
        _one_of("status", ENROLLMENT_STATUSES, "ck_enrollments_status"),
        _one_of("source", ENROLLMENT_SOURCES, "ck_enrollments_source"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    course_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("courses.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    source: Mapped[str] = mapped_column(sa.String(16))
    order_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Only grants and revocations change a row, so for an active one this is when it was granted.
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrderFact(Base):
    """What billing told us about an order, so paid/refunded are handled in either arrival order."""

    __tablename__ = "order_facts"

    order_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    course_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refunded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class EnrollmentAudit(Base):
    """Append-only record of enrollments granted or revoked by hand (admins).

    Rows are never updated or deleted, except that erasing a user blanks their ids (PostgreSQL
    enforces this with a trigger, see migration c7a41d9e2b10).
    """

    __tablename__ = "enrollment_audit"
    __table_args__ = (_one_of("action", AUDIT_ACTIONS, "ck_enrollment_audit_action"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    action: Mapped[str] = mapped_column(sa.String(16))
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True, index=True)
    course_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    reason: Mapped[str] = mapped_column(sa.String(500))
    changed: Mapped[bool] = mapped_column(sa.Boolean)
    request_id: Mapped[str | None] = request_id_column()


class EnrollmentHistory(Base):
    """Every change of an enrollment's access (granted, revoked), with what caused it: the
    enrollment row keeps only its current state, an evidence trail needs each step."""

    __tablename__ = "enrollment_history"
    __table_args__ = (sa.Index("ix_enrollment_history_user_course", "user_id", "course_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    enrollment_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    # NULL once the user is erased: the step stays, the person does not.
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    course_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    action: Mapped[str] = mapped_column(sa.String(16))  # granted, revoked
    source: Mapped[str] = mapped_column(sa.String(32))  # purchase, free, admin; the reason of a revocation
    order_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    version: Mapped[int] = mapped_column(sa.Integer)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    request_id: Mapped[str | None] = request_id_column()


class ErasedUser(Base):
    """Users erased by `auth.user.deleted.v1`: a late payment event must not re-create their data."""

    __tablename__ = "erased_users"

    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    erased_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserName(Base):
    """Display names from `auth.user.registered.v1` (learners and instructors on certificates);
    deleted on erasure."""

    __tablename__ = "user_names"

    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    full_name: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)


class LessonCompletion(Base):
    """Video lessons a learner finished, from playback's `playback.lesson.completed.v1`."""

    __tablename__ = "lesson_completions"
    __table_args__ = (sa.Index("ix_lesson_completions_user_course", "user_id", "course_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    lesson_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    course_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    completed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Certificate(Base):
    """One per (learner, course), issued when the last video lesson is completed while enrolled.

    The names and title are frozen at issue time; erasure blanks the learner (id and name) and
    keeps the fact that the certificate was issued.
    """

    __tablename__ = "certificates"
    __table_args__ = (sa.UniqueConstraint("user_id", "course_id", name="uq_certificates_user_course"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    course_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("courses.id"), index=True)
    learner_name: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    course_title: Mapped[str] = mapped_column(sa.String(200))
    instructor_name: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    learner_erased_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


# Objects only the PostgreSQL migrations create, which the models deliberately do not map.
DATABASE_ONLY_COLUMNS = frozenset({("courses", "search_vector")})
DATABASE_ONLY_INDEXES = frozenset({"ix_courses_search_vector"})


def include_in_autogenerate(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's include_object hook (migrations/env.py): autogenerate must not propose dropping
    the database-only objects above, nor Alembic's own version table (reflected without the
    service schema it is configured with)."""
    if not reflected or compare_to is not None:
        return True
    if type_ == "column":
        return (obj.table.name, name) not in DATABASE_ONLY_COLUMNS
    if type_ == "index":
        return name not in DATABASE_ONLY_INDEXES
    return not (type_ == "table" and name == "alembic_version")
