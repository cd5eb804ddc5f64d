"""Fixtures the channel-against-simulator tests share."""
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def keys(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the module's simulator keys (devkeys makes one folder a channel inside, and reuses it).

    A module may define its own ``keys``, which then stands in for this one.
    """
    return tmp_path_factory.mktemp(f"{request.module.__name__.rsplit('.', 1)[-1]}-keys")
