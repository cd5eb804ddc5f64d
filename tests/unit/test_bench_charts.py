"""The bench's chart (loadtest/charts.py): a PNG per scenario drawn from the scenario's JSON line."""
from __future__ import annotations

import matplotlib.image as mpimg

from loadtest.charts import chart

RESULT = {
    "scenario": "barcode_hmac", "flow": "barcode", "channel": "wechatpay", "rate_offered": 400,
    "floor_cpu_us_per_request": 700.0, "floor_over_paycore": 0.45,
    "steps": [
        {"rate": 100, "achieved": 100.0, "p99_ms": 12.0, "cpu_us": 2500.0, "errors": 0, "postgres_cpu_us": 900.0},
        {"rate": 200, "achieved": 199.8, "p99_ms": 15.0, "cpu_us": 1900.0, "errors": 0, "postgres_cpu_us": 800.0},
        {"rate": 400, "achieved": 398.0, "p99_ms": 40.0, "cpu_us": 1550.0, "errors": 0, "postgres_cpu_us": None},
        {"rate": 800, "achieved": 520.0, "p99_ms": 2400.0, "cpu_us": 1500.0, "errors": 3, "postgres_cpu_us": 700.0},
    ],
}


def test_a_scenario_becomes_a_png_of_both_panels(tmp_path):
    path = chart(RESULT, tmp_path / "charts" / "bench-barcode_hmac.png", p99_bound_ms=1000)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    height, width = img.shape[:2]
    assert (width, height) == (1210, 462)            # 11 x 4.2 inches at 110 dpi
    # not a blank canvas: the curves and text put many distinct colours on it
    assert len({tuple(px) for px in img.reshape(-1, img.shape[2])[::37].tolist()}) > 20


def test_a_grown_run_and_one_without_a_floor_still_draw(tmp_path):
    grown = dict(RESULT, scenario="barcode_hmac_grown", rows_preloaded=10_000_000, floor_cpu_us_per_request=None,
                 floor_over_paycore=None, steps=RESULT["steps"][:1])
    path = chart(grown, tmp_path / "g.png")
    assert mpimg.imread(path).shape[0] == 462
