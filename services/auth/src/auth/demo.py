"""Demo accounts for the embedded mode (documented in the README). Idempotent."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import User
from auth.passwords import hash_password
from common.db import utcnow

# Fixed ids so the catalog's demo course can name its instructor.
DEMO_USERS = [
    (uuid.UUID("00000000-0000-4000-8000-000000000001"), "admin@triple.academy", "Admin-Demo-2026!",
     "Ada Admin", ["admin"]),
    (uuid.UUID("00000000-0000-4000-8000-000000000002"), "instructor@triple.academy",
     "Instructor-Demo-2026!", "Ines Instructor", ["instructor"]),
    (uuid.UUID("00000000-0000-4000-8000-000000000003"), "student@triple.academy", "Student-Demo-2026!",
     "Sam Student", ["student"]),
]


async def seed(*, db_session: AsyncSession) -> None:
    for user_id, email, password, name, roles in DEMO_USERS:
        existing = await db_session.get(User, user_id)
        if existing is None:
            if await db_session.scalar(sa.select(User.id).where(User.email == email)) is not None:
                continue  # the demo account was erased and its address taken by a new account
            now = utcnow()
            db_session.add(User(id=user_id, email=email, full_name=name,
                                password_hash=await hash_password(password), roles=roles,
                                is_active=True, created_at=now, updated_at=now, email_verified_at=now,
                                password_changed_at=now))
        elif existing.email_verified_at is None and existing.email == email:
            existing.email_verified_at = utcnow()  # seeded before verification existed
