"""Revocation records: a later revocation wins, tokens from before (or the same second) are refused,
and a service's own handler for a revoking event still runs."""

from __future__ import annotations

import time
from typing import Any

from common.cache import MemoryCache
from common.events import Envelope
from common.revocation import Revocations
from contracts.events import REVOKING_ACCESS


async def test_tokens_issued_before_the_latest_revocation_are_refused() -> None:
    revocations = Revocations(MemoryCache(), ttl_seconds=60)
    now = time.time()
    assert not await revocations.is_revoked("u1", now - 100)
    await revocations.revoke("u1", now)
    await revocations.revoke("u1", now - 50)  # an older, late-delivered revocation does not move it back
    assert await revocations.revoked_at("u1") == now
    assert await revocations.is_revoked("u1", int(now))  # same second: refused (fail safe)
    assert not await revocations.is_revoked("u1", now + 1)
    assert not await revocations.is_revoked("u2", now - 100)


async def test_revoking_events_are_recorded_and_the_services_own_handler_still_runs() -> None:
    revocations = Revocations(MemoryCache(), ttl_seconds=60)
    seen: list[str] = []

    async def own(_session: Any, envelope: Envelope) -> None:
        seen.append(envelope.routing_key)

    handlers = revocations.added_to({"auth.user.deleted.v1": own, "billing.order.paid.v1": own}, REVOKING_ACCESS)
    assert set(REVOKING_ACCESS) <= set(handlers) and handlers["billing.order.paid.v1"] is own
    deleted = Envelope.new("auth.user.deleted", {"user_id": "u9", "deleted_at": "2026-11-23T00:00:00+00:00"})
    await handlers["auth.user.deleted.v1"](None, deleted)  # type: ignore[arg-type]
    assert seen == ["auth.user.deleted.v1"]
    assert await revocations.revoked_at("u9") == deleted.occurred_at.timestamp()
