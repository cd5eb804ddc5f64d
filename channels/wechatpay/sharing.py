"""Pure mappings for WeChat Pay v3 profit sharing (分账) and merchant transfers (商家转账).

From WeChat Pay's APIv3 merchant documentation:

* 添加分账接收方 ``POST /v3/profitsharing/receivers/add`` ``{appid, type, account, name?,
  relation_type}`` — ``type`` MERCHANT_ID (a merchant number, ``name`` required: the merchant's
  full name) or PERSONAL_OPENID (``name`` optional); ``name`` is encrypted (RSA-OAEP) with the
  platform key and the request names that key in ``Wechatpay-Serial``;
* 请求分账 ``POST /v3/profitsharing/orders`` ``{appid, transaction_id, out_order_no,
  receivers: [{type, account, amount, description}], unfreeze_unsplit}`` → ``{order_id, state:
  PROCESSING|FINISHED, receivers: [{…, result: PENDING|SUCCESS|CLOSED, fail_reason}]}``;
  查询分账结果 ``GET /v3/profitsharing/orders/{out_order_no}?transaction_id=…``;
  解冻剩余资金 ``POST /v3/profitsharing/orders/unfreeze`` ``{transaction_id, out_order_no,
  description}`` (answered like an order);
* 请求分账回退 ``POST /v3/profitsharing/return-orders`` ``{out_order_no, out_return_no,
  return_mchid, amount, description}`` → ``{return_id, result: PROCESSING|SUCCESS|FAILED,
  fail_reason}``; 查询 ``GET /v3/profitsharing/return-orders/{out_return_no}?out_order_no=…``;
* 发起转账 ``POST /v3/fund-app/mch-transfer/transfer-bills`` ``{appid, out_bill_no,
  transfer_scene_id, openid, user_name?, transfer_amount, transfer_remark, notify_url?,
  transfer_scene_report_infos}`` → ``{out_bill_no, transfer_bill_no, state}``; 商户单号查询
  ``GET …/transfer-bills/out-bill-no/{out_bill_no}`` → ``{state, fail_reason, …}`` with state
  ACCEPTED | PROCESSING | WAIT_USER_CONFIRM | TRANSFERING | SUCCESS | FAIL | CANCELING | CANCELLED.

Final answers: an order FINISHED (each receiver SUCCESS or CLOSED), a return SUCCESS/FAILED, a
transfer SUCCESS/FAIL/CANCELLED, and a 4xx refusal of a create (NOT_ENOUGH, INVALID_REQUEST,
PARAM_ERROR …: nothing moved). Everything else — 5xx, SYSTEM_ERROR, FREQUENCY_LIMITED, an
unsigned or unreadable answer — leaves the outcome unknown; the same request (same out number)
may then be sent again, WeChat applies it once.

``out_bill_no`` takes only letters and digits, so a payout id ``po_…`` travels without its
underscore (:func:`bill_no`) and comes back through :func:`payout_id`.
"""
from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import quote

from channels.base import ChannelError
from channels.transfers import (BindResult, LineResult, PayoutRequest, PayoutResult, PayoutStatus, ReceiverSpec,
                                PayoutNotice, ShareRequest, ShareResult, ShareReturnRequest, ShareReturnResult,
                                ShareStatus, overall)
from channels.wxv3.transformers import V3Ids, error_code, merchant_fields, raise_if_unknown_outcome, wire_out_no

RECEIVERS_ADD = "/v3/profitsharing/receivers/add"
ORDERS = "/v3/profitsharing/orders"
UNFREEZE = "/v3/profitsharing/orders/unfreeze"
RETURNS = "/v3/profitsharing/return-orders"
TRANSFER_BILLS = "/v3/fund-app/mch-transfer/transfer-bills"
#: 商家转账回调通知: the event of a transfer bill that reached a final state (resource ``mch_payment``)
TRANSFER_EVENT = "MCHTRANSFER.BILL.FINISHED"

#: paycore receiver / destination type → WeChat's
RECEIVER_TYPES = {"merchant": "MERCHANT_ID", "openid": "PERSONAL_OPENID"}
PAYOUT_TYPES = frozenset({"openid"})

#: answers that refuse for now but leave nothing done; the same request may be sent again
RETRY_LATER = frozenset({"FREQUENCY_LIMITED", "RATELIMIT_EXCEEDED", "SYSTEM_ERROR", "SYSTEMERROR"})
NOT_FOUND = frozenset({"RESOURCE_NOT_EXISTS", "NOT_FOUND", "ORDER_NOT_EXIST"})

LINE_RESULTS = {"PENDING": ShareStatus.PROCESSING, "SUCCESS": ShareStatus.SUCCEEDED, "CLOSED": ShareStatus.FAILED}
RETURN_RESULTS = {"PROCESSING": ShareStatus.PROCESSING, "SUCCESS": ShareStatus.SUCCEEDED,
                  "FAILED": ShareStatus.FAILED}
TRANSFER_STATES = {
    "ACCEPTED": PayoutStatus.PROCESSING, "PROCESSING": PayoutStatus.PROCESSING,
    "WAIT_USER_CONFIRM": PayoutStatus.PROCESSING, "TRANSFERING": PayoutStatus.PROCESSING,
    "CANCELING": PayoutStatus.PROCESSING, "SUCCESS": PayoutStatus.SUCCEEDED, "FAIL": PayoutStatus.FAILED,
    "CANCELLED": PayoutStatus.FAILED,
}


def _garbage(what: str) -> ChannelError:
    return ChannelError(f"unexpected wechatpay answer: {what}", retriable=True, kind="garbage")


def _unknown_unless_final(status: int, data: Mapping[str, Any]) -> None:
    """Raise the retriable ChannelError of an answer whose outcome is unknown."""
    raise_if_unknown_outcome(data)
    code, message = error_code(data)
    if status == 429 or code in RETRY_LATER:
        raise ChannelError(f"wechatpay {code or status}: {message}", retriable=True, kind="system_error")


def _refusal(status: int, data: Mapping[str, Any]) -> tuple[bool, str, str]:
    """An error answer: (the provider has no such record, code, message); raises when the outcome is unknown."""
    _unknown_unless_final(status, data)
    code, message = error_code(data)
    return status == 404 or code in NOT_FOUND, code or f"HTTP_{status}", message[:200]


# -- receivers ---------------------------------------------------------------------

def receiver_body(spec: ReceiverSpec, ids: V3Ids, encrypted_name: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {k: v for k, v in merchant_fields(ids).items() if k != "mchid"}
    body.update({"type": RECEIVER_TYPES[spec.type], "account": spec.account, "relation_type": spec.relation})
    if encrypted_name:
        body["name"] = encrypted_name
    return body


def bind_result(status: int, data: Mapping[str, Any]) -> BindResult:
    if status < 300:
        return BindResult(ok=True)
    _, code, message = _refusal(status, data)
    return BindResult(ok=False, failure_code=code, failure_message=message)


# -- profit sharing orders -----------------------------------------------------------

def share_body(req: ShareRequest, ids: V3Ids) -> dict[str, Any]:
    if not req.channel_trade_no:
        raise ChannelError("wechatpay profit sharing needs the transaction_id", retriable=False, kind="rejected")
    body: dict[str, Any] = {k: v for k, v in merchant_fields(ids).items() if k != "mchid"}
    body.update({"transaction_id": req.channel_trade_no, "out_order_no": wire_out_no(req.out_order_no),
                 "receivers": [{"type": RECEIVER_TYPES[line.type], "account": line.account, "amount": line.amount,
                                "description": line.description[:80]} for line in req.lines],
                 "unfreeze_unsplit": req.finish})
    return body


def unfreeze_body(req: ShareRequest, ids: V3Ids) -> dict[str, Any]:
    if not req.channel_trade_no:
        raise ChannelError("wechatpay unfreeze needs the transaction_id", retriable=False, kind="rejected")
    body: dict[str, Any] = {"sub_mchid": ids.sub_mchid} if ids.partner else {}
    body.update({"transaction_id": req.channel_trade_no, "out_order_no": wire_out_no(req.out_order_no),
                 "description": "解冻全部剩余资金"})
    return body


def share_query_path(req: ShareRequest, ids: V3Ids) -> str:
    q = f"transaction_id={quote(req.channel_trade_no or '', safe='')}"
    if ids.partner:
        q += f"&sub_mchid={quote(str(ids.sub_mchid), safe='')}"
    return f"{ORDERS}/{quote(wire_out_no(req.out_order_no), safe='')}?{q}"


def share_result(status: int, data: Mapping[str, Any]) -> ShareResult:
    """An order answer (create, unfreeze or query)."""
    if status >= 300:
        missing, code, message = _refusal(status, data)
        return ShareResult(ShareStatus.NOT_FOUND if missing else ShareStatus.FAILED, failure_code=code,
                           failure_message=message)
    state = data.get("state")
    raw_lines = data.get("receivers") or []
    if state not in ("PROCESSING", "FINISHED") or not isinstance(raw_lines, list):
        raise _garbage(f"profit sharing state {state!r}")
    lines: list[LineResult] = []
    for r in raw_lines:
        if not isinstance(r, dict) or r.get("result") not in LINE_RESULTS:
            raise _garbage("profit sharing receiver without a known result")
        amount = r.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise _garbage("profit sharing receiver amount")
        lines.append(LineResult(account=str(r.get("account", "")), amount=amount,
                                status=LINE_RESULTS[r["result"]], failure_code=r.get("fail_reason") or None))
    return ShareResult(overall(state == "FINISHED", lines), channel_order_no=data.get("order_id"), lines=lines)


# -- returns (分账回退) ------------------------------------------------------------------

def return_body(req: ShareReturnRequest, ids: V3Ids) -> dict[str, Any]:
    body: dict[str, Any] = {"sub_mchid": ids.sub_mchid} if ids.partner else {}
    body.update({"out_order_no": wire_out_no(req.out_order_no), "out_return_no": wire_out_no(req.out_return_no),
                 "return_mchid": req.account, "amount": req.amount, "description": req.description[:80]})
    return body


def return_query_path(req: ShareReturnRequest, ids: V3Ids) -> str:
    q = f"out_order_no={quote(wire_out_no(req.out_order_no), safe='')}"
    if ids.partner:
        q += f"&sub_mchid={quote(str(ids.sub_mchid), safe='')}"
    return f"{RETURNS}/{quote(wire_out_no(req.out_return_no), safe='')}?{q}"


def return_result(status: int, data: Mapping[str, Any]) -> ShareReturnResult:
    if status >= 300:
        missing, code, message = _refusal(status, data)
        return ShareReturnResult(ShareStatus.NOT_FOUND if missing else ShareStatus.FAILED, failure_code=code,
                                 failure_message=message)
    result = RETURN_RESULTS.get(str(data.get("result")))
    if result is None:
        raise _garbage(f"return result {data.get('result')!r}")
    return ShareReturnResult(result, failure_code=data.get("fail_reason") or None)


# -- merchant transfers (商家转账) ---------------------------------------------------------

def bill_no(payout_id: str) -> str:
    """``po_0190…`` → ``po0190…``: out_bill_no takes letters and digits only."""
    no = payout_id.replace("_", "")
    if not no.isalnum() or not 5 <= len(no) <= 32:
        raise ValueError(f"{payout_id!r} cannot be an out_bill_no")
    return no


def payout_id(out_bill_no: str) -> str:
    return out_bill_no[:2] + "_" + out_bill_no[2:] if out_bill_no.startswith("po") else out_bill_no


def transfer_body(req: PayoutRequest, appid: str, scene_id: str, encrypted_name: str | None) -> dict[str, Any]:
    if req.destination_type not in PAYOUT_TYPES:
        raise ChannelError(f"wechatpay transfers go to an openid, not a {req.destination_type}",
                           retriable=False, kind="rejected")
    body: dict[str, Any] = {"appid": appid, "out_bill_no": bill_no(req.out_no), "transfer_scene_id": scene_id,
                            "openid": req.account, "transfer_amount": req.amount,
                            "transfer_remark": req.remark[:32],
                            # 佣金报酬 (1005) asks for the position and the kind of pay
                            "transfer_scene_report_infos": [{"info_type": "岗位类型", "info_content": "合作商户"},
                                                            {"info_type": "报酬说明", "info_content": "平台结算"}]}
    if encrypted_name:
        body["user_name"] = encrypted_name
    if req.notify_url:
        body["notify_url"] = req.notify_url
    return body


def transfer_query_path(req: PayoutRequest) -> str:
    return f"{TRANSFER_BILLS}/out-bill-no/{bill_no(req.out_no)}"


def transfer_result(status: int, data: Mapping[str, Any]) -> PayoutResult:
    if status >= 300:
        missing, code, message = _refusal(status, data)
        return PayoutResult(PayoutStatus.NOT_FOUND if missing else PayoutStatus.FAILED, failure_code=code,
                            failure_message=message)
    state = TRANSFER_STATES.get(str(data.get("state")))
    if state is None:
        raise _garbage(f"transfer state {data.get('state')!r}")
    return PayoutResult(state, channel_payout_no=data.get("transfer_bill_no") or None,
                        failure_code=(data.get("fail_reason") or None) if state is PayoutStatus.FAILED else None)


def transfer_notification(envelope: Mapping[str, Any], plain: Mapping[str, Any]) -> PayoutNotice:
    """A verified, decrypted 商家转账回调通知 (``{out_bill_no, transfer_bill_no, state, mch_id,
    transfer_amount, openid, fail_reason?, update_time}``) → the notice, its state read exactly as
    a query's answer (:func:`transfer_result`). ValueError when it is not one."""
    if envelope.get("event_type") != TRANSFER_EVENT:
        raise ValueError(f"{envelope.get('event_type')!r} is not a transfer bill event")
    out_bill_no, amount = plain.get("out_bill_no"), plain.get("transfer_amount")
    if not isinstance(out_bill_no, str) or not out_bill_no.isalnum():
        raise ValueError("transfer notification without out_bill_no")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError("transfer notification without transfer_amount")
    try:
        result = transfer_result(200, plain)
    except ChannelError as e:
        raise ValueError(str(e)) from None
    return PayoutNotice(out_no=payout_id(out_bill_no), merchant_ref=plain.get("mch_id") or None, amount=amount,
                        result=result, notification_id=envelope.get("id") or None)
