"""Regression guards of the hot paths, in work per request rather than time: SQL
statements, commits and calls to catalog for a playback token and both playlists. A change that
adds a round trip to one of them fails here; bench/hot_paths.py measures what they cost."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from common.testing import database_work
from playback.models import AccessLog
from playback.resources import PlaybackResources

from .conftest import PAID_LESSON, Platform, _serve, stub_catalog


@pytest.fixture(scope="module")
async def budget() -> AsyncIterator[Platform]:
    async with _serve(stub_catalog()) as served:
        yield served


async def _enrolled(platform: Platform) -> dict[str, str]:
    user_id, headers = await platform.new_user()
    await platform.deliver("granted", user_id, version=1)  # the read model holds the entitlement
    return headers


async def test_token_is_one_read_one_write_and_no_peer_call(budget: Platform) -> None:
    headers = await _enrolled(budget)
    catalog = budget.fake_catalog
    assert catalog is not None
    first = await budget.client.post("/api/playback/token", json={"lesson_id": str(PAID_LESSON)}, headers=headers)
    assert first.status_code == 200, first.text  # the lesson is now cached
    calls = len(catalog.calls)
    with database_work(budget.runtime.db.engine) as work:
        response = await budget.client.post("/api/playback/token", json={"lesson_id": str(PAID_LESSON)},
                                            headers=headers)
    assert response.status_code == 200, response.text
    reads = [s for s in work.statements if s.lstrip().upper().startswith("SELECT")]
    writes = [s for s in work.statements if s.lstrip().upper().startswith("WITH")]
    # Entitlement + resume point in one read; session, watermark and access-log rows in one
    # statement that commits as it completes (no BEGIN/COMMIT round trips around it).
    assert len(reads) == 1 and len(writes) == 1 and len(work.statements) == 2, work.statements
    assert all(table in writes[0] for table in ("playback_sessions", "watermarks_issued", "access_log")), writes
    assert work.commits == 0, work.commits  # autocommit: the write commits as it completes
    assert len(catalog.calls) == calls, catalog.calls[calls:]
    # Committed before the answer: another connection sees the grant's audit row.
    async with budget.runtime.db.session() as session:
        audited = await session.scalar(sa.select(sa.func.count()).select_from(AccessLog).where(
            AccessLog.session_id == uuid.UUID(response.json()["session_id"]), AccessLog.action == "token",
            AccessLog.decision == "granted"))
    assert audited == 1


async def test_a_token_past_the_stream_limit_costs_no_more(budget: Platform) -> None:
    """At the limit (end_oldest) the replaced session is ended inside the one write: no extra read
    of the holders, one registry call."""
    headers = await _enrolled(budget)
    resources = budget.runtime.resources_as(PlaybackResources)
    for _ in range(2):  # both slots taken
        assert (await budget.client.post("/api/playback/token", json={"lesson_id": str(PAID_LESSON)},
                                         headers=headers)).status_code == 200
    registry = resources.streams
    admissions: list[str] = []
    admit = registry.admit

    async def counting_admit(*args: Any, **kwargs: Any) -> Any:
        admissions.append(args[1])
        return await admit(*args, **kwargs)

    registry.admit = counting_admit  # type: ignore[method-assign]
    try:
        with database_work(budget.runtime.db.engine) as work:
            response = await budget.client.post("/api/playback/token", json={"lesson_id": str(PAID_LESSON)},
                                                headers=headers)
    finally:
        del registry.admit
    assert response.status_code == 200, response.text
    assert len(work.statements) == 2 and work.commits == 0, work.statements
    assert "playback_sessions" in work.statements[1] and "UPDATE" in work.statements[1].upper()
    assert len(admissions) == 1, admissions


async def test_playlists_are_one_read_no_commit_and_no_peer_call(budget: Platform) -> None:
    headers = await _enrolled(budget)
    catalog = budget.fake_catalog
    assert catalog is not None
    issued = (await budget.client.post("/api/playback/token", json={"lesson_id": str(PAID_LESSON)},
                                       headers=headers)).json()
    master = issued["manifest_url"].removeprefix("http://testserver")
    variant = master.replace("master.m3u8", "360p/index.m3u8")
    for url in (master, variant, master, variant):
        calls = len(catalog.calls)
        with database_work(budget.runtime.db.engine) as work:
            response = await budget.client.get(url)
        assert response.status_code == 200, response.text
        assert len(work.statements) == 1 and work.commits == 0, work.statements
        assert len(catalog.calls) == calls, catalog.calls[calls:]
    # The grants still reach the access log (in batches): one row per playlist fetched.
    await budget.runtime.resources_as(PlaybackResources).access_records.flush()
    async with budget.runtime.db.session() as session:
        granted = await session.scalar(sa.select(sa.func.count()).select_from(AccessLog).where(
            AccessLog.session_id == uuid.UUID(issued["session_id"]), AccessLog.action == "manifest"))
    assert granted == 4
