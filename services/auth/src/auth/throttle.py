"""Throttles on the shared cache (Redis distributed, memory embedded). Counters are fixed windows
counted with the cache's atomic `hit` (INCR + EXPIRE in one script), so no key ever lives without
a TTL; a tripped limit sets a block key whose value is when it ends (for Retry-After)."""

from __future__ import annotations

import hashlib
import time

from auth.settings import AuthSettings
from common.cache import Cache
from common.errors import TooManyRequests


def account_key(email: str) -> str:
    """Accounts are keyed by a hash of the normalised email: no addresses in Redis."""
    return hashlib.sha256(email.encode()).hexdigest()[:32]


class Limit:
    """`limit` events per `window` seconds for one key; `blocked()` says for how long it is full."""

    def __init__(self, cache: Cache, name: str, limit: int, window: int) -> None:
        self.cache, self.name, self.limit, self.window = cache, name, limit, window

    def _keys(self, key: str) -> tuple[str, str]:
        return f"auth:rl:{self.name}:{key}", f"auth:rl:{self.name}:{key}:blocked"

    async def blocked(self, key: str) -> int:
        """Seconds until `key` may try again (0: not blocked)."""
        raw = await self.cache.get(self._keys(key)[1])
        if raw is None:
            return 0
        return max(1, int(float(raw) - time.time() + 0.999))

    async def hit(self, key: str) -> int:
        """Count one event; returns the seconds of the block it started (0 while under the limit)."""
        counter, block = self._keys(key)
        count, ttl = await self.cache.hit(counter, self.window)
        if count >= self.limit:
            await self.cache.set(block, str(time.time() + ttl).encode(), ttl)
            return ttl
        return 0

    async def allow(self, key: str) -> bool:
        """Count one event and say whether it is within the limit (for silent limits)."""
        count, _ttl = await self.cache.hit(self._keys(key)[0], self.window)
        return count <= self.limit

    async def clear(self, key: str) -> None:
        await self.cache.delete(*self._keys(key))


class LoginThrottle:
    """Failed logins per client IP (the 6th within a minute is refused) and per account.

    The account limit only gates logins: password reset stays open (an attacker who fails on
    purpose cannot lock the real user out of recovering), and a completed reset clears it.
    """

    def __init__(self, cache: Cache, settings: AuthSettings) -> None:
        self.per_ip = Limit(cache, "login-ip", settings.login_failures_per_ip_per_minute, 60)
        self.per_account = Limit(cache, "login-acct", settings.login_failures_per_account_per_15_minutes, 900)

    async def check(self, ip: str, email: str) -> None:
        wait = max(await self.per_ip.blocked(ip), await self.per_account.blocked(account_key(email)))
        if wait:
            raise TooManyRequests("too many failed logins; try again later", code="login_throttled",
                                  headers={"Retry-After": str(wait)})

    async def failed(self, ip: str, email: str) -> None:
        await self.per_ip.hit(ip)
        await self.per_account.hit(account_key(email))

    async def succeeded(self, email: str) -> None:
        await self.per_account.clear(account_key(email))

    async def clear_account(self, email: str) -> None:
        await self.per_account.clear(account_key(email))


def too_many(wait: int, what: str) -> TooManyRequests:
    return TooManyRequests(f"too many {what}; try again later", code="rate_limited",
                           headers={"Retry-After": str(max(1, wait))})
