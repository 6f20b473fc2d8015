"""The FastAPI shell every service shares: errors, observability, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from common import health
from common.errors import install_error_handlers
from common.events.bus import InProcessBus
from common.observability.middleware import ObservabilityMiddleware
from common.openapi import install_openapi, route_operation_id
from common.runtime import Runtime
from common.settings import ServiceSettings
from common.textguard import TextGuardMiddleware


def build_app(settings: ServiceSettings, *, title: str, description: str,
              lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
              routers: Sequence[APIRouter], examples: Mapping[str, Any] | None = None) -> FastAPI:
    """The service's app; `examples` (schema name -> example) go into its public OpenAPI document."""
    # FastAPI's native telemetry would add a second server span (and one per dependency, endpoint and
    # serialisation) to the one ObservabilityMiddleware makes: off (issue 20, most of a cached read's cost).
    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan,
                  telemetry={"tracing": False, "operation_spans": False},
                  generate_unique_id_function=route_operation_id)
    app.state.settings = settings
    install_error_handlers(app)
    install_openapi(app, examples or {})
    app.add_middleware(TextGuardMiddleware)  # inside observability: its 422s are logged and counted
    app.add_middleware(ObservabilityMiddleware, service=settings.service_name)
    app.include_router(health.router)
    for router in routers:
        app.include_router(router)
    return app


async def get_runtime(request: Request) -> Runtime:
    """Async on purpose: FastAPI runs plain `def` dependencies in a thread pool (a hop per request)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_settings(request: Request) -> ServiceSettings:
    """The app's settings; each service annotates it with its own class (`Annotated[XSettings, ...]`)."""
    settings: ServiceSettings = request.app.state.settings
    return settings


def compose_services(services: Mapping[str, FastAPI], *, bus: InProcessBus | None = None,
                     extra_routes: Sequence[BaseRoute] = (),
                     middleware: Sequence[Middleware] = ()) -> Starlette:
    """Mount services under /api/<name> in one ASGI app and run their lifespans in order.

    This is the embedded gateway (and the in-process test platform): Starlette does not run a
    mounted app's lifespan, so the composite runs them, then lets the shared in-process bus
    deliver once every service has subscribed.
    """

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if bus is not None:
                await bus.start()
                stack.push_async_callback(bus.close)
            for service_app in services.values():
                await stack.enter_async_context(service_app.router.lifespan_context(service_app))
            if bus is not None:
                bus.begin_delivery()
            yield

    routes: list[BaseRoute] = [Mount(f"/api/{name}", app=app) for name, app in services.items()]
    routes.extend(extra_routes)
    return Starlette(routes=routes, lifespan=lifespan, middleware=list(middleware))
