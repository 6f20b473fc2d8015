"""Catalog's answers playback needs (lessons, a course's lessons, enrollment checks), cached
briefly; typed by contracts.peers."""

from __future__ import annotations

import uuid

from common.cache import Cache
from common.errors import NotFound
from common.http import ServiceClient
from contracts.peers import CatalogLesson, CourseLessons, EnrollmentCheck

from .outcomes import _Catalog


async def _cached_catalog_read(model: type[_Catalog], *, catalog: ServiceClient, cache: Cache, path: str,
                               cache_seconds: int, missing: NotFound) -> _Catalog:
    """GET one of catalog's internal resources, validated into `model` and cached briefly (it changes
    rarely and plays need it); 404 -> `missing`, anything else unexpected -> 503."""
    key = f"playback:catalog:{path}"
    cached = await cache.get(key)
    if cached is not None:
        return model.model_validate_json(cached)
    found = await catalog.get_model(path, model, missing=missing)
    await cache.set(key, found.model_dump_json().encode(), cache_seconds)
    return found


async def get_lesson(*, catalog: ServiceClient, cache: Cache, lesson_id: uuid.UUID,
                     cache_seconds: int) -> CatalogLesson:
    """Catalog's view of a lesson (GET /internal/lessons/{id})."""
    return await _cached_catalog_read(CatalogLesson, catalog=catalog, cache=cache,
                                      path=f"/internal/lessons/{lesson_id}", cache_seconds=cache_seconds,
                                      missing=NotFound("lesson not found", code="lesson_not_found"))


async def get_course_lessons(*, catalog: ServiceClient, cache: Cache, course_id: uuid.UUID,
                             cache_seconds: int) -> CourseLessons:
    """Catalog's lesson list of a course (GET /internal/courses/{id}/lessons)."""
    return await _cached_catalog_read(CourseLessons, catalog=catalog, cache=cache,
                                      path=f"/internal/courses/{course_id}/lessons", cache_seconds=cache_seconds,
                                      missing=NotFound("course not found", code="course_not_found"))


async def catalog_says_enrolled(*, catalog: ServiceClient, cache: Cache, user_id: uuid.UUID,
                                course_id: uuid.UUID, cache_seconds: int, read_model_version: int) -> bool:
    """Ask catalog directly: covers the gap before the grant event reaches the read model.

    Only "yes" is cached, under a key that carries the read model's version of the pair: a revoke
    event bumps the version, so a cached "yes" can never outlive it (not even one written by a
    check that was in flight while the event was applied).
    """
    key = f"playback:enrolled:{user_id}:{course_id}:v{read_model_version}"
    if cache_seconds and await cache.get(key) == b"1":
        return True
    check = await catalog.get_model("/internal/enrollments/check", EnrollmentCheck,
                                    params={"user_id": str(user_id), "course_id": str(course_id)})
    enrolled = check.enrolled
    if enrolled and cache_seconds:
        await cache.set(key, b"1", cache_seconds)
    return enrolled
