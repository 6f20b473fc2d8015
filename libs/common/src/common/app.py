"""The FastAPI shell every service shares: errors, observability, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from common import health
from common.errors import install_error_handlers
from common.events.bus import EventBus, InProcessBus
from common.events.consumer import HandlerMap
from common.observability.middleware import ObservabilityMiddleware
from common.openapi import install_openapi, route_operation_id
from common.runtime import HandlerFactory, Runtime, open_runtime
from common.settings import ServiceSettings
from common.textguard import TextGuardMiddleware


def build_app(settings: ServiceSettings, *, title: str, description: str,
              lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
              routers: Sequence[APIRouter], examples: Mapping[str, Any] | None = None) -> FastAPI:
    """The service's app; `examples` (schema name -> example) go into its public OpenAPI document."""
    # FastAPI's native telemetry would add a second server span (and one per dependency, endpoint and
    # serialisation) to the one ObservabilityMiddleware makes: off (most of a cached read's cost).
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


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ResourcesT = TypeVar("ResourcesT")
OpenResources = Callable[[Runtime], AbstractAsyncContextManager[object]]


def resources_dependency(kind: type[ResourcesT]) -> Callable[[Request], Awaitable[ResourcesT]]:
    """A dependency answering the service's typed resources: `Annotated[XResources, Depends(...)]`."""

    async def resources(request: Request) -> ResourcesT:
        runtime: Runtime = request.app.state.runtime
        return runtime.resources_as(kind)

    return resources


def service_lifespan(settings: ServiceSettings, *, migrations_dir: Path, handlers: HandlerMap | HandlerFactory,
                     bus: EventBus | None = None, http_transport: httpx.AsyncBaseTransport | None = None,
                     open_resources: OpenResources | None = None,
                     ) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Every service's lifespan: the shared runtime, then the service's own resources opened on it
    (their context manager also runs what must happen before the first request, e.g. bootstrap
    writes), then `app.state.runtime` for the dependencies. Closed in reverse order."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings, migrations_dir=migrations_dir, handlers=handlers,
                                bus=bus, http_transport=http_transport) as runtime, \
                AsyncExitStack() as stack:
            if open_resources is not None:
                runtime.resources = await stack.enter_async_context(open_resources(runtime))
            app.state.runtime = runtime
            yield

    return lifespan


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
