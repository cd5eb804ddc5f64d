"""Pure mappings for Alipay profit sharing (交易分账) and transfers (单笔转账), OpenAPI v2.

Same gateway, signature and answer format as :mod:`channels.alipay.transformers`
(the adapter sends these biz_contents through it). From Alipay's open platform
documentation:

* ``alipay.trade.royalty.relation.bind`` ``{receiver_list: [{type: userId |
  loginName | openId, account, name?, memo?}], out_request_no}`` → ``{result_code:
  SUCCESS}``; binding a bound receiver again succeeds;
* ``alipay.trade.order.settle`` ``{out_request_no, trade_no, royalty_parameters:
  [{royalty_type: transfer, trans_in_type, trans_in, amount, desc}], extend_params:
  {royalty_finish}, royalty_mode: async}`` → ``{trade_no, settle_no}`` (accepted;
  the outcome comes from the query). ``royalty_finish: "true"`` ends sharing of the
  trade and releases what is left to the merchant (分账完结); with no parameters it
  only releases. The trade must have been paid with ``extend_params.royalty_freeze``.
  Refusals: ``ACQ.ALLOC_AMOUNT_VALIDATE_ERROR`` (more than can still be shared),
  ``ACQ.ROYALTY_RECEIVER_INVALID`` (a receiver not bound), ``ACQ.TRADE_STATUS_ERROR``…;
* ``alipay.trade.order.settle.query`` ``{out_request_no, trade_no}`` → ``{out_request_no,
  operation_dt, royalty_detail_list: [{operation_type, trans_in, trans_in_type, amount,
  state: SUCCESS | FAIL | PROCESSING, error_code, error_desc}]}``;
* ``alipay.fund.trans.uni.transfer`` ``{out_biz_no, trans_amount, product_code:
  TRANS_ACCOUNT_NO_PWD, biz_scene: DIRECT_TRANSFER, order_title, payee_info: {identity,
  identity_type: ALIPAY_USER_ID | ALIPAY_LOGON_ID, name?}, remark}`` → ``{out_biz_no,
  order_id, pay_fund_order_id, status, trans_date}``; ``name`` is checked against the
  account (required for a logon id); refusals PAYER_BALANCE_NOT_ENOUGH,
  PAYEE_ACCOUNT_STATUS_ERROR (frozen or closed), PAYEE_USERINFO_ERROR (name), PAYEE_NOT_EXIST…;
* ``alipay.fund.trans.common.query`` ``{product_code, biz_scene, out_biz_no}`` → ``{order_id,
  out_biz_no, trans_amount, status: SUCCESS | DEALING | WAIT_PAY | CLOSED | FAIL | REFUND,
  fail_reason, error_code}``; ORDER_NOT_EXIST when Alipay has no such transfer.

Final answers: a settle refused with 40004 (nothing was shared), a settle query whose
every requested receiver is SUCCESS or FAIL, a transfer or its query with status SUCCESS,
FAIL, CLOSED or REFUND (REFUND: credited, then returned: 退票), a transfer refused with
40004 (nothing moved). Unknown outcome (the same request, same out number, may be sent
again; Alipay applies it once): 20000, ACQ.SYSTEM_ERROR / SYSTEM_ERROR, an unsigned or
unreadable answer, and any refusal of a *query* other than "no such order".

Where the documentation left room: a settle query that finds no such request answers
``ACQ.TRADE_SETTLE_NOT_EXIST`` here (NOT_FOUND, never proof the request did not arrive);
paycore's ids (``spl_…``, ``po_…``) travel unchanged as out_request_no / out_biz_no
(Alipay allows letters, digits and ``_``).
"""
from __future__ import annotations

import hashlib
from typing import Any, Mapping

from channels.alipay.transformers import CODE_BUSINESS, CODE_SUCCESS, SYSTEM_ERROR, yuan_to_fen
from channels.base import ChannelError
from channels.money import fen_to_yuan
from channels.transfers import (BindResult, LineResult, PayoutRequest, PayoutResult, PayoutStatus, ReceiverSpec,
                                ShareRequest, ShareResult, ShareStatus, overall)

RELATION_BIND = "alipay.trade.royalty.relation.bind"
SETTLE = "alipay.trade.order.settle"
SETTLE_QUERY = "alipay.trade.order.settle.query"
TRANSFER = "alipay.fund.trans.uni.transfer"
TRANSFER_QUERY = "alipay.fund.trans.common.query"

PRODUCT_CODE = "TRANS_ACCOUNT_NO_PWD"     # 单笔无密转账到支付宝账户
BIZ_SCENE = "DIRECT_TRANSFER"

ALLOC_AMOUNT_ERROR = "ACQ.ALLOC_AMOUNT_VALIDATE_ERROR"
RECEIVER_INVALID = "ACQ.ROYALTY_RECEIVER_INVALID"
SETTLE_NOT_EXIST = "ACQ.TRADE_SETTLE_NOT_EXIST"
ORDER_NOT_EXIST = "ORDER_NOT_EXIST"
#: the fund APIs' "outcome unknown" (the trade APIs say ACQ.SYSTEM_ERROR)
UNKNOWN_SUB_CODES = frozenset({"SYSTEM_ERROR", SYSTEM_ERROR})

#: paycore receiver / destination type → Alipay's
RECEIVER_TYPES = {"user_id": "userId", "account": "loginName"}
PAYOUT_TYPES = {"user_id": "ALIPAY_USER_ID", "account": "ALIPAY_LOGON_ID"}

DETAIL_STATES = {"SUCCESS": ShareStatus.SUCCEEDED, "FAIL": ShareStatus.FAILED, "PROCESSING": ShareStatus.PROCESSING}
TRANSFER_STATES = {
    "SUCCESS": PayoutStatus.SUCCEEDED, "DEALING": PayoutStatus.PROCESSING, "WAIT_PAY": PayoutStatus.PROCESSING,
    "FAIL": PayoutStatus.FAILED, "CLOSED": PayoutStatus.FAILED, "REFUND": PayoutStatus.RETURNED,
}


def _garbage(what: str) -> ChannelError:
    return ChannelError(f"unexpected alipay answer: {what}", retriable=True, kind="garbage")


def _refusal(body: Mapping[str, Any]) -> tuple[str, str]:
    """(sub_code, message) of a 40004; raises the retriable error of an unknown outcome."""
    sub = str(body.get("sub_code") or body.get("code") or "")
    message = str(body.get("sub_msg") or body.get("msg") or "")[:200]
    if sub in UNKNOWN_SUB_CODES:
        raise ChannelError(f"alipay {sub} {message}".strip(), retriable=True, kind="system_error")
    return sub, message


def _fen(v: Any, what: str) -> int:
    try:
        return yuan_to_fen(str(v))
    except ValueError:
        raise _garbage(f"{what} {v!r}") from None


# -- receivers -----------------------------------------------------------------------

def bind_request_no(spec: ReceiverSpec) -> str:
    """The same receiver is always the same bind request (a logon id may hold ``@`` and ``.``,
    which out_request_no does not take)."""
    return "bind" + hashlib.sha256(f"{spec.type}:{spec.account}".encode()).hexdigest()[:28]


def bind_biz(spec: ReceiverSpec, out_request_no: str) -> dict[str, Any]:
    receiver: dict[str, Any] = {"type": RECEIVER_TYPES[spec.type], "account": spec.account}
    if spec.name:
        receiver["name"] = spec.name
    return {"receiver_list": [receiver], "out_request_no": out_request_no}


def bind_result(code: str, body: Mapping[str, Any]) -> BindResult:
    if code == CODE_BUSINESS:
        sub, message = _refusal(body)
        return BindResult(ok=False, failure_code=sub, failure_message=message)
    if code != CODE_SUCCESS or body.get("result_code") != "SUCCESS":
        raise _garbage(f"relation bind {code} {body.get('result_code')!r}")
    return BindResult(ok=True)


# -- settle (分账) ------------------------------------------------------------------------

def settle_biz(req: ShareRequest) -> dict[str, Any]:
    if not req.channel_trade_no:
        raise ChannelError("alipay settle needs the trade_no", retriable=False, kind="rejected")
    return {
        "out_request_no": req.out_order_no, "trade_no": req.channel_trade_no,
        "royalty_parameters": [{"royalty_type": "transfer", "trans_in_type": RECEIVER_TYPES[line.type],
                                "trans_in": line.account, "amount": fen_to_yuan(line.amount),
                                "desc": line.description[:1000]} for line in req.lines],
        "extend_params": {"royalty_finish": "true" if req.finish else "false"},
        "royalty_mode": "async",
    }


def settle_result(code: str, body: Mapping[str, Any]) -> ShareResult:
    """The answer of order.settle: accepted (PROCESSING, the query tells the outcome) or refused."""
    if code == CODE_BUSINESS:
        sub, message = _refusal(body)
        return ShareResult(ShareStatus.FAILED, failure_code=sub, failure_message=message)
    if code != CODE_SUCCESS:
        raise _garbage(f"settle code {code}")
    return ShareResult(ShareStatus.PROCESSING, channel_order_no=body.get("settle_no") or None)


def settle_query_biz(req: ShareRequest) -> dict[str, Any]:
    biz = {"out_request_no": req.out_order_no}
    if req.channel_trade_no:
        biz["trade_no"] = req.channel_trade_no
    return biz


def settle_query_result(code: str, body: Mapping[str, Any], req: ShareRequest) -> ShareResult:
    """The answer of order.settle.query for ``req``: final once every receiver asked for has a
    final detail; a release alone (no receivers) is done once Alipay knows the request."""
    if code == CODE_BUSINESS:
        sub, message = _refusal(body)
        if sub == SETTLE_NOT_EXIST:
            return ShareResult(ShareStatus.NOT_FOUND, failure_code=sub, failure_message=message)
        raise ChannelError(f"alipay settle query refused: {sub} {message}", retriable=True, kind="system_error")
    if code != CODE_SUCCESS:
        raise _garbage(f"settle query code {code}")
    details = body.get("royalty_detail_list") or []
    if not isinstance(details, list):
        raise _garbage("royalty_detail_list")
    lines: list[LineResult] = []
    for d in details:
        if not isinstance(d, dict) or d.get("state") not in DETAIL_STATES:
            raise _garbage("royalty detail without a known state")
        if d.get("operation_type", "transfer") != "transfer":
            continue            # refunds of shares (transfer_refund) and replenishments are not this split's parts
        lines.append(LineResult(account=str(d.get("trans_in", "")), amount=_fen(d.get("amount"), "detail amount"),
                                status=DETAIL_STATES[d["state"]], failure_code=d.get("error_code") or None))
    finished = len(lines) >= len(req.lines)
    return ShareResult(overall(finished, lines), lines=lines)


# -- transfers (单笔转账) ------------------------------------------------------------------

def transfer_biz(req: PayoutRequest) -> dict[str, Any]:
    if req.destination_type not in PAYOUT_TYPES:
        raise ChannelError(f"alipay transfers go to a user id or a logon id, not a {req.destination_type}",
                           retriable=False, kind="rejected")
    payee: dict[str, Any] = {"identity": req.account, "identity_type": PAYOUT_TYPES[req.destination_type]}
    if req.name:
        payee["name"] = req.name
    return {"out_biz_no": req.out_no, "trans_amount": fen_to_yuan(req.amount), "product_code": PRODUCT_CODE,
            "biz_scene": BIZ_SCENE, "order_title": req.remark[:128], "payee_info": payee, "remark": req.remark[:200]}


def transfer_query_biz(req: PayoutRequest) -> dict[str, str]:
    return {"product_code": PRODUCT_CODE, "biz_scene": BIZ_SCENE, "out_biz_no": req.out_no}


def transfer_result(code: str, body: Mapping[str, Any], *, query: bool = False) -> PayoutResult:
    """The answer of uni.transfer (``query`` False: a 40004 is a refusal, nothing moved) or of
    common.query (a 40004 other than ORDER_NOT_EXIST leaves the outcome unknown)."""
    if code == CODE_BUSINESS:
        sub, message = _refusal(body)
        if sub == ORDER_NOT_EXIST:
            return PayoutResult(PayoutStatus.NOT_FOUND, failure_code=sub, failure_message=message)
        if query:
            raise ChannelError(f"alipay transfer query refused: {sub} {message}", retriable=True,
                               kind="system_error")
        return PayoutResult(PayoutStatus.FAILED, failure_code=sub, failure_message=message)
    if code != CODE_SUCCESS:
        raise _garbage(f"transfer code {code}")
    status = TRANSFER_STATES.get(str(body.get("status")))
    if status is None:
        raise _garbage(f"transfer status {body.get('status')!r}")
    failed = status in (PayoutStatus.FAILED, PayoutStatus.RETURNED)
    return PayoutResult(status, channel_payout_no=body.get("order_id") or None,
                        failure_code=(body.get("error_code") or str(body.get("status"))) if failed else None,
                        failure_message=(body.get("fail_reason") or None) if failed else None)
