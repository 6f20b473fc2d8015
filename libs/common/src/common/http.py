"""Calls between services: a timeout on every call, bounded retries, and a service token.

Service tokens come from auth's client-credentials endpoint, one per target audience, cached
until shortly before they expire.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from opentelemetry import propagate
from pydantic import BaseModel, ValidationError

from common.errors import UpstreamUnavailable
from common.observability import context

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

RETRYABLE_STATUS = {502, 503, 504}
RETRY_BASE_SECONDS = 0.1
RETRY_CAP_SECONDS = 2.0


def jittered_backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): "full jitter", a random point below
    an exponential ceiling, so the replicas of a service that all saw a peer fail at once do not all
    retry at the same instants and knock it over again."""
    ceiling = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    return random.uniform(0, ceiling)


class ServiceTokenProvider:
    def __init__(self, http: httpx.AsyncClient, token_url: str, client_id: str,
                 client_secret: str) -> None:
        self.http = http
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = asyncio.Lock()

    async def token(self, audience: str) -> str:
        cached = self._tokens.get(audience)
        if cached and cached[1] - 30 > time.monotonic():
            return cached[0]
        async with self._lock:
            cached = self._tokens.get(audience)
            if cached and cached[1] - 30 > time.monotonic():
                return cached[0]
            response = await self.http.post(self.token_url, data={
                "grant_type": "client_credentials", "client_id": self.client_id,
                "client_secret": self.client_secret, "audience": audience}, timeout=5)
            if response.status_code != 200:
                raise UpstreamUnavailable(f"could not obtain a service token for {audience}")
            body = response.json()
            self._tokens[audience] = (body["access_token"],
                                      time.monotonic() + float(body.get("expires_in", 300)))
            return str(body["access_token"])

    def forget(self, audience: str) -> None:
        self._tokens.pop(audience, None)


class ServiceClient:
    """HTTP client for one other service (`audience`), authenticated with a service token."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, audience: str,
                 tokens: ServiceTokenProvider | None, *, timeout: float = 3.0,
                 retries: int = 2, backoff: Callable[[int], float] = jittered_backoff) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.audience = audience
        self.tokens = tokens
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    async def request(self, method: str, path: str, *, json: Any = None,
                      params: dict[str, Any] | None = None,
                      headers: dict[str, str] | None = None) -> httpx.Response:
        """Retries connection errors and 502/503/504 for idempotent methods (or keyed POSTs)."""
        idempotent = method in ("GET", "HEAD", "PUT", "DELETE") or bool(
            headers and "Idempotency-Key" in headers)
        attempts = 1 + (self.retries if idempotent else 0)
        last_error: Exception | None = None
        for attempt in range(1, attempts + 1):
            send_headers = dict(headers or {})
            if self.tokens is not None:
                send_headers["Authorization"] = f"Bearer {await self.tokens.token(self.audience)}"
            rid = context.request_id.get()
            if rid:
                send_headers["X-Request-ID"] = rid
            propagate.inject(send_headers)
            try:
                response = await self.http.request(method, f"{self.base_url}{path}", json=json,
                                                   params=params, headers=send_headers,
                                                   timeout=self.timeout)
            except httpx.TransportError as exc:
                last_error = exc
            else:
                if response.status_code == 401 and self.tokens is not None and attempt == 1:
                    self.tokens.forget(self.audience)  # keys rotated: fetch a fresh token once
                    last_error = httpx.HTTPStatusError("401", request=response.request,
                                                       response=response)
                    continue
                if response.status_code not in RETRYABLE_STATUS:
                    return response
                last_error = httpx.HTTPStatusError(str(response.status_code),
                                                   request=response.request, response=response)
            if attempt < attempts:
                await asyncio.sleep(self.backoff(attempt))
        log.warning("service call failed", extra={"target": self.audience, "path": path,
                                                  "error": repr(last_error)})
        raise UpstreamUnavailable(f"{self.audience} is unavailable")

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def get_model(self, path: str, model: type[M], *, params: dict[str, Any] | None = None,
                        missing: Exception | None = None) -> M:
        """GET an internal resource validated into `model` (the contract of its answer).

        404 raises `missing` when given. Any other non-200, or an answer outside the model, is the
        peer's failure: UpstreamUnavailable (503, code `<audience>_unavailable`), never a 500.
        """
        response = await self.get(path, params=params)
        if response.status_code == 404 and missing is not None:
            raise missing
        if response.status_code == 200:
            try:
                return model.model_validate_json(response.content)
            except ValidationError:
                log.error("peer answer outside the contract", extra={
                    "target": self.audience, "path": path, "model": model.__name__})
        else:
            log.warning("peer refused an internal call", extra={
                "target": self.audience, "path": path, "status": response.status_code})
        raise UpstreamUnavailable(f"{self.audience} is unavailable", code=f"{self.audience}_unavailable")


class LazyASGITransport(httpx.AsyncBaseTransport):
    """Embedded mode: service-to-service calls go through the in-process gateway app, no socket.

    The gateway app is set after all services exist, hence lazy.
    """

    def __init__(self) -> None:
        self._transport: httpx.ASGITransport | None = None

    def bind(self, app: Any) -> None:
        self._transport = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._transport is None:
            raise httpx.ConnectError("in-process transport not bound yet", request=request)
        return await self._transport.handle_async_request(request)



async def optional_model(client: ServiceClient, path: str, model: type[M], *,
                         params: dict[str, Any] | None = None) -> M | None:
    """`client.get_model`, or None (logged) when the peer is down, refuses, answers outside the
    model, or cannot even be asked (no service token): for the parts of an answer that must not
    fail because one peer did."""
    try:
        return await client.get_model(path, model, params=params)
    except (UpstreamUnavailable, httpx.HTTPError) as exc:
        log.warning("optional peer answer missing", extra={"target": client.audience, "error": repr(exc)})
        return None
