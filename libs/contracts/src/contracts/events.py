"""Event payloads, one model per routing key (`<producer>.<entity>.<verb>.v<N>`), and `EVENTS`.

The producer builds the model and hands it to `common.events.add_event`, which takes the routing
key from the class; the consumer validates `envelope.payload` with the same model.

Compatibility: models ignore unknown fields, so a producer may add a field without a new
version and older consumers keep working. Removing, renaming or retyping a field is a new model
with `event_version` + 1, published next to the old one until every consumer moved.
Ids are UUIDs (strings on the wire), money integer minor units, times ISO 8601 with offset.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

# `isoformat()` on the wire (`+00:00`), as the producers always wrote it, not pydantic's `Z`.
Timestamp = Annotated[AwareDatetime, PlainSerializer(dt.datetime.isoformat, return_type=str, when_used="json")]
# Minor units; strict: a float or a numeric string here is a producer bug, not a price.
Money = Annotated[int, Field(ge=0, strict=True)]
Currency = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")]


class Event(BaseModel):
    """A payload on the exchange; subclasses name their `event_type` and `event_version`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    event_version: ClassVar[int] = 1

    @classmethod
    def routing_key(cls) -> str:
        return f"{cls.event_type}.v{cls.event_version}"


# --- auth ----------------------------------------------------------------------------------------


class UserRegistered(Event):
    """`email` and `full_name` are null when the account was erased before the event left."""

    event_type = "auth.user.registered"

    user_id: uuid.UUID
    email: str | None
    full_name: str | None = Field(max_length=200)
    roles: list[str]


class UserDisabled(Event):
    """Consumers end the user's playback sessions."""

    event_type = "auth.user.disabled"

    user_id: uuid.UUID
    disabled_at: Timestamp


class UserSessionsRevoked(Event):
    """"Sign out everywhere" or a password reset: streams started before `revoked_at` end."""

    event_type = "auth.user.sessions_revoked"

    user_id: uuid.UUID
    revoked_at: Timestamp


class UserDeleted(Event):
    """Erasure: every service removes or anonymises the user's data (consumers fall back to the
    envelope's `occurred_at` when `deleted_at` is missing)."""

    event_type = "auth.user.deleted"

    user_id: uuid.UUID
    deleted_at: Timestamp | None = None


# --- billing -------------------------------------------------------------------------------------


class OrderPaid(Event):
    """Once per order; `amount` is what was charged (after coupons, tax included)."""

    event_type = "billing.order.paid"

    order_id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    amount: Money
    currency: Currency
    paid_at: Timestamp


class OrderRefunded(Event):
    """Full refunds only, once the provider reports the money returned."""

    event_type = "billing.order.refunded"

    order_id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    amount_refunded: Money
    currency: Currency
    refunded_at: Timestamp


# --- catalog -------------------------------------------------------------------------------------

CourseStatus = Literal["draft", "in_review", "published", "archived"]


class CoursePublished(Event):
    event_type = "catalog.course.published"

    course_id: uuid.UUID
    slug: str
    title: str
    price_amount: Money
    currency: Currency
    published_at: Timestamp


class CourseUpdated(Event):
    """A change of slug, title, price, currency or status other than publishing."""

    event_type = "catalog.course.updated"

    course_id: uuid.UUID
    slug: str
    title: str
    status: CourseStatus
    price_amount: Money
    currency: Currency
    updated_at: Timestamp


class EnrollmentGranted(Event):
    """`version` grows by one on every change of the (user, course) enrollment: keep the highest."""

    event_type = "catalog.enrollment.granted"

    enrollment_id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    source: Literal["order", "free", "admin"]
    order_id: uuid.UUID | None
    version: int = Field(ge=1)
    occurred_at: Timestamp


class EnrollmentRevoked(Event):
    event_type = "catalog.enrollment.revoked"

    enrollment_id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    reason: str
    version: int = Field(ge=1)
    occurred_at: Timestamp


# --- playback ------------------------------------------------------------------------------------


class AssetReady(Event):
    """`duration_seconds` is whole seconds (rounded, at least 1): catalog's lesson durations."""

    event_type = "playback.asset.ready"

    asset_id: uuid.UUID
    owner_id: uuid.UUID | None
    duration_seconds: int = Field(ge=0)
    ready_at: Timestamp


class AssetFailed(Event):
    event_type = "playback.asset.failed"

    asset_id: uuid.UUID
    owner_id: uuid.UUID | None
    reason: str
    failed_at: Timestamp


class AssetDeleted(Event):
    """The asset no longer counts as ready, for good."""

    event_type = "playback.asset.deleted"

    asset_id: uuid.UUID
    deleted_at: Timestamp


class LessonCompleted(Event):
    """The heartbeat whose credited watch time first reaches 90 % of the video lesson."""

    event_type = "playback.lesson.completed"

    user_id: uuid.UUID
    course_id: uuid.UUID
    lesson_id: uuid.UUID
    completed_at: Timestamp


class TranscodeRequested(Event):
    """Playback's own job message (outbox -> its durable transcode queue); no other service binds it."""

    event_type = "playback.transcode.requested"

    asset_id: uuid.UUID


EVENTS: dict[str, type[Event]] = {model.routing_key(): model for model in (
    UserRegistered, UserDisabled, UserSessionsRevoked, UserDeleted,
    OrderPaid, OrderRefunded,
    CoursePublished, CourseUpdated, EnrollmentGranted, EnrollmentRevoked,
    AssetReady, AssetFailed, AssetDeleted, LessonCompleted, TranscodeRequested,
)}

# Auth's events after which access tokens issued earlier must stop working: every service that
# verifies user tokens records them (`common.revocation.Revocations.added_to`).
REVOKING_ACCESS: tuple[str, ...] = tuple(model.routing_key()
                                         for model in (UserDisabled, UserSessionsRevoked, UserDeleted))
