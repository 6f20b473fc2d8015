"""create_app(settings) -> the auth service."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from auth import events
from auth.api import admin, internal, routes
from auth.api.examples import EXAMPLES
from auth.resources import configure_passwords as configure_passwords
from auth.resources import open_resources
from auth.settings import AuthSettings
from common.app import build_app, service_lifespan
from common.events import EventBus

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def create_app(settings: AuthSettings | None = None, *, bus: EventBus | None = None,
               http_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or AuthSettings()

    lifespan = service_lifespan(settings, migrations_dir=MIGRATIONS_DIR, handlers=events.HANDLERS, bus=bus,
                                http_transport=http_transport, open_resources=open_resources(settings))

    return build_app(settings, title="Triple Academy auth",
                     description="Accounts, sessions, signing keys and service clients.",
                     lifespan=lifespan, routers=[routes.router, admin.router, internal.router], examples=EXAMPLES)
