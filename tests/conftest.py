import os
from pathlib import Path

import pytest

from tests.support.stack import build_stack, teardown_stack

# every test run writes what a person may want to look at here
OUTPUT = Path(os.environ.get("PAYCORE_TEST_OUTPUT", Path(__file__).resolve().parent.parent / "test-output"))


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
async def stack(tmp_path_factory):
    """Postgres + broker + simulators + a paycore process, shared by the session."""
    s = await build_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield s
    finally:
        await teardown_stack(s)
