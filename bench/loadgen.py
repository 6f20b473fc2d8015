"""The closed-loop load generator and latency summary the benchmark scripts share.

`concurrency` workers each await `call()` back to back (a new call only when the previous one is
done), until `total` calls have been started and/or `seconds` have passed. `call()` returns an
HTTP status (>= 400 counts as an error) or a bool (False counts as an error).

Scripts import it as `from loadgen import ...`: `uv run python bench/<name>.py` puts bench/ first
on sys.path.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Call = Callable[[], Awaitable[int | bool]]


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
