"""Request and response bodies; requests forbid unknown fields (no mass assignment)."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field

from billing.models import Order


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckoutRequest(StrictModel):
    course_id: uuid.UUID


class RefundRequest(StrictModel):
    reason: str = Field(min_length=1, max_length=500)


class CheckoutRead(BaseModel):
    order_id: uuid.UUID
    status: str
    checkout_url: str | None

    @classmethod
    def of(cls, order: Order) -> CheckoutRead:
        return cls(order_id=order.id, status=order.status, checkout_url=order.checkout_url)


class OrderRead(BaseModel):
    order_id: uuid.UUID
    course_id: uuid.UUID
    amount: int
    currency: str
    status: str
    created_at: dt.datetime
    paid_at: dt.datetime | None
    refunded_at: dt.datetime | None

    @classmethod
    def of(cls, order: Order) -> OrderRead:
        return cls(order_id=order.id, course_id=order.course_id, amount=order.amount,
                   currency=order.currency, status=order.status, created_at=order.created_at,
                   paid_at=order.paid_at, refunded_at=order.refunded_at)


class OrderPage(BaseModel):
    items: list[OrderRead]
    total: int
    page: int
    page_size: int


class WebhookAck(BaseModel):
    received: bool = True
    outcome: str


class CatalogCourse(BaseModel):
    """Catalog's `GET /internal/courses/{course_id}` answer (docs/contracts.md)."""

    course_id: uuid.UUID
    title: str
    status: str
    price_amount: int = Field(ge=0, strict=True)  # minor units; a float here is a contract bug
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")
    is_free: bool


class EnrollmentCheck(BaseModel):
    enrolled: bool
