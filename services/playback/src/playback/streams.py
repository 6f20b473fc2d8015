"""Concurrent streams per user: who is watching right now, kept alive by heartbeats.

One sorted set per user (member: playback session id, score: last sign of life in ms). Every
operation prunes members older than the idle timeout first, and runs as one Lua script, so two
players starting at the same moment on two replicas can never both take the last slot.

The database stays the record of why a session ended (`playback_sessions.ended_at`); this registry
only answers "is it alive and does it count". Sessions ended elsewhere (an event handler, which
only has a database transaction) are dropped from the set lazily: a token names the user's sessions
the database knows events ended (`drop`), and its admission removes them before counting.

Embedded mode has no Redis: `MemoryStreamRegistry` keeps the same semantics in process memory
(single event loop, no awaits inside an operation, hence atomic).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import redis.asyncio as redis

from common.cache import Cache, RedisCache

Policy = Literal["refuse", "end_oldest"]


@dataclass(frozen=True)
class Admission:
    admitted: bool
    # end_oldest: the sessions this admission pushed out; refuse: the sessions holding the slots.
    ended: tuple[str, ...] = ()
    active: tuple[str, ...] = ()


class StreamRegistry(Protocol):
    async def admit(self, user_id: str, session_id: str, *, limit: int, policy: Policy,
                    timeout_seconds: float, drop: Sequence[str] = ()) -> Admission:
        """Take a slot for `session_id`, first removing `drop` (sessions known to have ended)."""
        ...

    async def touch(self, user_id: str, session_id: str, *, timeout_seconds: float) -> bool:
        """Refresh a live session's heartbeat; False when it was ended or has timed out."""
        ...

    async def active(self, user_id: str, *, timeout_seconds: float) -> list[str]: ...

    async def release(self, user_id: str, *session_ids: str) -> None: ...


def _now_ms() -> int:
    return int(time.time() * 1000)


class RedisStreamRegistry:
    _ADMIT = """
    local key, now, timeout, limit, policy, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
        tonumber(ARGV[3]), ARGV[4], ARGV[5]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - timeout)
    if #ARGV > 5 then
        redis.call('ZREM', key, unpack(ARGV, 6))
    end
    if redis.call('ZSCORE', key, member) then
        redis.call('ZADD', key, now, member)
        redis.call('PEXPIRE', key, timeout)
        return {1}
    end
    local n = redis.call('ZCARD', key)
    local ended = {}
    if n >= limit then
        if policy ~= 'end_oldest' then
            local holders = redis.call('ZRANGE', key, 0, -1)
            table.insert(holders, 1, 0)
            return holders
        end
        ended = redis.call('ZRANGE', key, 0, n - limit)
        redis.call('ZREM', key, unpack(ended))
    end
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, timeout)
    table.insert(ended, 1, 1)
    return ended
    """
    _TOUCH = """
    local key, now, timeout, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - timeout)
    if not redis.call('ZSCORE', key, member) then return 0 end
    redis.call('ZADD', key, 'XX', now, member)
    redis.call('PEXPIRE', key, timeout)
    return 1
    """

    def __init__(self, client: redis.Redis, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self._admit = client.register_script(self._ADMIT)
        self._touch = client.register_script(self._TOUCH)

    def _key(self, user_id: str) -> str:
        return f"{self.prefix}playback:streams:{user_id}"

    async def admit(self, user_id: str, session_id: str, *, limit: int, policy: Policy,
                    timeout_seconds: float, drop: Sequence[str] = ()) -> Admission:
        result = await self._admit(keys=[self._key(user_id)],
                                   args=[_now_ms(), int(timeout_seconds * 1000), limit, policy, session_id,
                                         *drop])
        flag, *members = result
        names = tuple(m.decode() if isinstance(m, bytes) else str(m) for m in members)
        if int(flag) == 1:
            return Admission(admitted=True, ended=names)
        return Admission(admitted=False, active=names)

    async def touch(self, user_id: str, session_id: str, *, timeout_seconds: float) -> bool:
        return bool(await self._touch(keys=[self._key(user_id)],
                                      args=[_now_ms(), int(timeout_seconds * 1000), session_id]))

    async def active(self, user_id: str, *, timeout_seconds: float) -> list[str]:
        members = await self.client.zrangebyscore(self._key(user_id), _now_ms() - int(timeout_seconds * 1000),
                                                  "+inf")
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    async def release(self, user_id: str, *session_ids: str) -> None:
        if session_ids:
            await self.client.zrem(self._key(user_id), *session_ids)


class MemoryStreamRegistry:
    """The same contract in one process (embedded mode)."""

    def __init__(self) -> None:
        self._users: dict[str, dict[str, int]] = {}

    def _live(self, user_id: str, timeout_seconds: float) -> dict[str, int]:
        cutoff = _now_ms() - int(timeout_seconds * 1000)
        sessions = {sid: seen for sid, seen in self._users.get(user_id, {}).items() if seen > cutoff}
        if sessions:
            self._users[user_id] = sessions
        else:
            self._users.pop(user_id, None)
        return sessions

    async def admit(self, user_id: str, session_id: str, *, limit: int, policy: Policy,
                    timeout_seconds: float, drop: Sequence[str] = ()) -> Admission:
        sessions = self._live(user_id, timeout_seconds)
        for sid in drop:
            sessions.pop(sid, None)
        ended: tuple[str, ...] = ()
        if session_id not in sessions and len(sessions) >= limit:
            oldest_first = tuple(sorted(sessions, key=lambda sid: (sessions[sid], sid)))
            if policy != "end_oldest":
                return Admission(admitted=False, active=oldest_first)
            ended = oldest_first[:len(sessions) - limit + 1]
            for sid in ended:
                del sessions[sid]
        sessions[session_id] = _now_ms()
        self._users[user_id] = sessions
        return Admission(admitted=True, ended=ended)

    async def touch(self, user_id: str, session_id: str, *, timeout_seconds: float) -> bool:
        sessions = self._live(user_id, timeout_seconds)
        if session_id not in sessions:
            return False
        sessions[session_id] = _now_ms()
        return True

    async def active(self, user_id: str, *, timeout_seconds: float) -> list[str]:
        sessions = self._live(user_id, timeout_seconds)
        return sorted(sessions, key=lambda sid: (sessions[sid], sid))

    async def release(self, user_id: str, *session_ids: str) -> None:
        sessions = self._users.get(user_id, {})
        for sid in session_ids:
            sessions.pop(sid, None)


def open_stream_registry(cache: Cache) -> StreamRegistry:
    """Redis when the service has Redis (shared by every replica), process memory otherwise."""
    if isinstance(cache, RedisCache):
        return RedisStreamRegistry(cache.client, cache.prefix)
    return MemoryStreamRegistry()
