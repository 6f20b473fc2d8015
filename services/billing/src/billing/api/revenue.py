"""Instructor revenue: instructors see their own courses (as catalog knows them), admins all."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from billing import revenue
from billing.api.deps import RuntimeDep, user_id_of
from billing.schemas import RevenueLineRead, RevenueReport, RevenueTotals
from common.errors import Forbidden
from common.security import Principal, require_roles

router = APIRouter(tags=["revenue"])

InstructorOrAdmin = Annotated[Principal, Depends(require_roles("instructor", "admin"))]
MONTH = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
FromMonth = Annotated[str | None, Query(alias="from", max_length=7, pattern=MONTH,
                                        description="first month, YYYY-MM (UTC)")]
ToMonth = Annotated[str | None, Query(alias="to", max_length=7, pattern=MONTH, description="last month, YYYY-MM (UTC)")]
CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}},
                                              "description": "with format=csv: one row per line"}}


@router.get("/revenue", response_model=RevenueReport, responses=CSV)
async def revenue_report(user: InstructorOrAdmin, runtime: RuntimeDep, from_month: FromMonth = None,
                         to_month: ToMonth = None, course_id: uuid.UUID | None = None,
                         instructor_id: uuid.UUID | None = None,
                         format: Literal["json", "csv"] = "json") -> RevenueReport | Response:
    """Per course, month and currency: units sold, gross, discounts, refunds, tax and net.
    Instructors: their own courses (`instructor_id` is theirs or absent); admins: all, or one instructor's."""
    is_admin = user.has_any_role("admin")
    if instructor_id is not None and not is_admin and instructor_id != user_id_of(user):
        raise Forbidden("instructors see their own revenue", code="not_your_revenue")
    allowed = None
    if not is_admin or instructor_id is not None:
        allowed = await revenue.taught_courses(catalog=runtime.client("catalog"),
                                               user_id=instructor_id or user_id_of(user))
    revenue.check_course(course_id, allowed)
    course_ids = [course_id] if course_id is not None else (list(allowed) if allowed is not None else None)
    async with runtime.db.session() as session:
        lines = await revenue.revenue(db_session=session, course_ids=course_ids, month_from=from_month,
                                      month_to=to_month, titles=allowed)
    if format == "csv":
        return Response(revenue.to_csv(lines), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="revenue.csv"'})
    return RevenueReport(items=[RevenueLineRead(**dataclasses.asdict(line)) for line in lines],
                         totals=[RevenueTotals(currency=currency, **sums)
                                 for currency, sums in sorted(revenue.totals(lines).items())])
