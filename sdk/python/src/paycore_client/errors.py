"""Typed exceptions: one class per error ``code`` of api.md, grouped by HTTP status.

Every API error carries ``status``, ``code``, ``message`` and ``field`` (the
offending request field for ``INVALID_REQUEST``, else usually ``None``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Payment

__all__ = [
    "PaycoreError", "ApiError", "ClientError", "InvalidRequestError", "AuthenticationError", "NotFoundError",
    "ConflictError", "IdempotencyConflictError", "InvalidStateError", "PayloadTooLargeError",
    "UnprocessableError", "UnsupportedMethodError", "UnknownAuthCodeError", "RefundExceedsAmountError",
    "AmountLimitExceededError", "RateLimitedError", "ServerError", "ChannelError", "ChannelUnavailableError",
    "UnavailableError", "NetworkError", "PaymentFailedError", "PaymentDeclinedError", "WaitTimeoutError",
    "WebhookVerificationError", "ERRORS_BY_CODE", "error_from_response",
]


class PaycoreError(Exception):
    """Base of everything this SDK raises on purpose."""


class ApiError(PaycoreError):
    """The platform answered with an error body ``{"error": {code, message, field?}}``."""

    code: str = ""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (field {field})" if field else ""))
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after


class ClientError(ApiError):
    """4xx: the request is wrong or refused; retrying it unchanged will not help."""


class InvalidRequestError(ClientError):
    code = "INVALID_REQUEST"


class AuthenticationError(ClientError):
    code = "UNAUTHENTICATED"


class NotFoundError(ClientError):
    code = "NOT_FOUND"


class ConflictError(ClientError):
    """409."""


class IdempotencyConflictError(ConflictError):
    code = "IDEMPOTENCY_CONFLICT"


class InvalidStateError(ConflictError):
    code = "INVALID_STATE"


class PayloadTooLargeError(ClientError):
    code = "PAYLOAD_TOO_LARGE"


class UnprocessableError(ClientError):
    """422: understood but refused."""


class UnsupportedMethodError(UnprocessableError):
    code = "UNSUPPORTED_METHOD"


class UnknownAuthCodeError(UnprocessableError):
    code = "UNKNOWN_AUTH_CODE"


class RefundExceedsAmountError(UnprocessableError):
    code = "REFUND_EXCEEDS_AMOUNT"


class AmountLimitExceededError(UnprocessableError):
    code = "AMOUNT_LIMIT_EXCEEDED"


class RateLimitedError(ClientError):
    """429; ``retry_after`` is the server's ``Retry-After`` in seconds."""
    code = "RATE_LIMITED"


class ServerError(ApiError):
    """5xx, still failing after the retries."""


class ChannelError(ServerError):
    code = "CHANNEL_ERROR"


class ChannelUnavailableError(ServerError):
    code = "CHANNEL_UNAVAILABLE"


class UnavailableError(ServerError):
    """The platform's database is down; nothing was accepted."""
    code = "UNAVAILABLE"


ERRORS_BY_CODE: dict[str, type[ApiError]] = {
    cls.code: cls for cls in (
        InvalidRequestError, AuthenticationError, NotFoundError, IdempotencyConflictError, InvalidStateError,
        PayloadTooLargeError, UnsupportedMethodError, UnknownAuthCodeError, RefundExceedsAmountError,
        AmountLimitExceededError, RateLimitedError, ChannelError, ChannelUnavailableError, UnavailableError)
}


def error_from_response(status: int, body: Any, retry_after: str | None = None) -> ApiError:
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        err = {"code": "", "message": f"HTTP {status} without an error body"}
    code = str(err.get("code") or "")
    cls = ERRORS_BY_CODE.get(code) or (ServerError if status >= 500 else ClientError)
    ra = int(retry_after) if retry_after and retry_after.isdigit() else None
    return cls(status, code, str(err.get("message") or ""), err.get("field"), ra)


class NetworkError(PaycoreError):
    """No answer (connection refused or dropped, timeout) after every attempt.

    For a create with an idempotency key the outcome is unknown: call the same
    create again (same key) or read it back with ``find_payment``."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(f"{message} (after {attempts} attempts)")
        self.attempts = attempts


class PaymentFailedError(PaycoreError):
    """The payment ended ``FAILED``: no money was taken. ``payment.failure`` says why."""

    def __init__(self, payment: "Payment") -> None:
        f = payment.failure
        super().__init__(f"payment {payment.id} failed: " + (f"{f.code} {f.message}" if f else "no reason given"))
        self.payment = payment
        self.failure_code = f.code if f else None
        self.channel_code = f.channel_code if f else None


class PaymentDeclinedError(PaymentFailedError):
    """The customer's channel declined (``failure.code == "DECLINED"``), e.g. insufficient funds."""


class WaitTimeoutError(PaycoreError):
    """``wait_for_final`` ran out of time; ``payment`` is the last (non-final) state seen."""

    def __init__(self, payment: "Payment", timeout: float) -> None:
        super().__init__(f"payment {payment.id} still {payment.status} after {timeout:g} s")
        self.payment = payment


class WebhookVerificationError(PaycoreError):
    """A webhook's ``X-Paycore-Signature`` is missing, malformed, stale or wrong."""
