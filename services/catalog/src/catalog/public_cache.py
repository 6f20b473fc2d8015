"""Cached public (anonymous) catalog responses, in Redis (distributed) or memory (embedded).

Keys carry generation numbers instead of being deleted: a list answer lives under the list
generation, a course detail under that course's generation. A write bumps the generations after
its transaction commits, so a reader that raced the write can only have stored its stale answer
under a generation nobody reads any more. Entries also expire (`ttl_seconds`) as a safety net.

Use cases mark what they changed in `session.info` (`mark_dirty`); the after-commit hook bumps
the generations and routes await that before answering, so a client sees its own write.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from dataclasses import dataclass

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from common.cache import Cache

log = logging.getLogger(__name__)

DIRTY_COURSES = "catalog.dirty_courses"
INVALIDATION_TASK = "catalog.invalidation_task"
GENERATION_WINDOW_SECONDS = 7 * 24 * 3600  # far longer than any entry lives

# The hit ratio is the recording rule `catalog:cache_hit_ratio:rate5m` (summable across replicas).
CACHE_LOOKUPS = Counter("catalog_cache_lookups_total", "Public response cache lookups",
                        ["service", "cache", "result"])


def mark_dirty(db_session: AsyncSession, *course_ids: uuid.UUID) -> None:
    """Record that these courses' public representations (and so every listing) changed."""
    db_session.info.setdefault(DIRTY_COURSES, set()).update(course_ids)


def etag_for(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class Cached:
    etag: str
    body: bytes


class PublicCache:
    def __init__(self, cache: Cache, ttl_seconds: float) -> None:
        self.cache = cache
        self.ttl_seconds = ttl_seconds
        self.enabled = ttl_seconds > 0
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ keys

    async def _generation(self, key: str) -> int | None:
        """None when caching is off or the cache is unreachable: the caller then skips it."""
        if not self.enabled:
            return None
        try:
            raw = await self.cache.get(key)
        except Exception as exc:  # a cache outage must not fail public reads
            log.warning("cache generation read failed", extra={"error": repr(exc)})
            return None
        return int(raw) if raw else 0

    async def list_key(self, query_key: str) -> str | None:
        generation = await self._generation("gen:list")
        if generation is None:
            return None
        digest = hashlib.sha256(query_key.encode()).hexdigest()[:24]
        return f"pub:list:{generation}:{digest}"

    async def course_key(self, course_id: uuid.UUID) -> str | None:
        generation = await self._generation(f"gen:course:{course_id}")
        return None if generation is None else f"pub:course:{course_id}:{generation}"

    @staticmethod
    def full_view_key(course_key: str) -> str:
        """The full view of a course (entitled callers only) lives beside its public one, under the
        same generation."""
        return f"{course_key}:full"

    async def slug_key(self, slug: str) -> str | None:
        # Slug changes bump the list generation, so a slug entry follows it.
        generation = await self._generation("gen:list")
        return None if generation is None else f"pub:slug:{generation}:{slug}"

    # ------------------------------------------------------------ values

    def _record(self, name: str, hit: bool) -> None:
        CACHE_LOOKUPS.labels("catalog", name, "hit" if hit else "miss").inc()

    async def get(self, name: str, key: str) -> Cached | None:
        try:
            raw = await self.cache.get(key)
        except Exception as exc:
            log.warning("cache read failed", extra={"error": repr(exc)})
            raw = None
        if raw is None:
            self._record(name, False)
            return None
        etag, _, body = raw.partition(b"\n")
        self._record(name, True)
        return Cached(etag.decode(), body)

    async def put(self, key: str, body: bytes) -> Cached:
        entry = Cached(etag_for(body), body)
        try:
            await self.cache.set(key, entry.etag.encode() + b"\n" + body, self.ttl_seconds)
        except Exception as exc:
            log.warning("cache write failed", extra={"error": repr(exc)})
        return entry

    # ------------------------------------------------------------ invalidation

    async def invalidate(self, course_ids: set[uuid.UUID]) -> None:
        keys = ["gen:list", *(f"gen:course:{course_id}" for course_id in course_ids)]
        try:
            for key in keys:
                await self.cache.hit(key, GENERATION_WINDOW_SECONDS)
        except Exception:
            # Entries expire after ttl_seconds anyway; say loudly that they may be stale until then.
            log.exception("cache invalidation failed", extra={"courses": [str(c) for c in course_ids]})

    def after_commit(self, session: AsyncSession) -> None:
        """Database.on_commit hook: bump the generations of whatever the transaction changed."""
        dirty: set[uuid.UUID] | None = session.info.pop(DIRTY_COURSES, None)
        if not dirty:
            return
        task = asyncio.get_running_loop().create_task(self.invalidate(dirty))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        session.info[INVALIDATION_TASK] = task

    @staticmethod
    async def settled(session: AsyncSession) -> None:
        """Wait for the invalidation a committed transaction started (a client sees its write)."""
        task: asyncio.Task[None] | None = session.info.pop(INVALIDATION_TASK, None)
        if task is not None:
            with contextlib.suppress(Exception):
                await task
