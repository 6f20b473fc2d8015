"""Cache and counters: Redis in distributed mode, process memory in embedded mode."""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as redis


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None: ...

    async def delete(self, *keys: str) -> None: ...

    async def hit(self, key: str, window_seconds: int) -> tuple[int, int]:
        """Count one hit in a fixed window; returns (hits so far, seconds until the window ends).
        `get(key)` reads the count back as ASCII digits."""
        ...

    async def get_versioned(self, version_key: str, template: str) -> tuple[int, bytes | None]:
        """Read a version counter (0 when absent) and the value stored under `template` with `{}`
        replaced by that version, in one round trip."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class RedisCache:
    # INCR and EXPIRE in one script so a counter key can never live without a TTL.
    _HIT = """
    local n = redis.call('INCR', KEYS[1])
    if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
    local ttl = redis.call('TTL', KEYS[1])
    if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
    return {n, ttl}
    """

    # The second key is named by the first one's value, so it is built inside the script.
    _VERSIONED = """
    local version = redis.call('GET', KEYS[1]) or '0'
    local at = string.find(ARGV[1], '{}', 1, true)
    local key = string.sub(ARGV[1], 1, at - 1) .. version .. string.sub(ARGV[1], at + 2)
    return {version, redis.call('GET', key)}
    """

    def __init__(self, url: str, prefix: str = "") -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix
        self._hit_script = self.client.register_script(self._HIT)
        self._versioned_script = self.client.register_script(self._VERSIONED)

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    async def get(self, key: str) -> bytes | None:
        value = await self.client.get(self._key(key))
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        await self.client.set(self._key(key), value, px=max(1, int(ttl_seconds * 1000)))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self.client.delete(*(self._key(k) for k in keys))

    async def hit(self, key: str, window_seconds: int) -> tuple[int, int]:
        count, ttl = await self._hit_script(keys=[self._key(key)], args=[window_seconds])
        return int(count), int(ttl)

    async def get_versioned(self, version_key: str, template: str) -> tuple[int, bytes | None]:
        version, value = await self._versioned_script(keys=[self._key(version_key)], args=[self._key(template)])
        if isinstance(value, str):
            value = value.encode()
        return int(version), (value or None)

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()


class MemoryCache:
    """Single-process stand-in with the same semantics (expiry included)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float]] = {}

    async def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None or item[1] <= time.monotonic():
            self._data.pop(key, None)
            return None
        return item[0]

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        if len(self._data) > 50_000:
            self._evict()
        self._data[key] = (value, time.monotonic() + ttl_seconds)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)

    async def hit(self, key: str, window_seconds: int) -> tuple[int, int]:
        now = time.monotonic()
        value, expires = self._data.get(key, (b"0", 0.0))
        if expires <= now:
            value, expires = b"0", now + window_seconds
        count = int(value) + 1
        self._data[key] = (str(count).encode(), expires)
        return count, max(1, int(expires - now + 0.999))

    async def get_versioned(self, version_key: str, template: str) -> tuple[int, bytes | None]:
        raw = await self.get(version_key)
        version = int(raw) if raw else 0
        return version, await self.get(template.replace("{}", str(version), 1))

    def _evict(self) -> None:
        now = time.monotonic()
        self._data = {k: v for k, v in self._data.items() if v[1] > now}

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()


def open_cache(redis_url: str | None, prefix: str = "") -> Cache:
    return RedisCache(redis_url, prefix) if redis_url else MemoryCache()
