"""The fault proxy's `hold` mode, in front of a local echo server: a connection freezes exactly where
its bytes say (the crash-point scenarios in tests/faults rely on it), and only that connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from common.faultproxy import FaultProxy, Hold


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(1024):
        writer.write(chunk)
        await writer.drain()
    writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = FaultProxy("127.0.0.1", server.sockets[0].getsockname()[1])
    await proxy.start()
    yield proxy
    await proxy.close()
    server.close()


async def _talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), timeout=2)


async def test_hold_freezes_the_connection_that_sends_the_sequence_before_its_last_part(proxy: FaultProxy) -> None:
    await proxy.set_mode("hold", hold=Hold((b"evt_42", b"COMMIT")))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    other_reader, other_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await _talk(reader, writer, b"SELECT ... evt_") == b"SELECT ... evt_"
    assert await _talk(reader, writer, b"42 ...") == b"42 ..."  # the first part, across two chunks
    assert await _talk(other_reader, other_writer, b"COMMIT") == b"COMMIT"  # not armed: flows
    writer.write(b"COMMIT")
    await writer.drain()
    with pytest.raises(TimeoutError):  # kept back: the echo never sees it
        await asyncio.wait_for(reader.read(10), timeout=0.5)
    assert proxy.held == [writer.get_extra_info("sockname")]
    assert await _talk(other_reader, other_writer, b"still up") == b"still up"

    await proxy.set_mode("up")  # the frozen connection is dropped, the COMMIT never delivered
    assert await asyncio.wait_for(reader.read(10), timeout=2) == b""
    assert await _talk(other_reader, other_writer, b"after") == b"after"
    for w in (writer, other_writer):
        w.close()


async def test_hold_from_the_server_delivers_the_matching_chunk_then_freezes(proxy: FaultProxy) -> None:
    await proxy.set_mode("hold", hold=Hold((b"order-7",), to_server=False, deliver=True))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await _talk(reader, writer, b"deliver order-7") == b"deliver order-7"  # got it...
    writer.write(b"ack")
    await writer.drain()
    with pytest.raises(TimeoutError):  # ...but its answer cannot leave
        await asyncio.wait_for(reader.read(10), timeout=0.5)
    assert len(proxy.held) == 1
    await proxy.set_mode("up")
    assert await asyncio.wait_for(reader.read(10), timeout=2) == b""
    writer.close()
