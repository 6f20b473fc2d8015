"""The batched access log on PostgreSQL: a flush writes what was buffered when it started (grants
that arrive meanwhile wait for the next one), through COPY, and keeps what it could not write."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from common.testing import database_work
from playback.access_records import AccessRecorder
from playback.models import AccessLog
from playback.resources import PlaybackResources

from .conftest import ASSET_ID, PAID_LESSON, Platform


@pytest.fixture(scope="module")
async def stopped_recorder(platform: Platform) -> AccessRecorder:
    """The service's recorder with its loop stopped: only the test flushes, so what each flush
    writes does not depend on when the loop's timer fires."""
    recorder = platform.runtime.resources_as(PlaybackResources).access_records
    await recorder.stop()
    return recorder


@pytest.fixture
def recorder(stopped_recorder: AccessRecorder) -> Iterator[AccessRecorder]:
    yield stopped_recorder
    stopped_recorder._rows.clear()  # what a failed test left buffered is not the next test's batch


def _grant(recorder: AccessRecorder, session_id: uuid.UUID, count: int) -> None:
    for _ in range(count):
        recorder.grant(user_id=uuid.uuid4(), lesson_id=PAID_LESSON, asset_id=ASSET_ID, session_id=session_id,
                       action="manifest", reason="manifest:enrolled")


async def _logged(platform: Platform, session_id: uuid.UUID) -> int:
    async with platform.runtime.db.session() as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(AccessLog).where(
            AccessLog.session_id == session_id, AccessLog.action == "manifest"))
    return int(count or 0)


def _watch_writes(recorder: AccessRecorder, monkeypatch: pytest.MonkeyPatch, *,
                  during: dict[int, Callable[[], None]]) -> list[list[uuid.UUID]]:
    """The session ids of each batch `_write` is given; `during[n]` runs as the n-th write starts
    (grants served meanwhile, or an outage: it may raise)."""
    batches: list[list[uuid.UUID]] = []
    write = recorder._write

    async def watched(batch: list[dict[str, Any]]) -> None:
        batches.append([row["session_id"] for row in batch])
        if len(batches) in during:
            during[len(batches)]()
        await write(batch)

    monkeypatch.setattr(recorder, "_write", watched)
    return batches


async def test_grants_arriving_during_a_write_wait_for_the_next_flush(
        platform: Platform, recorder: AccessRecorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """Draining until the buffer was empty wrote a transaction per handful of grants under load."""
    first, later = uuid.uuid4(), uuid.uuid4()
    _grant(recorder, first, 3)
    batches = _watch_writes(recorder, monkeypatch, during={1: lambda: _grant(recorder, later, 2)})
    with database_work(platform.runtime.db.engine) as work:
        await recorder.flush()
    assert batches == [[first] * 3]
    # One transaction; the rows went by COPY (on the driver's connection), not an INSERT.
    assert work.commits == 1, work.commits
    assert not [s for s in work.statements if "INSERT" in s.upper()], work.statements
    assert await _logged(platform, first) == 3 and await _logged(platform, later) == 0
    await recorder.flush()
    assert batches == [[first] * 3, [later] * 2]
    assert await _logged(platform, first) == 3 and await _logged(platform, later) == 2


async def test_a_flush_writes_its_snapshot_in_batches(
        platform: Platform, recorder: AccessRecorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder, "max_batch", 2)
    first, later = uuid.uuid4(), uuid.uuid4()
    _grant(recorder, first, 3)
    batches = _watch_writes(recorder, monkeypatch, during={1: lambda: _grant(recorder, later, 1)})
    await recorder.flush()
    assert batches == [[first] * 2, [first]]  # the grant served meanwhile did not join the second batch
    await recorder.flush()
    assert batches[2:] == [[later]]
    assert await _logged(platform, first) == 3 and await _logged(platform, later) == 1


async def test_a_failed_write_keeps_the_whole_snapshot_for_the_next_flush(
        platform: Platform, recorder: AccessRecorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder, "max_batch", 2)
    first, later = uuid.uuid4(), uuid.uuid4()
    _grant(recorder, first, 5)  # batches of 2, 2 and 1

    def outage() -> None:
        _grant(recorder, later, 1)  # served while the database is unreachable
        raise ConnectionError("database unreachable")

    batches = _watch_writes(recorder, monkeypatch, during={2: outage})
    with pytest.raises(ConnectionError):
        await recorder.flush()
    assert batches == [[first] * 2, [first] * 2]
    assert await _logged(platform, first) == 2  # the first batch was committed
    # The failed batch and the rest of the snapshot are kept, ahead of the grant served meanwhile.
    await recorder.flush()
    assert batches[2:] == [[first] * 2, [first, later]]
    assert await _logged(platform, first) == 5 and await _logged(platform, later) == 1
