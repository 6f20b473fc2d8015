"""Certificates of completion.

Playback only says which video lesson a learner finished (`playback.lesson.completed.v1`); catalog,
which owns the curriculum and the enrollments, decides when the course is complete and issues the
certificate, once per (learner, course), only while the enrollment is active. Names come from
`auth.user.registered.v1` and are frozen on the certificate; erasure blanks the learner.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from fpdf import FPDF
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import Certificate, Course, Enrollment, ErasedUser, Lesson, LessonCompletion, UserName
from common.db import upsert_insert, utcnow
from common.errors import NotFound
from common.observability.metrics import count
from common.pdftext import PdfText

# secrets.token_urlsafe(16): 128 random bits, 22 URL-safe characters.
CODE_PATTERN = r"^[A-Za-z0-9_-]{22}$"


def new_code() -> str:
    return secrets.token_urlsafe(16)


async def record_user_name(*, db_session: AsyncSession, user_id: uuid.UUID, full_name: str | None) -> None:
    """Remember a registered user's name (unless they were erased meanwhile)."""
    if await db_session.get(ErasedUser, user_id) is not None:
        return
    await db_session.execute(upsert_insert(db_session, UserName).values(user_id=user_id, full_name=full_name)
                             .on_conflict_do_update(index_elements=["user_id"], set_={"full_name": full_name}))


async def backfill_names(*, db_session: AsyncSession, names: dict[uuid.UUID, str | None]) -> int:
    """Names of accounts that registered before catalog listened: stored where none is known yet,
    and given to their certificates issued without one (never to an erased learner's). Returns how
    many names were new."""
    erased = set(await db_session.scalars(sa.select(ErasedUser.user_id).where(ErasedUser.user_id.in_(names))))
    known = set(await db_session.scalars(sa.select(UserName.user_id).where(UserName.user_id.in_(names))))
    fresh = {user_id: name for user_id, name in names.items() if user_id not in erased | known and name}
    for user_id, name in fresh.items():
        await db_session.execute(upsert_insert(db_session, UserName).values(user_id=user_id, full_name=name)
                                 .on_conflict_do_nothing(index_elements=["user_id"]))
        await db_session.execute(sa.update(Certificate).where(
            Certificate.user_id == user_id, Certificate.learner_name.is_(None),
            Certificate.learner_erased_at.is_(None)).values(learner_name=name))
        await db_session.execute(sa.update(Certificate).where(
            Certificate.instructor_name.is_(None),
            Certificate.course_id.in_(sa.select(Course.id).where(Course.instructor_id == user_id)))
            .values(instructor_name=name))
    return len(fresh)


async def record_lesson_completed(*, db_session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID,
                                  lesson_id: uuid.UUID, completed_at: dt.datetime) -> Certificate | None:
    """Store the completion, then issue the course's certificate if this was the last video lesson;
    returns the certificate issued by this call, if any."""
    if await db_session.get(ErasedUser, user_id) is not None:
        return None
    await db_session.execute(upsert_insert(db_session, LessonCompletion).values(
        user_id=user_id, lesson_id=lesson_id, course_id=course_id, completed_at=completed_at,
    ).on_conflict_do_nothing(index_elements=["user_id", "lesson_id"]))
    return await issue_if_complete(db_session=db_session, user_id=user_id, course_id=course_id)


async def issue_if_complete(*, db_session: AsyncSession, user_id: uuid.UUID,
                            course_id: uuid.UUID) -> Certificate | None:
    """Issue once: every video lesson completed and the enrollment active (a refund or revocation
    before completion issues none); the (user, course) unique key makes a race or redelivery a no-op."""
    enrollment = await db_session.scalar(sa.select(Enrollment).where(
        Enrollment.user_id == user_id, Enrollment.course_id == course_id))
    if enrollment is None or enrollment.status != "active":
        return None
    video_lessons = sa.select(Lesson.id).where(Lesson.course_id == course_id, Lesson.kind == "video")
    missing = await db_session.scalar(sa.select(sa.func.count()).select_from(
        video_lessons.where(~Lesson.id.in_(sa.select(LessonCompletion.lesson_id).where(
            LessonCompletion.user_id == user_id, LessonCompletion.course_id == course_id))).subquery()))
    total = await db_session.scalar(sa.select(sa.func.count()).select_from(video_lessons.subquery()))
    if not total or missing:
        return None
    course = await db_session.get(Course, course_id)
    if course is None:
        return None
    names = dict((await db_session.execute(sa.select(UserName.user_id, UserName.full_name).where(
        UserName.user_id.in_([user_id, course.instructor_id])))).all())
    certificate_id = await db_session.scalar(upsert_insert(db_session, Certificate).values(
        id=uuid.uuid4(), code=new_code(), user_id=user_id, course_id=course_id,
        learner_name=names.get(user_id), course_title=course.title,
        instructor_name=names.get(course.instructor_id), issued_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["user_id", "course_id"]).returning(Certificate.id))
    if certificate_id is None:
        return None
    count("catalog", "certificates_issued")
    return await db_session.get(Certificate, certificate_id)


async def erase_user(*, db_session: AsyncSession, user_id: uuid.UUID, erased_at: dt.datetime) -> None:
    """The certificate stays verifiable as issued to an erased learner; name and id go."""
    await db_session.execute(sa.delete(UserName).where(UserName.user_id == user_id))
    await db_session.execute(sa.delete(LessonCompletion).where(LessonCompletion.user_id == user_id))
    await db_session.execute(sa.update(Certificate).where(Certificate.user_id == user_id).values(
        user_id=None, learner_name=None, learner_erased_at=erased_at))
    await db_session.execute(sa.update(Certificate).where(Certificate.instructor_name.is_not(None)).where(
        Certificate.course_id.in_(sa.select(Course.id).where(Course.instructor_id == user_id)))
        .values(instructor_name=None))


async def my_certificates(*, db_session: AsyncSession, user_id: uuid.UUID) -> Sequence[Certificate]:
    return (await db_session.scalars(sa.select(Certificate).where(Certificate.user_id == user_id)
                                     .order_by(Certificate.issued_at.desc()))).all()


async def by_code(*, db_session: AsyncSession, code: str) -> Certificate:
    certificate = await db_session.scalar(sa.select(Certificate).where(Certificate.code == code))
    if certificate is None:
        raise NotFound("certificate not found", code="certificate_not_found")
    return certificate


ERASED_LEARNER = "(erased learner)"


def render_pdf(certificate: Certificate) -> bytes:
    """A one-page landscape certificate (fpdf2; CPU only, callers run it in a thread)."""
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_title(f"Certificate of completion {certificate.code}")
    pdf.set_creator("Triple Academy")
    pdf.set_creation_date(certificate.issued_at)
    fonts = PdfText(pdf)
    pdf.add_page()

    def centred(text: str, size: int, style: str = "", height: float = 12) -> None:
        pdf.set_font(fonts.family, style, size)
        pdf.multi_cell(0, height, fonts.text(text), align="C", new_x="LMARGIN", new_y="NEXT")

    pdf.ln(20)
    centred("Certificate of completion", 30, "B", 16)
    pdf.ln(10)
    centred("This certifies that", 14)
    centred(certificate.learner_name or ERASED_LEARNER, 24, "B", 14)
    centred("has completed the course", 14)
    centred(certificate.course_title, 20, "B", 12)
    if certificate.instructor_name:
        centred(f"taught by {certificate.instructor_name}", 14)
    pdf.ln(8)
    centred(f"Issued on {certificate.issued_at:%Y-%m-%d}", 12, height=8)
    centred(f"Verification code: {certificate.code}", 10, height=8)
    return bytes(pdf.output())
