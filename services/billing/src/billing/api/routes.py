"""Billing's HTTP API (served under /api/billing at the gateway)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status

from billing import service
from billing.api.deps import IdempotencyKey, ProviderDep, RuntimeDep, SettingsDep, user_id_of
from billing.providers import verify_webhook
from billing.schemas import CheckoutRead, CheckoutRequest, OrderPage, OrderRead, RefundRequest, WebhookAck
from common.security import AdminUser, CurrentUser

router = APIRouter()


@router.post("/checkout", status_code=status.HTTP_201_CREATED, response_model=CheckoutRead,
             responses={200: {"model": CheckoutRead, "description": "replay of an earlier Idempotency-Key"}})
async def checkout(body: CheckoutRequest, user: CurrentUser, key: IdempotencyKey, runtime: RuntimeDep,
                   provider: ProviderDep, response: Response) -> CheckoutRead:
    result = await service.checkout(db=runtime.db, catalog=runtime.client("catalog"), provider=provider,
                                    user_id=user_id_of(user), course_id=body.course_id, idempotency_key=key)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return CheckoutRead.of(result.order)


@router.get("/orders", response_model=OrderPage)
async def list_orders(user: CurrentUser, runtime: RuntimeDep,
                      page: Annotated[int, Query(ge=1, le=100_000)] = 1,
                      page_size: Annotated[int, Query(ge=1, le=100)] = 20) -> OrderPage:
    async with runtime.db.session() as session:
        orders, total = await service.list_orders(db_session=session, user_id=user_id_of(user), page=page,
                                                  page_size=page_size)
    return OrderPage(items=[OrderRead.of(o) for o in orders], total=total, page=page, page_size=page_size)


@router.get("/orders/{order_id}", response_model=OrderRead)
async def get_order(order_id: uuid.UUID, user: CurrentUser, runtime: RuntimeDep) -> OrderRead:
    async with runtime.db.session() as session:
        order = await service.get_order(db_session=session, order_id=order_id, user_id=user_id_of(user),
                                        is_admin=user.has_any_role("admin"))
    return OrderRead.of(order)


@router.post("/orders/{order_id}/refund", response_model=OrderRead)
async def refund_order(order_id: uuid.UUID, body: RefundRequest, admin: AdminUser, runtime: RuntimeDep,
                       provider: ProviderDep) -> OrderRead:
    order = await service.refund(db=runtime.db, provider=provider, order_id=order_id, reason=body.reason,
                                 actor=f"admin:{admin.subject}")
    return OrderRead.of(order)


@router.post("/webhooks/stripe", response_model=WebhookAck)
async def stripe_webhook(
    request: Request, runtime: RuntimeDep, settings: SettingsDep,
    signature: Annotated[str | None, Header(alias="Stripe-Signature", max_length=2000)] = None,
) -> WebhookAck:
    """Called by Stripe (or the local provider); authenticated by the signature over the raw body."""
    event = verify_webhook(await request.body(), signature,
                           settings.stripe_webhook_secret.get_secret_value(),
                           settings.webhook_tolerance_seconds)
    return WebhookAck(outcome=await service.apply_provider_event(db=runtime.db, event=event))
