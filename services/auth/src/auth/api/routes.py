"""Auth's HTTP API (served under /api/auth at the gateway)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, status

from auth import keys, service
from auth.api.deps import ClientIP, RuntimeDep, SettingsDep
from auth.schemas import LoginRequest, RefreshRequest, ServiceToken, TokenPair, UserCreate, UserRead
from common.errors import Unauthorized
from common.security import CurrentUser

router = APIRouter()


def _pair(tokens: service.IssuedTokens) -> TokenPair:
    return TokenPair(access_token=tokens.access_token, refresh_token=tokens.refresh_token,
                     expires_in=tokens.expires_in)


@router.post("/register", status_code=status.HTTP_201_CREATED, response_model=UserRead)
async def register(body: UserCreate, runtime: RuntimeDep) -> Any:
    async with runtime.db.transaction() as session:
        return await service.register(db_session=session, email=body.email, password=body.password,
                                      full_name=body.full_name)


@router.post("/login", response_model=TokenPair)
async def login(body: LoginRequest, runtime: RuntimeDep, settings: SettingsDep, ip: ClientIP) -> TokenPair:
    async with runtime.db.transaction() as session:
        user = await service.authenticate(db_session=session, cache=runtime.cache, settings=settings,
                                          email=body.email, password=body.password, client_ip=ip)
        return _pair(await service.issue_tokens(db_session=session, settings=settings, user=user))


@router.post("/refresh", response_model=TokenPair)
async def refresh(body: RefreshRequest, runtime: RuntimeDep, settings: SettingsDep) -> TokenPair:
    async with runtime.db.transaction() as session:
        tokens = await service.rotate_refresh_token(db_session=session, settings=settings,
                                                    refresh_token=body.refresh_token)
    if tokens is None:
        raise Unauthorized("refresh token is invalid, expired or already used", code="invalid_grant")
    return _pair(tokens)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: RefreshRequest, runtime: RuntimeDep) -> None:
    async with runtime.db.transaction() as session:
        await service.revoke_refresh_family(db_session=session, refresh_token=body.refresh_token)


@router.get("/me", response_model=UserRead)
async def me(user: CurrentUser, runtime: RuntimeDep) -> Any:
    async with runtime.db.session() as session:
        return await service.get_user(db_session=session, user_id=uuid.UUID(user.subject))


@router.get("/.well-known/jwks.json")
async def jwks(runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.session() as session:
        return await keys.jwks(db_session=session)


@router.post("/oauth/token", response_model=ServiceToken)
async def service_token(
    runtime: RuntimeDep,
    settings: SettingsDep,
    grant_type: Annotated[str, Form(pattern="^client_credentials$")],
    client_id: Annotated[str, Form(max_length=64)],
    client_secret: Annotated[str, Form(max_length=256)],
    audience: Annotated[str, Form(max_length=64)],
) -> ServiceToken:
    """OAuth 2.0 client credentials for service-to-service calls; audience = target service."""
    async with runtime.db.session() as session:
        token, ttl = await service.issue_service_token(
            db_session=session, settings=settings, client_id=client_id, client_secret=client_secret,
            audience=audience)
    return ServiceToken(access_token=token, expires_in=ttl)
