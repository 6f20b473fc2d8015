"""Certificate routes: the learner's own list, and public verification by code (name, course and
date, nothing else) with the PDF."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel

from catalog import certificates
from catalog.api.deps import ActorDep, RuntimeDep
from catalog.models import Certificate

router = APIRouter(tags=["certificates"])

CodePath = Annotated[str, Path(pattern=certificates.CODE_PATTERN, max_length=22)]


class MyCertificate(BaseModel):
    code: str
    course_id: uuid.UUID
    course_title: str
    instructor_name: str | None
    issued_at: dt.datetime


class MyCertificates(BaseModel):
    items: list[MyCertificate]


class CertificateVerification(BaseModel):
    """What anyone holding the code may learn: no ids, no email, no progress."""

    valid: bool = True
    learner_name: str | None
    learner_erased: bool
    course_title: str
    issued_on: dt.date


@router.get("/me/certificates", response_model=MyCertificates)
async def my_certificates(actor: ActorDep, runtime: RuntimeDep) -> MyCertificates:
    async with runtime.db.session() as session:
        rows = await certificates.my_certificates(db_session=session, user_id=actor.user_id)
    return MyCertificates(items=[MyCertificate(
        code=row.code, course_id=row.course_id, course_title=row.course_title,
        instructor_name=row.instructor_name, issued_at=row.issued_at) for row in rows])


async def _certificate(runtime: RuntimeDep, code: str) -> Certificate:
    async with runtime.db.session() as session:
        return await certificates.by_code(db_session=session, code=code)


@router.get("/certificates/{code}", response_model=CertificateVerification)
async def verify_certificate(code: CodePath, runtime: RuntimeDep) -> CertificateVerification:
    """Public: confirms the certificate exists and says whose, for which course and when."""
    row = await _certificate(runtime, code)
    return CertificateVerification(learner_name=row.learner_name, learner_erased=row.learner_erased_at is not None,
                                   course_title=row.course_title, issued_on=row.issued_at.date())


@router.get("/certificates/{code}/pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
async def certificate_pdf(code: CodePath, runtime: RuntimeDep) -> Response:
    """Public like the verification: the code is the secret that the learner chooses to share."""
    row = await _certificate(runtime, code)
    pdf = await asyncio.to_thread(certificates.render_pdf, row)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="certificate-{row.code}.pdf"'})
