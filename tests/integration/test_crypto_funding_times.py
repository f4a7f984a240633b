"""Perpetual funding times in an exported data set: a venue settles on the hour and records it
some ms late (Binance via freqtrade: 2021-11-18 00:00:00.017, 16:00:00.005, ...). ``tape export``
puts each time on the nearest whole second, so the funding is booked at the bar that ends on the
hour (its close the mark, the position after that bar's fills), not a whole bar later on the
position after the next bar's fills."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli.main import main as tape
from domain.events import LedgerPosted, OrderFilled
from kernel.store import open_journal
from lake.store import load_panel

FUTURES = Path(__file__).resolve().parents[3] / "shared" / "data" / "crypto" / "freqtrade" / "futures"
needs_perp = pytest.mark.skipif(not FUTURES.exists(), reason=f"real perpetual data not present at {FUTURES}")
EIGHT_HOURS_NS = 8 * 3_600 * 10**9
FIVE_MINUTES_NS = 300 * 10**9


def _files(folder: Path, funding_times: list[str]) -> list[Path]:
    """24 five-minute bars of XRP/USDT:USDT (opens 2021-11-17 23:00 to 00:55, closes to 01:00)
    and 0.01% funding rates at ``funding_times``, in freqtrade's feather layout."""
    folder.mkdir()
    opens = pd.date_range("2021-11-17 23:00", periods=24, freq="5min", tz="UTC")
    price = 1.1 + 0.001 * np.arange(24)
    bars = pd.DataFrame(
        {"date": opens, "open": price, "high": price + 0.002, "low": price - 0.001, "close": price + 0.001}
    )
    bars["volume"] = 1000.0
    bars.to_feather(folder / "XRP_USDT_USDT-5m-futures.feather")
    funding = pd.DataFrame({"date": pd.to_datetime(funding_times, utc=True), "open": 0.0001})
    for column in ("high", "low", "close", "volume"):
        funding[column] = 0.0
    funding.to_feather(folder / "XRP_USDT_USDT-8h-funding_rate.feather")
    return sorted(folder.iterdir())


def test_ms_late_funding_times_are_exported_on_the_second(tmp_path: Path) -> None:
    files = _files(tmp_path / "src", ["2021-11-18 00:00:00.017", "2021-11-18 00:59:59.998"])
    lake, data = tmp_path / "lake", tmp_path / "data"
    assert tape(["ingest", "freqtrade", *map(str, files), "--out", str(lake)]) == 0
    assert tape(["export", str(lake), str(data), "--frequency", "5m", "--calendar", "24x7"]) == 0
    panel = load_panel(data)[0]
    hour = 3_600 * 10**9
    # Was 00:00:00.017 (booked at the 00:05 bar) and 00:59:59.998.
    assert panel.funding_ts_ns.tolist() == [
        int(pd.Timestamp("2021-11-18 00:00", tz="UTC").value),
        int(pd.Timestamp("2021-11-18 01:00", tz="UTC").value),
    ]
    assert (panel.funding_ts_ns % hour == 0).all()
    # Each lands on a bar close: kernel.carry books it at the bar that ends on the hour.
    assert set(panel.funding_ts_ns.tolist()) <= set(panel.ts_ns.tolist())


def test_two_rates_in_one_second_are_refused(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    files = _files(tmp_path / "src", ["2021-11-18 00:00:00.000", "2021-11-18 00:00:00.300"])
    lake, data = tmp_path / "lake", tmp_path / "data"
    assert tape(["ingest", "freqtrade", *map(str, files), "--out", str(lake)]) == 0
    capfd.readouterr()
    assert tape(["export", str(lake), str(data), "--frequency", "5m", "--calendar", "24x7"]) == 2
    captured = capfd.readouterr()
    err = captured.out + captured.err  # the CLI's error line is on its results console
    assert "two rates within a second of 1637193600000000000" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not data.exists()


@needs_perp
def test_real_funding_is_booked_at_the_hour(tmp_path: Path) -> None:
    """freqtrade's XRP/USDT:USDT rates: 7 of the 12 inside the bars are stamped ms late. Each is
    booked at the bar ending on its 8-hour time, and a long bought by a fill after that bar does
    not pay it (2021-11-20 00:00: the long the 00:05 bar's fill opened paid 0.641878 USDT)."""
    lake, data = tmp_path / "lake", tmp_path / "data"
    files = [FUTURES / "XRP_USDT_USDT-5m-futures.feather", FUTURES / "XRP_USDT_USDT-8h-funding_rate.feather"]
    assert tape(["ingest", "freqtrade", *map(str, files), "--out", str(lake)]) == 0
    assert tape(["export", str(lake), str(data), "--frequency", "5m", "--calendar", "24x7"]) == 0
    panel = load_panel(data)[0]
    assert len(panel.funding_ts_ns) == 12
    assert (panel.funding_ts_ns % EIGHT_HOURS_NS == 0).all()  # was 7 of 12 a few ms past
    config = tmp_path / "perp.toml"
    config.write_text(
        f'run_id = "perp"\ndataset = "{data}"\njournal = "{tmp_path / "j"}"\ncurrency = "USDT"\n'
        'initial_cash = "10000"\n\n[strategy]\nname = "sma_crossover"\n'
        "params = { fast = 12, slow = 48, weight = 0.9 }\n\n[fill]\nmaker_e8 = 20_000\ntaker_e8 = 50_000\n"
    )
    assert tape(["backtest", str(config)]) == 0
    with open_journal(tmp_path / "j") as journal:
        events = [event for _, event in journal.events()]
    funding = [e for e in events if isinstance(e, LedgerPosted) and e.memo.startswith("funding ")]
    assert funding
    for posting in funding:
        at = int(posting.memo.rsplit(" at ", 1)[1])
        assert posting.ts_ns == at and at % EIGHT_HOURS_NS == 0  # booked at the hour's bar
    fills = [e for e in events if isinstance(e, OrderFilled)]
    midnight = int(pd.Timestamp("2021-11-20 00:00", tz="UTC").value)
    assert any(f.ts_ns == midnight + FIVE_MINUTES_NS and f.side == 1 for f in fills)  # bought after it
    assert all(p.ts_ns != midnight for p in funding)  # flat at 00:00: nothing paid
