"""Settings, cache, token verification and the shared HTTP shell."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, FastAPI
from jwt.algorithms import OKPAlgorithm
from prometheus_client import REGISTRY
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from common import security
from common.cache import MemoryCache, RedisCache
from common.errors import NotFound, Unauthorized
from common.security import JWKSVerifier, VerifiedTokens
from common.settings import ServiceSettings
from common.testing import REDIS_URL, count_jwt_decodes, unique_name


class DemoSettings(ServiceSettings):
    api_secret: SecretStr = SecretStr("dev-placeholder-secret")


def test_production_refuses_placeholder_secrets() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        DemoSettings(environment="production", database_url="postgresql+psycopg://x@h/db")
    ok = DemoSettings(environment="production", database_url="postgresql+psycopg://x@h/db",
                      api_secret=SecretStr("kJ8s0q-4mZ7rW2pXv9LqT3nB"))
    assert ok.db_schema == "service"
    assert DemoSettings().should_migrate_on_start  # embedded SQLite migrates on start


@pytest.mark.parametrize("cache_kind", ["redis", "memory"])
async def test_cache_counters_expire(cache_kind: str) -> None:
    cache = RedisCache(REDIS_URL, unique_name("c") + ":") if cache_kind == "redis" else MemoryCache()
    try:
        assert await cache.hit("k", 1) == (1, 1)
        count, ttl = await cache.hit("k", 1)
        assert count == 2 and 0 < ttl <= 1
        assert await cache.get("k") == b"2"
        await cache.set("v", b"x", 0.2)
        assert await cache.get("v") == b"x"
        await asyncio.sleep(1.1)
        assert await cache.get("k") is None and await cache.get("v") is None
    finally:
        await cache.close()


class _JWKSServer:
    """auth's JWKS endpoint reduced to what the verifier needs; counts fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, Ed25519PrivateKey] = {}
        self.fetches = 0

    def add_key(self, kid: str) -> Ed25519PrivateKey:
        self.keys[kid] = Ed25519PrivateKey.generate()
        return self.keys[kid]

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        import json

        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"})
        return httpx.Response(200, json={"keys": keys})


def _token(key: Ed25519PrivateKey, kid: str, **overrides: object) -> str:
    now = int(time.time())
    claims = {"iss": "iss", "aud": "api", "sub": "u1", "iat": now, "exp": now + 60, "roles": ["student"]}
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


@pytest.fixture
async def verifier_setup() -> AsyncIterator[tuple[JWKSVerifier, _JWKSServer]]:
    server = _JWKSServer()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server.handler)) as http:
        yield JWKSVerifier("http://auth/.well-known/jwks.json", "iss", http, refetch_cooldown=60), server


async def test_verifier_checks_claims_and_pins_algorithm(verifier_setup: tuple[JWKSVerifier, _JWKSServer]) -> None:
    verifier, server = verifier_setup
    key = server.add_key("k1")
    assert (await verifier.verify(_token(key, "k1"), "api"))["sub"] == "u1"
    for bad in (_token(key, "k1", aud="other"), _token(key, "k1", iss="evil"),
                _token(key, "k1", exp=int(time.time()) - 5)):
        with pytest.raises(Unauthorized):
            await verifier.verify(bad, "api")
    hs = jwt.encode({"iss": "iss", "aud": "api", "sub": "u1", "exp": int(time.time()) + 60}, "k" * 32,
                    algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(Unauthorized):
        await verifier.verify(hs, "api")


async def test_unknown_kid_refetches_at_most_once_per_cooldown(
        verifier_setup: tuple[JWKSVerifier, _JWKSServer]) -> None:
    verifier, server = verifier_setup
    key = server.add_key("k1")
    await verifier.verify(_token(key, "k1"), "api")
    assert server.fetches == 1
    # A rotated-in key is found by refetching once...
    new_key = server.add_key("k2")
    verifier._fetched_at -= 61  # the cooldown since the last fetch has passed
    await verifier.verify(_token(new_key, "k2"), "api")
    assert server.fetches == 2
    # ...but a flood of unknown kids cannot hammer auth.
    rogue = Ed25519PrivateKey.generate()
    for _ in range(5):
        with pytest.raises(Unauthorized):
            await verifier.verify(_token(rogue, "nope"), "api")
    assert server.fetches == 2


def _clock_ahead(seconds: float) -> SimpleNamespace:
    """common.security's `time` with the wall clock moved on; monotonic time (the JWKS refresh) as is."""
    return SimpleNamespace(time=lambda: time.time() + seconds, monotonic=time.monotonic)


async def test_a_verified_token_is_answered_from_the_cache(verifier_setup: tuple[JWKSVerifier, _JWKSServer],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    verifier, server = verifier_setup
    token = _token(server.add_key("k1"), "k1")
    decoded = count_jwt_decodes(monkeypatch)
    claims = await verifier.verify(token, ["svc", "api"])
    assert claims["sub"] == "u1" and claims["aud"] == "api"
    assert await verifier.verify(token, ["svc", "api"]) == claims
    assert decoded == [token] and server.fetches == 1


async def test_a_cached_token_past_its_expiry_is_refused(verifier_setup: tuple[JWKSVerifier, _JWKSServer],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Only common.security's clock moves on: PyJWT would still take the token, so the refusal
    is the cache's own `exp` check."""
    verifier, server = verifier_setup
    token = _token(server.add_key("k1"), "k1")  # exp: 60 s from now
    await verifier.verify(token, "api")
    decoded = count_jwt_decodes(monkeypatch)
    monkeypatch.setattr(security, "time", _clock_ahead(60))
    with pytest.raises(Unauthorized) as expired:
        await verifier.verify(token, "api")
    assert expired.value.code == "token_expired" and expired.value.detail == "token expired"
    assert decoded == []
    # The entry went with the refusal: back on the real clock the token is verified afresh.
    monkeypatch.setattr(security, "time", time)
    assert (await verifier.verify(token, "api"))["sub"] == "u1"
    assert decoded == [token]


@pytest.mark.parametrize(("change", "detail"), [("withdrawn", "unknown signing key"),
                                                 ("replaced", "invalid token")])
async def test_a_cached_token_is_refused_once_its_key_leaves_the_jwks(
        verifier_setup: tuple[JWKSVerifier, _JWKSServer], monkeypatch: pytest.MonkeyPatch,
        change: str, detail: str) -> None:
    """A JWKS refresh that publishes the same keys keeps the verified tokens; one where the
    token's key is gone (rotated out) or different under the same kid clears them."""
    verifier, server = verifier_setup
    token = _token(server.add_key("k1"), "k1")
    decoded = count_jwt_decodes(monkeypatch)
    await verifier.verify(token, "api")
    verifier._fetched_at -= verifier.cache_seconds + 1  # keys due for a refresh: the same set comes back
    assert (await verifier.verify(token, "api"))["sub"] == "u1"
    assert server.fetches == 2 and decoded == [token]
    if change == "withdrawn":
        del server.keys["k1"]
        server.add_key("k2")
    else:
        server.add_key("k1")  # new key material under the same kid
    verifier._fetched_at -= verifier.cache_seconds + 1
    with pytest.raises(Unauthorized) as refused:
        await verifier.verify(token, "api")
    assert refused.value.code == "invalid_token" and refused.value.detail == detail
    assert server.fetches == 3  # the refetch for an unknown kid waits for its cooldown


async def test_verified_tokens_are_bounded_least_recently_used_out(
        verifier_setup: tuple[JWKSVerifier, _JWKSServer], monkeypatch: pytest.MonkeyPatch) -> None:
    verifier, server = verifier_setup
    key = server.add_key("k1")
    verifier.verified = VerifiedTokens(max_entries=2)
    first, second, third = (_token(key, "k1", sub=f"u{n}") for n in (1, 2, 3))
    decoded = count_jwt_decodes(monkeypatch)
    for token in (first, second, third, second):  # third pushes first out; second is used again
        await verifier.verify(token, "api")
    assert decoded == [first, second, third]
    # first is verified again and pushes out third, the least recently used (not second, the oldest)
    assert (await verifier.verify(first, "api"))["sub"] == "u1"
    assert (await verifier.verify(second, "api"))["sub"] == "u2"
    assert (await verifier.verify(third, "api"))["sub"] == "u3"
    assert decoded == [first, second, third, first, third]


async def test_a_token_cached_for_one_audience_is_not_taken_for_another(
        verifier_setup: tuple[JWKSVerifier, _JWKSServer], monkeypatch: pytest.MonkeyPatch) -> None:
    verifier, server = verifier_setup
    token = _token(server.add_key("k1"), "k1")  # aud: api
    decoded = count_jwt_decodes(monkeypatch)
    await verifier.verify(token, "api")
    for audience in ("billing", ["billing"]):
        with pytest.raises(Unauthorized) as refused:
            await verifier.verify(token, audience)
        assert refused.value.code == "invalid_token"
    assert (await verifier.verify(token, ["billing", "api"]))["aud"] == "api"  # api is among them
    assert await verifier.verify(token, "api") == await verifier.verify(token, ["billing", "api"])
    assert decoded == [token] * 4  # each audience verified once; the refusals were not cached


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


def _app() -> FastAPI:
    from contextlib import asynccontextmanager

    from common.app import build_app

    router = APIRouter()

    @router.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise NotFound("no such item")
        return {"id": item_id}

    @router.post("/items")
    async def create_item(item: Item) -> Item:
        return item

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    return build_app(DemoSettings(), title="t", description="d", lifespan=lifespan, routers=[router])


async def test_problem_json_request_id_and_route_template_metrics() -> None:
    app = _app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        ok = await client.get("/items/12345", headers={"X-Request-ID": "req-abc"})
        assert ok.headers["x-request-id"] == "req-abc"
        assert (await client.get("/items/1")).headers["x-request-id"]  # generated when absent
        missing = await client.get("/items/0")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["detail"] == "no such item"
        invalid = await client.post("/items", json={"name": "x", "admin": True})
        assert invalid.status_code == 422 and invalid.json()["errors"]
        exposition = (await client.get("/metrics")).text
    assert 'http_route="/items/{item_id}"' in exposition
    assert "/items/12345" not in exposition
    sample = REGISTRY.get_sample_value("http_server_request_duration_seconds_count", {
        "service": "service", "http_request_method": "GET", "http_route": "/items/{item_id}",
        "http_response_status_code": "404"})
    assert sample is not None and sample >= 1
