"""One evidence trail for an order or a user: what a chargeback dispute or a support ticket needs.

Billing owns the starting object (the order), so it assembles the trail: its own records (checkout,
every status change with the provider event that carried it, refunds, invoices and credit notes),
then catalog's (enrollment granted and revoked, admin actions, certificates), playback's (tokens and
sessions with their watermarks, manifests served, sessions ended) and, for a user, auth's account
audit, each through the peer's internal evidence route. Every entry carries the request id (or the
event correlation id) that caused it. A peer that does not answer leaves its part missing and the
trail flagged `partial`, never a 500.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from billing.models import AuditEntry, DeferredProviderEvent, Invoice, Order, Refund
from common.errors import NotFound
from common.http import optional_model
from common.runtime import Runtime
from contracts import peers as contracts


class EvidenceEntry(BaseModel):
    """One thing that happened, in the service that recorded it, with the request (or event
    correlation id) that caused it; `detail` holds that record's ids (order, refund, session,
    watermark, provider event...)."""

    at: dt.datetime
    service: str = ""
    kind: str
    request_id: str | None = None
    detail: dict[str, Any] = {}


class EvidencePart(BaseModel):
    service: str
    status: Literal["ok", "truncated", "missing"]
    entries: int


class EvidenceTrail(BaseModel):
    """`partial` when a service did not answer (its part says `missing`) or capped its entries."""

    order_id: uuid.UUID | None
    user_id: uuid.UUID
    course_id: uuid.UUID | None
    partial: bool
    parts: list[EvidencePart]
    entries: list[EvidenceEntry]


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


async def _own_entries(db_session: AsyncSession, orders: list[Order]) -> list[dict[str, Any]]:
    order_ids = [order.id for order in orders]
    entries: list[dict[str, Any]] = []
    audits = await db_session.scalars(sa.select(AuditEntry).where(AuditEntry.order_id.in_(order_ids)))
    for row in audits:
        # A row that keeps the status records something else that happened to the order (a refund's progress).
        kind = ("order.checkout" if row.from_status is None else
                "order.noted" if row.from_status == row.to_status else f"order.{row.to_status}")
        entries.append({
            "at": _iso(row.at), "kind": kind,
            "request_id": row.request_id,
            "detail": {"order_id": str(row.order_id), "from_status": row.from_status, "to_status": row.to_status,
                       "actor": row.actor, "provider_event_id": row.provider_event_id, "detail": row.detail}})
    for order in orders:
        entries.append({
            "at": _iso(order.created_at), "kind": "order.placed", "request_id": None,
            "detail": {"order_id": str(order.id), "course_id": str(order.course_id), "amount": order.amount,
                       "currency": order.currency, "provider": order.provider,
                       "provider_session_id": order.provider_session_id,
                       "provider_payment_id": order.provider_payment_id, "status": order.status}})
    for refund in await db_session.scalars(sa.select(Refund).where(Refund.order_id.in_(order_ids))):
        entries.append({
            "at": _iso(refund.created_at), "kind": "refund.requested", "request_id": refund.request_id,
            "detail": {"order_id": str(refund.order_id), "refund_id": str(refund.id), "amount": refund.amount,
                       "currency": refund.currency, "kind": refund.kind, "reason": refund.reason,
                       "actor": refund.actor, "provider_refund_id": refund.provider_refund_id,
                       "status": refund.status, "failure": refund.failure}})
    for document in await db_session.scalars(sa.select(Invoice).where(Invoice.order_id.in_(order_ids))):
        entries.append({
            "at": _iso(document.issued_at), "kind": f"{document.kind}.issued", "request_id": None,
            "detail": {"order_id": str(document.order_id), "invoice_number": document.invoice_number,
                       "gross_amount": document.gross_amount, "currency": document.currency}})
    deferred = await db_session.scalars(sa.select(DeferredProviderEvent)
                                        .where(DeferredProviderEvent.order_id.in_(order_ids)))
    for event in deferred:
        entries.append({
            "at": _iso(event.received_at), "kind": "provider_event.deferred", "request_id": None,
            "detail": {"order_id": str(event.order_id), "provider_event_id": event.event_id, "type": event.type}})
    return entries


async def trail(runtime: Runtime, *, order_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None,
                limit: int) -> EvidenceTrail:
    """The trail of one order (its learner and course across services) or of one user (everything)."""
    async with runtime.db.session() as session:
        if order_id is not None:
            order = await session.get(Order, order_id)
            if order is None:
                raise NotFound("order not found")
            orders, user_id, course_id = [order], order.user_id, order.course_id
        elif user_id is not None:
            orders = list(await session.scalars(sa.select(Order).where(Order.user_id == user_id)
                                                .order_by(Order.created_at.desc()).limit(limit)))
            course_id = None
        else:
            raise ValueError("an order or a user")
        own = await _own_entries(session, orders)
    params: dict[str, Any] = {"limit": limit}
    if course_id is not None:
        params["course_id"] = str(course_id)
    path = f"/internal/users/{user_id}/evidence"
    peers: dict[str, type[contracts.CatalogEvidence | contracts.PlaybackEvidence | contracts.AccountEvidence]] = {
        "catalog": contracts.CatalogEvidence, "playback": contracts.PlaybackEvidence}
    if order_id is None:
        peers["auth"] = contracts.AccountEvidence
    names = list(peers)
    answers = await asyncio.gather(*(
        optional_model(runtime.client(name), path, peers[name], params=params if name != "auth" else {"limit": limit})
        for name in names))

    entries = [EvidenceEntry.model_validate({**entry, "service": "billing"}) for entry in own]
    parts = [EvidencePart(service="billing", status="ok", entries=len(own))]
    for name, answer in zip(names, answers, strict=True):
        if answer is None:
            parts.append(EvidencePart(service=name, status="missing", entries=0))
            continue
        entries += [EvidenceEntry(service=name, **entry.model_dump()) for entry in answer.entries]
        parts.append(EvidencePart(service=name, status="truncated" if answer.truncated else "ok",
                                  entries=len(answer.entries)))
    entries.sort(key=lambda entry: (entry.at, entry.service, entry.kind))
    return EvidenceTrail(order_id=order_id, user_id=user_id, course_id=course_id,
                         partial=any(part.status != "ok" for part in parts), parts=parts, entries=entries)
