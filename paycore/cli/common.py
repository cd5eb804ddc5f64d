"""What every command shares: the config, logging, the event loop, a database connection."""
from __future__ import annotations

import argparse
from typing import Any, Awaitable, Callable

import asyncpg

from paycore import config as config_mod
from paycore import logs, runtime
from paycore.config import Config
from paycore.storage import db


def load(args: argparse.Namespace, *, logging: bool = True) -> Config:
    cfg = config_mod.load(args.config)
    if logging:
        logs.setup(cfg.server.log_level)
    return cfg


def with_connection(cfg: Config, fn: Callable[[asyncpg.Connection], Awaitable[int]]) -> int:
    """Run ``fn(conn)`` on one database connection and return its exit code."""
    async def main() -> int:
        conn = await db.connect(cfg.database)
        try:
            return await fn(conn)
        finally:
            await conn.close()
    return int(runtime.run(main()))


def run(coro: Awaitable[Any]) -> Any:
    return runtime.run(coro)  # type: ignore[arg-type]
