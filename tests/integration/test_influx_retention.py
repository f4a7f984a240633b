"""``tape projections influx-setup`` against a real influxd (1.x): retention policies created
and altered, the downsampling continuous query runs by itself on recent points, and
``--backfill`` downsamples older ones — all verified by querying influxd."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cli.main import main
from projections.influx_retention import RetentionPlan
from projections.metrics_influx import InfluxV1
from tests.contracts.projection_servers import running_influxd


def _policies(influx: InfluxV1) -> dict[str, tuple[str, bool]]:
    (series,) = influx.query("SHOW RETENTION POLICIES")
    return {row[0]: (row[1], row[4]) for row in series["values"]}


def test_influx_setup_keeps_raw_points_short_and_downsamples_them(tmp_path: Path) -> None:
    with running_influxd(tmp_path, continuous_queries=True) as server:
        setup = ["projections", "influx-setup", "--influx", server.url, "--influx-db", "tape"]
        assert main([*setup, "--raw-days", "7", "--keep-days", "365", "--every", "1s"]) == 0
        influx = InfluxV1(server.url, "tape")
        policies = _policies(influx)
        assert policies["raw"] == ("168h0m0s", True) and policies["downsampled"] == ("8760h0m0s", False)
        # Run again with other durations: altered in place, the query replaced (idempotent).
        assert main([*setup, "--raw-days", "8", "--keep-days", "300", "--every", "1s"]) == 0
        policies = _policies(influx)
        assert policies["raw"][0] == "192h0m0s" and policies["downsampled"][0] == "7200h0m0s"
        (queries,) = [s for s in influx.query("SHOW CONTINUOUS QUERIES") if s["name"] == "tape"]
        assert [row[0] for row in queries["values"]] == ["tape_downsample"]
        # A live point is downsampled by the continuous query itself, which runs when each
        # 1 s interval ends and covers that interval: points two seconds ahead of now.
        now = time.time_ns()
        influx.write([f"nav,run=r nav=7i {now + 2_000_000_000}", f"nav,run=r nav=9i {now + 2_000_000_100}"])
        deadline = time.monotonic() + 20
        rows: list[list[object]] = []
        while time.monotonic() < deadline and not rows:
            time.sleep(0.5)
            series = influx.query('SELECT last_nav FROM "tape"."downsampled"."nav"')
            rows = series[0]["values"] if series else []
        assert rows and rows[-1][1] == 9  # the last value of the interval
        # Older points (a backtest's) are only downsampled by --backfill: the last per interval.
        hour = 3_600_000_000_000
        old = now - 5 * 24 * hour
        influx.write([f"fills,run=r count=1i {old}", f"fills,run=r count=4i {old + 10}"])
        assert not influx.query('SELECT * FROM "tape"."downsampled"."fills"')
        assert main([*setup, "--raw-days", "8", "--keep-days", "300", "--every", "1s", "--backfill"]) == 0
        (fills,) = influx.query('SELECT last_count FROM "tape"."downsampled"."fills"')
        assert [row[1] for row in fills["values"]] == [4]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="every must look like"):
        RetentionPlan(every="hourly")
    with pytest.raises(ValueError, match="at least 1"):
        RetentionPlan(raw_days=0)
