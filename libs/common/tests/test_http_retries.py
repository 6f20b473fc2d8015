"""Service-to-service retries: bounded, only for what is safe to repeat, and with jitter."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Response

from common.errors import UpstreamUnavailable
from common.http import RETRY_BASE_SECONDS, RETRY_CAP_SECONDS, ServiceClient, jittered_backoff


def test_backoff_is_random_below_an_exponential_ceiling() -> None:
    for attempt in (1, 2, 3, 8):
        ceiling = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1))
        draws = [jittered_backoff(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in draws)
        assert len(set(draws)) > 150, "no jitter: replicas would retry in lockstep"
        assert max(draws) > ceiling / 2, "the ceiling grows with the attempt"


async def test_client_waits_a_jittered_time_between_retries() -> None:
    app, calls = FastAPI(), []

    @app.get("/flaky")
    async def flaky() -> Response:
        calls.append(1)
        return Response(status_code=503)

    waits: list[float] = []

    def recorded(attempt: int) -> float:
        waits.append(jittered_backoff(attempt))
        return waits[-1]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://peer") as http:
        clients = [ServiceClient(http, "http://peer", "peer", None, retries=2, backoff=recorded) for _ in range(5)]
        for client in clients:
            try:
                await client.get("/flaky")
            except UpstreamUnavailable:
                pass
            else:
                raise AssertionError("a peer answering 503 every time must end in UpstreamUnavailable")
        assert len(calls) == 5 * 3 and len(waits) == 5 * 2
        first_waits = waits[0::2]
        assert len(set(first_waits)) == len(first_waits), "five callers waited exactly as long"
