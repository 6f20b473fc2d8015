"""Instructor revenue: per course, month and currency, from billing's own orders, refunds and credit notes.

A sale counts in the month it was paid (units, gross, discount, tax charged); a refund in the month
its money went back (refunded amount, and the tax its credit note gave back). Duplicate payments
refunded at once count nowhere. `net = gross - refunded - tax`, the money kept without tax.
Which courses an instructor may see is catalog's knowledge (`/internal/instructors/{id}/courses`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from billing.models import EFFECTIVE_REFUNDS, SETTLED, Invoice, InvoiceKind, Order, Refund
from common.errors import NotFound
from common.http import ServiceClient
from contracts.peers import InstructorCourses


async def taught_courses(*, catalog: ServiceClient, user_id: uuid.UUID) -> dict[uuid.UUID, str]:
    answer = await catalog.get_model(f"/internal/instructors/{user_id}/courses", InstructorCourses)
    return {course.course_id: course.title for course in answer.courses}


@dataclass
class RevenueLine:
    course_id: uuid.UUID
    course_title: str
    month: str  # YYYY-MM (UTC)
    currency: str
    units_sold: int = 0
    gross_amount: int = 0
    discount_amount: int = 0
    refunded_amount: int = 0
    tax_amount: int = 0
    net_amount: int = 0


def month_start(month: str) -> dt.datetime:
    year, number = (int(part) for part in month.split("-"))
    return dt.datetime(year, number, 1, tzinfo=dt.UTC)


def _next_month(month: str) -> dt.datetime:
    start = month_start(month)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def _within(column: Any, month_from: str | None,
            month_to: str | None) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = [column.is_not(None)]
    if month_from:
        conditions.append(column >= month_start(month_from))
    if month_to:
        conditions.append(column < _next_month(month_to))
    return conditions


async def revenue(*, db_session: AsyncSession, course_ids: Iterable[uuid.UUID] | None, month_from: str | None,
                  month_to: str | None, titles: dict[uuid.UUID, str] | None = None) -> list[RevenueLine]:
    """The lines of the report, ordered by course title, month and currency; `course_ids` None is all."""
    scope: list[sa.ColumnElement[bool]] = [Order.duplicate_of.is_(None)]
    if course_ids is not None:
        scope.append(Order.course_id.in_(list(course_ids)))
    lines: dict[tuple[uuid.UUID, str, str], RevenueLine] = {}

    def line(course_id: uuid.UUID, title: str, at: dt.datetime | None, currency: str) -> RevenueLine:
        assert at is not None  # the queries select non-null times only
        key = (course_id, f"{at:%Y-%m}", currency)
        if key not in lines:
            lines[key] = RevenueLine(course_id, (titles or {}).get(course_id, title), key[1], currency)
        return lines[key]

    sales = await db_session.execute(
        sa.select(Order.course_id, Order.course_title, Order.paid_at, Order.currency, Order.amount,
                  Order.discount_amount, Order.tax_amount)
        .where(*scope, Order.status.in_(SETTLED), *_within(Order.paid_at, month_from, month_to)))
    for course_id, title, paid_at, currency, amount, discount, tax in sales.all():
        target = line(course_id, title, paid_at, currency)
        target.units_sold += 1
        target.gross_amount += amount
        target.discount_amount += discount
        target.tax_amount += tax
    refunds = await db_session.execute(
        sa.select(Order.course_id, Order.course_title, Refund.updated_at, Refund.currency, Refund.amount)
        .join(Order, Order.id == Refund.order_id)
        .where(*scope, Refund.status.in_(EFFECTIVE_REFUNDS), *_within(Refund.updated_at, month_from, month_to)))
    for course_id, title, refunded_at, currency, amount in refunds.all():
        line(course_id, title, refunded_at, currency).refunded_amount += amount
    credits = await db_session.execute(
        sa.select(Order.course_id, Order.course_title, Invoice.issued_at, Invoice.currency, Invoice.tax_amount)
        .join(Order, Order.id == Invoice.order_id)
        .where(*scope, Invoice.kind == InvoiceKind.CREDIT_NOTE, *_within(Invoice.issued_at, month_from, month_to)))
    for course_id, title, issued_at, currency, tax in credits.all():
        line(course_id, title, issued_at, currency).tax_amount -= tax
    for value in lines.values():
        value.net_amount = value.gross_amount - value.refunded_amount - value.tax_amount
    return sorted(lines.values(), key=lambda v: (v.course_title, str(v.course_id), v.month, v.currency))


def totals(lines: list[RevenueLine]) -> dict[str, dict[str, int]]:
    """Per currency sums of the lines (never across currencies)."""
    result: dict[str, dict[str, int]] = {}
    for value in lines:
        bucket = result.setdefault(value.currency, dict.fromkeys(_AMOUNTS, 0))
        for name in _AMOUNTS:
            bucket[name] += getattr(value, name)
    return result


_AMOUNTS = ("units_sold", "gross_amount", "discount_amount", "refunded_amount", "tax_amount", "net_amount")


def to_csv(lines: list[RevenueLine]) -> str:
    """One row per line; amounts in minor units like the JSON (a spreadsheet formats them)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    names = [f.name for f in fields(RevenueLine)]
    writer.writerow(names)
    for value in lines:
        writer.writerow([_cell(getattr(value, name)) for name in names])
    return buffer.getvalue()


def _cell(value: object) -> str:
    """A title starting with = + - @ would be a formula in a spreadsheet: quote it as text (amounts,
    negative in a month with more refunds than sales, stay numbers)."""
    if not isinstance(value, str):
        return str(value)
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def check_course(course_id: uuid.UUID | None, allowed: dict[uuid.UUID, str] | None) -> None:
    """An instructor asking for a course they do not teach gets the 404 a missing course gets."""
    if course_id is not None and allowed is not None and course_id not in allowed:
        raise NotFound("course not found", code="course_not_found")
