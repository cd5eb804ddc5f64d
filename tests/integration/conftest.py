"""Ordering: the leak test greps every log line and error body the suite
produced, so it runs after everything else in the session."""
from __future__ import annotations

LAST = "test_secrets_never_leak_into_logs_or_error_bodies"


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.name == LAST)   # stable: everything else keeps its order
