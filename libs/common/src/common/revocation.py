"""Users whose access tokens must stop working before they expire: disabled, signed out everywhere,
or erased.

Access tokens are verified locally (JWKS), so without this a token stays valid in every service for
its whole lifetime after auth revoked the session. Auth announces revocations as events; each
service records the moment in its cache, and `common.security` refuses user tokens issued before
it. An entry only has to outlive the longest access token, so it expires after `ttl_seconds`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from common.cache import Cache
from common.events import Envelope
from common.events.consumer import Handler


class Revocations:
    def __init__(self, cache: Cache, ttl_seconds: float) -> None:
        self.cache = cache
        self.ttl_seconds = ttl_seconds

    @staticmethod
    def _key(user_id: str) -> str:
        return f"revoked-user:{user_id}"

    async def revoke(self, user_id: str, at: float) -> None:
        """Refuse the user's tokens issued before `at` (unix seconds); a later revocation wins."""
        current = await self.revoked_at(user_id)
        if current is None or at > current:
            await self.cache.set(self._key(user_id), repr(at).encode(), self.ttl_seconds)

    async def revoked_at(self, user_id: str) -> float | None:
        raw = await self.cache.get(self._key(user_id))
        return float(raw) if raw is not None else None

    async def is_revoked(self, user_id: str, issued_at: float) -> bool:
        revoked = await self.revoked_at(user_id)
        # `iat` has whole seconds, so a token from the second of the revocation is refused too, even if
        # issued just after it: failing safe costs a re-login within that second at worst.
        return revoked is not None and issued_at <= revoked

    async def record(self, _session: AsyncSession, envelope: Envelope) -> None:
        """A handler: refuse the tokens of the event's `user_id` issued before the event happened."""
        await self.revoke(str(envelope.payload["user_id"]), envelope.occurred_at.timestamp())

    def added_to(self, handlers: Mapping[str, Handler], routing_keys: Iterable[str]) -> dict[str, Handler]:
        """The service's handlers plus recording on each revoking event (a service that handles one
        of them itself keeps its handler, run after the recording). Each service's `events.handlers`
        calls this with the revoking events its contract names."""
        combined = dict(handlers)
        for routing_key in routing_keys:
            own = handlers.get(routing_key)
            combined[routing_key] = self.record if own is None else _both(self.record, own)
        return combined


@dataclass(frozen=True)
class WithRevocations:
    """A service's handler map plus revocation recording on the revoking events its contract names:
    called with the runtime's `Revocations` when the consumer starts; `routing_keys` are the queue's
    bindings (`python -m <service> migrate` declares them before the service starts)."""

    own: Mapping[str, Handler]
    revoking: tuple[str, ...]

    def __call__(self, revocations: Revocations) -> dict[str, Handler]:
        return revocations.added_to(self.own, self.revoking)

    @property
    def routing_keys(self) -> list[str]:
        return sorted({*self.own, *self.revoking})


def _both(first: Handler, second: Handler) -> Handler:
    async def run(session: AsyncSession, envelope: Envelope) -> None:
        await first(session, envelope)
        await second(session, envelope)

    return run
