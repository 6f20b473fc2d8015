"""The closed-loop load generator and latency summary the benchmark scripts share.

`concurrency` workers each await `call()` back to back (a new call only when the previous one is
done), until `total` calls have been started and/or `seconds` have passed. `call()` returns an
HTTP status (>= 400 counts as an error) or a bool (False counts as an error).

Scripts import it as `from loadgen import ...`: `uv run python bench/<name>.py` puts bench/ first
on sys.path.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Call = Callable[[], Awaitable[int | bool]]
WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class Result:
    """Latencies (seconds) of one scenario, its wall-clock time and how many calls failed."""

    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    errors: int = 0

    def add(self, latency: float, ok: bool = True) -> None:
        self.latencies.append(latency)
        self.errors += not ok

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else 0.0

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000 if ordered else 0.0

    def line(self, name: str, width: int = 34) -> str:
        return (f"{name:<{width}} {self.throughput:8.1f} req/s   p50 {self.p50_ms:7.2f} ms"
                f"   p99 {self.p99_ms:7.2f} ms   n {self.count:6d}   errors {self.errors}")


async def run(call: Call, concurrency: int, *, total: int | None = None, seconds: float | None = None) -> Result:
    """Drive `call` with `concurrency` workers until `total` calls and/or `seconds` (whichever first)."""
    if total is None and seconds is None:
        raise ValueError("bound the run by total and/or seconds")
    result = Result()
    remaining = total
    deadline = time.perf_counter() + seconds if seconds is not None else None

    async def worker() -> None:
        nonlocal remaining
        while (remaining is None or remaining > 0) and (deadline is None or time.perf_counter() < deadline):
            if remaining is not None:
                remaining -= 1
            start = time.perf_counter()
            status = await call()
            ok = status if isinstance(status, bool) else status < 400
            result.add(time.perf_counter() - start, ok)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result


def wrk(url: str, *, seconds: float, connections: int, threads: int = 2, headers: dict[str, str] | None = None,
        script: str | None = None, timeout_seconds: int = 30) -> dict[str, float]:
    """One `wrk --latency` run: rps, p50/p99 in ms, and the non-2xx/3xx and socket error counts.

    `script` is a Lua file (POST bodies, requests spread over many URLs or tokens). wrk's own 2 s
    timeout would turn a slow answer into a socket error: slow answers are measured instead."""
    args = ["wrk", "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
            "--timeout", f"{timeout_seconds}s"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if script:
        args += ["-s", script]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        return float(match.group(1)) * WRK_UNITS[match.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    assert rps, out
    return {"rps": float(rps.group(1)), "p50": latency("50"), "p99": latency("99"),
            "errors": float(non2xx.group(1)) if non2xx else 0.0,
            "socket_errors": float(sum(int(g) for g in sockets.groups())) if sockets else 0.0}
