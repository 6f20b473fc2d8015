"""Invoice and credit note downloads: the buyer's own orders, or any order for an admin."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response

from billing import invoices, receipts, service
from billing.api.deps import RuntimeDep, SettingsDep, user_id_of
from billing.schemas import InvoiceRead
from common.runtime import Runtime
from common.security import CurrentUser

router = APIRouter(tags=["invoices"])

InvoiceNumber = Annotated[str, Path(max_length=30, pattern=r"^(INV|CN)-[0-9]{4}-[0-9]{6,}$")]
PDF: dict[int | str, dict[str, Any]] = {200: {"content": {"application/pdf": {}}, "description": "the document as PDF"}}


@router.get("/orders/{order_id}/invoices", response_model=list[InvoiceRead])
async def list_documents(order_id: uuid.UUID, user: CurrentUser, runtime: RuntimeDep) -> list[InvoiceRead]:
    """The order's invoice and credit notes (none until it is paid)."""
    async with runtime.db.session() as session:
        await service.get_order(db_session=session, order_id=order_id, user_id=user_id_of(user),
                                is_admin=user.has_any_role("admin"))
        return [InvoiceRead.of(d) for d in await invoices.documents_of(session, order_id)]


@router.get("/orders/{order_id}/invoice", response_class=Response, responses=PDF)
async def invoice_pdf(order_id: uuid.UUID, user: CurrentUser, runtime: RuntimeDep, settings: SettingsDep) -> Response:
    """The order's invoice as PDF; 404 `invoice_not_found` before it is paid."""
    return await _pdf(runtime, settings, order_id, None, user)


@router.get("/orders/{order_id}/invoices/{invoice_number}", response_class=Response, responses=PDF)
async def document_pdf(order_id: uuid.UUID, invoice_number: InvoiceNumber, user: CurrentUser,
                       runtime: RuntimeDep, settings: SettingsDep) -> Response:
    """One of the order's documents (its invoice or a credit note) as PDF."""
    return await _pdf(runtime, settings, order_id, invoice_number, user)


async def _pdf(runtime: Runtime, settings: SettingsDep, order_id: uuid.UUID, number: str | None,
               user: CurrentUser) -> Response:
    async with runtime.db.session() as session:
        order = await service.get_order(db_session=session, order_id=order_id, user_id=user_id_of(user),
                                        is_admin=user.has_any_role("admin"))
        document = await invoices.document(session, order_id, number)
    buyer = await buyer_of(runtime, order.user_id)
    pdf = await asyncio.to_thread(invoices.render_pdf, document, buyer, settings)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{invoices.pdf_filename(document)}"',
        "Cache-Control": "private, no-store"})


async def buyer_of(runtime: Runtime, user_id: uuid.UUID) -> invoices.Buyer:
    """The buyer's name as auth knows it now (an erased account has none)."""
    user = await receipts.account(runtime.client("auth"), user_id)
    if user is None:
        return invoices.Buyer("[erased]")
    return invoices.Buyer(user.full_name, user.email)
