"""Dependencies of auth's routes: caller context, the signed-in account, the refresh cookie."""

from __future__ import annotations

import ipaddress
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import BackgroundTasks, Depends, Request, Response

from auth import service
from auth.audit import RequestContext
from auth.keys import KeyRing
from auth.models import User
from auth.resources import AuthResources
from auth.settings import AuthSettings
from common.app import RuntimeDep as RuntimeDep
from common.app import get_settings, resources_dependency
from common.errors import Forbidden, Unauthorized
from common.mail import Mail, Mailer
from common.observability import context as obs_context
from common.runtime import Runtime
from common.security import CurrentUser, Principal, require_roles

log = logging.getLogger(__name__)

SettingsDep = Annotated[AuthSettings, Depends(get_settings)]
ResourcesDep = Annotated[AuthResources, Depends(resources_dependency(AuthResources))]


async def get_keyring(resources: ResourcesDep) -> KeyRing:
    return resources.keyring


KeyRingDep = Annotated[KeyRing, Depends(get_keyring)]


@lru_cache(maxsize=16)
def _networks(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in spec.split(",") if item.strip())


def _in(address: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _throttle_key(address: str) -> str:
    """IPv6 clients own whole /64s: count them per /64, not per address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


async def client_ip(request: Request, settings: SettingsDep) -> str:
    """The gateway's X-Real-IP when the request comes from a trusted proxy; else the socket peer."""
    peer = request.client.host if request.client else "unknown"
    forwarded = request.headers.get("x-real-ip")
    if forwarded and _in(peer, _networks(settings.trusted_proxies)):
        return _throttle_key(forwarded.strip())
    return _throttle_key(peer)


ClientIP = Annotated[str, Depends(client_ip)]


async def request_context(request: Request, ip: ClientIP) -> RequestContext:
    return RequestContext(ip=ip, user_agent=request.headers.get("user-agent"),
                          request_id=obs_context.request_id.get())


ContextDep = Annotated[RequestContext, Depends(request_context)]


@dataclass(frozen=True)
class Account:
    """The signed-in caller: the verified token, the account row, the session the token belongs to."""

    principal: Principal
    user: User
    session_id: uuid.UUID | None
    ctx: RequestContext


async def current_account(principal: CurrentUser, runtime: RuntimeDep, ctx: ContextDep) -> Account:
    sid = principal.claims.get("sid")
    try:
        user_id = uuid.UUID(principal.subject)
        session_id = uuid.UUID(str(sid)) if sid else None
    except ValueError as exc:
        raise Unauthorized("invalid token subject", code="invalid_token") from exc
    async with runtime.db.session() as session:
        user = await service.current_account(db_session=session, user_id=user_id, session_id=session_id)
    if user is None:
        raise Unauthorized("the session has ended or the account is disabled", code="session_ended",
                           headers={"WWW-Authenticate": "Bearer"})
    return Account(principal, user, session_id, ctx.acting_as(user.id))


CurrentAccount = Annotated[Account, Depends(current_account)]


async def admin_account(_admin: Annotated[Principal, Depends(require_roles("admin"))],
                        account: CurrentAccount) -> Account:
    """The token says admin and the account still is one (a demoted admin's token is not enough)."""
    if "admin" not in account.user.roles:
        raise Forbidden("requires role: admin")
    return account


AdminAccount = Annotated[Account, Depends(admin_account)]


# --- refresh cookie ------------------------------------------------------------------------------


def cookie_path(request: Request, settings: AuthSettings) -> str:
    """`<public prefix>/refresh`: the gateway prefix is the ASGI root path in both modes (uvicorn
    --root-path in distributed mode, the Mount in embedded mode)."""
    if settings.refresh_cookie_path:
        return settings.refresh_cookie_path
    return f"{request.scope.get('root_path', '').rstrip('/')}/refresh"


def set_refresh_cookie(response: Response, request: Request, settings: AuthSettings, token: str,
                       max_age: int) -> None:
    response.set_cookie(settings.refresh_cookie_name, token, max_age=max(1, max_age),
                        path=cookie_path(request, settings), secure=settings.refresh_cookie_secure,
                        httponly=True, samesite="strict")


def clear_refresh_cookie(response: Response, request: Request, settings: AuthSettings) -> None:
    response.delete_cookie(settings.refresh_cookie_name, path=cookie_path(request, settings),
                           secure=settings.refresh_cookie_secure, httponly=True, samesite="strict")


def check_origin(request: Request, settings: AuthSettings) -> None:
    """CSRF defence for the endpoints that act on the cookie (on top of SameSite=Strict): the
    browser's Origin (or, failing that, Referer) must be one of ours."""
    origin = request.headers.get("origin")
    if not origin:
        referer = request.headers.get("referer")
        if referer:
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
    if not origin or origin.rstrip("/") not in settings.origins():
        raise Forbidden("cross-site request refused", code="csrf_origin")


def refresh_token_from(request: Request, settings: AuthSettings, body_token: str | None) -> tuple[str, bool]:
    """The refresh token from the body (non-browser clients) or the cookie (browsers, CSRF-checked);
    returns it and whether it came from the cookie."""
    if body_token:
        return body_token, False
    cookie = request.cookies.get(settings.refresh_cookie_name)
    if not cookie:
        raise Unauthorized("no refresh token", code="invalid_grant")
    check_origin(request, settings)
    return cookie, True


# --- mail after the response ---------------------------------------------------------------------


async def _deliver(mailer: Mailer, mail: Mail) -> None:
    try:
        await mailer.send(mail)
    except Exception:
        log.exception("mail delivery failed", extra={"subject": mail.subject})


def send_after_response(background: BackgroundTasks, runtime: Runtime, mails: Iterable[Mail | None]) -> None:
    """Mail leaves after the response: no SMTP latency in the request, no timing signal about
    whether an account exists."""
    for mail in mails:
        if mail is not None:
            background.add_task(_deliver, runtime.mailer, mail)
