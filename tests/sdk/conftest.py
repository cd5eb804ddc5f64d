"""Shared by the SDK tests: an SDK client on the session's stack, the
environment the examples and the Java tests read, and the "first answer is
lost" fault built on tests/support/faultproxy.py."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from paycore_client import AsyncPaycoreClient, NotFoundError
from tests.support.faultproxy import FaultProxy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "sdk" / "python" / "examples"


@pytest.fixture
async def client(stack):
    async with AsyncPaycoreClient(stack.base, stack.merchant_id, stack.secret) as c:
        yield c


@pytest.fixture
async def paycore_proxy(stack):
    """A fault proxy in front of paycore (the client's side of the network)."""
    target = urlsplit(stack.base)
    proxy = await FaultProxy(target.hostname, target.port, name="paycore").start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def sdk_env(stack, **extra: str) -> dict[str, str]:
    return dict(os.environ, PAYCORE_BASE_URL=stack.base, PAYCORE_MERCHANT_ID=stack.merchant_id,
                PAYCORE_SECRET=stack.secret, PYTHONUNBUFFERED="1", **extra)


async def run_example(stack, name: str, *args: str, stdin: bytes = b"") -> asyncio.subprocess.Process:
    """Start ``sdk/python/examples/<name>`` as a merchant would run it (the loop
    keeps serving the simulators meanwhile)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / name), *args, env=sdk_env(stack), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def lose_first_answer(proxy: FaultProxy, direct: AsyncPaycoreClient, merchant_order_no: str,
                            timeout: float = 20.0, poll: float = 0.05) -> str:
    """Hold every chunk through ``proxy``; once paycore has finished the payment
    ``merchant_order_no`` (read directly, not through the proxy), cut the
    connections while its answer is still held, so the caller never gets it,
    then let new connections through. Returns the payment id paycore created.
    ``poll`` stays well under the 2.5 s each chunk is held."""
    proxy.set("delay", 2.5)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            p = await direct.find_payment(merchant_order_no)
            if p.is_final:
                break
        except NotFoundError:
            pass
        assert loop.time() < deadline, f"no payment {merchant_order_no} came through the proxy"
        await asyncio.sleep(poll)
    proxy.set("drop")     # ends the held connection: the answer is lost
    proxy.set("pass")     # the client's retry gets through
    return p.id
