"""Listing on PostgreSQL: full-text relevance (weighted tsvector), filters, sort and paging."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from catalog_search_fixture import create_fixture, names
from sqlalchemy.dialects import postgresql

from catalog.models import Course
from catalog.search import CourseQuery, search_match

from .conftest import Platform, create_course, set_status

LIST = "/api/catalog/courses"


@pytest.fixture(scope="module")
async def fixture_ids(platform: Platform) -> dict[str, str]:
    return await create_fixture(platform.catalog_app.state.runtime.db, uuid.UUID(platform.user_id("instructor")))


async def search(p: Platform, **params: Any) -> dict[str, Any]:
    response = await p.client.get(LIST, params={"page_size": 100, **params})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_relevance_title_over_subtitle_and_tags_over_description(platform: Platform,
                                                                       fixture_ids: dict[str, str]) -> None:
    found = names(fixture_ids, await search(platform, q="quokka"))
    assert found[0] == "in_title"
    assert set(found[1:3]) == {"in_subtitle", "in_tags"}
    assert found[3:] == ["in_description"]  # and "unrelated" is not found at all

    both_words = await search(platform, q="quokka encoding")
    assert names(fixture_ids, both_words) == ["in_title", "in_subtitle"]  # every word must match
    assert both_words["total"] == 2
    stemmed = names(fixture_ids, await search(platform, q="encodings"))  # English stemming
    assert stemmed == ["in_title", "in_subtitle"]
    assert set(names(fixture_ids, await search(platform, q="quokka -encoding"))) == {"in_tags", "in_description"}
    assert (await search(platform, q="nothing-matches-this-zzz"))["total"] == 0
    # An explicit sort beats relevance.
    assert names(fixture_ids, await search(platform, q="quokka", sort="price")) == [
        "in_subtitle", "in_description", "in_tags", "in_title"]


async def test_filters_sort_and_paging(platform: Platform, fixture_ids: dict[str, str]) -> None:
    assert names(fixture_ids, await search(platform, level="beginner", sort="title")) == [
        "in_description", "in_subtitle"]
    assert names(fixture_ids, await search(platform, language="de")) == ["in_tags"]
    assert names(fixture_ids, await search(platform, price="free")) == ["in_subtitle"]
    paid = names(fixture_ids, await search(platform, price="paid", sort="price_desc"))
    assert paid == ["in_title", "unrelated", "in_tags", "in_description"]
    assert names(fixture_ids, await search(platform, sort="title", q="quokka", level="beginner")) == [
        "in_description", "in_subtitle"]
    mine = await search(platform, instructor=platform.user_id("instructor"))
    assert set(fixture_ids.values()) <= {item["id"] for item in mine["items"]}
    assert (await search(platform, instructor=str(uuid.uuid4())))["total"] == 0
    assert (await search(platform, category="video-engineering"))["total"] == 2  # the demo courses
    assert (await search(platform, category="no-such-category"))["total"] == 0
    newest = names(fixture_ids, await search(platform))
    assert newest == list(reversed(list(fixture_ids)))  # newest first by default

    pages = [await search(platform, sort="title", page=page, page_size=2) for page in (1, 2, 3, 4, 5)]
    titles = [item["title"] for page in pages for item in page["items"]]
    assert titles == sorted(titles, key=str.lower) and len(titles) == pages[0]["total"] == 7
    assert len(pages[3]["items"]) == 1 and pages[4]["items"] == []

    for bad in ({"page_size": 101}, {"sort": "popularity"}, {"price": "cheap"}, {"level": "expert"},
                {"language": "english"}, {"instructor": "x"}, {"q": "x" * 201}, {"category": "Not A Slug"}):
        response = await platform.client.get(LIST, params=bad)
        assert response.status_code == 422, bad


async def test_each_course_is_stemmed_in_its_own_language(platform: Platform,
                                                          fixture_ids: dict[str, str]) -> None:
    db = platform.catalog_app.state.runtime.db
    async with db.session() as session:
        # The fixture is meaningful: only German stemming relates "Datenbank" to "Datenbanken".
        for config, expected in (("english", False), ("simple", False), ("german", True)):
            matches = await session.scalar(sa.select(sa.func.to_tsvector(sa.literal_column(f"'{config}'::regconfig"),
                                                                         "Datenbanken").op("@@")(
                sa.func.websearch_to_tsquery(sa.literal_column(f"'{config}'::regconfig"), "Datenbank"))))
            assert matches is expected, config
    german = await create_course(platform, "Datenbanken für Einsteiger", language="de", subtitle="Grundlagen")
    assert (await set_status(platform, german["id"], "published")).status_code == 200

    def found(listing: dict[str, Any]) -> bool:
        return german["id"] in [item["id"] for item in listing["items"]]

    assert found(await search(platform, q="Datenbank"))  # no language filter: every configuration
    assert found(await search(platform, q="Datenbank", language="de"))
    assert not found(await search(platform, q="Datenbank", language="en"))
    assert found(await search(platform, q="Einsteiger Datenbank"))
    # English courses keep English stemming when the query is not narrowed to a language.
    assert names(fixture_ids, await search(platform, q="encodings")) == ["in_title", "in_subtitle"]

    # The stored vector follows the course's language when it changes.
    changed = await platform.client.patch(f"{LIST}/{german['id']}", json={"language": "en"},
                                          headers=platform.auth("instructor"))
    assert changed.status_code == 200
    assert not found(await search(platform, q="Datenbank"))
    assert found(await search(platform, q="Datenbanken"))


@pytest.mark.parametrize("language", [None, "de"])
async def test_search_uses_the_gin_index(platform: Platform, fixture_ids: dict[str, str],
                                         language: str | None) -> None:
    """The search conditions can be served by the GIN index (with no other index to pick and
    sequential scans priced out, the planner uses it if, and only if, it can)."""
    conditions, _ = search_match(CourseQuery(q="quokka encoding", language=language), "postgresql")
    compiled = sa.select(Course.id).where(*conditions).compile(dialect=postgresql.dialect(),
                                                               compile_kwargs={"literal_binds": True})
    async with platform.catalog_app.state.runtime.db.transaction() as session:
        await session.execute(sa.text("SET LOCAL enable_seqscan = off"))  # a tiny table: force the choice
        plan = "\n".join((await session.scalars(sa.text(f"EXPLAIN {compiled}"))).all())
    assert "ix_courses_search_vector" in plan, plan
