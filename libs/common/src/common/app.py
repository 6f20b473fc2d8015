"""The FastAPI shell every service shares: errors, observability, health and metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI, Request

from common import health
from common.errors import install_error_handlers
from common.observability.middleware import ObservabilityMiddleware
from common.runtime import Runtime
from common.settings import ServiceSettings


def build_app(settings: ServiceSettings, *, title: str, description: str,
              lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
              routers: Sequence[APIRouter]) -> FastAPI:
    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(ObservabilityMiddleware, service=settings.service_name)
    app.include_router(health.router)
    for router in routers:
        app.include_router(router)
    return app


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
