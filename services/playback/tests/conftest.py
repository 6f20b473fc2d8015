"""In-process platforms for playback's tests, on real PostgreSQL.

`platform`: auth + the real catalog (demo data seeded) + playback, sharing one in-process bus, so an
order paid or refunded travels billing -> catalog -> playback as in production.
`stub_platform`: catalog replaced by a stand-in for its internal routes (docs/contracts.md), so
tests can make it lag behind the event stream, serve a draft course, or be unavailable.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import Mount

from auth.main import create_app as create_auth_app
from auth.settings import AuthSettings
from catalog.main import create_app as create_catalog_app
from catalog.settings import CatalogSettings
from common.app import compose_services
from common.db import Database
from common.events.bus import InProcessBus
from common.events.envelope import Envelope
from common.http import LazyASGITransport
from common.testing import (
    REDIS_URL,
    ServicePlatform,
    in_process_settings,
    postgres_database,
    serve_in_process,
    unique_name,
)
from playback import events, signing
from playback.main import create_app
from playback.media import create_media_app
from playback.settings import PlaybackSettings

COURSE_ID = uuid.UUID("10000000-0000-4000-8000-000000000001")
DRAFT_COURSE_ID = uuid.UUID("10000000-0000-4000-8000-0000000000d0")
ASSET_ID = uuid.UUID("20000000-0000-4000-8000-000000000001")
PREVIEW_LESSON = uuid.UUID("30000000-0000-4000-8000-000000000001")
TEXT_LESSON = uuid.UUID("30000000-0000-4000-8000-000000000002")
PAID_LESSON = uuid.UUID("30000000-0000-4000-8000-000000000003")
DRAFT_LESSON = uuid.UUID("30000000-0000-4000-8000-0000000000d1")
STUDENT_EMAIL, STUDENT_PASSWORD = "student@triple.academy", "Student-Demo-2026!"
PLAYBACK_CLIENT_SECRET = "playback-test-secret-12345"


# How many playback database sessions/transactions the current request holds open (see watch_db).
PLAYBACK_DB_OPEN: ContextVar[int] = ContextVar("playback_db_open", default=0)


def watch_db(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Count the playback sessions and transactions open in the current request, so the catalog
    stand-in can see whether it is called with one open (embedded SQLite: a lock cycle)."""
    for name in ("transaction", "session"):
        opener = getattr(db, name)

        @asynccontextmanager
        async def counted(*args: Any, _opener: Any = opener, **kwargs: Any) -> AsyncIterator[Any]:
            token = PLAYBACK_DB_OPEN.set(PLAYBACK_DB_OPEN.get() + 1)
            try:
                async with _opener(*args, **kwargs) as session:
                    yield session
            finally:
                PLAYBACK_DB_OPEN.reset(token)

        monkeypatch.setattr(db, name, counted)


@dataclass
class FakeCatalog:
    """Catalog's internal lessons / enrollment-check routes, with switches for failure modes."""

    lessons: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    enrolled: set[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=set)
    # course id -> GET /internal/courses/{id}/lessons entries (None duration: catalog does not know it)
    course_lessons: dict[uuid.UUID, list[dict[str, Any]]] = field(default_factory=dict)
    down: bool = False
    calls: list[str] = field(default_factory=list)
    # (path, playback database sessions open in the calling request) for every call; see watch_db.
    db_open_at_call: list[tuple[str, int]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def gate(request: Request, call_next: Any) -> Any:
            self.calls.append(request.url.path)
            self.db_open_at_call.append((request.url.path, PLAYBACK_DB_OPEN.get()))
            if self.down:
                return JSONResponse({"detail": "down"}, status_code=503)
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            claims = jwt.decode(token, options={"verify_signature": False}) if token.count(".") == 2 else {}
            if claims.get("aud") != "catalog" or claims.get("sub") != "service:playback":
                return JSONResponse({"detail": "service token required"}, status_code=401)
            return await call_next(request)

        @app.get("/internal/lessons/{lesson_id}")
        async def lesson(lesson_id: uuid.UUID) -> Any:
            found = self.lessons.get(lesson_id)
            return found if found else JSONResponse({"detail": "not found"}, status_code=404)

        @app.get("/internal/enrollments/check")
        async def check(user_id: uuid.UUID, course_id: uuid.UUID) -> dict[str, bool]:
            return {"enrolled": (user_id, course_id) in self.enrolled}

        @app.get("/internal/courses/{course_id}/lessons")
        async def course_lessons(course_id: uuid.UUID) -> Any:
            found = self.course_lessons.get(course_id)
            if found is None:
                return JSONResponse({"detail": "not found"}, status_code=404)
            return {"course_id": str(course_id), "lessons": found}

        @app.get("/internal/courses/{course_id}")
        async def course(course_id: uuid.UUID) -> Any:
            return {"course_id": str(course_id), "title": "Protected Video Streaming 101",
                    "status": "published", "price_amount": 4900, "currency": "EUR", "is_free": False}

        return app


def _lesson(lesson_id: uuid.UUID, *, course_id: uuid.UUID = COURSE_ID, asset_id: uuid.UUID | None = ASSET_ID,
            is_preview: bool = False, status: str = "published", kind: str = "video") -> dict[str, Any]:
    return {"lesson_id": str(lesson_id), "course_id": str(course_id),
            "asset_id": str(asset_id) if asset_id else None, "is_preview": is_preview,
            "course_status": status, "kind": kind}


@dataclass
class Platform(ServicePlatform):
    settings: PlaybackSettings
    key: signing.TokenKey
    bus: InProcessBus
    fake_catalog: FakeCatalog | None = None

    @property
    def playback_app(self) -> FastAPI:
        return self.app

    async def deliver(self, kind: str, user_id: uuid.UUID, version: int,
                      course_id: uuid.UUID = COURSE_ID) -> Envelope:
        """Hand an enrollment event to playback's inbox consumer (as the broker would)."""
        payload = {"enrollment_id": str(uuid.uuid4()), "user_id": str(user_id), "course_id": str(course_id),
                   "version": version, "occurred_at": "2026-01-01T00:00:00Z"}
        payload.update({"source": "order", "order_id": str(uuid.uuid4())} if kind == "granted"
                       else {"reason": "refund"})
        return await self.consume(Envelope.new(f"catalog.enrollment.{kind}", payload), events.HANDLERS)

    async def deliver_user_event(self, kind: str, user_id: uuid.UUID, **payload: Any) -> None:
        """Hand an auth.user.<kind> event to playback's inbox consumer."""
        await self.consume(Envelope.new(f"auth.user.{kind}", {"user_id": str(user_id), **payload}), events.HANDLERS)

    async def new_user(self) -> tuple[uuid.UUID, dict[str, str]]:
        user_id, email, password = await self.register()
        return uuid.UUID(user_id), await self.login(email, password)

    async def login(self, email: str, password: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.access_token(email, password)}"}


@asynccontextmanager
async def _serve(catalog: FakeCatalog | None = None, **overrides: Any) -> AsyncIterator[Platform]:
    """auth + catalog (real, or the stand-in) + playback + the /media app, as the gateway composes them."""
    pem = signing.generate_pem().decode()
    with postgres_database(["auth", "catalog", "playback"]) as urls:
        transport = LazyASGITransport()
        bus = InProcessBus()
        auth_app = create_auth_app(AuthSettings(
            **in_process_settings(urls["auth"]), seed_demo_data=True,
            service_clients=f"playback:{PLAYBACK_CLIENT_SECRET},billing:billing-test-secret-123456"),
            bus=bus, http_transport=transport)
        catalog_app = catalog.app() if catalog else create_catalog_app(CatalogSettings(
            **in_process_settings(urls["catalog"]), seed_demo_data=True), bus=bus, http_transport=transport)
        settings = PlaybackSettings(
            **in_process_settings(urls["playback"]), service_client_secret=PLAYBACK_CLIENT_SECRET,
            token_private_key=pem, **overrides)
        playback_app = create_app(settings, bus=bus, http_transport=transport)
        app = compose_services({"auth": auth_app, "catalog": catalog_app, "playback": playback_app},
                               bus=bus, extra_routes=[Mount("/media", app=create_media_app(settings))])
        async with serve_in_process(app, transport) as client:
            yield Platform(client=client, app=playback_app, settings=settings,
                           key=signing.token_key_from_pem(pem.encode()), bus=bus, fake_catalog=catalog)


@pytest.fixture(scope="module")
async def platform() -> AsyncIterator[Platform]:
    async with _serve() as served:
        yield served


def stub_catalog() -> FakeCatalog:
    """The demo course as catalog describes it: a preview video, a text lesson, a paid video."""
    return FakeCatalog(lessons={
        PREVIEW_LESSON: _lesson(PREVIEW_LESSON, is_preview=True),
        TEXT_LESSON: _lesson(TEXT_LESSON, asset_id=None, kind="text"),
        PAID_LESSON: _lesson(PAID_LESSON),
        DRAFT_LESSON: _lesson(DRAFT_LESSON, course_id=DRAFT_COURSE_ID, status="draft"),
    }, course_lessons={COURSE_ID: [
        {"lesson_id": str(PREVIEW_LESSON), "kind": "video", "asset_id": str(ASSET_ID), "is_preview": True,
         "duration_seconds": None},
        {"lesson_id": str(TEXT_LESSON), "kind": "text", "asset_id": None, "is_preview": False,
         "duration_seconds": None},
        {"lesson_id": str(PAID_LESSON), "kind": "video", "asset_id": str(ASSET_ID), "is_preview": False,
         "duration_seconds": 6},
    ]})


@pytest.fixture(scope="module")
async def stub_platform() -> AsyncIterator[Platform]:
    async with _serve(stub_catalog()) as served:
        yield served


@asynccontextmanager
async def serve_with_redis(catalog: FakeCatalog | None = None, **overrides: Any) -> AsyncIterator[Platform]:
    """A platform whose playback keeps its cache and stream registry in the real Redis (own prefix)."""
    async with _serve(catalog, redis_url=REDIS_URL, redis_key_prefix=f"{unique_name('pbtest')}:",
                      **overrides) as served:
        yield served
