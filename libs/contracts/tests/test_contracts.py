"""The contract models accept what the producers have always written and write it the same way:
ids as strings, money as integer minor units, times as `isoformat()`; unknown fields are ignored."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.events import (
    EVENTS,
    AssetDeleted,
    AssetFailed,
    AssetReady,
    CoursePublished,
    CourseUpdated,
    EnrollmentGranted,
    EnrollmentRevoked,
    Event,
    LessonCompleted,
    OrderPaid,
    OrderRefunded,
    TranscodeRequested,
    UserDeleted,
    UserDisabled,
    UserRegistered,
    UserSessionsRevoked,
)
from contracts.peers import PEER_ANSWERS, EnrollmentCheck, PeerAnswer

NOW = dt.datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=dt.UTC)
A, B, C, D = (uuid.uuid4() for _ in range(4))

# One instance of every event, as its producer builds it.
SAMPLES: dict[type[Event], Event] = {e.__class__: e for e in (
    UserRegistered(user_id=A, email="ada@example.com", full_name="Ada", roles=["student"]),
    UserDisabled(user_id=A, disabled_at=NOW),
    UserSessionsRevoked(user_id=A, revoked_at=NOW),
    UserDeleted(user_id=A, deleted_at=NOW),
    OrderPaid(order_id=A, user_id=B, course_id=C, amount=4900, currency="EUR", paid_at=NOW),
    OrderRefunded(order_id=A, user_id=B, course_id=C, amount_refunded=4900, currency="EUR", refunded_at=NOW),
    CoursePublished(course_id=A, slug="s", title="T", price_amount=0, currency="EUR", published_at=NOW),
    CourseUpdated(course_id=A, slug="s", title="T", status="archived", price_amount=900, currency="USD",
                  updated_at=NOW),
    EnrollmentGranted(enrollment_id=A, user_id=B, course_id=C, source="free", order_id=None, version=1,
                      occurred_at=NOW),
    EnrollmentRevoked(enrollment_id=A, user_id=B, course_id=C, reason="refund", version=2, occurred_at=NOW),
    AssetReady(asset_id=A, owner_id=B, duration_seconds=7, ready_at=NOW),
    AssetFailed(asset_id=A, owner_id=B, reason="upload_expired", failed_at=NOW),
    AssetDeleted(asset_id=A, deleted_at=NOW),
    LessonCompleted(user_id=A, course_id=B, lesson_id=C, completed_at=NOW),
    TranscodeRequested(asset_id=A),
)}


def test_every_event_has_a_sample_and_one_routing_key() -> None:
    models = set(Event.__subclasses__())
    assert set(SAMPLES) == models == set(EVENTS.values()), "add the new event to SAMPLES"
    assert len(EVENTS) == len(models), "two models share a routing key"
    for key, model in EVENTS.items():
        assert key == f"{model.event_type}.v{model.event_version}" and key.count(".") == 3


def test_the_wire_form_is_what_the_producers_wrote_by_hand() -> None:
    assert SAMPLES[OrderPaid].model_dump(mode="json") == {
        "order_id": str(A), "user_id": str(B), "course_id": str(C), "amount": 4900, "currency": "EUR",
        "paid_at": NOW.isoformat()}
    assert SAMPLES[EnrollmentGranted].model_dump(mode="json") == {
        "enrollment_id": str(A), "user_id": str(B), "course_id": str(C), "source": "free", "order_id": None,
        "version": 1, "occurred_at": NOW.isoformat()}
    assert NOW.isoformat().endswith("+00:00")


@pytest.mark.parametrize("model", list(EVENTS.values()), ids=list(EVENTS))
def test_consumers_read_what_producers_write_and_ignore_fields_added_later(model: type[Event]) -> None:
    wire = SAMPLES[model].model_dump(mode="json")
    assert model.model_validate(wire) == SAMPLES[model]
    assert model.model_validate({**wire, "added_in_a_later_release": [1, 2]}) == SAMPLES[model]
    for name, info in model.model_fields.items():
        if info.is_required():
            with pytest.raises(ValidationError):
                model.model_validate({k: v for k, v in wire.items() if k != name})


@pytest.mark.parametrize("amount", [49.0, "4900", -1, True])
def test_money_is_a_non_negative_integer_of_minor_units(amount: Any) -> None:
    wire = SAMPLES[OrderPaid].model_dump(mode="json")
    with pytest.raises(ValidationError):
        OrderPaid.model_validate({**wire, "amount": amount})


def test_times_carry_their_offset() -> None:
    wire = SAMPLES[UserDisabled].model_dump(mode="json")
    with pytest.raises(ValidationError):
        UserDisabled.model_validate({**wire, "disabled_at": "2026-11-20T10:00:00"})
    with pytest.raises(ValidationError):
        UserDisabled(user_id=A, disabled_at=NOW.replace(tzinfo=None))
    assert UserDisabled.model_validate({**wire, "disabled_at": "2026-11-20T10:00:00Z"}).disabled_at == NOW.replace(
        microsecond=0)


def test_peer_answers_name_their_route_once_and_ignore_added_fields() -> None:
    routes = [(m.service, m.route) for m in PEER_ANSWERS]
    assert len(set(routes)) == len(routes) and set(PEER_ANSWERS) == set(PeerAnswer.__subclasses__())
    for model in PEER_ANSWERS:
        assert model.route.startswith("GET /internal/")
        assert model.model_config.get("extra") == "ignore"


def test_enrollment_check_takes_only_a_json_true_as_access() -> None:
    assert EnrollmentCheck.model_validate_json(b'{"enrolled": true}').enrolled is True
    for body in (b'{"enrolled": "true"}', b'{"enrolled": 1}', b"{}"):
        with pytest.raises(ValidationError):
            EnrollmentCheck.model_validate_json(body)
