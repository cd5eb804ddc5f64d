"""Postgres: the pool (with the codecs every connection needs) and migrations."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import asyncpg
import orjson

from paycore.config import DatabaseConfig

log = logging.getLogger("paycore.db")
MIGRATIONS = Path(__file__).parent / "migrations"


async def init_connection(conn: asyncpg.Connection) -> None:
    # binary jsonb codec (version byte + text): composite row values need binary codecs
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", format="binary",
        encoder=lambda v: b"\x01" + (v if isinstance(v, bytes) else orjson.dumps(v)),
        decoder=lambda b: orjson.loads(b[1:]),
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's default reset query (advisory unlock, CLOSE ALL,
    UNLISTEN, RESET ALL: one round trip per release). Pool users leave no session
    state (those taking advisory locks use their own connection) and asyncpg still
    rolls back a transaction left open before calling this."""
    return None


#: Plan every statement for its parameters, never from a plan cached on the connection. asyncpg
#: prepares each statement once per pooled connection, and Postgres then keeps a *generic* plan made
#: from the statistics of that moment for the connection's life: ANALYZE does not replace it. A pool
#: opened on young tables kept plans made for empty ones — the journal's batch statement hash-joining
#: a sequential scan of all payments and refunds, the lookup by merchant_order_no walking the
#: merchant's every payment — and each grew slower with the table (docs/performance.md). A custom plan
#: also sees the real length of the batch's arrays. It costs planning on every execution.
PLAN_CACHE_MODE = "force_custom_plan"


#: The journal's connections (``journal_pool``) run one statement, the batch, whose plan has one
#: right shape whatever the tables hold: the arrays unnested, joined to ``payments`` and ``refunds``
#: by primary key, inserted with their conflict checks. Planning it for each execution (as
#: PLAN_CACHE_MODE does everywhere else) cost Postgres ~700 µs a batch, a quarter of the statement
#: (pg_stat_statements, docs/performance.md); these connections plan it once and keep the plan, with
#: the scans and joins that made a young table's generic plan a trap (a sequential scan of every
#: payment hash-joined to the batch) switched off, so the plan they keep is the index one.
JOURNAL_SETTINGS = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off", "enable_hashjoin": "off",
                    "enable_mergejoin": "off"}


async def create_pool(cfg: DatabaseConfig, *, min_size: int | None = None, max_size: int | None = None,
                      settings: dict[str, str] | None = None) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        cfg.url, min_size=cfg.pool_min if min_size is None else min_size,
        max_size=cfg.pool_max if max_size is None else max_size,
        command_timeout=cfg.command_timeout, timeout=cfg.connect_timeout, init=init_connection,
        max_inactive_connection_lifetime=60, reset=_keep_session,
        server_settings={"plan_cache_mode": PLAN_CACHE_MODE, **(settings or {})},
    )


async def journal_pool(cfg: DatabaseConfig) -> asyncpg.Pool:
    """The journal's own connections (JOURNAL_SETTINGS): one flusher writes one batch at a time,
    and a second connection serves the re-read after a write whose outcome was lost."""
    return await create_pool(cfg, min_size=1, max_size=2, settings=JOURNAL_SETTINGS)


async def migrate(dsn: str, until: str | None = None) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; safe to
    run from several processes at once (advisory lock). Returns what it applied.
    ``until``: only those whose name sorts before it (tests of an upgrade path)."""
    conn = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        await conn.execute("select pg_advisory_lock(7261001)")
        await conn.execute("create table if not exists schema_migrations ("
                           "version text primary key, applied_at timestamptz not null default now())")
        done = {r["version"] for r in await conn.fetch("select version from schema_migrations")}
        for path in sorted(MIGRATIONS.glob("*.sql")):
            if path.stem in done or (until is not None and path.stem >= until):
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("insert into schema_migrations (version) values ($1)", path.stem)
            applied.append(path.stem)
            log.info("applied migration %s", path.stem)
    finally:
        await conn.execute("select pg_advisory_unlock(7261001)")
        await conn.close()
    return applied


async def ensure_database(dsn: str) -> None:
    """Create the database named in ``dsn`` if it does not exist (dev and tests)."""
    try:
        conn = await asyncpg.connect(dsn)
        await conn.close()
        return
    except asyncpg.InvalidCatalogNameError:
        pass
    name = dsn.partition("?")[0].rsplit("/", 1)[1]
    if not re.fullmatch(r"[A-Za-z0-9_]{1,63}", name):
        raise ValueError(f"refusing to create a database named {name!r}")
    admin = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        await admin.execute(f'create database "{name}"')
    except asyncpg.DuplicateDatabaseError:
        pass
    finally:
        await admin.close()


def with_database(uri: str, name: str) -> str:
    """Replace the database in a postgres URI (keeping ?host=… for unix sockets)."""
    head, _, query = uri.partition("?")
    scheme, _, rest = head.partition("://")
    auth_host = rest.split("/", 1)[0]
    return f"{scheme}://{auth_host}/{name}" + (f"?{query}" if query else "")


async def connect(cfg: DatabaseConfig) -> asyncpg.Connection:
    """One connection outside the pool (operators' commands), with the pool's codecs."""
    conn = await asyncpg.connect(cfg.url, timeout=cfg.connect_timeout)
    await init_connection(conn)
    return conn
