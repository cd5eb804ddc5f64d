"""A real headless Chromium (Debian's package, driven by Playwright) for the
browser tests. Playwright's own browser download is never used: .ci/run
installs ``chromium`` with apt. Set PAYCORE_SKIP_BROWSER=1 to skip these
tests on a machine without it (CI never does)."""
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("PAYCORE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
async def browser():
    if os.environ.get("PAYCORE_SKIP_BROWSER") == "1":
        pytest.skip("PAYCORE_SKIP_BROWSER=1")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (as .ci/run does)")
    from playwright.async_api import async_playwright
    pw = await async_playwright().start()
    b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield b
    finally:
        await b.close()
        await pw.stop()


def fresh_dir(output_dir: Path, name: str) -> Path:
    """test-output/NAME/, emptied: this run's screenshots only."""
    d = output_dir / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


@pytest.fixture(scope="session")
def shots(output_dir: Path) -> Path:
    """test-output/onecode/: a screenshot of every step, for a person to look at."""
    return fresh_dir(output_dir, "onecode")
