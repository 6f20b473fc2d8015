"""Property tests of the shared parsers of untrusted input: whatever arrives, the answer is a
verdict or a 4xx, never an exception that becomes a 500 (fixed seed, bounded examples)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import OKPAlgorithm

from common.bounds import PageNumber, PageSize
from common.errors import Unauthorized, install_error_handlers
from common.security import JWKSVerifier, constant_time_equals
from common.textguard import TextGuardMiddleware, json_storable, storable

PROPERTY = settings(derandomize=True, max_examples=150, deadline=None, database=None)
# Any text at all, lone surrogates included (what a JSON `\ud800` escape decodes to).
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()))
SECRET_KEY = Ed25519PrivateKey.generate()
JWK = {**json.loads(OKPAlgorithm.to_jwk(SECRET_KEY.public_key())), "kid": "k1", "alg": "EdDSA", "use": "sig"}


@PROPERTY
@given(expected=st.one_of(ANY_TEXT, st.binary()), given_value=st.one_of(ANY_TEXT, st.binary()))
def test_constant_time_equals_never_raises(expected: str | bytes, given_value: str | bytes) -> None:
    as_bytes = [v.encode("utf-8", "surrogatepass") if isinstance(v, str) else v for v in (expected, given_value)]
    assert constant_time_equals(expected, given_value) is (as_bytes[0] == as_bytes[1])


def test_constant_time_equals_on_the_inputs_that_were_500s() -> None:
    assert constant_time_equals("abc", "abc") and not constant_time_equals("abc", "äbc")
    assert not constant_time_equals("sig", "\udcff") and constant_time_equals(b"x", "x")


def _jwt_shaped() -> st.SearchStrategy[str]:
    """Three dot-separated segments whose header names our algorithm and key: past the cheap checks."""
    header = base64.urlsafe_b64encode(json.dumps({"alg": "EdDSA", "kid": "k1"}).encode()).rstrip(b"=").decode()
    segment = st.one_of(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=60),
                        st.dictionaries(st.sampled_from(["iss", "aud", "sub", "exp", "iat", "roles"]),
                                        st.one_of(st.integers(), ANY_TEXT, st.lists(st.integers(), max_size=2)))
                        .map(lambda claims: base64.urlsafe_b64encode(json.dumps(claims).encode())
                             .rstrip(b"=").decode()))
    return st.tuples(segment, segment).map(lambda parts: f"{header}.{parts[0]}.{parts[1]}")


@PROPERTY
@given(token=st.one_of(ANY_TEXT, _jwt_shaped()))
def test_access_token_verification_answers_401_or_claims(token: str) -> None:
    async def verify() -> Any:
        transport = httpx.MockTransport(lambda _request: httpx.Response(200, json={"keys": [JWK]}))
        async with httpx.AsyncClient(transport=transport) as http:
            verifier = JWKSVerifier("http://auth/.well-known/jwks.json", "iss", http)
            try:
                return await verifier.verify(token, ["catalog", "api"])
            except Unauthorized:
                return None

    assert asyncio.run(verify()) is None  # nothing random is signed by our key


def test_a_token_that_is_not_utf8_encodable_is_401() -> None:
    async def verify() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(
                lambda _request: httpx.Response(200, json={"keys": [JWK]}))) as http:
            await JWKSVerifier("http://auth/.well-known/jwks.json", "iss", http).verify("\ud800.x.y", ["api"])

    with pytest.raises(Unauthorized):
        asyncio.run(verify())


def test_a_genuine_access_token_still_verifies() -> None:
    now = int(time.time())
    token = jwt.encode({"iss": "iss", "aud": "api", "sub": "u1", "iat": now, "exp": now + 60}, SECRET_KEY,
                       algorithm="EdDSA", headers={"kid": "k1"})

    async def verify() -> Any:
        transport = httpx.MockTransport(lambda _request: httpx.Response(200, json={"keys": [JWK]}))
        async with httpx.AsyncClient(transport=transport) as http:
            return await JWKSVerifier("http://auth/.well-known/jwks.json", "iss", http).verify(token, "api")

    assert asyncio.run(verify())["sub"] == "u1"


def _paged_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(TextGuardMiddleware)

    @app.get("/items")
    async def items(page: PageNumber = 1, page_size: PageSize = 20) -> dict[str, int]:
        return {"page": page, "page_size": page_size}

    return app


@PROPERTY
@given(page=st.one_of(st.integers(), ANY_TEXT), page_size=st.one_of(st.integers(), ANY_TEXT))
def test_pagination_params_are_in_bounds_or_422(page: int | str, page_size: int | str) -> None:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=_paged_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/items", params={"page": str(page), "page_size": str(page_size)})

    response = asyncio.run(call())
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        body = response.json()
        assert 1 <= body["page"] <= 100_000 and 1 <= body["page_size"] <= 100
    else:
        assert response.headers["content-type"] == "application/problem+json"


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | ANY_TEXT,
                           lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(ANY_TEXT, children, max_size=3), max_leaves=8)


@PROPERTY
@given(document=JSON_VALUES, ensure_ascii=st.booleans())
def test_json_bodies_are_refused_exactly_when_the_database_could_not_store_them(document: Any,
                                                                                ensure_ascii: bool) -> None:
    def texts(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [t for k, v in value.items() for t in (k, *texts(v))]
        return [t for v in value for t in texts(v)] if isinstance(value, list) else []

    try:
        body = json.dumps(document, ensure_ascii=ensure_ascii).encode("utf-8")
    except UnicodeEncodeError:  # a raw lone surrogate cannot even be sent without escaping
        return
    assert json_storable(body) is all(storable(t) for t in texts(document))


@pytest.mark.parametrize(("url", "body"), [
    ("/items?page=1%00", None),
    ("/items", json.dumps({"name": "a\u0000b"})),
    ("/items", '{"name": "\\ud800"}'),
])
def test_text_guard_refuses_what_postgresql_cannot_store(url: str, body: str | None) -> None:
    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_paged_app()), base_url="http://t") as c:
            if body is None:
                return await c.get(url)
            return await c.post(url, content=body, headers={"Content-Type": "application/json"})

    response = asyncio.run(call())
    assert response.status_code == 422 and response.json()["errors"][0]["type"] == "string_nul"


def test_escaped_backslashes_are_text_not_nul() -> None:
    assert json_storable(json.dumps({"path": "C:\\u0000"}).encode())  # the six characters \u0000
