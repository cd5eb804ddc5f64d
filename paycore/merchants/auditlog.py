"""The audit log of the console and the portal: every write (refund, cancel,
resolve, merchant change, secret rotation, code change, webhook replay, user
change), every login and every refused access, with who, what, when, from
where, and the state before and after.

``console_audit`` is append-only for everyone: a trigger refuses UPDATE,
DELETE and TRUNCATE (migrations/007). Secrets never enter it: a rotation
records that it happened, not the secret.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

OUTCOMES = ("ok", "denied", "failed")
COLUMNS = ("id", "at", "actor", "actor_role", "merchant_id", "ip", "action", "target", "outcome", "reason",
           "before", "after")


@dataclass(slots=True)
class Actor:
    """Who acts: a console or portal user (with the address the request came from) or a CLI operator."""
    name: str
    role: str | None = None
    ip: str | None = None


def _plain(v: Any) -> Any:
    """JSON-safe (datetimes, enums and the like become strings), None stays None."""
    return None if v is None else orjson.loads(orjson.dumps(v, default=str))


async def record(conn: Any, actor: Actor, action: str, *, target: str | None = None, outcome: str = "ok",
                 merchant_id: str | None = None, reason: str | None = None, before: Any = None,
                 after: Any = None) -> int:
    assert outcome in OUTCOMES
    return await conn.fetchval(
        "insert into console_audit (actor, actor_role, merchant_id, ip, action, target, outcome, reason, before, after) "
        "values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) returning id",
        actor.name, actor.role, merchant_id, actor.ip, action, target, outcome, (reason or None) and reason[:500],
        _plain(before), _plain(after))


async def search(conn: Any, *, actor: str | None = None, action: str | None = None, target: str | None = None,
                 merchant_id: str | None = None, outcome: str | None = None, before_id: int | None = None,
                 limit: int = 50) -> list[dict[str, Any]]:
    """Newest first; ``before_id`` pages on (keyset). ``action`` matches a prefix (``payment.`` finds all)."""
    where, args = [], []
    for col, val in (("actor", actor), ("target", target), ("merchant_id", merchant_id), ("outcome", outcome)):
        if val:
            args.append(val)
            where.append(f"{col} = ${len(args)}")
    if action:
        args.append(action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        where.append(f"action like ${len(args)}")
    if before_id:
        args.append(before_id)
        where.append(f"id < ${len(args)}")
    args.append(limit)
    rows = await conn.fetch(f"select {', '.join(COLUMNS)} from console_audit "
                            f"{'where ' + ' and '.join(where) if where else ''} order by id desc limit ${len(args)}",
                            *args)
    return [dict(r) for r in rows]
