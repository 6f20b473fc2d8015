"""Access-token verification against auth's JWKS, and role checks as FastAPI dependencies.

Keys are cached; an unknown `kid` triggers at most one refetch per cooldown. Algorithms are
pinned; `iss`, `aud` and `exp` are always checked. A token already verified is not verified again
until it expires (`VerifiedTokens`); revocation is still checked on every request.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import jwt
from cachetools import LRUCache
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from common.errors import Forbidden, Unauthorized

log = logging.getLogger(__name__)

ALLOWED_ALGORITHMS = ["EdDSA"]
SERVICE_ROLE = "service"


def constant_time_equals(expected: str | bytes, given: str | bytes) -> bool:
    """Compare a secret value with one from outside in constant time, for any input.

    `hmac.compare_digest` raises TypeError on a str with non-ASCII characters (and on str/bytes
    mixes), which turned a forged signature into a 500: both sides are compared as UTF-8 bytes.
    The only place the platform compares a secret with untrusted input (ruff bans the direct call).
    """
    left = expected.encode("utf-8", "surrogatepass") if isinstance(expected, str) else expected
    right = given.encode("utf-8", "surrogatepass") if isinstance(given, str) else given
    return hmac.compare_digest(left, right)  # noqa: TID251


class VerifiedTokens:
    """Claims of tokens whose signature and claims were already checked, until they expire.

    A browser sends the same access token with every call and a player the same playback token
    with every playlist: verifying it again (Ed25519 plus PyJWT's parsing, ~0.12 ms) was a tenth
    of a signed-in read. The answer for the same bytes under the same key cannot change but by
    time, so a hit only re-checks `exp`. Whoever owns the keys calls `clear()` when one stops
    being trusted. Bounded (least recently used out); one event loop per process, no lock.
    """

    def __init__(self, max_entries: int = 20_000, *, expired_message: str = "token expired") -> None:
        self._entries: LRUCache[tuple[str, ...], dict[str, Any]] = LRUCache(maxsize=max_entries)
        self._expired_message = expired_message

    def get(self, *key: str) -> dict[str, Any] | None:
        """The claims verified under `key`, or None; past their `exp` it is a 401 as PyJWT gives."""
        claims = self._entries.get(key)
        if claims is not None and time.time() >= claims["exp"]:
            del self._entries[key]
            raise Unauthorized(self._expired_message, code="token_expired")
        return claims

    def put(self, claims: dict[str, Any], *key: str) -> dict[str, Any]:
        if isinstance(claims.get("exp"), int | float):  # PyJWT also accepts a numeric string
            self._entries[key] = claims
        return claims

    def clear(self) -> None:
        self._entries.clear()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (sub = user id) or a service (sub = 'service:<name>')."""

    subject: str
    roles: frozenset[str]
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_service(self) -> bool:
        return SERVICE_ROLE in self.roles

    @property
    def service_name(self) -> str | None:
        return self.subject.split(":", 1)[1] if self.subject.startswith("service:") else None

    def has_any_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


class JWKSVerifier:
    def __init__(self, jwks_url: str, issuer: str, http: httpx.AsyncClient, *,
                 cache_seconds: float = 300, refetch_cooldown: float = 10,
                 algorithms: list[str] | None = None) -> None:
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.http = http
        self.cache_seconds = cache_seconds
        self.refetch_cooldown = refetch_cooldown
        self.algorithms = algorithms or ALLOWED_ALGORITHMS
        self._keys: dict[str, jwt.PyJWK] = {}
        self._key_set: dict[str, Any] = {}  # kid -> the JWK as published, to see a key change
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self.verified = VerifiedTokens()

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if (force and age < self.refetch_cooldown) or (not force and age < self.cache_seconds):
                return
            try:
                response = await self.http.get(self.jwks_url, timeout=3)
                response.raise_for_status()
                keys, key_set = {}, {}
                for jwk in response.json().get("keys", []):
                    if jwk.get("alg") in self.algorithms and jwk.get("kid"):
                        keys[jwk["kid"]] = jwt.PyJWK(jwk)
                        key_set[jwk["kid"]] = jwk
                if key_set != self._key_set:  # a key left or changed: it vouches for no cached token
                    self.verified.clear()
                self._keys, self._key_set = keys, key_set
            except (httpx.HTTPError, ValueError, jwt.PyJWKError) as exc:
                log.warning("JWKS fetch failed", extra={"error": repr(exc)})
            finally:
                self._fetched_at = time.monotonic()

    async def _key_for(self, kid: str) -> jwt.PyJWK:
        """The key of a kid; one unknown after the keys were refreshed (`verify`) forces a refetch."""
        key = self._keys.get(kid)
        if key is None:
            await self._refresh(force=True)
            key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("unknown signing key", code="invalid_token")
        return key

    async def verify(self, token: str, audience: str | list[str]) -> dict[str, Any]:
        audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        if not self._keys or time.monotonic() - self._fetched_at > self.cache_seconds:
            await self._refresh(force=False)  # keys first: a key that left clears the verified tokens
        cached = self.verified.get(token, *audiences)
        if cached is not None:
            return cached
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError) as exc:  # ValueError: text that is not even UTF-8 encodable
            raise Unauthorized("malformed token", code="invalid_token") from exc
        if header.get("alg") not in self.algorithms or not header.get("kid"):
            raise Unauthorized("token algorithm or key id not accepted", code="invalid_token")
        key = await self._key_for(header["kid"])
        try:
            claims = jwt.decode(token, key=key, algorithms=self.algorithms, audience=audience,
                                issuer=self.issuer,
                                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("invalid token", code="invalid_token") from exc
        return self.verified.put(claims, token, *audiences)


_bearer = HTTPBearer(auto_error=False)
# Same header; its own scheme name tells the public OpenAPI document the token is optional there.
_optional_bearer = HTTPBearer(auto_error=False, scheme_name="OptionalBearer")


def _verifier_and_audiences(request: Request) -> tuple[JWKSVerifier, str, str]:
    runtime = request.app.state.runtime
    settings = runtime.settings
    return runtime.verifier, settings.jwt_audience, settings.service_name


async def _principal(request: Request,
                     credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token", code="missing_token",
                           headers={"WWW-Authenticate": "Bearer"})
    verifier, user_audience, service_audience = _verifier_and_audiences(request)
    # Service tokens name this service as audience; user tokens name the public API. Either is
    # accepted in one verification (the token is decoded once).
    claims = await verifier.verify(credentials.credentials, [service_audience, user_audience])
    revocations = request.app.state.runtime.revocations
    if (SERVICE_ROLE not in claims.get("roles", [])
            and await revocations.is_revoked(str(claims["sub"]), float(claims["iat"]))):
        raise Unauthorized("token revoked: sign in again", code="token_revoked",
                           headers={"WWW-Authenticate": "Bearer"})
    return Principal(subject=str(claims["sub"]), roles=frozenset(claims.get("roles", [])),
                     claims=claims)


async def _optional_principal(request: Request,
                              credentials: HTTPAuthorizationCredentials | None = Depends(_optional_bearer),
                              ) -> Principal | None:
    if credentials is None:
        return None
    return await _principal(request, credentials)


async def _current_user(principal: Principal = Depends(_principal)) -> Principal:
    if principal.is_service:
        raise Forbidden("a user token is required")
    return principal


def require_roles(*roles: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def check(principal: Principal = Depends(_current_user)) -> Principal:
        if not principal.has_any_role(*roles):
            raise Forbidden(f"requires role: {' or '.join(roles)}")
        return principal

    return check


def require_service(*services: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def check(principal: Principal = Depends(_principal)) -> Principal:
        if not principal.is_service or principal.service_name not in services:
            raise Forbidden("this endpoint is for internal services")
        return principal

    return check


CurrentUser = Annotated[Principal, Depends(_current_user)]
OptionalUser = Annotated[Principal | None, Depends(_optional_principal)]
AdminUser = Annotated[Principal, Depends(require_roles("admin"))]
