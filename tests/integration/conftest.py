"""Ordering: the leak test greps every log line and error body the suite
produced, so it runs after everything else in the session. A merchant's
webhook receiver for the tests that need one."""
from __future__ import annotations

import pytest

from tests.support.ops import Receiver

LAST = "test_secrets_never_leak_into_logs_or_error_bodies"


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.name == LAST)   # stable: everything else keeps its order


@pytest.fixture(scope="module")
async def receiver():
    """A merchant's webhook endpoint on 127.0.0.1 (tests/support/ops.py Receiver)."""
    r = await Receiver().start()
    try:
        yield r
    finally:
        await r.stop()
