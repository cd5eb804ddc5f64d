"""The one injectable HTTP client every adapter talks to its provider through.

It owns nothing global: paycore creates one ProviderClient per process
(channels.client: keep-alive pools per provider origin, no per-request
connection set-up) and hands each adapter a ChannelHttp bound to its channel
name. Transport failures become typed ChannelErrors; every call is timed for
metrics through ``observe``.
"""
from __future__ import annotations

import asyncio
import contextvars
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from channels.base import ChannelError
from channels.client import Lost, ProviderClient, Unreached

Observer = Callable[[str, str, str, float], None]  # channel, flow, outcome, seconds


def _no_observer(channel: str, flow: str, outcome: str, seconds: float) -> None:
    return None


#: set by a caller that wants the HTTP statuses of the exchanges an adapter call makes
#: (a list that each request appends its status to, 0 for a transport failure). A
#: context variable, so adapters need not pass anything along.
EXCHANGES: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("channel_exchanges", default=None)


@dataclass(slots=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes


class ChannelHttp:
    def __init__(self, client: ProviderClient, channel: str, timeout: float,
                 observe: Observer = _no_observer) -> None:
        self.client = client
        self.channel = channel
        self.timeout = timeout
        self.observe = observe

    async def request(self, method: str, url: str, *, flow: str, headers: Mapping[str, str] | None = None,
                      data: bytes | str | None = None, timeout: float | None = None) -> HttpReply:
        """Send one request; raise ChannelError(retriable=True) when the outcome is unknown.

        A timeout or a reset after the request may have been received is
        *retriable* (the provider may have acted); a refused connection is not
        (nothing reached the provider) but is still a fault for the breaker.
        """
        t0 = time.perf_counter()
        outcome = "ok"
        status = 0
        try:
            status, answer_headers, body = await self.client.request(method, url, headers, data,
                                                                     timeout or self.timeout)
            if status >= 500:
                outcome = "http_5xx"
            return HttpReply(status, answer_headers, body)
        except asyncio.TimeoutError as e:
            outcome = "timeout"
            raise ChannelError(f"{self.channel} {flow}: timed out", retriable=True, kind="timeout") from e
        except Unreached as e:
            outcome = "connect"
            raise ChannelError(f"{self.channel} {flow}: cannot connect", retriable=False, kind="connect") from e
        except (Lost, OSError) as e:
            outcome = "reset"
            raise ChannelError(f"{self.channel} {flow}: transport error ({type(e).__name__})",
                               retriable=True, kind="reset") from e
        finally:
            self.observe(self.channel, flow, outcome, time.perf_counter() - t0)
            seen = EXCHANGES.get()
            if seen is not None:
                seen.append(status)
