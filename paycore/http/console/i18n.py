"""中文 and English for the console and the portal.

Templates write English and pass it through ``_()``; in Chinese the text is
looked up in :data:`ZH` (a missing entry shows the English, and
tests/unit/test_console_i18n.py fails on any template text without one).
Amounts are shown in yuan from integer fen without floats; times in UTC.
"""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from paycore.http.onecode import yuan

LANGS = ("zh", "en")

ZH: dict[str, str] = {
    # frame
    "Operations console": "运营平台", "Merchant portal": "商户系统", "Log in": "登录", "Log out": "退出登录",
    "Username": "用户名", "Password": "密码", "One-time code": "动态验证码",
    "Operators enter the 6-digit code of their authenticator app.": "运营人员请输入身份验证器应用中的 6 位验证码。",
    "Wrong username, password or code.": "用户名、密码或验证码错误。",
    "Too many failed attempts: this account is locked for a while.": "失败次数过多，账户已暂时锁定。",
    "This account is disabled.": "该账户已停用。",
    "Your session has ended; log in again.": "会话已结束，请重新登录。",
    "The form has expired; reload the page and try again.": "表单已过期，请刷新页面后重试。",
    "You do not have the right to do this.": "您没有执行此操作的权限。",
    "Error": "错误", "Back": "返回", "Signed in as": "当前用户", "Role": "角色",
    # navigation
    "Overview": "概览", "Payments": "支付订单", "Attention": "待处理事项", "Reconciliation": "对账",
    "Merchants": "商户", "One-code plates": "一码通付收款码", "Webhooks": "回调通知", "Channels": "支付渠道",
    "Audit log": "审计日志", "Users": "用户", "Statements": "对账单", "API credentials": "API 密钥",
    # overview
    "Today (UTC)": "今日 (UTC)", "Payments today": "今日支付笔数", "Payments per second": "每秒支付笔数",
    "Last 5 minutes": "最近 5 分钟", "Success rate by channel": "各渠道成功率", "Channel": "渠道",
    "Success rate": "成功率", "Final": "已终结", "Succeeded": "成功", "Circuit breakers": "熔断器",
    "Relay lag": "消息中继延迟", "Outbox depth": "待发布事件", "Attention queue": "待处理队列",
    "Webhook backlog": "待投递回调", "Failed webhooks (7 days)": "投递失败回调（7 天）",
    "today's average": "今日平均", "age of the oldest event not yet published to Kafka": "最早一条未发布到 Kafka 的事件的等待时间",
    "events not yet published to Kafka": "尚未发布到 Kafka 的事件数", "open items": "未处理事项",
    "succeeded / final, payments created today": "成功 / 已终结，按今日创建的支付计", "this worker": "本进程",
    "seconds": "秒", "closed": "关闭", "open": "打开", "half_open": "半开",
    # payments
    "Search": "搜索", "Payment id": "支付单号", "Merchant order no": "商户订单号",
    "Channel trade no": "渠道交易号", "Merchant": "商户", "Method": "支付方式", "Status": "状态",
    "From": "开始", "Until": "截止", "any": "全部", "Amount": "金额", "Refunded": "已退款",
    "Created": "创建时间", "Paid": "支付时间", "Next page": "下一页", "Export CSV": "导出 CSV",
    "No payments match.": "没有匹配的支付订单。", "Clear": "清除",
    "Payment": "支付订单", "Timeline": "事件时间线", "Event": "事件", "Time": "时间", "Seq": "序号",
    "Refunds": "退款", "Refund": "退款", "Refund no": "退款单号", "Reason": "原因",
    "Webhook deliveries": "回调投递", "Attempts": "尝试次数", "Last answer": "最近应答",
    "Refund this payment": "退款", "Amount (yuan)": "金额（元）", "Cancel this payment": "撤销 / 关闭订单",
    "Cancel": "撤销", "Channel calls": "渠道调用", "Status checks with the channel": "向渠道查询次数",
    "Next check": "下次查询", "Failure": "失败原因", "Subject": "商品描述", "Store": "门店",
    "Terminal": "终端", "Refundable": "可退金额", "Expires": "过期时间", "Updated": "更新时间",
    "Refund created.": "退款已提交。", "Payment cancelled.": "订单已撤销。",
    "Nothing yet.": "暂无。", "Flow": "流程", "Answer": "渠道应答", "Code / kind": "错误码 / 类型",
    "HTTP status": "HTTP 状态码", "Latency (ms)": "耗时（毫秒）", "declined": "被拒绝", "error": "出错",
    # splits and payouts
    "Splits": "分账", "Split": "分账单", "Split no": "分账单号", "Receiver": "分账接收方", "Account": "账号",
    "Receiver status": "接收方状态", "Share status": "分账结果", "Returned": "已回退", "Release the rest": "解冻剩余资金",
    "yes": "是", "no": "否", "Payouts": "转账 / 代付", "Payout": "转账 / 代付单", "Payout no": "转账单号",
    "Destination": "收款方", "Payee name": "收款人姓名", "Remark": "备注", "Channel payout no": "渠道转账单号",
    "No payouts match.": "没有匹配的转账单。", "Business day": "业务日期",
    # attention
    "Kind": "类型", "Evidence": "证据", "Resolve": "处理", "Action": "处理方式", "Resolved": "已处理",
    "Open": "待处理", "Item resolved.": "事项已处理。", "No open items.": "没有待处理事项。",
    "Resolution": "处理结果", "Resolved by": "处理人",
    # reconciliation
    "Runs": "对账批次", "Day": "日期", "Statement lines": "对账单笔数", "Ours": "本方笔数",
    "Matched": "已匹配", "Missing on our side": "本方缺失", "Missing at the channel": "渠道缺失",
    "Amount mismatches": "金额不符", "Status mismatches": "状态不符", "Discrepancies": "差异明细",
    "Result": "结果", "Finished": "完成时间", "Run": "批次", "No runs yet.": "暂无对账记录。",
    # merchants
    "Name": "名称", "Limit (fen)": "单笔限额（分）", "Rate limit (req/s)": "限流（次/秒）",
    "Sub-merchant ids": "渠道子商户号", "one per line: channel=id": "每行一个：渠道=子商户号",
    "Create merchant": "新建商户", "Save": "保存", "Disable": "停用", "Enable": "启用",
    "Rotate secret": "轮换密钥", "Merchant id": "商户号",
    "The new secret is shown once; copy it now.": "新密钥仅显示一次，请立即复制。",
    "New secret": "新密钥", "Merchant saved.": "商户已保存。", "Merchant created.": "商户已创建。",
    "Merchant disabled.": "商户已停用。", "Merchant enabled.": "商户已启用。", "active": "正常",
    "disabled": "已停用", "default": "默认",
    # codes
    "Code": "收款码", "Fixed amount (yuan)": "固定金额（元）", "Create code": "新建收款码",
    "Download PNG": "下载 PNG", "Download PDF": "下载 PDF", "Code created.": "收款码已创建。",
    "Code disabled.": "收款码已停用。", "Code enabled.": "收款码已启用。", "customer types it": "顾客输入",
    # webhooks
    "Replay": "重新投递", "Replayed.": "已重新投递。", "Replays": "重投次数", "URL": "地址",
    "Delivered": "投递时间",
    # channels
    "Methods": "支持方式", "Flows": "支持流程", "Breaker": "熔断状态", "Errors (this process)": "错误数（本进程）",
    "Enabled": "已启用", "Calls today": "今日调用", "Failed today": "今日失败",
    # audit
    "Actor": "操作人", "Target": "对象", "Outcome": "结果", "From where": "来源地址", "Before": "变更前",
    "After": "变更后", "ok": "成功", "denied": "拒绝", "failed": "失败", "Filter": "筛选",
    # users
    "Add user": "新增用户", "Reset password": "重置密码", "Reset TOTP": "重置动态验证码",
    "Locked until": "锁定至", "Last login": "最近登录", "User saved.": "用户已保存。",
    "Scan this into the authenticator app; it is shown once.": "请用身份验证器扫描，仅显示一次。",
    # portal
    "Download": "下载", "Daily statements": "每日对账单", "Payments paid": "支付笔数",
    "Amount paid": "支付金额", "Refunds succeeded": "退款笔数", "Amount refunded": "退款金额",
    "The previous secret keeps working until": "旧密钥仍然有效，截止时间：",
    "The old secret keeps working for": "旧密钥继续有效的时长", "no time: it stops now": "不保留：立即失效",
    "Rotate the API secret": "轮换 API 密钥", "Your merchant id": "您的商户号",
    "Rotating replaces the secret your systems sign requests with.": "轮换后，请在您的系统中使用新密钥签名请求。",
    "Webhook endpoints": "回调地址", "Default webhook endpoint": "默认回调地址",
    "Payments created without notify_url are notified here. Empty: no default.":
        "未指定 notify_url 的支付订单将通知到此地址。留空表示不设默认地址。",
    "Webhook endpoint saved.": "回调地址已保存。", "Deliveries": "投递记录", "Language": "语言",
}


def translator(lang: str) -> Callable[[str], str]:
    if lang == "zh":
        return lambda s: ZH.get(s, s)
    return lambda s: s


def money(fen: int | None) -> str:
    """12345 → '123.45' (integer arithmetic only)."""
    return "" if fen is None else yuan(int(fen))


def when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else ""
