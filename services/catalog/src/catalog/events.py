"""Events catalog consumes: billing's paid and refunded orders drive enrollments.

Payloads are validated here (unknown extra fields are tolerated, so producers can add fields);
the decisions live in service.py.
"""

from __future__ import annotations

import uuid

from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import service
from common.events import Envelope
from common.events.consumer import HandlerMap


class _OrderEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    order_id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    currency: str


class OrderPaid(_OrderEvent):
    amount: int
    paid_at: AwareDatetime


class OrderRefunded(_OrderEvent):
    amount_refunded: int
    refunded_at: AwareDatetime


async def on_order_paid(session: AsyncSession, envelope: Envelope) -> None:
    event = OrderPaid.model_validate(envelope.payload)
    await service.record_order_paid(db_session=session, order_id=event.order_id, user_id=event.user_id,
                                    course_id=event.course_id, paid_at=event.paid_at)


async def on_order_refunded(session: AsyncSession, envelope: Envelope) -> None:
    event = OrderRefunded.model_validate(envelope.payload)
    await service.record_order_refunded(db_session=session, order_id=event.order_id,
                                        user_id=event.user_id, course_id=event.course_id,
                                        refunded_at=event.refunded_at)


HANDLERS: HandlerMap = {
    "billing.order.paid.v1": on_order_paid,
    "billing.order.refunded.v1": on_order_refunded,
}
