"""Local processes of the distributed topology: ports to listen on, and whether a pid still runs
(`make up` and `make down` are different processes, so a service is often not our child)."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
from pathlib import Path

_handed_out: set[int] = set()


def free_port() -> int:
    """A listening port below the kernel's ephemeral range.

    bind(0) hands out ephemeral ports, and those are what every outgoing connection (to
    PostgreSQL, Redis, RabbitMQ) also takes: a port chosen that way can be gone by the time the
    service binds it.
    """
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, max(20001, ephemeral_low))
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def alive(pid: int) -> bool:
    """True while the process runs (a zombie child of ours is reaped and counts as gone)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError, IndexError):  # a zombie another process has not reaped yet
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def wait_gone(pid: int, deadline: float) -> bool:
    """Wait for a process to exit: reap it if it is our child (`make up` then `make down` are two
    different processes, so often it is not)."""
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return True
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.1)
    return False
