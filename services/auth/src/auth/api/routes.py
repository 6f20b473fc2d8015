"""Auth's public HTTP API (served under /api/auth at the gateway)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Form, Request, Response, status
from fastapi.responses import JSONResponse

from auth import audit, export, keys, service, sessions
from auth.api.deps import (
    Account,
    ContextDep,
    CurrentAccount,
    KeyRingDep,
    RuntimeDep,
    SettingsDep,
    clear_refresh_cookie,
    refresh_token_from,
    send_after_response,
    set_refresh_cookie,
)
from auth.schemas import (
    CodeBody,
    EmailChange,
    LoginRequest,
    PasswordChange,
    PasswordConfirmation,
    PasswordForgot,
    PasswordReset,
    ProfileUpdate,
    RefreshRequest,
    ServiceToken,
    SessionRead,
    TokenPair,
    UserCreate,
    UserRead,
)
from auth.settings import AuthSettings
from common.db import utcnow
from common.errors import NotFound, Unauthorized

router = APIRouter()


def _answer(tokens: sessions.IssuedTokens, request: Request, response: Response, settings: AuthSettings,
            *, cookie: bool) -> TokenPair:
    if cookie:
        max_age = int((tokens.refresh_expires_at - utcnow()).total_seconds())
        set_refresh_cookie(response, request, settings, tokens.refresh_token, max_age)
        return TokenPair(access_token=tokens.access_token, expires_in=tokens.expires_in)
    return TokenPair(access_token=tokens.access_token, refresh_token=tokens.refresh_token,
                     expires_in=tokens.expires_in)


async def _confirm_password(runtime: RuntimeDep, settings: AuthSettings, account: Account, password: str,
                            action: str) -> str:
    """Re-authentication before a sensitive change, outside its transaction; the verified hash."""
    outcome = await service.confirm_password(db=runtime.db, cache=runtime.cache, settings=settings,
                                             user_id=account.user.id, password=password, ctx=account.ctx,
                                             action=action)
    return outcome.unwrap()


# --- accounts and sessions -----------------------------------------------------------------------


@router.post("/register", status_code=status.HTTP_201_CREATED, response_model=UserRead)
async def register(body: UserCreate, runtime: RuntimeDep, settings: SettingsDep, ctx: ContextDep,
                   background: BackgroundTasks) -> Any:
    password_hash = await service.new_password_hash(email=body.email, password=body.password, settings=settings)
    async with runtime.db.transaction() as session:
        user = await service.register(db_session=session, email=body.email, password=body.password,
                                      full_name=body.full_name, settings=settings, ctx=ctx,
                                      password_hash=password_hash)
        mail = await service.start_email_verification(db_session=session, settings=settings, user=user)
    send_after_response(background, runtime, [mail])
    return user


@router.post("/login", response_model=TokenPair, response_model_exclude_none=True)
async def login(body: LoginRequest, request: Request, response: Response, runtime: RuntimeDep,
                settings: SettingsDep, keyring: KeyRingDep, ctx: ContextDep) -> TokenPair:
    # No transaction here: login opens its own short ones around the argon2 work.
    outcome = await service.login(db=runtime.db, cache=runtime.cache, settings=settings, keyring=keyring,
                                  email=body.email, password=body.password, ctx=ctx)
    return _answer(outcome.unwrap(), request, response, settings, cookie=body.refresh_transport == "cookie")


@router.post("/refresh", response_model=TokenPair, response_model_exclude_none=True)
async def refresh(request: Request, response: Response, runtime: RuntimeDep, settings: SettingsDep,
                  keyring: KeyRingDep, ctx: ContextDep, body: RefreshRequest | None = None) -> TokenPair:
    """Body `{refresh_token}` (non-browser clients), or the refresh cookie with an Origin check."""
    token, via_cookie = refresh_token_from(request, settings, body.refresh_token if body else None)
    async with runtime.db.transaction() as session:
        tokens = await sessions.rotate(db_session=session, settings=settings, keyring=keyring,
                                       refresh_token=token, ctx=ctx)
    if tokens is None:
        raise Unauthorized("refresh token is invalid, expired or already used", code="invalid_grant")
    return _answer(tokens, request, response, settings, cookie=via_cookie)


async def _logout(runtime: RuntimeDep, token: str, ctx: ContextDep) -> None:
    async with runtime.db.transaction() as session:
        login_session = await sessions.session_of(db_session=session, refresh_token=token)
        if login_session is not None and await sessions.revoke(db_session=session, login_session=login_session,
                                                               reason="logout"):
            await audit.record(session, ctx.acting_as(login_session.user_id), "logout",
                               subject_id=login_session.user_id, session_id=str(login_session.id))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: RefreshRequest, runtime: RuntimeDep, ctx: ContextDep) -> None:
    """End the session of this refresh token (non-browser clients)."""
    await _logout(runtime, body.refresh_token, ctx)


@router.post("/refresh/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout_cookie(request: Request, runtime: RuntimeDep, settings: SettingsDep, ctx: ContextDep,
                        body: RefreshRequest | None = None) -> Response:
    """End this session for a browser: reads the refresh cookie (under the cookie's path) and clears it."""
    token, _via_cookie = refresh_token_from(request, settings, body.refresh_token if body else None)
    await _logout(runtime, token, ctx)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_refresh_cookie(response, request, settings)
    return response


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT)
async def logout_everywhere(account: CurrentAccount, request: Request, runtime: RuntimeDep,
                            settings: SettingsDep) -> Response:
    """Sign out everywhere: every session of the caller ends (this one too)."""
    async with runtime.db.transaction() as session:
        ended = await sessions.revoke_all(db_session=session, user_id=account.user.id, reason="sign_out_everywhere")
        await audit.record(session, account.ctx, "logout_all", subject_id=account.user.id, sessions_ended=ended)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_refresh_cookie(response, request, settings)
    return response


@router.get("/me", response_model=UserRead)
async def me(account: CurrentAccount) -> Any:
    return account.user


@router.patch("/me", response_model=UserRead)
async def update_me(body: ProfileUpdate, account: CurrentAccount, runtime: RuntimeDep) -> Any:
    async with runtime.db.transaction() as session:
        return await service.update_profile(db_session=session, user_id=account.user.id,
                                            changes=body.model_dump(exclude_unset=True), ctx=account.ctx)


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT)
async def erase_me(body: PasswordConfirmation, account: CurrentAccount, request: Request, runtime: RuntimeDep,
                   settings: SettingsDep) -> Response:
    """Erase the account (needs the password). Other services remove or anonymise their data on
    `auth.user.deleted`."""
    verified = await _confirm_password(runtime, settings, account, body.password, "erasure")
    async with runtime.db.transaction() as session:
        await service.erase(db_session=session, user_id=account.user.id, verified_hash=verified, ctx=account.ctx)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_refresh_cookie(response, request, settings)
    return response


@router.get("/me/export", response_class=Response, responses={200: {"content": {"application/zip": {}}}})
async def export_me(account: CurrentAccount, runtime: RuntimeDep) -> Response:
    """Everything the platform holds about the caller, one zip: a JSON file per service and the
    invoice PDFs (`manifest.json` lists them and any service that could not answer)."""
    async with runtime.db.transaction() as session:
        data = await service.export(db_session=session, user_id=account.user.id, ctx=account.ctx)
    content = await export.archive(runtime, account.user.id, data)
    return Response(content, media_type="application/zip", headers={
        "Content-Disposition": 'attachment; filename="triple-academy-export.zip"', "Cache-Control": "no-store"})


@router.get("/me/sessions", response_model=list[SessionRead])
async def my_sessions(account: CurrentAccount, runtime: RuntimeDep) -> list[SessionRead]:
    async with runtime.db.session() as session:
        rows = await sessions.live_sessions(db_session=session, user_id=account.user.id)
    return [SessionRead.model_validate(row).model_copy(update={"current": row.id == account.session_id})
            for row in rows]


@router.delete("/me/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_my_session(session_id: uuid.UUID, account: CurrentAccount, runtime: RuntimeDep) -> None:
    async with runtime.db.transaction() as session:
        target = await sessions.own_session(db_session=session, user_id=account.user.id, session_id=session_id)
        if target is None:
            raise NotFound("session not found")
        if await sessions.revoke(db_session=session, login_session=target, reason="revoked_by_user"):
            await audit.record(session, account.ctx, "session_revoke", subject_id=account.user.id,
                               session_id=str(session_id))


# --- email verification, password reset and change, email change --------------------------------


@router.post("/verify-email", status_code=status.HTTP_204_NO_CONTENT)
async def verify_email(body: CodeBody, runtime: RuntimeDep, ctx: ContextDep) -> None:
    async with runtime.db.transaction() as session:
        await service.verify_email(db_session=session, code=body.code, ctx=ctx)


@router.post("/verify-email/resend", status_code=status.HTTP_202_ACCEPTED)
async def resend_verification(account: CurrentAccount, runtime: RuntimeDep, settings: SettingsDep,
                              background: BackgroundTasks) -> dict[str, str]:
    async with runtime.db.transaction() as session:
        mail = await service.resend_verification(db_session=session, cache=runtime.cache, settings=settings,
                                                 user_id=account.user.id)
    send_after_response(background, runtime, [mail])
    return {"status": "accepted"}


@router.post("/password/forgot", status_code=status.HTTP_202_ACCEPTED)
async def forgot_password(body: PasswordForgot, runtime: RuntimeDep, settings: SettingsDep, ctx: ContextDep,
                          background: BackgroundTasks) -> dict[str, str]:
    """Always 202: whether the account exists is not for the caller to learn."""
    async with runtime.db.transaction() as session:
        mail = await service.request_password_reset(db_session=session, cache=runtime.cache, settings=settings,
                                                    email=body.email, ctx=ctx)
    send_after_response(background, runtime, [mail])
    return {"status": "accepted"}


@router.post("/password/reset", status_code=status.HTTP_204_NO_CONTENT)
async def reset_password(body: PasswordReset, runtime: RuntimeDep, settings: SettingsDep, ctx: ContextDep) -> None:
    async with runtime.db.transaction() as session:
        await service.reset_password(db_session=session, cache=runtime.cache, settings=settings, code=body.code,
                                     new_password=body.new_password, ctx=ctx)


@router.post("/password/change", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(body: PasswordChange, account: CurrentAccount, runtime: RuntimeDep,
                          settings: SettingsDep, background: BackgroundTasks) -> None:
    verified = await _confirm_password(runtime, settings, account, body.current_password, "password_change")
    new_hash = await service.new_password_hash(email=account.user.email, password=body.new_password,
                                               settings=settings)
    async with runtime.db.transaction() as session:
        outcome = await service.change_password(
            db_session=session, settings=settings, user_id=account.user.id, current_session=account.session_id,
            verified_hash=verified, new_password_hash=new_hash,
            sign_out_other_sessions=body.sign_out_other_sessions, ctx=account.ctx)
    outcome.unwrap()
    send_after_response(background, runtime, outcome.mails)


@router.post("/email/change", status_code=status.HTTP_202_ACCEPTED)
async def change_email(body: EmailChange, account: CurrentAccount, runtime: RuntimeDep, settings: SettingsDep,
                       background: BackgroundTasks) -> dict[str, str]:
    """The new address gets a confirmation code; the old one a notice. Nothing changes until confirmed."""
    verified = await _confirm_password(runtime, settings, account, body.password, "email_change_request")
    async with runtime.db.transaction() as session:
        outcome = await service.request_email_change(
            db_session=session, settings=settings, user_id=account.user.id, new_email=body.new_email,
            verified_hash=verified, ctx=account.ctx)
    outcome.unwrap()
    send_after_response(background, runtime, outcome.mails)
    return {"status": "accepted"}


@router.post("/email/change/confirm", response_model=UserRead)
async def confirm_email_change(body: CodeBody, runtime: RuntimeDep, ctx: ContextDep) -> Any:
    async with runtime.db.transaction() as session:
        return await service.confirm_email_change(db_session=session, code=body.code, ctx=ctx)


# --- keys and service clients --------------------------------------------------------------------


@router.get("/.well-known/jwks.json")
async def jwks(runtime: RuntimeDep) -> JSONResponse:
    async with runtime.db.session() as session:
        body = await keys.jwks(db_session=session)
    # Short enough that a key published ahead of its activation is seen long before it signs.
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=60"})


@router.post("/oauth/token", response_model=ServiceToken)
async def service_token(
    runtime: RuntimeDep,
    settings: SettingsDep,
    keyring: KeyRingDep,
    grant_type: Annotated[str, Form(max_length=18, pattern="^client_credentials$")],
    client_id: Annotated[str, Form(max_length=64)],
    client_secret: Annotated[str, Form(max_length=256)],
    audience: Annotated[str, Form(max_length=64)],
) -> ServiceToken:
    """OAuth 2.0 client credentials for service-to-service calls; audience = target service."""
    async with runtime.db.session() as session:
        token, ttl = await service.issue_service_token(
            db_session=session, settings=settings, keyring=keyring, client_id=client_id,
            client_secret=client_secret, audience=audience)
    return ServiceToken(access_token=token, expires_in=ttl)
