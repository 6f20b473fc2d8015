"""A background task woken by commits that left it work, and otherwise by a timeout.

The outbox relay and service workers (billing's receipts and refunds) share this: the loop wakes
right after a commit whose session carries the `flag` key in `session.info`, and stops cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy.ext.asyncio import AsyncSession

from common.db import Database


class CommitWokenLoop:
    """Subclasses implement `_run`, looping `while not self.stopping` and pausing with `pause`."""

    def __init__(self, db: Database, flag: str, task_name: str) -> None:
        self._flag = flag
        self._task_name = task_name
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stopping = False
        db.on_commit(self._after_commit)

    def _after_commit(self, session: AsyncSession) -> None:
        if session.info.pop(self._flag, False):
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._task_name)

    async def stop(self) -> None:
        self.stopping = True  # the loop ends even if the cancellation below is lost (see pause)
        self._wake.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def pause(self, seconds: float) -> None:
        """Until the next flagged commit or `seconds`, whichever comes first. A commit made while the
        loop was busy ends the pause at once, so its work is not left for the timeout.

        Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as the event is
        set (a commit wakes the loop while the app shuts down), and stop() then waited forever.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _run(self) -> None:
        raise NotImplementedError
