"""Merchant administration (the ``paycore merchant`` commands)."""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from paycore.merchants.auth import MERCHANT_RE, SecretBox, key_id


#: what happens to money a provider reports for a payment paycore had already ended
#: (merchants.late_payment_action): refund it at once, or hold it for an operator
LATE_PAYMENT_ACTIONS = ("refund", "hold")


def new_secret() -> str:
    return secrets.token_urlsafe(32)


async def add(conn: asyncpg.Connection, box: SecretBox, merchant_id: str, name: str, *, secret: str | None = None,
              max_amount: int | None = None, sub_merchants: dict[str, str] | None = None,
              rate_limit: float | None = None, upsert: bool = False, late_payment: str = "refund") -> str:
    if not MERCHANT_RE.match(merchant_id):
        raise ValueError("merchant id must be 1-64 characters [A-Za-z0-9_-]")
    if late_payment not in LATE_PAYMENT_ACTIONS:
        raise ValueError(f"late payment action must be one of {', '.join(LATE_PAYMENT_ACTIONS)}")
    secret = secret or new_secret()
    sql = ("insert into merchants (id, name, secret_enc, max_amount, sub_merchants, rate_limit, late_payment_action) "
           "values ($1, $2, $3, $4, $5, $6, $7)")
    if upsert:
        sql += (" on conflict (id) do update set name = excluded.name, secret_enc = excluded.secret_enc, "
                "max_amount = excluded.max_amount, sub_merchants = excluded.sub_merchants, "
                "rate_limit = excluded.rate_limit, late_payment_action = excluded.late_payment_action, "
                "status = 'active', updated_at = now(), "
                "secret_version = merchants.secret_version + 1, prev_secret_enc = null, "
                "prev_secret_expires_at = null")
    await conn.execute(sql, merchant_id, name, box.seal(merchant_id, secret), max_amount, sub_merchants or {},
                       rate_limit, late_payment)
    return secret


async def listing(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch("select id, name, status, max_amount, sub_merchants, rate_limit, late_payment_action, "
                            "created_at, secret_version, case when prev_secret_expires_at > now() "
                            "then prev_secret_expires_at end as previous_expires_at from merchants order by id")
    return [dict(r, kid=key_id(r["secret_version"])) for r in rows]


#: the longest a rotated-out secret may stay valid
MAX_GRACE = 30 * 86400
_GRACE_RE = re.compile(r"^(\d{1,7})([smhd]?)\Z", re.ASCII)
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_grace(text: str) -> int:
    """``24h``, ``90m``, ``2d``, ``30s`` or plain seconds → seconds (0 to 30 days)."""
    m = _GRACE_RE.match(text.strip())
    if not m:
        raise ValueError(f"--grace {text!r}: a number with s, m, h or d (e.g. 24h)")
    seconds = int(m.group(1)) * _UNIT[m.group(2)]
    if seconds > MAX_GRACE:
        raise ValueError(f"--grace {text!r}: at most {MAX_GRACE // 86400} days")
    return seconds


@dataclass(frozen=True, slots=True)
class Rotation:
    secret: str
    kid: str                               # the new secret's key id
    previous_kid: str
    previous_expires_at: datetime | None   # None: the old secret stopped at once (grace 0)


async def rotate_secret(conn: asyncpg.Connection, box: SecretBox, merchant_id: str, grace: int = 0) -> Rotation:
    """A new secret, in use at once; the one it replaces keeps working for ``grace`` seconds (request
    signatures, and a second webhook signature), then stops by itself. A secret still in an earlier
    rotation's grace period is dropped now: at most two are ever valid."""
    secret = new_secret()
    row = await conn.fetchrow(
        "update merchants set prev_secret_enc = case when $3 > 0 then secret_enc end, "
        "prev_secret_expires_at = case when $3 > 0 then now() + make_interval(secs => $3) end, "
        "secret_enc = $2, secret_version = secret_version + 1, updated_at = now() "
        "where id = $1 returning secret_version, prev_secret_expires_at", merchant_id, box.seal(merchant_id, secret),
        float(grace))
    if row is None:
        raise LookupError(f"no merchant {merchant_id}")
    return Rotation(secret, key_id(row["secret_version"]), key_id(row["secret_version"] - 1),
                    row["prev_secret_expires_at"])


async def previous_secret_until(conn: asyncpg.Connection, merchant_id: str) -> datetime | None:
    """Until when the secret replaced by the last rotation still works; None when it no longer does."""
    return await conn.fetchval("select prev_secret_expires_at from merchants where id = $1 and prev_secret_enc "
                               "is not null and prev_secret_expires_at > now()", merchant_id)


async def set_status(conn: asyncpg.Connection, merchant_id: str, status: str) -> None:
    r = await conn.execute("update merchants set status = $2, updated_at = now() where id = $1", merchant_id, status)
    if r.endswith(" 0"):
        raise LookupError(f"no merchant {merchant_id}")


_COLUMNS = ("id, name, status, max_amount, sub_merchants, rate_limit, default_notify_url, webhook_url, created_at, "
            "updated_at")


async def get(conn: asyncpg.Connection, merchant_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"select {_COLUMNS} from merchants where id = $1", merchant_id)
    return dict(row) if row else None


async def update(conn: asyncpg.Connection, merchant_id: str, *, name: str, max_amount: int | None,
                 sub_merchants: dict[str, str], rate_limit: float | None) -> dict[str, Any]:
    """Change a merchant's name, limit, channel sub-merchant ids and rate limit; returns the new row."""
    if not name or len(name) > 200:
        raise ValueError("a name is 1-200 characters")
    if max_amount is not None and max_amount <= 0:
        raise ValueError("the limit is a positive number of fen")
    if rate_limit is not None and rate_limit <= 0:
        raise ValueError("the rate limit is a positive number of requests per second")
    row = await conn.fetchrow(f"update merchants set name = $2, max_amount = $3, sub_merchants = $4, rate_limit = $5, "
                              f"updated_at = now() where id = $1 returning {_COLUMNS}",
                              merchant_id, name, max_amount, sub_merchants, rate_limit)
    if row is None:
        raise LookupError(f"no merchant {merchant_id}")
    return dict(row)


async def set_late_payment(conn: asyncpg.Connection, merchant_id: str, action: str) -> None:
    """Refund late money at once (``refund``, the default) or hold it for an operator (``hold``)."""
    if action not in LATE_PAYMENT_ACTIONS:
        raise ValueError(f"late payment action must be one of {', '.join(LATE_PAYMENT_ACTIONS)}")
    r = await conn.execute("update merchants set late_payment_action = $2, updated_at = now() where id = $1",
                           merchant_id, action)
    if r.endswith(" 0"):
        raise LookupError(f"no merchant {merchant_id}")


async def set_notify_url(conn: asyncpg.Connection, merchant_id: str, url: str | None) -> str | None:
    """Set (or clear, with None) the merchant's default webhook endpoint: where the webhooks of a
    payment created without notify_url go. The caller validates ``url`` as the API validates a
    payment's notify_url (paycore.core.validation.notify_url). Returns the previous value."""
    async with conn.transaction():   # the audit's "before" is the value this update replaced
        before = await conn.fetchrow("select default_notify_url from merchants where id = $1 for update",
                                     merchant_id)
        if before is None:
            raise LookupError(f"no merchant {merchant_id}")
        await conn.execute("update merchants set default_notify_url = $2, updated_at = now() where id = $1",
                           merchant_id, url)
    return before["default_notify_url"]
