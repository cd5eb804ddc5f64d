"""The providers' asynchronous notifications, ``POST /notify/{channel}[/refund]``,
answered with each provider's own acknowledgement."""
from __future__ import annotations

from aiohttp import web

from paycore.http.common import ENGINE, ack_response, read_body


async def notify(request: web.Request) -> web.Response:
    channel = request.match_info["channel"]
    kind = "refund" if request.path.endswith("/refund") else "payment"
    body = await read_body(request)
    ack = await request.app[ENGINE].handle_notification(channel, kind, request.headers, body)
    return ack_response(ack)
