"""Crypto spot quoted in BTC on real data (freqtrade's 2018 Binance 5m X/BTC candles): ingest ->
`tape health` -> export (24x7) -> backtest -> report. Gaps are counted, not filled; fills are
fractional at the lot, tiny prices (0.00003120 BTC) keep their 8 digits in the journal, and the
report states NAV and fees in BTC to the satoshi."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main as tape
from domain.events import OrderFilled
from kernel.store import open_journal
from lake.store import load_panel

FREQTRADE = Path(__file__).resolve().parents[3] / "shared" / "data" / "crypto" / "freqtrade"
pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not FREQTRADE.exists(), reason=f"real crypto data not present at {FREQTRADE}"),
]


def test_btc_quoted_spot_from_ingest_to_report(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    lake, data = tmp_path / "lake", tmp_path / "data"
    files = [FREQTRADE / f"{pair}_BTC-5m.feather" for pair in ("ADA", "ETH", "NXT")]
    assert tape(["ingest", "freqtrade", *map(str, files), "--out", str(lake)]) == 0
    capfd.readouterr()
    assert tape(["health", str(lake), "--json"]) == 0
    (bars,) = json.loads(capfd.readouterr().out)
    per = bars["per_instrument"]
    # ADA/BTC lacks 40 bars on 2018-01-15 (5,720 of 5,760); NXT/BTC's one outlier is quarantined.
    assert per["binance:ADA/BTC"]["missing_bars"] == 40
    assert per["binance:ADA/BTC"]["short_sessions"] == [[20180115, 40]]
    assert per["binance:ETH/BTC"]["missing_bars"] == 0
    assert bars["quarantined"] == {"outlier": 1}
    assert tape(["export", str(lake), str(data), "--frequency", "5m", "--calendar", "24x7"]) == 0
    panel = load_panel(data)[0]
    assert int(panel.valid.sum()) == 5_720 + 5_760 + 5_759  # missing bars stay missing
    assert len(set(panel.day.tolist())) == 21  # 2018-01-10..01-30, weekends included
    config = tmp_path / "spot.toml"
    config.write_text(
        f'run_id = "btc"\ndataset = "{data}"\njournal = "{tmp_path / "j"}"\ncurrency = "BTC"\n'
        'initial_cash = "1.5"\n\n[strategy]\nname = "sma_crossover"\n'
        "params = { fast = 12, slow = 48, weight = 0.3 }\n\n[fill]\nmaker_e8 = 100_000\ntaker_e8 = 100_000\n"
    )
    capfd.readouterr()
    assert tape(["backtest", str(config)]) == 0
    out = capfd.readouterr().out
    with open_journal(tmp_path / "j") as journal:
        fills = [e for _, e in journal.events() if isinstance(e, OrderFilled)]
    assert fills and all(f.currency == "BTC" for f in fills)
    nxt = next(i.instrument_id for i in panel.instruments if i.symbol == "NXT/BTC")
    tiny = next(f for f in fills if f.instrument_id == nxt)
    assert tiny.fill_px_raw < 10_000  # under 0.0001 BTC, at 1e-8
    assert tiny.fill_qty_raw % 10**8  # a fractional quantity (qty digits 8)
    exact = tiny.fill_qty_raw * tiny.fill_px_raw  # at 1e-16 BTC
    assert abs(tiny.notional_minor * 10**8 - exact) <= 10**8 // 2  # to the satoshi
    assert tiny.commission_minor == (tiny.notional_minor * 100_000 + 50_000_000) // 10**8  # 0.1%, half up
    fees = sum(f.commission_minor for f in fills)
    assert f"{fees // 10**8}.{fees % 10**8:08d} BTC" in out  # was "0.08 BTC"
    assert "1.50000000 BTC" in out
