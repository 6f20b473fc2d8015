"""Cached public (anonymous) catalog responses, in Redis (distributed) or memory (embedded).

Keys carry generation numbers instead of being deleted: a list answer lives under the list
generation, a course detail under that course's generation. A write bumps the generations after
its transaction commits, so a reader that raced the write can only have stored its stale answer
under a generation nobody reads any more. Entries also expire (`ttl_seconds`) as a safety net.

Use cases mark what they changed in `session.info` (`mark_dirty`); the after-commit hook bumps
the generations and routes await that before answering, so a client sees its own write.

Anonymous answers are also kept in the replica's memory (`near`) within the wall-clock window of
`near_seconds` they were fetched in (1 s, their `max-age`), exactly as the edge's microcache keys
its entries by the wall-clock second: both turn over at the same instant, so a change elsewhere is
still public within a second, edge included, now without a Redis round trip per anonymous read. A
write on this replica empties it at once. Signed-in callers never read it (they see their writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache
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


@dataclass(frozen=True)
class NearTicket:
    """When a read of the replica's copy started: the local write count and the wall-clock window."""

    epoch: int
    window: int


@dataclass(frozen=True)
class Slot:
    """Where an answer is cached: its generation counter and its key, `{}` standing for the generation."""

    generation_key: str
    template: str


class PublicCache:
    def __init__(self, cache: Cache, ttl_seconds: float, *, near_seconds: float = 0, near_entries: int = 1024,
                 clock: Callable[[], float] = time.time) -> None:
        self.cache = cache
        self.ttl_seconds = ttl_seconds
        self.enabled = ttl_seconds > 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.near_seconds = near_seconds
        self.clock = clock  # tests stop it
        self._near: TTLCache[str, tuple[int, Cached]] | None = (
            TTLCache(maxsize=near_entries, ttl=near_seconds) if self.enabled and near_seconds > 0 else None)
        self._near_epoch = 0  # bumped by every local invalidation: a read that raced one keeps nothing

    def _window(self) -> int:
        """The wall-clock window of `near_seconds` it is now (the edge's microcache key has the second)."""
        return int(self.clock() // self.near_seconds)

    # ------------------------------------------------------------ keys

    @staticmethod
    def list_slot(query_key: str) -> Slot:
        digest = hashlib.sha256(query_key.encode()).hexdigest()[:24]
        return Slot("gen:list", f"pub:list:{{}}:{digest}")

    @staticmethod
    def course_slot(course_id: uuid.UUID, *, full: bool = False) -> Slot:
        """The full view of a course (entitled callers only) lives beside its public one, under the
        same generation."""
        return Slot(f"gen:course:{course_id}", f"pub:course:{course_id}:{{}}" + (":full" if full else ""))

    @staticmethod
    def slug_slot(slug: str) -> Slot:
        # Slug changes bump the list generation, so a slug entry follows it.
        return Slot("gen:list", f"pub:slug:{{}}:{slug}")

    # ------------------------------------------------------------ values

    def _record(self, name: str, hit: bool) -> None:
        CACHE_LOOKUPS.labels("catalog", name, "hit" if hit else "miss").inc()

    async def lookup(self, name: str, slot: Slot) -> tuple[str | None, Cached | None]:
        """The entry's key under the current generation and the entry, read in one round trip.
        (None, None) when caching is off or the cache is unreachable: the caller then skips it."""
        if not self.enabled:
            return None, None
        try:
            generation, raw = await self.cache.get_versioned(slot.generation_key, slot.template)
        except Exception as exc:  # a cache outage must not fail public reads
            log.warning("cache read failed", extra={"error": repr(exc)})
            return None, None
        key = slot.template.replace("{}", str(generation), 1)
        self._record(name, raw is not None)
        if raw is None:
            return key, None
        etag, _, body = raw.partition(b"\n")
        return key, Cached(etag.decode(), body)

    def near(self, name: str, slot: Slot) -> tuple[NearTicket, Cached | None]:
        """This replica's copy of an anonymous answer, and the ticket to hand back to `keep_near`;
        a hit counts as a hit of `name`, as one from Redis does."""
        ticket = NearTicket(self._near_epoch, self._window() if self._near is not None else 0)
        kept = self._near.get(slot.template) if self._near is not None else None
        if kept is None or kept[0] != ticket.window:
            return ticket, None
        self._record(name, True)
        return ticket, kept[1]

    def keep_near(self, slot: Slot, entry: Cached, ticket: NearTicket) -> None:
        """Keep an answer read since `near` gave the ticket: only if no local write happened and the
        window did not turn meanwhile (it belongs to the window its read started in, as at the edge)."""
        if self._near is not None and ticket.epoch == self._near_epoch and ticket.window == self._window():
            self._near[slot.template] = (ticket.window, entry)

    async def put(self, key: str, body: bytes) -> Cached:
        entry = Cached(etag_for(body), body)
        try:
            await self.cache.set(key, entry.etag.encode() + b"\n" + body, self.ttl_seconds)
        except Exception as exc:
            log.warning("cache write failed", extra={"error": repr(exc)})
        return entry

    # ------------------------------------------------------------ invalidation

    async def invalidate(self, course_ids: set[uuid.UUID]) -> None:
        self._near_epoch += 1
        if self._near is not None:
            self._near.clear()
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
