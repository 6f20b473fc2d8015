"""A TCP fault proxy for the fault-injection tests: put it between a service and PostgreSQL, Redis or
RabbitMQ (point the service's URL at `proxy.port`) and break the link on demand.

Modes: `up` (forward), `cut` (drop every connection; new ones are accepted and closed at once, as a
broker restart or a reset link looks), `refuse` (drop every connection and stop listening: the
client gets ECONNREFUSED), `stall` (a blackhole: connections stay open, no byte goes through, new
ones are accepted and then silent), `slow` (every chunk delayed by `delay` seconds), `flaky` (each
chunk kills its connection with `probability`), `hold` (forward, but freeze each connection that
carries a given sequence of bytes, see `Hold`: a peer stopped at a chosen point of its conversation,
e.g. just before its COMMIT). Going back `up` from `stall` or `hold` closes the stalled or frozen
connections, as a TCP stack gives up on a long partition.

`FaultProxy` lives on an event loop; `ThreadedFaultProxy` runs one on its own thread for the
synchronous end-to-end tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

Mode = Literal["up", "cut", "refuse", "stall", "slow", "flaky", "hold"]
T = TypeVar("T")


@dataclass(frozen=True)
class Hold:
    """Freeze a connection at a point of its conversation found by content, not by time.

    A connection that carries every byte string of `sequence`, in this order, in one direction
    (`to_server`: from the client) stops there both ways: `deliver` says whether the chunk with the
    last one still goes through (the peer got it) or is kept back (it never left). Nothing else
    passes until the proxy leaves `hold` mode, which drops the frozen connections. E.g. a service's
    database connection frozen before its COMMIT, or a consumer's broker connection frozen just
    after a delivery so its ack cannot leave.
    """

    sequence: tuple[bytes, ...]
    to_server: bool = True
    deliver: bool = False


class _Link:
    """One proxied connection: its two writers, its client's address and its progress in a hold."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.writers = (client, upstream)
        peer = client.get_extra_info("peername") or ("", 0)
        self.peer: tuple[str, int] = (str(peer[0]), int(peer[1]))
        self.frozen = False
        self.released = asyncio.Event()
        self._hold: Hold | None = None
        self._found = 0
        self._tail = b""

    def completes(self, hold: Hold, chunk: bytes) -> bool:
        """Whether this chunk completes the hold's sequence (matches may straddle chunks)."""
        if hold is not self._hold:
            self._hold, self._found, self._tail = hold, 0, b""
        data, start = self._tail + chunk, 0
        while self._found < len(hold.sequence):
            at = data.find(hold.sequence[self._found], start)
            if at < 0:
                break
            start = at + len(hold.sequence[self._found])
            self._found += 1
        if self._found == len(hold.sequence):
            return True
        keep = len(hold.sequence[self._found]) - 1
        self._tail = data[max(start, len(data) - keep):] if keep else b""
        return False


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1",
                 listen_port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.port = listen_port
        self.mode: Mode = "up"
        self.delay = 0.0
        self.probability = 0.0
        self.connections_accepted = 0
        self.hold: Hold | None = None
        # The client addresses of the connections frozen by the current hold (to find their process).
        self.held: list[tuple[str, int]] = []
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()  # clear while stalled
        self._flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        await self._stop_listening()
        self._drop_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def set_mode(self, mode: Mode, *, delay: float = 0.5, probability: float = 0.2,
                       hold: Hold | None = None) -> None:
        if mode == "hold" and hold is None:
            raise ValueError("hold mode needs a Hold")
        previous, self.mode = self.mode, mode
        self.delay, self.probability = delay, probability
        if previous == "hold":
            self._drop_frozen()
        self.hold = hold if mode == "hold" else None
        self.held = []
        if mode in ("cut", "refuse") or (previous == "stall" and mode == "up"):
            self._drop_all()
        if mode == "stall":
            self._flowing.clear()
        else:
            self._flowing.set()
        if mode == "refuse":
            await self._stop_listening()
        elif self._server is None:
            await self.start()

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1)
            self._server = None

    def _abort(self, writers: Iterable[asyncio.StreamWriter]) -> None:
        """Reset these connections (no FIN: the peer sees the link die) and forget them."""
        for writer in list(writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
            self._writers.discard(writer)

    def _drop_all(self) -> None:
        self._abort(self._writers)

    def _drop_frozen(self) -> None:
        for link in [link for link in self._links if link.frozen]:
            self._abort(link.writers)
            link.released.set()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        if self.mode == "cut":
            client_writer.transport.abort()
            return
        self._writers.add(client_writer)
        try:
            if self.mode == "stall":  # silent: the client waits for its own timeout
                await self._flowing.wait()
                if client_writer not in self._writers:
                    return
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            self._writers.discard(client_writer)
            return
        self._writers.add(upstream_writer)
        link = _Link(client_writer, upstream_writer)
        self._links.add(link)
        try:
            await asyncio.gather(self._pipe(client_reader, upstream_writer, link, to_server=True),
                                 self._pipe(upstream_reader, client_writer, link, to_server=False),
                                 return_exceptions=True)
        finally:
            self._links.discard(link)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link, *,
                    to_server: bool) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                await self._flowing.wait()  # stalled: hold the bytes, nothing goes through
                if link.frozen:
                    await link.released.wait()
                if writer not in self._writers:
                    break
                hold = self.hold
                if hold is not None and hold.to_server == to_server and link.completes(hold, chunk):
                    link.frozen = True
                    self.held.append(link.peer)
                    if not hold.deliver:
                        await link.released.wait()
                        break
                if self.mode == "slow":
                    await asyncio.sleep(self.delay)
                elif self.mode == "flaky" and random.random() < self.probability:
                    break
                writer.write(chunk)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._abort(link.writers)
            if task is not None:
                self._tasks.discard(task)


class ThreadedFaultProxy:
    """A FaultProxy on its own event loop thread, driven from synchronous code."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        self.proxy = FaultProxy(target_host, target_port)
        self._call(self.proxy.start())

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def mode(self) -> Mode:
        return self.proxy.mode

    def set_mode(self, mode: Mode, *, delay: float = 0.5, probability: float = 0.2, hold: Hold | None = None) -> None:
        self._call(self.proxy.set_mode(mode, delay=delay, probability=probability, hold=hold))

    @property
    def held(self) -> list[tuple[str, int]]:
        """Client addresses of the connections the current hold froze."""
        return list(self.proxy.held)

    def close(self) -> None:
        self._call(self.proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
