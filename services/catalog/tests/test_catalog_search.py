"""Listing on PostgreSQL: full-text relevance (weighted tsvector), filters, sort and paging."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from catalog_search_fixture import create_fixture, names

from .conftest import Platform

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
