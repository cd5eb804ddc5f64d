"""Sync (``PaycoreClient``) and async (``AsyncPaycoreClient``) clients on httpx.

Both share every operation below (``_Operations``): an operation only builds a
``_Call`` (method, path, exact body bytes, how to read the answer); the client
sends it, signing each attempt afresh, and retries by ``IdempotentRetry``:

* network failures (refused, reset, dropped, timed out) and 5xx answers are
  retried with the *same body*, hence the same ``merchant_order_no`` /
  ``refund_no`` / ``payout_no`` / ``split_no``: the platform answers an identical
  retry with the object it already created, so nothing is charged twice;
* 4xx answers are never retried: they raise the typed error of their ``code``.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
from abc import ABC, abstractmethod
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Generic, Iterator, TypeVar
from urllib.parse import quote, urlencode

import httpx

from . import errors
from .errors import InvalidStateError, NetworkError, PaymentDeclinedError, PaymentFailedError, WaitTimeoutError
from .models import (Payment, PaymentCreate, Payout, PayoutCreate, Receiver, ReceiverCreate, Refund, RefundCreate,
                     Settlement, SettlementLine, SettlementLinesPage, Split, SplitCreate, _Model)
from .signing import signed_headers

log = logging.getLogger("paycore_client")
R = TypeVar("R")

#: the longest long-poll the platform allows (``?wait=N``, N ≤ 30)
MAX_WAIT = 30


@dataclass(frozen=True)
class IdempotentRetry:
    """When and how often a request is sent again.

    Only network failures and 5xx answers are retried, never a 4xx. Every
    operation of this SDK is safe to repeat: reads are, creates carry their
    idempotency key in the (unchanged) body, and a repeated cancel that finds
    the payment already closed answers the closed payment."""
    max_attempts: int = 4
    initial_backoff: float = 0.25
    max_backoff: float = 4.0
    multiplier: float = 2.0

    def retries_status(self, status: int) -> bool:
        return status >= 500

    @staticmethod
    def retries_exception(exc: BaseException) -> bool:
        return isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): exponential, with jitter."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return base * (0.5 + random.random() / 2)

    @classmethod
    def none(cls) -> "IdempotentRetry":
        return cls(max_attempts=1)


@dataclass
class _Call(Generic[R]):
    method: str
    path: str
    body: bytes
    read: Callable[[httpx.Response], R]
    timeout: float | None = None


def _json_body(model: _Model | dict[str, Any] | None) -> bytes:
    if model is None:
        return b""
    data = model.to_dict() if isinstance(model, _Model) else model
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _as_model(cls: type[_Model], request: Any, fields: dict[str, Any]) -> Any:
    if request is not None and fields:
        raise TypeError("give either a request model or keyword fields, not both")
    return request if request is not None else cls(**fields)


def _path(template: str, **ids: str) -> str:
    return template.format(**{k: quote(str(v), safe="") for k, v in ids.items()})


def _query(path: str, **params: Any) -> str:
    q = {k: v for k, v in params.items() if v is not None}
    return path + ("?" + urlencode(q) if q else "")


def _date(d: _dt.date | str) -> str:
    return d.isoformat() if isinstance(d, _dt.date) else str(d)


def _reader(cls: type[_Model]) -> Callable[[httpx.Response], Any]:
    return lambda r: cls.from_dict(r.json())


def _payment_reader(raise_on_failure: bool) -> Callable[[httpx.Response], Payment]:
    def read(r: httpx.Response) -> Payment:
        p = Payment.from_dict(r.json())
        if raise_on_failure:
            raise_if_failed(p)
        return p
    return read


def raise_if_failed(p: Payment) -> Payment:
    """Raise ``PaymentDeclinedError`` / ``PaymentFailedError`` for a ``FAILED`` payment."""
    if p.status == "FAILED":
        raise (PaymentDeclinedError if p.failure and p.failure.code == "DECLINED" else PaymentFailedError)(p)
    return p


def _check(r: httpx.Response, attempt: int) -> None:
    if r.status_code >= 400:
        try:
            body = r.json()
        except ValueError:
            body = None
        e = errors.error_from_response(r.status_code, body, r.headers.get("Retry-After"))
        e.attempt = attempt   # type: ignore[attr-defined]
        raise e


class _Operations(ABC):
    """Every merchant operation, for both clients (see ``contract.OPERATIONS``)."""

    @abstractmethod
    def _call(self, call: _Call[Any]) -> Any:   # PaycoreClient returns the value, AsyncPaycoreClient a coroutine
        """Send ``call``: PaycoreClient returns its value, AsyncPaycoreClient a coroutine of it."""

    # -- payments -------------------------------------------------------------
    def create_payment(self, request: PaymentCreate | None = None, *, raise_on_failure: bool = True,
                       **fields: Any) -> Any:
        """``POST /v1/payments``: a ``PaymentCreate`` or its fields as keywords.

        A ``FAILED`` answer (declined…) raises ``PaymentFailedError`` unless
        ``raise_on_failure=False``; ``PENDING``/``PROCESSING`` are returned: see
        ``wait_for_final``."""
        req = _as_model(PaymentCreate, request, fields)
        return self._call(_Call("POST", "/v1/payments", _json_body(req), _payment_reader(raise_on_failure)))

    def get_payment(self, payment_id: str, wait: int | None = None) -> Any:
        """``GET /v1/payments/{id}``; ``wait`` (≤ 30 s) long-polls until the status is final."""
        return self._call(self._read_call(_path("/v1/payments/{id}", id=payment_id), wait))

    def find_payment(self, merchant_order_no: str, wait: int | None = None) -> Any:
        """``GET /v1/payments?merchant_order_no=…`` (e.g. after a create whose outcome is unknown)."""
        return self._call(self._read_call("/v1/payments", wait, merchant_order_no=merchant_order_no))

    def _read_call(self, path: str, wait: int | None, **params: Any) -> _Call[Payment]:
        if wait is not None and not 0 <= wait <= MAX_WAIT:
            raise ValueError(f"wait must be 0..{MAX_WAIT} seconds")
        timeout = (wait or 0) + self._timeout   # type: ignore[attr-defined]
        return _Call("GET", _query(path, **params, wait=wait), b"", _payment_reader(False), timeout)

    def _cancel_call(self, payment_id: str) -> _Call[Payment]:
        return _Call("POST", _path("/v1/payments/{id}/cancel", id=payment_id), b"", _payment_reader(False))

    # -- refunds --------------------------------------------------------------
    def create_refund(self, payment_id: str, request: RefundCreate | None = None, **fields: Any) -> Any:
        """``POST /v1/payments/{id}/refunds``; ``refund_no`` is the idempotency key."""
        req = _as_model(RefundCreate, request, fields)
        return self._call(_Call("POST", _path("/v1/payments/{id}/refunds", id=payment_id), _json_body(req),
                                _reader(Refund)))

    def get_refund(self, refund_id: str) -> Any:
        return self._call(_Call("GET", _path("/v1/refunds/{id}", id=refund_id), b"", _reader(Refund)))

    # -- settlement, receivers, splits, payouts ---------------------------------
    def get_settlement(self, date: _dt.date | str) -> Any:
        """``GET /v1/settlements?date=YYYY-MM-DD`` (Asia/Shanghai business day)."""
        return self._call(_Call("GET", _query("/v1/settlements", date=_date(date)), b"", _reader(Settlement)))

    def list_settlement_lines(self, date: _dt.date | str, cursor: str | None = None) -> Any:
        """One page of ``GET /v1/settlements/{date}/lines``; see ``iter_settlement_lines`` for all."""
        path = _query(_path("/v1/settlements/{date}/lines", date=_date(date)), cursor=cursor)
        return self._call(_Call("GET", path, b"", _reader(SettlementLinesPage)))

    def download_settlement_file(self, date: _dt.date | str) -> Any:
        """``GET /v1/settlements/{date}.csv``: the statement file's bytes (UTF-8 with BOM)."""
        return self._call(_Call("GET", _path("/v1/settlements/{date}.csv", date=_date(date)), b"",
                                lambda r: r.content))

    def create_receiver(self, request: ReceiverCreate | None = None, **fields: Any) -> Any:
        req = _as_model(ReceiverCreate, request, fields)
        return self._call(_Call("POST", "/v1/receivers", _json_body(req), _reader(Receiver)))

    def create_split(self, payment_id: str, request: SplitCreate | None = None, **fields: Any) -> Any:
        """``POST /v1/payments/{id}/splits``; ``split_no`` is the idempotency key."""
        req = _as_model(SplitCreate, request, fields)
        return self._call(_Call("POST", _path("/v1/payments/{id}/splits", id=payment_id), _json_body(req),
                                _reader(Split)))

    def get_split(self, split_id: str) -> Any:
        return self._call(_Call("GET", _path("/v1/splits/{id}", id=split_id), b"", _reader(Split)))

    def create_payout(self, request: PayoutCreate | None = None, **fields: Any) -> Any:
        """``POST /v1/payouts``; ``payout_no`` is the idempotency key."""
        req = _as_model(PayoutCreate, request, fields)
        return self._call(_Call("POST", "/v1/payouts", _json_body(req), _reader(Payout)))

    def get_payout(self, payout_id: str) -> Any:
        return self._call(_Call("GET", _path("/v1/payouts/{id}", id=payout_id), b"", _reader(Payout)))

    def find_payout(self, payout_no: str) -> Any:
        return self._call(_Call("GET", _query("/v1/payouts", payout_no=payout_no), b"", _reader(Payout)))


class _Base(_Operations):
    def __init__(self, base_url: str, merchant_id: str, secret: str | bytes, *,
                 retry: IdempotentRetry | None = None, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.merchant_id = merchant_id
        self._secret = secret
        self.retry = retry or IdempotentRetry()
        self._timeout = timeout

    def __repr__(self) -> str:   # never the secret
        return f"{type(self).__name__}({self.base_url!r}, merchant_id={self.merchant_id!r})"

    def _request_args(self, call: _Call[Any]) -> dict[str, Any]:
        headers = signed_headers(self.merchant_id, self._secret, call.method, call.path, call.body)
        if call.body:
            headers["Content-Type"] = "application/json"
        return {"method": call.method, "url": self.base_url + call.path, "content": call.body, "headers": headers,
                "timeout": call.timeout or self._timeout}

    def _after(self, call: _Call[Any], attempt: int, exc: BaseException | None,
               response: httpx.Response | None) -> float | None:
        """Seconds to wait before another attempt, or ``None``: stop (raise or read ``response``)."""
        if attempt >= self.retry.max_attempts:
            if exc is not None:
                raise NetworkError(f"{call.method} {call.path.split('?')[0]}: {type(exc).__name__}: {exc}",
                                   attempt) from exc
            return None
        if exc is not None and not self.retry.retries_exception(exc):
            raise exc
        if response is not None and not self.retry.retries_status(response.status_code):
            return None
        delay = self.retry.backoff(attempt)
        log.info("paycore %s %s: %s; attempt %d again in %.2f s", call.method, call.path.split("?")[0],
                 type(exc).__name__ if exc else response.status_code, attempt + 1, delay)   # type: ignore[union-attr]
        return delay


class PaycoreClient(_Base):
    """Blocking client. Use as a context manager, or call ``close()``."""

    def __init__(self, base_url: str, merchant_id: str, secret: str | bytes, *,
                 retry: IdempotentRetry | None = None, timeout: float = 15.0,
                 http: httpx.Client | None = None) -> None:
        super().__init__(base_url, merchant_id, secret, retry=retry, timeout=timeout)
        self._http = http or httpx.Client()

    def __enter__(self) -> "PaycoreClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, call: _Call[R]) -> R:
        attempt = 0
        while True:
            attempt += 1
            response = None
            try:
                response = self._http.request(**self._request_args(call))
                exc = None
            except httpx.TransportError as e:
                exc = e
            delay = self._after(call, attempt, exc, response)
            if delay is None:
                assert response is not None
                _check(response, attempt)
                return call.read(response)
            time.sleep(delay)

    def cancel_payment(self, payment_id: str) -> Payment:
        """``POST /v1/payments/{id}/cancel``: close a PENDING payment, reverse a PROCESSING one."""
        try:
            return self._call(self._cancel_call(payment_id))
        except InvalidStateError as e:
            if getattr(e, "attempt", 1) > 1:   # an earlier attempt may have cancelled it
                p = self.get_payment(payment_id)
                if p.status in ("CLOSED", "REVERSED"):
                    return p
            raise

    def wait_for_final(self, payment_id: str, timeout: float = 60.0, *, raise_on_failure: bool = True) -> Payment:
        """Long-poll (``?wait=N``) until the payment is final. ``FAILED`` raises
        ``PaymentFailedError`` (unless ``raise_on_failure=False``); still not final
        after ``timeout`` seconds raises ``WaitTimeoutError``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            p: Payment = self.get_payment(payment_id, wait=max(0, min(MAX_WAIT, int(left))))
            if p.is_final:
                return raise_if_failed(p) if raise_on_failure else p
            if time.monotonic() >= deadline:
                raise WaitTimeoutError(p, timeout)
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def iter_settlement_lines(self, date: _dt.date | str) -> Iterator[SettlementLine]:
        """Every line of a day's settlement, following ``next_cursor`` page by page."""
        cursor = None
        while True:
            page: SettlementLinesPage = self.list_settlement_lines(date, cursor)
            yield from page.lines
            if not page.next_cursor:
                return
            cursor = page.next_cursor


class AsyncPaycoreClient(_Base):
    """asyncio client: the same operations as ``PaycoreClient``, awaited."""

    def __init__(self, base_url: str, merchant_id: str, secret: str | bytes, *,
                 retry: IdempotentRetry | None = None, timeout: float = 15.0,
                 http: httpx.AsyncClient | None = None) -> None:
        super().__init__(base_url, merchant_id, secret, retry=retry, timeout=timeout)
        self._http = http or httpx.AsyncClient()

    async def __aenter__(self) -> "AsyncPaycoreClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, call: _Call[R]) -> R:   # type: ignore[override]
        attempt = 0
        while True:
            attempt += 1
            response = None
            try:
                response = await self._http.request(**self._request_args(call))
                exc = None
            except httpx.TransportError as e:
                exc = e
            delay = self._after(call, attempt, exc, response)
            if delay is None:
                assert response is not None
                _check(response, attempt)
                return call.read(response)
            await asyncio.sleep(delay)

    async def cancel_payment(self, payment_id: str) -> Payment:
        """``POST /v1/payments/{id}/cancel``: close a PENDING payment, reverse a PROCESSING one."""
        try:
            return await self._call(self._cancel_call(payment_id))
        except InvalidStateError as e:
            if getattr(e, "attempt", 1) > 1:
                p = await self.get_payment(payment_id)
                if p.status in ("CLOSED", "REVERSED"):
                    return p
            raise

    async def wait_for_final(self, payment_id: str, timeout: float = 60.0, *,
                             raise_on_failure: bool = True) -> Payment:
        """See ``PaycoreClient.wait_for_final``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            p: Payment = await self.get_payment(payment_id, wait=max(0, min(MAX_WAIT, int(left))))
            if p.is_final:
                return raise_if_failed(p) if raise_on_failure else p
            if loop.time() >= deadline:
                raise WaitTimeoutError(p, timeout)
            await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))

    async def iter_settlement_lines(self, date: _dt.date | str) -> AsyncIterator[SettlementLine]:
        cursor = None
        while True:
            page: SettlementLinesPage = await self.list_settlement_lines(date, cursor)
            for line in page.lines:
                yield line
            if not page.next_cursor:
                return
            cursor = page.next_cursor


__all__ = ["PaycoreClient", "AsyncPaycoreClient", "IdempotentRetry", "raise_if_failed", "MAX_WAIT"]
