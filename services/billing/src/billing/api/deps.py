"""Dependencies of billing's routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header

from billing.providers import PaymentProvider
from billing.resources import BillingResources
from billing.settings import BillingSettings
from common.app import RuntimeDep as RuntimeDep
from common.app import get_settings, resources_dependency
from common.errors import Unauthorized
from common.security import Principal

SettingsDep = Annotated[BillingSettings, Depends(get_settings)]
ResourcesDep = Annotated[BillingResources, Depends(resources_dependency(BillingResources))]


async def get_provider(resources: ResourcesDep) -> PaymentProvider:
    return resources.provider


ProviderDep = Annotated[PaymentProvider, Depends(get_provider)]


async def idempotency_key(
    key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                      pattern=r"^[\x21-\x7e]+$")] = None,
) -> str:
    """Optional: without a key every request is a new attempt (a fresh key is generated)."""
    return key or f"generated-{uuid.uuid4()}"


IdempotencyKey = Annotated[str, Depends(idempotency_key)]


def user_id_of(principal: Principal) -> uuid.UUID:
    try:
        return uuid.UUID(principal.subject)
    except ValueError as exc:
        raise Unauthorized("token subject is not a user id", code="invalid_token") from exc
