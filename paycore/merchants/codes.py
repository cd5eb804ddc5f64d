"""One-code (一码通付) static codes: the rows behind ``/c/{code}``.

A merchant (or one of its stores) has codes that open the one-code page; each
is active or disabled and may fix the amount. The pages (paycore.http.onecode)
read them; operators manage them with ``paycore merchant code …`` and print
them with ``paycore merchant qrcode``.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import segno

from channels import money

CODE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
STORE_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(slots=True)
class Code:
    code: str
    merchant_id: str
    store_id: str | None
    amount: int | None
    status: str
    merchant_name: str = ""
    merchant_active: bool = True
    max_amount: int | None = None

    @property
    def usable(self) -> bool:
        return self.status == "active" and self.merchant_active


def default_code(merchant_id: str, store_id: str | None = None) -> str:
    """``m_demo`` for the merchant's own code, ``m_demo.s01`` for a store's ('.' is
    never in a merchant id, so the two cannot collide)."""
    return merchant_id if not store_id else f"{merchant_id}.{store_id}"


_SELECT = ("select c.code, c.merchant_id, c.store_id, c.amount, c.status, m.name as merchant_name, "
           "m.status = 'active' as merchant_active, m.max_amount from onecodes c "
           "join merchants m on m.id = c.merchant_id ")


async def load_code(db: Any, code: str) -> Code | None:
    if not CODE_RE.match(code):
        return None
    row = await db.fetchrow(_SELECT + "where c.code = $1", code)
    return Code(**dict(row)) if row else None


async def add_code(db: Any, merchant_id: str, store_id: str | None = None, *, code: str | None = None,
                   amount: int | None = None) -> Code:
    """Create a code (LookupError for an unknown merchant, ValueError for a bad or taken code)."""
    code = code or default_code(merchant_id, store_id)
    if not CODE_RE.match(code):
        raise ValueError("a code is 1-100 characters [A-Za-z0-9_.-]")
    if store_id is not None and not STORE_RE.match(store_id):
        raise ValueError("a store id is 1-32 characters [A-Za-z0-9_-]")
    if amount is not None and not 0 < amount <= money.MAX_AMOUNT:
        raise ValueError("a fixed amount is a positive number of fen")
    try:
        await db.execute("insert into onecodes (code, merchant_id, store_id, amount) values ($1, $2, $3, $4)",
                         code, merchant_id, store_id, amount)
    except asyncpg.ForeignKeyViolationError:
        raise LookupError(f"no merchant {merchant_id}") from None
    except asyncpg.UniqueViolationError:
        raise ValueError(f"code {code} already exists") from None
    found = await load_code(db, code)
    assert found is not None
    return found


async def ensure_code(db: Any, merchant_id: str, store_id: str | None = None) -> Code:
    """The merchant's (or store's) default code, created if missing."""
    existing = await load_code(db, default_code(merchant_id, store_id))
    if existing is not None:
        if existing.merchant_id != merchant_id:
            raise ValueError(f"code {existing.code} belongs to another merchant")
        return existing
    return await add_code(db, merchant_id, store_id)


async def set_code_status(db: Any, code: str, status: str) -> None:
    assert status in ("active", "disabled")
    r = await db.execute("update onecodes set status = $2, updated_at = now() where code = $1", code, status)
    if r.endswith(" 0"):
        raise LookupError(f"no code {code}")


async def list_codes(db: Any, merchant_id: str | None = None) -> list[Code]:
    if merchant_id:
        rows = await db.fetch(_SELECT + "where c.merchant_id = $1 order by c.code", merchant_id)
    else:
        rows = await db.fetch(_SELECT + "order by c.code")
    return [Code(**dict(r)) for r in rows]


def public_url(public_base_url: str, code: str) -> str:
    return f"{public_base_url.rstrip('/')}/c/{code}"


def qr_bytes(url: str, kind: str, title: str = "") -> bytes:
    """The code's URL as a printable QR: ``png``, ``svg`` or ``pdf`` (ValueError otherwise)."""
    if kind not in ("png", "svg", "pdf"):
        raise ValueError("a QR is rendered as png, svg or pdf")
    buf = io.BytesIO()
    qr = segno.make(url, error="m", micro=False)
    if kind == "svg":
        qr.save(buf, kind="svg", scale=10, border=4, title=title)
    else:
        qr.save(buf, kind=kind, scale=10, border=4)
    return buf.getvalue()


def render_qr(url: str, out: Path, title: str = "") -> None:
    """The code's URL as a printable QR, PNG or SVG by the file's suffix (ValueError otherwise)."""
    kind = out.suffix.lower()
    if kind not in (".png", ".svg"):
        raise ValueError("--out must name a .png or .svg file")
    out.write_bytes(qr_bytes(url, kind[1:], title))
