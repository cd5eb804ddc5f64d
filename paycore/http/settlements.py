"""The merchant API's settlement reads (api.md "Money after the payment"): a business day's
totals, its lines page by page, and its statement file."""
from __future__ import annotations

import re
from datetime import date

from aiohttp import web

from paycore.errors import InvalidRequest, Unavailable
from paycore.core.journal import DB_DOWN
from paycore.http.common import POOL, json_response, merchant_of
from paycore.outbox import statements

_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_CURSOR_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


def _date(raw: str | None) -> date:
    if raw is None or not _DATE_RE.match(raw):
        raise InvalidRequest("date must be a business day YYYY-MM-DD", field="date")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest("date is not a calendar day", field="date") from None


async def _db(coro):
    try:
        return await coro
    except DB_DOWN as e:
        raise Unavailable("database unavailable") from e


async def get_settlement(request: web.Request) -> web.Response:
    merchant, _ = await merchant_of(request)
    day = _date(request.query.get("date"))
    return json_response(await _db(statements.settlement(request.app[POOL], merchant.id, day)))


async def list_lines(request: web.Request) -> web.Response:
    merchant, _ = await merchant_of(request)
    day = _date(request.match_info["date"])
    raw = request.query.get("cursor")
    cursor = None
    if raw is not None:
        try:
            if not _CURSOR_RE.match(raw):
                raise ValueError(raw)
            cursor = statements.decode_cursor(raw)
        except ValueError:
            raise InvalidRequest("cursor is not one this API gave", field="cursor") from None
    return json_response(await _db(statements.lines_page(request.app[POOL], merchant.id, day, cursor)))


async def get_file(request: web.Request) -> web.Response:
    merchant, _ = await merchant_of(request)
    day = _date(request.match_info["date"])
    data, final = await _db(statements.statement_file(request.app[POOL], merchant.id, day))
    return web.Response(body=data, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="{merchant.id}_{day.isoformat()}.csv"',
        "X-Paycore-File-SHA256": statements.sha256_hex(data),
        "X-Paycore-Statement": "final" if final else "provisional"})
