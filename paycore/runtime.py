"""Running a coroutine as a process's main: on uvloop when it is installed."""
from __future__ import annotations

import asyncio
from typing import Any, Coroutine


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)
