"""`tape health` counts the bars a series lacks at its end.

Before, gaps were counted only between an instrument's first and last bar: a series that
stopped early (a US name ending a year before the others on its calendar) showed 100% coverage
and no missing bars. Now each series' end is the data set's last bar on its calendar, capped at
its delisting day from the metadata (a delisted name is not missing the sessions after it);
the bars after its last one are `missing at end` in the table, `missing_end_bars` /
`missing_end_sessions` in --csv and --json (per instrument with `end_day`, `delisting_day`),
counted in the coverage, and in the cockpit's data-tab line.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from cli.cockpit_cmd import lake_health_lines
from cli.main import main as tape
from lake.health import dataset_health
from lake.partitioned import Lake
from lake.schema import Kind
from tests.factories import market_lake

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
US = DATA / "us"
BTC_DAILY = DATA / "crypto" / "abu_daily_cny" / "btc_daily_2013-09-01_2017-07-26.csv"
MARKETS = [
    ("NASDAQ", "equity", "XNYS"),
    ("NYSE", "equity", "XNYS"),
    ("binance", "crypto_spot", "24x7"),
    ("SSE", "equity", "XSHG"),
]


def _csv_row(text: str) -> dict[str, str]:
    return next(row for row in csv.DictReader(io.StringIO(text)) if row["dataset"] == "bars/1d")


def test_a_series_that_stops_early_misses_its_last_bars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # from 2015-01-02: NASDAQ 30 XNYS sessions, NYSE 25 (5 short), crypto 20 UTC days (alone on
    # 24x7: the others' later end is no gap of it), SSE 30 XSHG sessions
    lake = market_lake(tmp_path / "lake", MARKETS, bars=[30, 25, 20, 30])
    (daily,) = dataset_health(Lake(lake))
    nyse = daily.per_instrument["NYSE:SYN0002"]
    assert nyse.coverage == 25 / 30  # was 1.0: no bar missing between its first and last
    assert (nyse.missing_end_bars, nyse.missing_end_sessions, nyse.missing_bars) == (5, 5, 0)
    assert nyse.end_day == daily.per_instrument["NASDAQ:SYN0001"].end_day == 20150213
    assert daily.per_instrument["binance:SYN0003"].missing_end_bars == 0
    assert daily.gaps.missing_end_bars == 5 and daily.coverage == 105 / 110
    assert tape(["health", str(lake), "--csv", "-"]) == 0
    row = _csv_row(capsys.readouterr().out)
    assert (row["missing_end_bars"], row["missing_end_sessions"], row["coverage"]) == ("5", "5", "0.954545")
    assert tape(["health", str(lake)]) == 0
    table = capsys.readouterr().out
    assert max(len(line) for line in table.splitlines()) <= 80
    assert "at end" in table and table.split("bars/1d")[1].split()[:6] == [
        "4",
        "105",
        "95.45%",
        "0",
        "0",
        "5",
    ]
    assert "5 missing at the end" in lake_health_lines(lake)[0]


def test_a_delisted_name_is_not_missing_the_sessions_after_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = market_lake(tmp_path / "lake", MARKETS[:2], bars=[30, 25])
    days = Lake(lake).read(Kind.BARS, "1d", instrument_ids=[2], columns=["day"]).column("day").to_pylist()
    meta = tmp_path / "meta.csv"
    # delisted 2 sessions after its last bar: those 2 are missing, the 3 after the delisting are not
    meta.write_text("symbol,delisting_date\nSYN0002,2015-02-10\n")  # last bar 2015-02-06 (Friday)
    assert days[-1] == 20150206
    assert tape(["ingest", "metadata", str(meta), "--out", str(lake)]) == 0
    capsys.readouterr()
    assert tape(["health", str(lake), "--json", "-"]) == 0
    (daily,) = json.loads(capsys.readouterr().out)
    nyse = daily["per_instrument"]["NYSE:SYN0002"]
    assert (nyse["missing_end_bars"], nyse["delisting_day"], nyse["end_day"]) == (2, 20150210, 20150210)
    meta.write_text("symbol,delisting_date\nSYN0002,2015-02-06\n")  # delisted on its last bar
    assert tape(["ingest", "metadata", str(meta), "--out", str(lake)]) == 0
    (health,) = dataset_health(Lake(lake))
    assert health.gaps.missing_end_bars == 0 and health.coverage == 1.0


@pytest.mark.needs_shared_data
@pytest.mark.skipif(
    not (US.exists() and BTC_DAILY.exists()), reason=f"real US and crypto daily data not present at {DATA}"
)
def test_yahoo_2003_2005_beside_orcl_to_2014_realdata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    files = [str(US / "orcl-1995-2014.txt"), str(US / "yhoo-2003-2005.txt")]
    assert tape(["ingest", "yahoo", *files, "--out", str(lake)]) == 0
    btc = ["ingest", "csv", str(BTC_DAILY), "--out", str(lake), "--symbol", "BTC/CNY", "--venue", "huobi",
           "--calendar", "24x7", "--currency", "CNY", "--frequency", "1d", "--ts-format", "%Y%m%d",
           "--map", "ts=date,open=open,high=high,low=low,close=close,volume=volume"]  # fmt: skip
    assert tape(btc) == 0  # runs to 2017-07-26 on 24x7: no gap for the US names
    orcl_days = Lake(lake).read(Kind.BARS, "1d", instrument_ids=[1], columns=["day"]).column("day").to_numpy()
    (daily,) = dataset_health(Lake(lake))
    yhoo, orcl = daily.per_instrument["XNYS:YHOO"], daily.per_instrument["XNYS:ORCL"]
    # YHOO's file stops 2005-12-30; ORCL (every XNYS session) runs to 2014-12-31
    assert yhoo.missing_end_bars == int((orcl_days > 20051230).sum()) == 2_265
    assert (yhoo.end_day, orcl.missing_end_bars) == (20141231, 0)
    assert daily.per_instrument["huobi:BTC/CNY"].missing_end_bars == 0
    capsys.readouterr()
    meta = tmp_path / "meta.csv"
    meta.write_text("symbol,delisting_date\nYHOO,2005-12-30\n")  # CONSTRUCTED: YHOO traded on
    assert tape(["ingest", "metadata", str(meta), "--out", str(lake)]) == 0
    (daily,) = dataset_health(Lake(lake))
    assert daily.per_instrument["XNYS:YHOO"].missing_end_bars == 0
