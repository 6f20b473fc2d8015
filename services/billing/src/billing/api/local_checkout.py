"""The local provider's hosted checkout page (mounted only when payment_provider == "local").

Like Stripe's page it needs no login: the unguessable session id is the capability. Paying or
declining sends a signed Stripe-format webhook to billing; the order changes only through it.
"""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import HTMLResponse

from billing import service
from billing.api.deps import ProviderDep, RuntimeDep, SettingsDep
from billing.invoices import format_money
from billing.models import Order, OrderStatus
from billing.providers import LocalProvider
from billing.providers.local import Outcome
from billing.settings import BillingSettings
from common.db import Database

router = APIRouter(prefix="/local-checkout", tags=["local checkout"])


async def get_local_provider(provider: ProviderDep) -> LocalProvider:
    """These routes need the local provider's extra powers (building and sending events)."""
    if not isinstance(provider, LocalProvider):
        raise RuntimeError("the local checkout is mounted only with the local provider")
    return provider


LocalProviderDep = Annotated[LocalProvider, Depends(get_local_provider)]
SessionId = Annotated[str, Path(pattern=r"^cs_local_[0-9a-f]{40}$")]


def _page(title: str, body: str) -> HTMLResponse:
    html = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
            "<meta name=viewport content='width=device-width,initial-scale=1'></head>"
            f"<body style='font-family:sans-serif;max-width:32rem;margin:3rem auto'>"
            f"<h1>{escape(title)}</h1>{body}</body></html>")
    return HTMLResponse(html)


def _summary(order: Order) -> str:
    discount = ""
    if order.discount_amount:
        discount = (f"<p>{escape(format_money(order.subtotal_amount, order.currency))} - coupon "
                    f"{escape(order.coupon_code or '')}: -{escape(format_money(order.discount_amount, order.currency))}"
                    "</p>")
    return (f"<p>{escape(order.course_title)}</p>{discount}<p><strong>"
            f"{escape(format_money(order.amount, order.currency))}</strong></p>"
            f"<p><small>Order {escape(str(order.id))} - status {escape(order.status)}</small></p>")


@router.get("/{session_id}", response_class=HTMLResponse, include_in_schema=False)
async def checkout_page(session_id: SessionId, runtime: RuntimeDep) -> HTMLResponse:
    async with runtime.db.session() as session:
        order = await service.order_for_checkout_page(db_session=session, session_id=session_id)
    if order.status != OrderStatus.PENDING:  # like Stripe: a failed or expired session is over
        return _page("Nothing to pay", _summary(order))
    sid = escape(session_id)
    forms = (f"<form method=post action='{sid}/pay'><button>Pay (test mode)</button></form>"
             f"<form method=post action='{sid}/decline'><button>Decline</button></form>")
    return _page("Local test checkout", _summary(order) + forms)


@router.post("/{session_id}/pay", response_class=HTMLResponse, include_in_schema=False)
async def pay(session_id: SessionId, runtime: RuntimeDep, provider: LocalProviderDep,
              settings: SettingsDep) -> HTMLResponse:
    return await _complete(session_id, "paid", db=runtime.db, provider=provider, settings=settings)


@router.post("/{session_id}/decline", response_class=HTMLResponse, include_in_schema=False)
async def decline(session_id: SessionId, runtime: RuntimeDep, provider: LocalProviderDep,
                  settings: SettingsDep) -> HTMLResponse:
    return await _complete(session_id, "declined", db=runtime.db, provider=provider, settings=settings)


async def _complete(session_id: str, outcome: Outcome, *, db: Database, provider: LocalProvider,
                    settings: BillingSettings) -> HTMLResponse:
    async with db.session() as session:
        order = await service.order_for_checkout_page(db_session=session, session_id=session_id)
    if order.status != OrderStatus.PENDING:
        return _page("Nothing to pay", _summary(order))
    await provider.deliver(order, outcome)
    async with db.session() as session:
        order = await service.order_for_checkout_page(db_session=session, session_id=session_id)
    if outcome == "paid":
        link = escape(settings.success_url(order.id))
        return _page("Payment received", f"{_summary(order)}<p><a href='{link}'>Continue</a></p>")
    link = escape(settings.cancel_url(order.id))
    return _page("Payment declined", f"{_summary(order)}<p><a href='{link}'>Back</a></p>")
