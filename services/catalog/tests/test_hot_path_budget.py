"""Regression guards of the catalog hot paths, in work per request rather than time: SQL
statements and commits of the course list and detail, anonymous and signed in. A change that adds a
query to one of them fails here; bench/hot_paths.py measures what they cost."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.resources import CatalogResources
from common.testing import database_work

from .conftest import Platform, create_course, set_status

LIST = "/api/catalog/courses"


async def _counted(platform: Platform, url: str, headers: dict[str, str] | None = None) -> tuple[Any, int, int]:
    with database_work(platform.catalog_app.state.runtime.db.engine) as work:
        response = await platform.client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return response, len(work.statements), work.commits


def _assets(detail: dict[str, Any]) -> list[str | None]:
    return [lesson["asset_id"] for section in detail["sections"] for lesson in section["lessons"]
            if lesson["kind"] == "video"]


async def test_cached_list_costs_no_query_anonymous_or_signed_in(
        platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = platform.catalog_app.state.runtime
    # One wall-clock second throughout: an anonymous copy is kept only within the second it was fetched in.
    monkeypatch.setattr(runtime.resources_as(CatalogResources).public_cache, "clock", lambda: 1_000_000.5)
    await platform.client.get(LIST)  # the first ask fills the cache
    cache = runtime.cache
    public_reads: list[str] = []
    for name in ("get", "get_versioned", "set"):
        def spy(key: str, *args: Any, _original: Any = getattr(cache, name)) -> Any:
            if key.startswith(("gen:", "pub:")):
                public_reads.append(key)
            return _original(key, *args)

        monkeypatch.setattr(cache, name, spy)
    for headers, round_trips in ((None, []), (platform.auth("student"), ["gen:list"])):
        public_reads.clear()
        _, statements, commits = await _counted(platform, LIST, headers)
        assert (statements, commits) == (0, 0)
        # Anonymous: this replica's copy (PublicCache.near), no cache round trip. Signed in: the
        # generation and the entry in one round trip.
        assert public_reads == round_trips, public_reads


async def test_signed_in_detail_is_one_lookup_over_the_cached_answer(platform: Platform) -> None:
    course = await create_course(platform, "Budgeted Course")
    assert (await set_status(platform, course["id"], "published")).status_code == 200
    url = f"{LIST}/{course['id']}"
    granted = await platform.client.post("/api/catalog/admin/enrollments/grant", headers=platform.auth("admin"),
                                         json={"user_id": platform.user_id("student"), "course_id": course["id"],
                                               "reason": "budget test"})
    assert granted.status_code == 200, granted.text
    anonymous = (await platform.client.get(url)).json()
    for who in ("student", "instructor", "other_instructor"):  # fill the public and full views
        await platform.client.get(url, headers=platform.auth(who))

    _, statements, commits = await _counted(platform, url)
    assert (statements, commits) == (0, 0)
    views = {}
    for who in ("student", "instructor", "other_instructor"):
        response, statements, commits = await _counted(platform, url, platform.auth(who))
        assert (statements, commits) == (1, 0), who
        assert response.headers["cache-control"] == "private, no-cache"
        views[who] = response.json()
    # Enrolled learner and instructor see every video's asset id; anyone else only the preview's.
    assert None not in _assets(views["student"]) and views["instructor"] == views["student"]
    assert views["other_instructor"] == anonymous and None in _assets(anonymous)
