"""Dependencies of catalog's routes: the runtime, who is acting, and paging."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends

from catalog.public_cache import PublicCache
from catalog.resources import CatalogResources
from catalog.service import Actor
from catalog.settings import CatalogSettings
from common.app import RuntimeDep as RuntimeDep
from common.app import get_settings, resources_dependency
from common.bounds import PageNumber, PageSize
from common.errors import Unauthorized
from common.security import CurrentUser, OptionalUser, Principal, require_roles, require_service

SettingsDep = Annotated[CatalogSettings, Depends(get_settings)]
ResourcesDep = Annotated[CatalogResources, Depends(resources_dependency(CatalogResources))]


async def public_cache(resources: ResourcesDep) -> PublicCache:
    return resources.public_cache


PublicCacheDep = Annotated[PublicCache, Depends(public_cache)]


def _actor(principal: Principal) -> Actor:
    try:
        user_id = uuid.UUID(principal.subject)
    except ValueError as exc:
        raise Unauthorized("token subject is not a user id", code="invalid_token") from exc
    return Actor(user_id=user_id, is_admin=principal.has_any_role("admin"))


async def current_actor(user: CurrentUser) -> Actor:
    return _actor(user)


async def optional_actor(principal: OptionalUser) -> Actor | None:
    """Anonymous callers (and services) see only what the public sees."""
    if principal is None or principal.is_service:
        return None
    return _actor(principal)


async def author_actor(user: Annotated[Principal, Depends(require_roles("instructor", "admin"))]) -> Actor:
    return _actor(user)


ActorDep = Annotated[Actor, Depends(current_actor)]
OptionalActorDep = Annotated[Actor | None, Depends(optional_actor)]
AuthorDep = Annotated[Actor, Depends(author_actor)]


async def admin_actor(user: Annotated[Principal, Depends(require_roles("admin"))]) -> Actor:
    return _actor(user)


AdminDep = Annotated[Actor, Depends(admin_actor)]

BillingOrPlayback = Annotated[Principal, Depends(require_service("billing", "playback"))]
PlaybackOnly = Annotated[Principal, Depends(require_service("playback"))]

PageDep = PageNumber
PageSizeDep = PageSize
