"""The metrics projection against a real ``influxd`` (1.6, v1 HTTP API): a clean run, and an
outage mid-run (influxd stopped, the journal keeps growing, influxd restarted) that must end
with exactly the points of the clean run."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from domain.instruments import Instrument
from domain.market import Panel
from kernel.store import open_journal
from projections.metrics_influx import InfluxMetrics, InfluxV1
from projections.runner import Backoff, follow
from tests.contracts.projection_servers import running_influxd
from tests.integration.test_projection_runner import _txn_safe, busy_events

MEASUREMENTS = ("nav", "order_funnel", "fills", "risk_events")


def _dump(transport: InfluxV1) -> dict[str, list[list[object]]]:
    dump: dict[str, list[list[object]]] = {}
    for measurement in (*MEASUREMENTS, "tape_checkpoint"):
        series = transport.query(f'SELECT * FROM "{measurement}"')
        dump[measurement] = [row for s in series for row in s["values"]]
    return dump


def test_an_influx_outage_mid_run_loses_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = tmp_path / "journal"
    chunks = [_txn_safe(busy_events(250, start=n * 250), n) for n in range(3)]
    with open_journal(journal, writable=True, records_per_commit_max=256) as writer:
        for event in chunks[0]:
            writer.append(event)
    (tmp_path / "influx").mkdir()
    with running_influxd(tmp_path / "influx") as server:
        followed = InfluxV1(server.url, "followed")
        done = threading.Event()
        stats_box: list[object] = []

        def run() -> None:
            stats_box.append(
                follow(
                    journal,
                    lambda: InfluxMetrics.open(followed),
                    name="metrics",
                    batch_records_max=100,
                    poll_s=0.02,
                    backoff=Backoff(initial_s=0.05, maximum_s=0.3),
                    should_stop=lambda stats: done.is_set(),
                )
            )

        caplog.set_level(logging.INFO, logger="tape.projections")
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            time.sleep(0.5)
            server.stop()
            with open_journal(journal, writable=True, records_per_commit_max=256) as writer:
                for event in chunks[1]:
                    writer.append(event)
            time.sleep(0.8)  # the runner fails and backs off meanwhile
            server.start()
            with open_journal(journal, writable=True, records_per_commit_max=256) as writer:
                for event in chunks[2]:
                    writer.append(event)
                head = writer.next_seq - 1
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and InfluxMetrics.open(followed).checkpoint_seq != head:
                time.sleep(0.05)
        finally:
            done.set()
            thread.join(timeout=30)
        (stats,) = stats_box
        assert stats.outages >= 1, stats
        assert stats.checkpoint_seq == head
        clean = InfluxV1(server.url, "clean")
        with open_journal(journal) as reader:
            assert InfluxMetrics.open(clean).run(reader, batch_records_max=10_000) == head + 1
        followed_points, clean_points = _dump(followed), _dump(clean)
        assert followed_points == clean_points
        assert len(clean_points["fills"]) == 750  # one per fill: distinct (instrument, ns)
        funnel_last = dict(
            zip(
                followed.query('SELECT last("submitted") FROM "order_funnel"')[0]["columns"],
                followed.query('SELECT last("submitted") FROM "order_funnel"')[0]["values"][0],
                strict=True,
            )
        )
        assert funnel_last["last"] == 750
        assert any("target unavailable" in r.getMessage() for r in caplog.records)


def test_a_bad_point_is_refused_not_retried(tmp_path: Path) -> None:
    from projections.metrics_influx import InfluxError

    (tmp_path / "influx").mkdir()
    with running_influxd(tmp_path / "influx") as server:
        transport = InfluxV1(server.url, "bad")
        transport.create_database()
        with pytest.raises(InfluxError, match="HTTP 400"):
            transport.write(["nav nav_minor=notanumber 1"])
        transport.write(["nav nav_minor=5i 1"])
        assert transport.query('SELECT "nav_minor" FROM "nav"')[0]["values"] == [[1, 5]]


def _panel() -> Panel:
    instruments = (
        Instrument(
            instrument_id=7, symbol="BTC/USDT", venue="binance", asset_class="crypto", currency="USDT",
            price_digits=2, tick_raw=1, qty_digits=3, lot_raw=1,
        ),
        Instrument(
            instrument_id=9, symbol="600519", venue="XSHG", asset_class="equity", currency="CNY",
            price_digits=2, tick_raw=1, qty_digits=0, lot_raw=100,
        ),
    )  # fmt: skip
    ts = np.array([1_704_153_600, 1_704_240_000, 1_704_326_400], dtype=np.int64) * 10**9
    close = np.array([[4_250_012, 170_000], [4_300_000, 0], [4_410_050, 171_500]], dtype=np.int64)
    valid = close > 0
    return Panel(
        ts_ns=ts,
        day=np.array([20240102, 20240103, 20240104], dtype=np.int64),
        instruments=instruments,
        open=close - 100 * valid,
        high=close + 500 * valid,
        low=close - 700 * valid,
        close=close,
        volume=np.array([[12_345, 5_000], [1, 0], [999_999, 6_100]], dtype=np.int64),
        valid=valid,
        last_close=np.maximum.accumulate(close, axis=0),
    )


def test_bars_from_a_panel_land_as_ohlcv_series_with_their_tags(tmp_path: Path) -> None:
    from projections.metrics_influx import series_of, write_bars

    (tmp_path / "influx").mkdir()
    with running_influxd(tmp_path / "influx") as server:
        transport = InfluxV1(server.url, "bars")
        assert write_bars(transport, _panel(), "1d", lines_per_write=2) == 5  # the missing bar is skipped
        assert write_bars(transport, _panel(), "1d") == 5  # rewriting is idempotent
        series = transport.query('SELECT * FROM "ohlcv_1d" GROUP BY *')
        by_symbol = {s["tags"]["symbol"]: s for s in series}
        assert sorted(by_symbol) == ["600519", "BTC/USDT"]
        btc = by_symbol["BTC/USDT"]
        assert btc["tags"] == {
            "asset_class": "crypto", "exchange": "binance", "instrument_id": "7", "symbol": "BTC/USDT",
        }  # fmt: skip
        assert set(btc["columns"]) == {"time"} | series_of("ohlcv_1d").fields  # type: ignore[union-attr]
        rows = [dict(zip(btc["columns"], values, strict=True)) for values in btc["values"]]
        assert [row["time"] for row in rows] == [
            1_704_153_600 * 10**9,
            1_704_240_000 * 10**9,
            1_704_326_400 * 10**9,
        ]
        assert rows[0] == {
            "time": 1_704_153_600 * 10**9, "open": 42499.12, "high": 42505.12, "low": 42493.12,
            "close": 42500.12, "volume": 12.345,
        }  # fmt: skip
        moutai = [
            dict(zip(by_symbol["600519"]["columns"], v, strict=True)) for v in by_symbol["600519"]["values"]
        ]
        assert [(row["close"], row["volume"]) for row in moutai] == [(1700.0, 5000.0), (1715.0, 6100.0)]
        assert by_symbol["600519"]["tags"]["exchange"] == "XSHG"
        with pytest.raises(ValueError, match="timeframe"):
            write_bars(transport, _panel(), "daily")


def test_tape_projections_bars_writes_a_lake_data_set(tmp_path: Path) -> None:
    from cli.main import main as tape
    from lake.store import load_panel
    from tests.factories import make_dataset

    make_dataset(tmp_path / "data", symbols=3, bars=40, frequency="1m")
    panel, _ = load_panel(tmp_path / "data")
    (tmp_path / "influx").mkdir()
    with running_influxd(tmp_path / "influx") as server:
        assert tape(["projections", "bars", str(tmp_path / "data"), "--influx", server.url]) == 0
        series = InfluxV1(server.url, "tape").query('SELECT count("close") FROM "ohlcv_1m" GROUP BY "symbol"')
        counts = {s["tags"]["symbol"]: s["values"][0][1] for s in series}
        expected = {inst.symbol: int(panel.valid[:, i].sum()) for i, inst in enumerate(panel.instruments)}
        assert counts == expected and sum(counts.values()) > 0
