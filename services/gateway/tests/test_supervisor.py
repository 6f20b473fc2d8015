"""`make up`'s supervisor, the real loop (`run_supervisor`, in its own process as `make up` runs it)
over a stand-in service: a sleeping process, so restarts take milliseconds instead of a service's
start-up. Killed, it comes back under a new pid, later each time it dies again soon, and `make down`
stops what the supervisor started."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gateway.distributed import Topology
from gateway.processes import alive

# The supervisor as `python -m gateway.distributed supervise` runs it, but spawning sleepers.
SUPERVISOR = """
import subprocess, sys
from pathlib import Path
from gateway.distributed import Topology

class Sleepers(Topology):
    def _spawn(self, name):
        return subprocess.Popen(["sleep", "600"], start_new_session=True).pid

topology = Sleepers.load(Path(sys.argv[1]))
topology.run_supervisor(check_every=0.02, first_backoff=0.2, healthy_after=float(sys.argv[2]))
"""
HEALTHY_AFTER = 0.8


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "600"], start_new_session=True)


class Events:
    """The supervisor's JSON lines, with the moment each arrived."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for raw in stream:
            with self._changed:
                self.lines.append((time.monotonic(), json.loads(raw)))
                self._changed.notify_all()

    def wait(self, count: int, timeout: float = 10) -> list[tuple[float, dict[str, Any]]]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.lines) >= count, timeout), self.lines
            return self.lines[:count]


def _pid(run_dir: Path) -> int:
    saved = Topology.load(run_dir)
    assert saved is not None
    return saved.pids["catalog-0"]


def test_a_dead_process_is_restarted_with_backoff_and_make_down_stops_the_new_one(tmp_path: Path) -> None:
    first = _sleeper()
    topology = Topology(run_dir=tmp_path, pids={"catalog-0": first.pid})
    topology.save()
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(tmp_path), str(HEALTHY_AFTER)],
                                  stdout=subprocess.PIPE, text=True, start_new_session=True)
    events = Events(supervisor.stdout)
    pids = [first.pid]
    try:
        time.sleep(0.3)  # it dies while supervised (had it died earlier, the first check sees it dead)
        # Three deaths in a row (each soon after the last start), then one after a healthy run.
        for death, pause in enumerate([0.0, 0.0, 0.0, HEALTHY_AFTER + 0.3]):
            time.sleep(pause)
            os.kill(pids[-1], signal.SIGKILL)
            if death == 0:
                first.wait(5)
            exited, restarted = events.wait(2 * death + 2)[-2:]
            assert exited[1] == {"event": "process exited", "process": "catalog-0", "pid": pids[-1],
                                 "restart_in_seconds": exited[1]["restart_in_seconds"]}
            assert restarted[1]["event"] == "process restarted"
            assert restarted[0] - exited[0] >= exited[1]["restart_in_seconds"] / 2  # it did wait
            pids.append(restarted[1]["pid"])
            assert _pid(tmp_path) == pids[-1] and alive(pids[-1])
        delays = [line["restart_in_seconds"] for _, line in events.lines if line["event"] == "process exited"]
        assert delays == [0.2, 0.4, 0.8, 0.2]  # doubling, and reset after a healthy run
        assert len(set(pids)) == 5

        # `make down`: the supervisor first (or it would restart what is being stopped), then the
        # processes it started, which only state.json knows.
        saved = Topology.load(tmp_path)
        assert saved is not None
        saved.supervisor_pid = supervisor.pid
        saved.stop()
        assert supervisor.wait(5) == 0
        assert not alive(pids[-1])
        assert not (tmp_path / "state.json").exists()
    finally:
        for pid in (supervisor.pid, pids[-1]):  # left running only if the test failed before `down`
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        supervisor.wait(5)
