"""Dependencies of billing's routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header

from billing.providers import PaymentProvider
from billing.settings import BillingSettings
from common.app import get_runtime, get_settings
from common.errors import Unauthorized
from common.runtime import Runtime
from common.security import Principal

PROVIDER_RESOURCE = "payment_provider"
WORKER_RESOURCE = "billing_worker"

RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


SettingsDep = Annotated[BillingSettings, Depends(get_settings)]


async def get_provider(runtime: RuntimeDep) -> PaymentProvider:
    provider: PaymentProvider = runtime.resources[PROVIDER_RESOURCE]
    return provider


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
