"""The contract between the engine and a payment channel.

Every provider is one package ``channels/<name>/`` with

* ``transformers.py`` – pure, typed mappings between the types below and the
  provider's wire format (no I/O), unit-tested alone;
* ``adapter.py`` – a :class:`ChannelAdapter` subclass doing transport,
  headers and signing through the injected :class:`ChannelHttp`;
* ``simulator.py`` – ``create_app(settings: SimSettings) -> web.Application``
  playing the provider's side (built with :mod:`simulators.kit`).

Declines are data, faults are exceptions: an adapter returns a
:class:`ChannelResult` / :class:`RefundResult` for whatever the provider
*said*, and raises only :class:`ChannelError` (``retriable`` tells the engine
whether the outcome is unknown and must be queried) for transport or protocol
failures.  A flow the provider lacks raises :class:`UnsupportedFlow`.

Amounts are ``int`` fen everywhere; conversion to yuan strings and the like
happens only in transformers.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from channels.secrets import Secret

if TYPE_CHECKING:   # the adapters' transport; channels.http imports this module
    from channels.http import ChannelHttp
    from channels.transfers import (BindResult, PayoutNotice, PayoutRequest, PayoutResult, ReceiverSpec, ShareRequest,
                                    ShareResult, ShareReturnRequest, ShareReturnResult)


class Method(enum.StrEnum):
    BARCODE = "barcode"
    QR = "qr"
    NFC = "nfc"
    JSAPI = "jsapi"
    H5 = "h5"
    APP = "app"
    WALLET = "wallet"
    SONIC = "sonic"


class Flow(enum.StrEnum):
    PAY = "pay"
    QUERY = "query"
    REFUND = "refund"
    REFUND_QUERY = "refund_query"
    REVERSE = "reverse"
    CLOSE = "close"
    NOTIFY = "notify"
    STATEMENT = "statement"
    SHARE = "share"            # profit sharing (分账): bind receivers, share, query, release, return
    PAYOUT = "payout"          # transfers to a person or account (转账/代付)


class TradeStatus(enum.StrEnum):
    """What the provider says about a payment, normalised."""

    PENDING = "PENDING"          # order exists, customer has not paid (NOTPAY, WAIT_BUYER_PAY)
    PROCESSING = "PROCESSING"    # customer is paying (USERPAYING) / unknown, keep querying
    SUCCEEDED = "SUCCEEDED"      # money taken (SUCCESS, TRADE_SUCCESS, also REFUND = paid then refunded)
    FAILED = "FAILED"            # declined / payment error, no money taken
    CLOSED = "CLOSED"            # closed or expired unpaid
    REVERSED = "REVERSED"        # reversed / revoked (撤销)
    NOT_FOUND = "NOT_FOUND"      # the provider has no such order (a pay request that never arrived)


class RefundStatus(enum.StrEnum):
    PROCESSING = "PROCESSING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"          # the provider refused or failed it: final, nothing was refunded
    NOT_FOUND = "NOT_FOUND"    # a query found no such refund (yet): never proof, re-send the same number


def by_status(enum_cls: type[enum.StrEnum], **words: str | tuple[str, ...]) -> dict[str, Any]:
    """A provider's status words → our status, written once per normalised status:
    ``by_status(TradeStatus, pending="NOTPAY", succeeded=("SUCCESS", "REFUND"))``.
    A word given twice is a programming error."""
    table: dict[str, Any] = {}
    for status, given in words.items():
        for word in (given,) if isinstance(given, str) else given:
            assert word not in table, f"{word} mapped twice"
            table[word] = enum_cls[status.upper()]
    return table


@dataclass(slots=True)
class NfcData:
    """A contactless tap: a network token (DPAN), never a real card number."""

    token: str
    expiry: str          # YYMM
    cryptogram: str
    wallet: str | None = None      # applepay | huaweipay | samsungpay | None (plain card)
    emv_data: str | None = None    # hex TLV from the chip / phone

    def masked_token(self) -> str:
        return self.token[:6] + "*" * max(len(self.token) - 10, 0) + self.token[-4:]

    def __repr__(self) -> str:  # never print the token or cryptogram
        return f"NfcData(token={self.masked_token()!r}, wallet={self.wallet!r})"


@dataclass(slots=True)
class PayRequest:
    """One payment as the channel sees it.

    ``out_trade_no`` is the paycore payment id (``pay_…``); an adapter whose
    provider restricts the charset maps it in its transformers and maps it back
    in :meth:`ChannelAdapter.parse_notification`.
    """

    out_trade_no: str
    amount: int
    method: Method
    subject: str
    notify_url: str                       # where the provider must send its notification
    expire_at: datetime
    auth_code: str | None = None          # barcode / sonic
    payer: Mapping[str, str] | None = None  # {openid} / {user_id}
    nfc: NfcData | None = None
    sub_mch_id: str | None = None         # per-merchant sub-merchant id at this channel
    store_id: str | None = None
    terminal_id: str | None = None
    client_ip: str = "127.0.0.1"
    created_at: datetime | None = None
    profit_sharing: bool = False          # hold the funds for profit sharing (分账) where the channel needs it
    #: where the provider's H5 cashier sends the customer's browser back after paying (h5
    #: only; JD's ``callbackUrl``); None: the provider's default
    return_url: str | None = None


@dataclass(slots=True)
class TradeRef:
    """Identifies an existing payment at the provider (query, reverse, close)."""

    out_trade_no: str
    amount: int
    method: Method
    channel_trade_no: str | None = None
    sub_mch_id: str | None = None
    created_at: datetime | None = None


@dataclass(slots=True)
class ChannelResult:
    status: TradeStatus
    channel_trade_no: str | None = None
    failure_code: str | None = None       # the provider's own code, e.g. NOTENOUGH
    failure_message: str | None = None
    qr_code: str | None = None            # qr: what the customer scans
    pay_params: dict[str, Any] | None = None  # jsapi/h5/app: what the client SDK needs
    paid_at: datetime | None = None
    amount: int | None = None             # what the provider says was paid, if it says
    wallet: str | None = None             # nfc/app: which wallet paid, if the provider says
    retry: bool = False                   # reverse/cancel: provider asks to call again


@dataclass(slots=True)
class RefundRequest:
    out_refund_no: str                    # the paycore refund id (rfd_…)
    out_trade_no: str
    channel_trade_no: str | None
    total_amount: int                     # the payment's amount
    refund_amount: int
    reason: str | None
    notify_url: str
    sub_mch_id: str | None = None
    payment_created_at: datetime | None = None


@dataclass(slots=True)
class RefundResult:
    status: RefundStatus
    channel_refund_no: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(slots=True)
class Notification:
    """A verified asynchronous notification from the provider."""

    kind: str                             # "payment" | "refund"
    out_trade_no: str                     # paycore payment id, mapped back
    merchant_ref: str | None              # the provider-side merchant id it names (mchid, app_id, merId)
    amount: int | None                    # fen, as the provider states it
    payment: ChannelResult | None = None
    out_refund_no: str | None = None      # paycore refund id, mapped back
    refund: RefundResult | None = None
    notification_id: str | None = None    # provider's own id if any


@dataclass(slots=True)
class Ack:
    """The provider's acknowledgement format for a notification."""

    status: int
    body: bytes
    content_type: str = "text/plain"


@dataclass(slots=True)
class StatementLine:
    kind: str                             # "payment" | "refund"
    out_trade_no: str                     # paycore payment id, mapped back
    channel_trade_no: str | None
    amount: int                           # fen
    status: str                           # SUCCEEDED | REFUNDED | ...
    out_refund_no: str | None = None


@dataclass(frozen=True, slots=True)
class RecoveryRule:
    """How the recovery loop treats an uncertain payment at this channel.

    ``first_delay``: wait before the first query after an unknown outcome
    (WeChat: 5 s after SYSTEMERROR); ``interval``: between queries;
    ``give_up_after``: from creation, after which a still-unknown payment is
    ended by ``final_action`` (``reverse`` for barcode channels, ``close`` for
    order-based ones); ``reverse_retries``: how often a failed reverse is
    repeated before the payment is flagged for an operator; ``expiry_grace``:
    after a code's ``expire_at`` how long a close the provider did not
    confirm is still checked before the payment is CLOSED (a late payment
    then is late money, refunded); ``refund_deadline``: from a refund's
    creation, after which one still unknown goes to the attention queue.
    """

    first_delay: float = 5.0
    interval: float = 10.0
    give_up_after: float = 30.0
    final_action: str = "reverse"
    reverse_retries: int = 5
    expiry_grace: float = 120.0
    refund_deadline: float = 86400.0


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """One ``[channels.<name>]`` table of the config file.

    Key files are PEM; ``secret`` is the provider's symmetric key (APIv3 key,
    MD5 key, HMAC key, 3DES key …) as the provider issues it. ``app_secret`` is
    the secret of the app whose OAuth names the payer (the WeChat official
    account's AppSecret, the Douyin web app's client_secret); empty where the
    provider needs none.
    """

    name: str
    base_url: str
    mch_id: str = ""
    app_id: str = ""
    serial_no: str = ""                   # our certificate serial / certId
    provider_serial_no: str = ""          # the provider's certificate serial
    private_key_file: str = ""            # our signing key
    provider_public_key_file: str = ""    # the provider's verification key
    secret: Secret = field(default_factory=lambda: Secret(""))
    app_secret: Secret = field(default_factory=lambda: Secret(""))
    timeout: float = 3.0
    recovery: RecoveryRule = RecoveryRule()
    enabled: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)


class ChannelError(Exception):
    """Transport or protocol failure talking to a provider.

    ``retriable`` is True when the outcome is unknown (timeout, reset, 5xx,
    SYSTEMERROR): the engine keeps the payment PROCESSING and queries.
    ``kind`` is a short label for metrics (timeout, connect, http_5xx,
    bad_signature, garbage, system_error).

    ``caller`` marks a refusal that is the caller's doing, not the channel's:
    the provider (or the adapter, before sending) found the request malformed
    or not permitted, so nothing happened and the channel is healthy. The
    engine answers it as a 4xx naming ``field`` (the API field, when known)
    and never counts it against the channel's breaker.
    """

    def __init__(self, message: str, *, retriable: bool, kind: str = "error", caller: bool = False,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.kind = kind
        self.caller = caller
        self.field = field


def refused_by_provider(message: str, field: str | None = None) -> ChannelError:
    """The provider refused the request as malformed or not permitted: the caller's error."""
    return ChannelError(message, retriable=False, kind="refused", caller=True, field=field)


class UnsupportedFlow(Exception):
    def __init__(self, channel: str, flow: Flow | str) -> None:
        super().__init__(f"{channel} does not support {flow}")
        self.channel = channel
        self.flow = str(flow)


class NotificationRejected(Exception):
    """A notification that must change nothing. ``reason`` is a metrics label:
    bad_signature, stale, undecryptable, malformed, unknown_order, ..."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


class ChannelAdapter:
    """Base class: one async method per flow; missing flows raise UnsupportedFlow.

    Subclasses set ``name``, ``methods`` and ``flows`` and implement what they
    support. ``__init__`` parses keys once; nothing is parsed per request.
    """

    name: ClassVar[str] = ""
    methods: ClassVar[frozenset[Method]] = frozenset()
    flows: ClassVar[frozenset[Flow]] = frozenset()
    #: default recovery rule for this provider (config may override)
    default_recovery: ClassVar[RecoveryRule] = RecoveryRule()
    #: Which "not found" answers are final (docs/reliability.md has the table).
    #: ``close_not_found_final``: a close answered "no such order" proves nothing
    #: can be paid any more (False: an unscanned QR may still be paid until it
    #: expires, so the payment stays open and checked).
    close_not_found_final: ClassVar[bool] = False
    #: ``cancel_is_tombstone``: the provider's reverse/cancel of an order it has
    #: not seen yet leaves a record that makes a later pay with the same number
    #: fail, so cancelling an unpaid order by reverse is final at once.
    cancel_is_tombstone: ClassVar[bool] = False

    def __init__(self, settings: ChannelSettings, http: "ChannelHttp") -> None:
        self.settings = settings
        self.http = http

    def supports(self, method: Method) -> bool:
        return method in self.methods

    async def pay(self, req: PayRequest) -> ChannelResult:
        raise UnsupportedFlow(self.name, Flow.PAY)

    async def query(self, ref: TradeRef) -> ChannelResult:
        raise UnsupportedFlow(self.name, Flow.QUERY)

    async def reverse(self, ref: TradeRef) -> ChannelResult:
        """Reverse (撤销) a barcode payment, paid or not. Returns REVERSED, or
        ``retry=True`` when the provider asks to call again."""
        raise UnsupportedFlow(self.name, Flow.REVERSE)

    async def close(self, ref: TradeRef) -> ChannelResult:
        """Close an unpaid order. Returns CLOSED (or the real status if it was paid)."""
        raise UnsupportedFlow(self.name, Flow.CLOSE)

    async def refund(self, req: RefundRequest) -> RefundResult:
        raise UnsupportedFlow(self.name, Flow.REFUND)

    async def query_refund(self, req: RefundRequest) -> RefundResult:
        raise UnsupportedFlow(self.name, Flow.REFUND_QUERY)

    async def parse_notification(self, kind: str, headers: Mapping[str, str], body: bytes) -> Notification:
        """Verify and decode a notification posted to ``/notify/{channel}`` (kind
        ``"payment"``) or ``/notify/{channel}/refund`` (kind ``"refund"``).
        Raises :class:`NotificationRejected`."""
        raise UnsupportedFlow(self.name, Flow.NOTIFY)

    def ack(self, ok: bool) -> Ack:
        """The provider's acknowledgement (``ok``) or its failure/retry answer."""
        raise UnsupportedFlow(self.name, Flow.NOTIFY)

    async def statement(self, day: date) -> list[StatementLine]:
        """Fetch and parse the provider's daily statement for ``day``."""
        raise UnsupportedFlow(self.name, Flow.STATEMENT)

    # -- money after the payment (channels.transfers) ------------------------------
    async def add_receiver(self, spec: "ReceiverSpec") -> "BindResult":
        """Bind a profit-sharing receiver to the merchant (idempotent at the providers)."""
        raise UnsupportedFlow(self.name, Flow.SHARE)

    async def share(self, req: "ShareRequest") -> "ShareResult":
        raise UnsupportedFlow(self.name, Flow.SHARE)

    async def query_share(self, req: "ShareRequest") -> "ShareResult":
        raise UnsupportedFlow(self.name, Flow.SHARE)

    async def return_share(self, req: "ShareReturnRequest") -> "ShareReturnResult":
        """Take a share back from its receiver (only where refunds of shared payments need it)."""
        raise UnsupportedFlow(self.name, Flow.SHARE)

    async def query_share_return(self, req: "ShareReturnRequest") -> "ShareReturnResult":
        raise UnsupportedFlow(self.name, Flow.SHARE)

    async def payout(self, req: "PayoutRequest") -> "PayoutResult":
        raise UnsupportedFlow(self.name, Flow.PAYOUT)

    async def query_payout(self, req: "PayoutRequest") -> "PayoutResult":
        raise UnsupportedFlow(self.name, Flow.PAYOUT)

    async def parse_payout_notification(self, headers: Mapping[str, str], body: bytes) -> "PayoutNotice":
        """Verify and parse a payout notification (posted to ``/notify/{channel}/payout``); answered
        with :meth:`ack`. Raises :class:`NotificationRejected`."""
        raise UnsupportedFlow(self.name, Flow.NOTIFY)

    # -- the payer's identity for jsapi, from the app's own OAuth ---------------------
    #: True where a jsapi order needs the payer's id at this provider (openid / user_id),
    #: which only the app's OAuth can tell
    payer_auth: ClassVar[bool] = False

    def payer_auth_ready(self) -> bool:
        """Whether the OAuth is configured (e.g. the app secret is set)."""
        return self.payer_auth

    def payer_auth_url(self, redirect_uri: str, state: str) -> str:
        """Where the customer's app is sent for the silent authorisation; the provider
        comes back to ``redirect_uri`` with a one-time code and ``state``."""
        raise UnsupportedFlow(self.name, "payer_auth")

    async def payer_from_auth(self, callback: Mapping[str, str]) -> dict[str, str]:
        """The payer (``{"openid"}`` / ``{"user_id"}``) for the code in the callback's
        query, exchanged server-side. ChannelError when the provider refuses the code
        (``kind="rejected"``) or cannot be reached."""
        raise UnsupportedFlow(self.name, "payer_auth")

    # -- the app's JS SDK on paycore's page -------------------------------------------
    #: True where the app's JS SDK pays only after the page has configured it with a
    #: configuration signed server-side (云闪付's ``upsdk.config`` before ``upsdk.pay``)
    web_sdk: ClassVar[bool] = False

    def web_sdk_ready(self) -> bool:
        """Whether what the SDK's configuration needs is configured (app id and secret)."""
        return not self.web_sdk

    async def web_sdk_config(self, page_url: str) -> dict[str, Any]:
        """The signed configuration the page hands to the app's JS SDK, for the page at
        ``page_url`` (the address the customer's web view shows, without a fragment).
        ChannelError when the provider's token service refuses or cannot be reached."""
        raise UnsupportedFlow(self.name, "web_sdk_config")

    async def aclose(self) -> None:
        return None

