"""Supervision of ``paycore serve --workers N``: a worker that dies is started
again after a back-off (doubling from ``backoff_min`` up to ``backoff_max``)
and counted in ``paycore_worker_restarts_total``; ``crash_loop_restarts``
restarts within ``crash_loop_window`` seconds is a crash loop, which the
supervisor writes to a small state file every worker's ``/readyz`` reads
(``PAYCORE_SUPERVISOR_STATE``), so a load balancer stops sending traffic to a
node whose workers keep dying instead of seeing it green.
"""
from __future__ import annotations

import logging
import multiprocessing.connection
import os
import time
from collections import deque
from typing import Any, Callable

import orjson

from paycore.metrics import Metrics

log = logging.getLogger("paycore.supervisor")
STATE_ENV = "PAYCORE_SUPERVISOR_STATE"


def crash_loop() -> bool:
    """Is this node's supervisor seeing a crash loop? (False without a supervisor.)"""
    path = os.environ.get(STATE_ENV)
    if not path:
        return False
    try:
        with open(path, "rb") as f:
            return bool(orjson.loads(f.read()).get("crash_loop"))
    except (OSError, ValueError):
        return False


class Supervisor:
    def __init__(self, start: Callable[[], Any], workers: int, state_path: str, *, metrics: Metrics,
                 backoff_min: float = 0.5, backoff_max: float = 30.0, crash_loop_restarts: int = 5,
                 crash_loop_window: float = 60.0) -> None:
        self.start_worker = start          # returns a started multiprocessing.Process
        self.n = workers
        self.state_path = state_path
        self.metrics = metrics
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.crash_loop_restarts, self.crash_loop_window = crash_loop_restarts, crash_loop_window
        self.procs: list[Any] = []
        self.stopping = False
        self._stop_at = 0.0
        self._restarts: deque[float] = deque()
        self._due: dict[int, float] = {}      # slot → when its replacement starts
        self._crash_loop = False
        self._write_state()

    def _write_state(self) -> None:
        tmp = self.state_path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(orjson.dumps({"crash_loop": self._crash_loop, "restarts_in_window": len(self._restarts)}))
        os.replace(tmp, self.state_path)   # readers never see half a file

    #: seconds a worker has to finish after SIGTERM before it is killed (a worker caught mid-start
    #: may not have its handlers yet; shutdown must stay bounded whatever state it is in)
    stop_grace = 6.0

    def stop(self) -> None:
        if not self.stopping:
            self._stop_at = time.monotonic()
        self.stopping = True

    def run(self) -> None:
        self.procs = [self.start_worker() for _ in range(self.n)]
        while True:
            alive = [p for p in self.procs if p is not None and p.is_alive()]
            if self.stopping:
                if not alive:
                    return
                if time.monotonic() - self._stop_at > self.stop_grace:
                    for p in alive:
                        log.warning("worker %d did not stop within %.0fs of SIGTERM; killing it", p.pid,
                                    self.stop_grace)
                        p.kill()
                    self._stop_at = float("inf")   # once
                multiprocessing.connection.wait([p.sentinel for p in alive], 0.5)
                continue
            now = time.monotonic()
            for i, p in enumerate(self.procs):
                if p is not None and not p.is_alive():
                    p.join()
                    backoff = min(self.backoff_max, self.backoff_min * 2 ** len(self._restarts))
                    log.warning("worker %d exited with %s; restarting in %.1fs", p.pid, p.exitcode, backoff)
                    self.procs[i] = None
                    self._due[i] = now + backoff
            for i, due in list(self._due.items()):
                if now >= due:
                    del self._due[i]
                    self.procs[i] = self.start_worker()
                    self._restarts.append(now)
                    self.metrics.worker_restarts.inc()
            while self._restarts and now - self._restarts[0] > self.crash_loop_window:
                self._restarts.popleft()
            looping = len(self._restarts) >= self.crash_loop_restarts
            if looping != self._crash_loop:
                self._crash_loop = looping
                (log.error if looping else log.warning)("workers %s a crash loop (%d restarts in %.0fs)",
                                                        "are in" if looping else "left", len(self._restarts),
                                                        self.crash_loop_window)
                self._write_state()
            waits = [d - now for d in self._due.values()]
            multiprocessing.connection.wait([p.sentinel for p in self.procs if p is not None],
                                            max(0.05, min(waits + [1.0])))
