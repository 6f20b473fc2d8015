"""`/health/live` checks only the process; `/health/ready` checks this service's own dependencies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

HealthCheck = Callable[[], Awaitable[None]]
# A dependency that does not answer within this is reported, and the probe itself never waits longer.
CHECK_TIMEOUT_SECONDS = 2.0

router = APIRouter(include_in_schema=False)


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    checks: dict[str, HealthCheck] = request.app.state.runtime.health_checks
    results: dict[str, str] = {}

    async def run(name: str, check: HealthCheck) -> None:
        # Not wait_for: it waits for the cancelled check to finish, and a check stuck on a stalled
        # link (a broker RPC, a database cancel request) can take far longer to unwind than 2 s.
        task = asyncio.ensure_future(check())
        done, _ = await asyncio.wait({task}, timeout=CHECK_TIMEOUT_SECONDS)
        if not done:
            task.cancel()
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            results[name] = "failed: timeout"
            return
        exc = task.exception()
        results[name] = "ok" if exc is None else f"failed: {type(exc).__name__}"

    await asyncio.gather(*(run(name, check) for name, check in checks.items()))
    healthy = all(v == "ok" for v in results.values())
    return JSONResponse({"status": "ok" if healthy else "unavailable", "checks": results},
                        status_code=200 if healthy else 503)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
