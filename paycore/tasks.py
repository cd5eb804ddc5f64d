"""One base for paycore's background loops (recovery, relay, webhook
dispatch, metrics sampling): start, stop, back-off and crash logging.

A loop implements :meth:`Loop.step`, one round of its work, which returns how
long to wait before the next round. A step that raises is logged — quietly
(one warning line) for the errors the loop expects when a dependency is away
(:meth:`Loop.expected`), with the traceback otherwise — counted through
:meth:`Loop.failed`, and the loop waits an exponentially growing back-off
before trying again; the first step that succeeds resets it. ``stop`` ends
the loop at its next wait and cancels a step in progress.
"""
from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod


class Loop(ABC):
    #: the task's name
    name = "loop"
    #: where it logs (default ``paycore.<name>``)
    logger = ""

    def __init__(self, *, interval: float, backoff_max: float = 5.0, backoff_min: float | None = None) -> None:
        self.interval = interval
        self.backoff_min = interval if backoff_min is None else backoff_min
        self.backoff_max = max(backoff_max, self.backoff_min)
        self.log = logging.getLogger(self.logger or f"paycore.{self.name}")
        self._task: asyncio.Task | None = None
        self._stopping = False

    # -- what a loop provides ----------------------------------------------
    @abstractmethod
    async def step(self) -> float:
        """One round of work; returns the seconds to wait before the next (0: at once)."""

    def expected(self, exc: BaseException) -> bool:
        """Errors that mean "a dependency is away, try later": one line, no traceback."""
        return False

    def failed(self, exc: BaseException) -> None:
        """Called after a step raised (count it in a metric, drop a connection …)."""

    async def setup(self) -> None:
        """Runs once in the task before the first step."""

    async def teardown(self) -> None:
        """Runs once when the loop ends (also when it is cancelled)."""

    # -- lifecycle -----------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._main(), name=self.name)

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _main(self) -> None:
        backoff = self.backoff_min
        await self.setup()
        try:
            while not self._stopping:
                try:
                    delay = await self.step()
                    backoff = self.backoff_min
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    if self.expected(e):
                        self.log.warning("%s: %s, retrying in %.1fs", self.name, type(e).__name__, backoff)
                    else:
                        self.log.exception("%s: unexpected error, retrying in %.1fs", self.name, backoff)
                    self.failed(e)
                    delay, backoff = backoff, min(backoff * 2, self.backoff_max)
                if delay > 0 and not self._stopping:
                    await asyncio.sleep(delay)
        finally:
            await self.teardown()
