"""Running a coroutine as a process's main: on uvloop when it is installed."""
from __future__ import annotations

import asyncio
import gc
from typing import Any, Coroutine

#: the cyclic collector's first threshold in a serve worker (Python's default: 700). A payment
#: allocates and frees hundreds of containers, almost all freed by reference counting; at 700 the
#: collector ran ~1,000 times a minute at 1,000 payments/s and cost 4-11 % of the worker's CPU
#: (gc.callbacks in the worker, docs/performance.md). Cycles (an exception's traceback and frames,
#: mostly) are still collected, every few seconds instead of several times a second.
GC_THRESHOLD0 = 20_000

#: the accept queue of every listening socket paycore and its dev stack open (aiohttp's default is
#: 128). A burst of new connections larger than the queue while the loop is busy drops SYNs, and the
#: kernel's SYN retransmission answers them a second later: one payment in a few hundred took
#: 1.05 s (the p99 stalls of docs/performance.md, eighth stop). Capped by net.core.somaxconn.
LISTEN_BACKLOG = 4096


#: how often a process whose long-lived state only grows (the simulators' order books: every order
#: of a load test, kept for its queries and refunds) moves what survived the young collections out of
#: the collector's sight (``freeze_survivors``)
FREEZE_EVERY = 5.0


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def tune_gc() -> None:
    """For a long-running server process, once its start-up is done: the objects that exist now
    (modules, classes, configuration, the app) are moved out of the collector's sight for good
    (``gc.freeze``), and the collector runs after ``GC_THRESHOLD0`` net container allocations."""
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD0, second, third)


async def freeze_survivors(every: float = FREEZE_EVERY) -> None:
    """For a process whose long-lived heap only grows: every ``every`` seconds, collect the young
    generations (so that their garbage is freed, not kept) and freeze what survived. The cyclic
    collector's full collections then walk only what is younger than the last freeze, instead of the
    whole heap: in the simulators, whose order books hold every order of a load test, each full
    collection stopped the event loop for 0.2-0.26 s at 150,000-200,000 tracked objects, longer as
    the book grew, and every provider call in flight waited (the bench's p99 stalls,
    docs/performance.md, ninth stop). A cycle that becomes garbage after it was frozen is not
    collected: acceptable where nearly everything that lives that long lives for good."""
    while True:
        await asyncio.sleep(every)
        gc.collect(1)
        gc.freeze()
