"""The `tape-data-gap` Grafana rule's query on a real influxd: a symbol whose minute bars
stopped falls under the threshold, one with every bar stays above it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from projections.metrics_influx import InfluxV1, line
from tests.contracts.projection_servers import running_influxd

yaml = pytest.importorskip("yaml")

RULES = Path(__file__).resolve().parents[2] / "infra/grafana/provisioning/alerting/tape_rules.yaml"
MINUTE_NS = 60 * 10**9


def gap_rule() -> dict[str, Any]:
    (group,) = yaml.safe_load(RULES.read_text())["groups"]
    (rule,) = [rule for rule in group["rules"] if rule["uid"] == "tape-data-gap"]
    return dict(rule)


def test_a_symbol_whose_bars_stopped_falls_under_the_threshold(tmp_path: Path) -> None:
    rule = gap_rule()
    steps = {step["refId"]: step for step in rule["data"]}
    window = steps["A"]["relativeTimeRange"]
    (condition,) = steps["C"]["model"]["conditions"]
    assert condition["evaluator"]["type"] == "lt"
    threshold = condition["evaluator"]["params"][0]
    now_ns = time.time_ns()
    minute_now = now_ns - now_ns % MINUTE_NS
    points = []
    for minute in range(40):  # BTC: every bar of the last 40 minutes; ETH: none in the last 14
        ts = minute_now - minute * MINUTE_NS
        for symbol in ("BTCUSDT", "ETHUSDT") if minute >= 14 else ("BTCUSDT",):
            tags = {"exchange": "binance", "symbol": symbol, "asset_class": "crypto", "instrument_id": "1"}
            points.append(
                line(
                    "ohlcv_1m", tags, {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}, ts
                )
            )
    with running_influxd(tmp_path) as server:
        influx = InfluxV1(server.url, "tape")
        influx.create_database()
        influx.write(points)
        time_filter = f"time >= now() - {window['from']}s AND time <= now() - {window['to']}s"
        query = steps["A"]["model"]["query"].replace("$timeFilter", time_filter)
        counts = {series["tags"]["symbol"]: series["values"][-1][1] for series in influx.query(query)}
    minutes = (window["from"] - window["to"]) // 60
    assert counts["BTCUSDT"] in (minutes, minutes + 1)  # every bar: not under the threshold
    assert counts["BTCUSDT"] >= threshold
    assert counts["ETHUSDT"] < threshold  # at most the one bar 14 minutes ago
