"""Billing's HTTP API (served under /api/billing at the gateway)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response, status

from billing import coupons, service, tax
from billing.api.deps import IdempotencyKey, ProviderDep, RuntimeDep, SettingsDep, user_id_of
from billing.providers import verify_webhook
from billing.schemas import (
    AdminOrderFilters,
    AdminOrderPage,
    AdminOrderRead,
    CheckoutRead,
    CheckoutRequest,
    CouponActive,
    CouponCreate,
    CouponRead,
    OrderPage,
    OrderRead,
    RefundRequest,
    SelfRefundRequest,
    WebhookAck,
)
from common.bounds import PageNumber, PageSize
from common.errors import InvalidInput
from common.security import AdminUser, CurrentUser

router = APIRouter()

Page = PageNumber
OptionalKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                           pattern=r"^[\x21-\x7e]+$")]


@router.post("/checkout", status_code=status.HTTP_201_CREATED, response_model=CheckoutRead,
             responses={200: {"model": CheckoutRead,
                              "description": "replay of an earlier Idempotency-Key, or the learner's open "
                                             "checkout for this course"}})
async def checkout(body: CheckoutRequest, user: CurrentUser, key: IdempotencyKey, runtime: RuntimeDep,
                   provider: ProviderDep, settings: SettingsDep, response: Response) -> CheckoutRead:
    buyer = tax.buyer_from_input(body.country, body.vat_number, default_country=settings.seller_country)
    result = await service.checkout(db=runtime.db, catalog=runtime.client("catalog"), provider=provider,
                                    user_id=user_id_of(user), course_id=body.course_id, idempotency_key=key,
                                    coupon_code=body.coupon_code, buyer=buyer, tax_policy=tax.policy_for(settings))
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return CheckoutRead.of(result.order)


@router.get("/orders", response_model=OrderPage)
async def list_orders(user: CurrentUser, runtime: RuntimeDep, page: Page = 1, page_size: PageSize = 20) -> OrderPage:
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


@router.post("/orders/{order_id}/confirm", response_model=OrderRead)
async def confirm_order(order_id: uuid.UUID, user: CurrentUser, runtime: RuntimeDep,
                        provider: ProviderDep) -> OrderRead:
    """Polled by the success page: asks the provider and fulfils at once if the session is paid
    (the same idempotent fulfilment as the webhook, whichever comes first)."""
    async with runtime.db.session() as session:
        order = await service.get_order(db_session=session, order_id=order_id, user_id=user_id_of(user))
    return OrderRead.of(await service.confirm_payment(db=runtime.db, provider=provider, order=order))


@router.post("/orders/{order_id}/refund", response_model=OrderRead)
async def refund_order(order_id: uuid.UUID, body: RefundRequest, admin: AdminUser, runtime: RuntimeDep,
                       provider: ProviderDep, key: OptionalKey = None) -> OrderRead:
    """Admin refund: full (no amount; repeating it is a no-op) or partial (amount in minor units;
    send an Idempotency-Key to make a retry safe)."""
    order = await service.request_refund(db=runtime.db, provider=provider, order_id=order_id, amount=body.amount,
                                         reason=body.reason, actor=f"admin:{admin.subject}", kind="admin",
                                         idempotency_key=key)
    return OrderRead.of(order)


@router.post("/orders/{order_id}/self-refund", response_model=OrderRead)
async def self_refund(order_id: uuid.UUID, body: SelfRefundRequest, user: CurrentUser, runtime: RuntimeDep,
                      provider: ProviderDep, settings: SettingsDep) -> OrderRead:
    """The buyer's own full refund, within the policy (days since payment, share of the course watched)."""
    order = await service.self_refund(db=runtime.db, provider=provider, playback=runtime.client("playback"),
                                      settings=settings, order_id=order_id, user_id=user_id_of(user),
                                      reason=body.reason)
    return OrderRead.of(order)


@router.get("/admin/orders", response_model=AdminOrderPage)
async def admin_orders(admin: AdminUser, runtime: RuntimeDep, filters: Annotated[AdminOrderFilters, Depends()],
                       page: Page = 1, page_size: PageSize = 50) -> AdminOrderPage:
    async with runtime.db.session() as session:
        orders, total, totals = await service.admin_list_orders(db_session=session, filters=filters, page=page,
                                                                page_size=page_size)
    return AdminOrderPage(items=[AdminOrderRead.of(o) for o in orders], total=total, page=page,
                          page_size=page_size, totals=totals)


@router.post("/admin/coupons", response_model=CouponRead, status_code=status.HTTP_201_CREATED)
async def create_coupon(body: CouponCreate, admin: AdminUser, runtime: RuntimeDep) -> CouponRead:
    async with runtime.db.transaction() as session:
        return CouponRead.of(await coupons.create_coupon(db_session=session, body=body))


@router.get("/admin/coupons", response_model=list[CouponRead])
async def list_coupons(admin: AdminUser, runtime: RuntimeDep) -> list[CouponRead]:
    async with runtime.db.session() as session:
        return [CouponRead.of(c) for c in await coupons.list_coupons(db_session=session)]


@router.put("/admin/coupons/{coupon_id}/active", response_model=CouponRead)
async def set_coupon_active(coupon_id: uuid.UUID, body: CouponActive, admin: AdminUser,
                            runtime: RuntimeDep) -> CouponRead:
    async with runtime.db.transaction() as session:
        return CouponRead.of(await coupons.set_active(db_session=session, coupon_id=coupon_id, active=body.active))


@router.post("/webhooks/stripe", response_model=WebhookAck)
async def stripe_webhook(
    request: Request, runtime: RuntimeDep, settings: SettingsDep,
    signature: Annotated[str | None, Header(alias="Stripe-Signature", max_length=2000)] = None,
) -> WebhookAck:
    """Called by Stripe (or the local provider); authenticated by the signature over the raw body."""
    try:
        event = verify_webhook(await request.body(), signature,
                               settings.stripe_webhook_secret.get_secret_value(),
                               settings.webhook_tolerance_seconds)
    except InvalidInput as exc:
        service.WEBHOOK_REJECTED.labels(exc.code or "invalid").inc()
        raise
    return WebhookAck(outcome=await service.apply_provider_event(db=runtime.db, event=event))
