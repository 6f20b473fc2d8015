"""The concurrent-stream registry: the same contract on real Redis (Lua, atomic) and in memory."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from common.cache import MemoryCache, RedisCache
from common.testing import REDIS_URL, unique_name
from playback.streams import MemoryStreamRegistry, RedisStreamRegistry, StreamRegistry, open_stream_registry

TIMEOUT = 120.0


@pytest.fixture(params=["redis", "memory"])
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[StreamRegistry]:
    if request.param == "memory":
        yield MemoryStreamRegistry()
        return
    cache = RedisCache(REDIS_URL, f"{unique_name('streams')}:")
    try:
        yield open_stream_registry(cache)
    finally:
        keys = [key async for key in cache.client.scan_iter(f"{cache.prefix}*")]
        if keys:
            await cache.client.delete(*keys)
        await cache.close()


def test_the_registry_follows_the_cache() -> None:
    assert isinstance(open_stream_registry(MemoryCache()), MemoryStreamRegistry)
    assert isinstance(open_stream_registry(RedisCache(REDIS_URL)), RedisStreamRegistry)


async def test_refuse_policy_keeps_the_first_two(registry: StreamRegistry) -> None:
    user = str(uuid.uuid4())
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    for sid in (first, second):
        assert (await registry.admit(user, sid, limit=2, policy="refuse", timeout_seconds=TIMEOUT)).admitted
    refused = await registry.admit(user, third, limit=2, policy="refuse", timeout_seconds=TIMEOUT)
    assert not refused.admitted and set(refused.active) == {first, second}
    # Re-admitting a live session is a refresh, not a new slot.
    assert (await registry.admit(user, first, limit=2, policy="refuse", timeout_seconds=TIMEOUT)).admitted
    assert await registry.touch(user, first, timeout_seconds=TIMEOUT)
    assert not await registry.touch(user, third, timeout_seconds=TIMEOUT)
    # Another user is not affected.
    assert (await registry.admit(str(uuid.uuid4()), third, limit=2, policy="refuse",
                                 timeout_seconds=TIMEOUT)).admitted

    await registry.release(user, second)
    assert (await registry.admit(user, third, limit=2, policy="refuse", timeout_seconds=TIMEOUT)).admitted
    assert set(await registry.active(user, timeout_seconds=TIMEOUT)) == {first, third}


async def test_end_oldest_pushes_out_the_least_recently_active(registry: StreamRegistry) -> None:
    user = str(uuid.uuid4())
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    for sid in (first, second):
        await registry.admit(user, sid, limit=2, policy="end_oldest", timeout_seconds=TIMEOUT)
        await asyncio.sleep(0.005)
    assert await registry.touch(user, first, timeout_seconds=TIMEOUT)  # first is now the most recent
    await asyncio.sleep(0.005)
    admitted = await registry.admit(user, third, limit=2, policy="end_oldest", timeout_seconds=TIMEOUT)
    assert admitted.admitted and admitted.ended == (second,)
    assert not await registry.touch(user, second, timeout_seconds=TIMEOUT)
    assert await registry.active(user, timeout_seconds=TIMEOUT) == [first, third]


async def test_known_ended_sessions_are_dropped_before_counting(registry: StreamRegistry) -> None:
    """A holder the database knows has ended frees its slot in the same admission, under either
    policy: the live streams are neither refused nor pushed out for it."""
    user = str(uuid.uuid4())
    live, dead, third, fourth = (str(uuid.uuid4()) for _ in range(4))
    for sid in (live, dead):
        assert (await registry.admit(user, sid, limit=2, policy="refuse", timeout_seconds=TIMEOUT)).admitted
        await asyncio.sleep(0.005)
    admitted = await registry.admit(user, third, limit=2, policy="refuse", timeout_seconds=TIMEOUT,
                                    drop=(dead, str(uuid.uuid4())))  # unknown members are ignored
    assert admitted.admitted and admitted.ended == ()
    assert await registry.active(user, timeout_seconds=TIMEOUT) == [live, third]
    # end_oldest: the dead holder goes, not the oldest live one.
    await registry.release(user, third)
    assert (await registry.admit(user, dead, limit=2, policy="refuse", timeout_seconds=TIMEOUT)).admitted
    admitted = await registry.admit(user, fourth, limit=2, policy="end_oldest", timeout_seconds=TIMEOUT,
                                    drop=(dead,))
    assert admitted.admitted and admitted.ended == ()
    assert set(await registry.active(user, timeout_seconds=TIMEOUT)) == {live, fourth}


async def test_silent_streams_time_out(registry: StreamRegistry) -> None:
    user = str(uuid.uuid4())
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    assert (await registry.admit(user, old, limit=1, policy="refuse", timeout_seconds=0.2)).admitted
    assert not (await registry.admit(user, new, limit=1, policy="refuse", timeout_seconds=0.2)).admitted
    await asyncio.sleep(0.3)
    assert not await registry.touch(user, old, timeout_seconds=0.2)  # pruned: it cannot come back
    assert (await registry.admit(user, new, limit=1, policy="refuse", timeout_seconds=0.2)).admitted


async def test_simultaneous_starts_never_exceed_the_limit(registry: StreamRegistry) -> None:
    user = str(uuid.uuid4())
    results = await asyncio.gather(*(registry.admit(user, str(uuid.uuid4()), limit=2, policy="refuse",
                                                    timeout_seconds=TIMEOUT) for _ in range(20)))
    assert sum(result.admitted for result in results) == 2
    assert len(await registry.active(user, timeout_seconds=TIMEOUT)) == 2
