"""`tape export` checks every bar against the calendar the data set declares.

A run steps, annualises (252 session days, 365 for 24x7) and grids its live steps by the data
set's calendar, so a set whose bars are not that calendar's is wrong in every report. Before,
`tape export LAKE OUT --frequency 5m --calendar XNYS` over 24x7 crypto bars wrote the set
(weekend and night bars included, exit 0) and the report annualised over 252. Now the export is
refused (exit 2, nothing written) with the count, the first bar outside and the calendar that
holds them; the US and A-share sets on their own calendars (half days, lunch break) export as before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cli.main import main as tape
from lake.partitioned import Lake, LakeError
from lake.schema import Kind
from lake.sessions import outside_sessions
from tests.factories import market_lake, synth_lake, utc_ns

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
FREQTRADE = DATA / "crypto" / "freqtrade"
HIKYUU = DATA / "cn" / "hikyuu"
US = DATA / "us"
BTC_DAILY = DATA / "crypto" / "abu_daily_cny" / "btc_daily_2013-09-01_2017-07-26.csv"
MINUTE = 60 * 1_000_000_000


def _ns(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


def test_24x7_bars_declared_xnys_are_refused(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # 30 UTC days from Friday 2015-01-02: 9 weekend days and MLK day (01-19) are no XNYS session.
    lake = synth_lake(tmp_path / "lake", symbols=2, bars=30, calendar="24x7")
    out = tmp_path / "set"
    with pytest.raises(LakeError) as refused:
        Lake(lake).export(out, "1d", calendar="XNYS")
    assert "20 of 60 1d bars fall outside XNYS sessions" in str(refused.value)
    assert "the first SYNTH:SYN0001 on 2015-01-03, not a XNYS session day" in str(refused.value)
    capfd.readouterr()
    assert tape(["export", str(lake), str(out), "--calendar", "XNYS"]) == 2
    said = capfd.readouterr().out
    assert "20 of 60 1d bars fall outside XNYS sessions" in said and "nothing written" in said
    assert not out.exists()
    assert tape(["export", str(lake), str(out), "--calendar", "24x7"]) == 0  # its own calendar
    assert pq.read_metadata(out / "bars.parquet").num_rows == 60


def test_unknown_calendar_refused_and_mixed_needs_each_instruments_calendar(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    lake = synth_lake(tmp_path / "lake", symbols=1, bars=10, calendar="24x7")
    capfd.readouterr()
    assert tape(["export", str(lake), str(tmp_path / "foo"), "--calendar", "FOO"]) == 2  # was written
    assert "unknown calendar 'FOO'" in capfd.readouterr().out
    assert not (tmp_path / "foo").exists()
    assert tape(["export", str(lake), str(tmp_path / "foo"), "--calendar", "XSHE"]) == 2
    assert "unknown calendar 'XSHE' (venue XSHE trades on XSHG: --calendar XSHG)" in capfd.readouterr().out
    # a set of several markets checks each instrument on its own calendar: venue SYNTH has none
    # and no ingest declared one (before: written unchecked, exit 0)
    assert tape(["export", str(lake), str(tmp_path / "mixed"), "--calendar", "mixed"]) == 2
    said = " ".join(capfd.readouterr().out.split())
    assert "refusing to export --calendar mixed: no calendar known for 1 instrument (SYNTH:SYN0001)" in said
    assert said.endswith("nothing written")
    assert not (tmp_path / "mixed").exists()


def test_mixed_checks_each_instrument_against_its_own_calendar(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # US (NASDAQ -> XNYS), crypto (24x7) and A-share (SSE -> XSHG) daily bars, each on its own sessions
    markets = [("NASDAQ", "equity", "XNYS"), ("binance", "crypto_spot", "24x7"), ("SSE", "equity", "XSHG")]
    good = market_lake(tmp_path / "good", markets, bars=30)
    ref = Lake(good).export(tmp_path / "good-set", "1d", calendar="mixed")
    assert pq.read_metadata(Path(ref.uri) / "bars.parquet").num_rows == 90
    # a NASDAQ equity whose stored bars are 24x7 (weekends): before, the mixed set kept them
    wrong = market_lake(tmp_path / "wrong", [("NASDAQ", "equity", "XNYS"), ("NASDAQ", "equity", "24x7")])
    out = tmp_path / "wrong-set"
    capfd.readouterr()
    assert tape(["export", str(wrong), str(out), "--calendar", "mixed"]) == 2
    said = " ".join(capfd.readouterr().out.split())
    assert "refusing to export --calendar mixed: 10 of 60 1d bars (1 instrument) fall outside" in said
    assert "the first NASDAQ:SYN0002 on 2015-01-03, not a XNYS session day" in said
    assert "(its calendar: XNYS, from its venue NASDAQ)" in said and said.endswith("nothing written")
    assert not out.exists()
    assert tape(["export", str(wrong), str(out), "--calendar", "mixed", "--symbols", "SYN0001"]) == 0
    # an SSE name with XNYS days (2015-01-02 is a Shanghai holiday): the calendar that fits is named
    swapped = market_lake(tmp_path / "swapped", [("NASDAQ", "equity", "XNYS"), ("SSE", "equity", "XNYS")])
    with pytest.raises(LakeError) as refused:
        Lake(swapped).export(tmp_path / "swapped-set", "1d", calendar="mixed")
    assert "the first SSE:SYN0002 on 2015-01-02, not a XSHG session day" in str(refused.value)
    assert "SYN0002's bars all lie in XNYS sessions" in str(refused.value)
    assert "--symbols SYN0002 --calendar XNYS" in str(refused.value)


def test_mixed_minutes_check_trading_hours_per_instrument(tmp_path: Path) -> None:
    # 1m: XSHG minutes (lunch break) beside XNYS minutes export; XNYS minutes on an SSE name do not
    both = [("SSE", "equity", "XSHG"), ("NASDAQ", "equity", "XNYS")]
    good = market_lake(tmp_path / "good", both, bars=480, frequency="1m", start="2024-03-04")
    ref = Lake(good).export(tmp_path / "good-set", "1m", calendar="mixed")
    assert pq.read_metadata(Path(ref.uri) / "bars.parquet").num_rows == 960
    wrong = market_lake(
        tmp_path / "wrong", [("SSE", "equity", "XNYS")], bars=480, frequency="1m", start="2024-03-04"
    )
    with pytest.raises(LakeError, match=r"480 of 480 1m bars .* outside XSHG trading hours"):
        Lake(wrong).export(tmp_path / "wrong-set", "1m", calendar="mixed")
    assert not (tmp_path / "wrong-set").exists()


def test_us_half_day_and_a_share_lunch_minutes_export(tmp_path: Path) -> None:
    # XNYS 2014-11-26 (390 minutes), 27 Thanksgiving, 28 closes 13:00 ET (210), 12-01 (390)
    us = synth_lake(tmp_path / "us", symbols=2, bars=990, calendar="XNYS", frequency="1m", start="2014-11-26")
    ref = Lake(us).export(tmp_path / "us-set", "1m", calendar="XNYS")
    days = pq.read_table(Path(ref.uri) / "bars.parquet", columns=["day"]).column("day").to_numpy()
    assert int((days == 20141128).sum()) == 2 * 210
    # XSHG 2024-03-04..05: 09:30-11:30 and 13:00-15:00 (240 minutes a session, none at lunch)
    cn = synth_lake(tmp_path / "cn", symbols=2, bars=480, calendar="XSHG", frequency="1m", start="2024-03-04")
    ref = Lake(cn).export(tmp_path / "cn-set", "1m", calendar="XSHG")
    assert pq.read_metadata(Path(ref.uri) / "bars.parquet").num_rows == 960
    with pytest.raises(LakeError, match="960 of 960 1m bars fall outside XNYS sessions"):
        Lake(cn).export(tmp_path / "wrong", "1m", calendar="XNYS")
    assert not (tmp_path / "wrong").exists()


def test_session_edges() -> None:
    # Bars are stamped at their close: inside is (open, close], never the lunch break.
    half_day = [
        _ns("2014-11-28T14:30"),
        _ns("2014-11-28T14:31"),
        _ns("2014-11-28T18:00"),
        _ns("2014-11-28T18:01"),
    ]
    days = np.full(4, 20141128)
    assert outside_sessions("XNYS", np.array(half_day), days, daily=False).tolist() == [
        True,
        False,
        False,
        True,
    ]
    # Shanghai = UTC+8: 09:30 open, 11:30 morning close, 13:00 afternoon open, 15:00 close
    cn = ["01:30", "01:31", "03:30", "03:31", "05:00", "05:01", "07:00", "07:01"]
    ts = np.array([_ns(f"2024-03-04T{hm}") for hm in cn])
    expected = [True, False, False, True, True, False, False, True]
    assert outside_sessions("XSHG", ts, np.full(8, 20240304), daily=False).tolist() == expected
    # a daily bar: its session day, whatever its stamp
    daily = np.array([20141126, 20141127, 20141128, 20141129])
    stamps = np.array([utc_ns("2014-11-26")] * 4)
    assert outside_sessions("XNYS", stamps, daily, daily=True).tolist() == [False, True, False, True]
    assert not outside_sessions("24x7", ts, np.full(8, 20240304), daily=False).any()


@pytest.mark.needs_shared_data
@pytest.mark.skipif(not FREQTRADE.exists(), reason=f"real crypto data not present at {FREQTRADE}")
def test_crypto_5m_declared_xnys_is_refused_realdata(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    lake, out = tmp_path / "lake", tmp_path / "set"
    assert tape(["ingest", "freqtrade", str(FREQTRADE / "ETH_BTC-5m.feather"), "--out", str(lake)]) == 0
    capfd.readouterr()
    assert tape(["export", str(lake), str(out), "--frequency", "5m", "--calendar", "XNYS"]) == 2
    said = " ".join(capfd.readouterr().out.split())  # the console wraps at its width
    # 5,760 bars from 2018-01-10 04:55 UTC: 1,728 on weekends, the rest outside 09:30-16:00 ET
    assert "4,746 of 5,760 5m bars fall outside XNYS sessions" in said
    assert "binance:ETH/BTC at 2018-01-10 05:00 UTC (Wednesday), outside XNYS trading hours" in said
    assert "their calendar, 24x7, holds every bar: --calendar 24x7; nothing written" in said
    assert not out.exists()
    assert tape(["export", str(lake), str(out), "--frequency", "5m", "--calendar", "24x7"]) == 0
    assert pq.read_metadata(out / "bars.parquet").num_rows == 5_760


@pytest.mark.needs_shared_data
@pytest.mark.skipif(not (US.exists() and HIKYUU.exists()), reason=f"real data not present at {DATA}")
def test_us_daily_and_a_share_minutes_export_on_their_calendars_realdata(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    us = tmp_path / "us"
    files = [str(US / "orcl-1995-2014.txt"), str(US / "nvda-1999-2014.txt")]
    assert tape(["ingest", "yahoo", *files, "--out", str(us)]) == 0
    assert tape(["export", str(us), str(tmp_path / "us-set"), "--calendar", "XNYS"]) == 0
    assert pq.read_metadata(tmp_path / "us-set" / "bars.parquet").num_rows == 5_036 + 4_012
    capfd.readouterr()
    assert tape(["export", str(us), str(tmp_path / "us-cn"), "--calendar", "XSHG"]) == 2
    said = " ".join(capfd.readouterr().out.split())
    assert "the first XNYS:ORCL on 1995-01-30, not a XSHG session day" in said  # Spring Festival
    assert "--calendar XNYS" in said
    cn = tmp_path / "cn"
    minutes = [str(HIKYUU / "time1min_600000.SH.csv"), str(HIKYUU / "time1min_000001.SZ.csv")]
    assert tape(["ingest", "hikyuu-minute", *minutes, "--out", str(cn)]) == 0
    assert tape(["export", str(cn), str(tmp_path / "cn-set"), "--frequency", "1m", "--calendar", "XSHG"]) == 0
    bars = pq.read_table(tmp_path / "cn-set" / "bars.parquet", columns=["ts_ns"]).column(0).to_numpy()
    local = (bars // MINUTE + 8 * 60) % (24 * 60)  # minutes into the Shanghai day
    assert not ((local > 11 * 60 + 30) & (local <= 13 * 60)).any()  # none at lunch
    assert local.min() == 9 * 60 + 31 and local.max() == 15 * 60


@pytest.mark.needs_shared_data
@pytest.mark.skipif(
    not (US.exists() and BTC_DAILY.exists()), reason=f"real US and crypto daily data not present at {DATA}"
)
def test_us_daily_and_crypto_24x7_export_mixed_realdata(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    assert tape(["ingest", "yahoo", str(US / "orcl-1995-2014.txt"), "--out", str(lake)]) == 0
    btc = ["ingest", "csv", str(BTC_DAILY), "--out", str(lake), "--symbol", "BTC/CNY", "--venue", "huobi",
           "--calendar", "24x7", "--currency", "CNY", "--frequency", "1d", "--ts-format", "%Y%m%d",
           "--map", "ts=date,open=open,high=high,low=low,close=close,volume=volume"]  # fmt: skip
    assert tape(btc) == 0
    stored = Lake(lake).read(Kind.BARS, "1d", columns=["instrument_id"]).num_rows
    assert tape(["export", str(lake), str(tmp_path / "set"), "--calendar", "mixed"]) == 0
    assert pq.read_metadata(tmp_path / "set" / "bars.parquet").num_rows == stored  # every bar, weekends too
    # a later YHOO file on another calendar than its first ingest's is refused whole: its daily
    # bars would be stamped at XSHG's close and each day stored a second time (before: 4,625 rows
    # added, and YHOO's calendar became XSHG, the later report winning)
    assert tape(["ingest", "yahoo", str(US / "yhoo-2014.txt"), "--out", str(lake)]) == 0
    held = Lake(lake).content_hash
    later = ["ingest", "yahoo", str(US / "yhoo-1996-2015.txt"), "--venue", "XNYS", "--calendar", "XSHG"]
    capfd.readouterr()
    assert tape([*later, "--out", str(lake)]) == 2
    said = " ".join(capfd.readouterr().out.split())
    assert "XNYS:YHOO was ingested on the XNYS calendar" in said and "each day stored twice" in said
    assert Lake(lake).content_hash == held
    # (a mixed set refusing a name's bars on its own calendar: the synthetic tests above)
    assert tape(["export", str(lake), str(tmp_path / "set2"), "--calendar", "mixed"]) == 0
