"""Ingest of the real files in ../shared/data, corrupt inputs, and the lake's identity."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lake.ingest import ingest
from lake.partitioned import Lake
from lake.schema import Kind
from lake.sources import (
    ColumnMap,
    IngestError,
    parse_freqtrade,
    parse_generic_csv,
    parse_hikyuu_actions,
    parse_hikyuu_day,
    parse_hikyuu_minute,
    parse_yahoo,
)
from lake.store import DatasetError, load_panel

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}")
pytestmark = pytest.mark.needs_shared_data


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@needs_shared
def test_yahoo_daily_files_land_whole_and_reingest_is_already_stored(tmp_path: Path) -> None:
    files = [SHARED / "us" / "orcl-1995-2014.txt", SHARED / "us" / "nvda-1999-2014.txt"]
    report = ingest(tmp_path, files, parse_yahoo)
    assert [(f.rows_in, f.accepted, f.quarantined) for f in report.files] == [
        (5036, 5036, 0),
        (4012, 4012, 0),
    ]
    assert report.files[0].ignored_columns == ["Adj Close"]
    lake = Lake(tmp_path)
    assert lake.verify() == []
    orcl = lake.read(Kind.BARS, "1d", instrument_ids=[1])
    assert orcl.num_rows == 5036
    first = orcl.slice(0, 1).to_pylist()[0]
    assert first["open"] == 2_179_012  # 2.179012 at price_digits 6, exact
    assert first["day"] == 19950103
    before = snapshot(tmp_path)
    again = ingest(tmp_path, [SHARED / "us" / "orcl-2014.txt"], parse_yahoo)
    # identical rows: counted as already stored, neither stored nor quarantined again
    assert (again.files[0].accepted, again.files[0].quarantined, again.files[0].already_stored) == (0, 0, 252)
    assert again.unchanged and again.content_hash == report.content_hash
    assert snapshot(tmp_path) == before  # no quarantine file, no version, no report


@needs_shared
def test_ashare_daily_minute_and_actions(tmp_path: Path) -> None:
    hikyuu = SHARED / "cn" / "hikyuu"
    day = ingest(
        tmp_path,
        [hikyuu / "600000.SH_day_raw_tdx.csv", hikyuu / "h5_000001.SZ_day_raw.csv"],
        parse_hikyuu_day,
    )
    assert day.files[0].accepted == 6119
    assert day.files[1].rows_in == day.files[1].accepted + day.files[1].quarantined == 4937
    minute = ingest(tmp_path, [hikyuu / "time1min_600000.SH.csv"], parse_hikyuu_minute)
    assert minute.files[0].accepted == 10320  # 43 sessions x 240 minutes, all inside XSHG hours
    lake = Lake(tmp_path)
    bars = lake.read(Kind.BARS, "1m", instrument_ids=[1])
    first_close_utc = np.datetime64("2018-12-03T01:31", "ns").astype(np.int64)  # 09:31 Shanghai
    assert bars.column("ts_ns")[0].as_py() == first_close_utc
    actions = ingest(tmp_path, [hikyuu / "stock_weight_corporate_actions.csv"], parse_hikyuu_actions)
    assert actions.files[0].rows_in == 32261
    assert actions.files[0].accepted + actions.files[0].quarantined == 32261
    spdb = lake.read(Kind.CORPORATE_ACTIONS, instrument_ids=[1]).to_pylist()
    row = next(r for r in spdb if r["ex_date"] == 20110603)
    assert (row["bonus_per10_e4"], row["cash_per10_e4"]) == (30_000, 16_000)  # 10送3派1.6


@needs_shared
def test_freqtrade_feather_json_and_funding(tmp_path: Path) -> None:
    ft = SHARED / "crypto" / "freqtrade"
    files = [
        ft / "ETH_BTC-5m.feather",
        ft / "UNITTEST_BTC-1m.json",
        ft / "futures" / "XRP_USDT_USDT-8h-funding_rate.feather",
    ]
    report = ingest(tmp_path, files, parse_freqtrade)
    assert [(f.kind, f.accepted) for f in report.files] == [
        ("bars", 5760),
        ("bars", 13681),
        ("funding_rates", 91),
    ]
    lake = Lake(tmp_path)
    eth = lake.read(Kind.BARS, "5m", instrument_ids=[1]).slice(0, 1).to_pylist()[0]
    assert eth["ts_ns"] == np.datetime64("2018-01-10T05:00", "ns").astype(np.int64)  # open 04:55 + 5m
    assert eth["open"] == 9_840_000  # 0.0984 BTC at 8 digits
    funding = lake.read(Kind.FUNDING_RATES)
    assert funding.column("rate_e8")[0].as_py() == 10_000  # 0.01%
    xrp = ingest(tmp_path, [ft / "XRP_ETH-1m.feather"], parse_freqtrade).files[0]
    assert xrp.rows_in == 2469  # Binance XRP/ETH 1m, quoted in ETH (8-digit accounting unit)
    assert xrp.rows_in == xrp.accepted + xrp.quarantined


@needs_shared
def test_generic_csv_with_a_column_map(tmp_path: Path) -> None:
    mapping = ColumnMap.parse(
        "ts=timestamp,open=open,high=high,low=low,close=close,volume=volume", daily=False, ts_format="iso"
    )
    source = SHARED / "crypto" / "nautilus" / "btc-perp-20211231-20220201_1m.csv"
    header = source.read_text().splitlines()[:2]
    assert header[0].startswith("timestamp")
    report = ingest(
        tmp_path,
        [source],
        lambda path: parse_generic_csv(
            path,
            mapping,
            symbol="BTCUSDT-PERP",
            venue="BINANCE",
            calendar="24x7",
            frequency="1m",
            currency="USDT",
            qty_digits=4,
        ),
    )
    file = report.files[0]
    assert file.rows_in == 45031
    assert file.accepted + file.quarantined == 45031
    assert file.reasons == {}
    stamps = Lake(tmp_path).read(Kind.BARS, "1m", columns=["ts_ns"]).column("ts_ns")
    assert stamps[0].as_py() == np.datetime64("2021-12-31T23:01", "ns").astype(np.int64)


@needs_shared
def test_generic_csv_reads_a_timestamp_split_over_date_and_time_columns(tmp_path: Path) -> None:
    """backtrader's 5-minute feed has ``Date,Time`` columns: ``ts=Date+Time`` joins them (it
    was refused: "missing columns ['Date+Time']"); every bar lands at its Frankfurt time."""
    mapping = ColumnMap.parse(
        "ts=Date+Time,open=Open,high=High,low=Low,close=Close,volume=Volume",
        daily=False,
        ts_format="%Y-%m-%d %H:%M:%S",
        timezone="Europe/Berlin",
    )
    source = SHARED / "us" / "2006-min-005.txt"
    assert source.read_text().splitlines()[1] == "2006-01-02,09:05:00,3578.73,3587.88,3578.73,3582.99,0,0"
    report = ingest(
        tmp_path,
        [source],
        lambda path: parse_generic_csv(
            path, mapping, symbol="STOXX", venue="XETR", calendar="XETR", frequency="5m", currency="EUR"
        ),
    )
    (file,) = report.files
    assert (file.rows_in, file.accepted, file.quarantined) == (2142, 2142, 0)
    assert file.ignored_columns == ["OpenInterest"]  # Date and Time are read, not ignored
    stamps = Lake(tmp_path).read(Kind.BARS, "5m", columns=["ts_ns"]).column("ts_ns")
    assert stamps[0].as_py() == np.datetime64("2006-01-02T08:05", "ns").astype(np.int64)  # 09:05 CET


def test_a_split_timestamp_with_an_empty_part_is_quarantined_and_epoch_reads_one_column(
    tmp_path: Path,
) -> None:
    source = write(
        tmp_path / "bars.csv",
        b"Date,Time,Open,High,Low,Close,Volume\n"
        b"2024-01-02,09:35:00,10,11,9,10.5,100\n"
        b"2024-01-02,,10,11,9,10.5,100\n"
        b"2024-01-02,09:40:00,10,11,9,10.5,100\n",
    )
    mapping = ColumnMap.parse(
        "ts=Date+Time,open=Open,high=High,low=Low,close=Close,volume=Volume",
        daily=False,
        ts_format="%Y-%m-%d %H:%M:%S",
        timezone="America/New_York",
    )
    report = ingest(
        tmp_path / "lake",
        [source],
        lambda path: parse_generic_csv(
            path, mapping, symbol="X", venue="XNYS", calendar="XNYS", frequency="5m"
        ),
    )
    (file,) = report.files
    assert (file.rows_in, file.accepted, file.quarantined) == (3, 2, 1)
    with pytest.raises(IngestError, match="epoch_ms reads one column"):
        ColumnMap.parse(
            "ts=Date+Time,open=O,high=H,low=L,close=C,volume=V", daily=False, ts_format="epoch_ms"
        )


def write(path: Path, text: bytes) -> Path:
    path.write_bytes(text)
    return path


GOOD = b"Date,Open,High,Low,Close,Adj Close,Volume\n2014-01-02,1.0,1.2,0.9,1.1,1.1,100\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (GOOD + b"2014-01-03,1.0,1.2\n", r"bad\.txt:3: expected 7 fields, got 3"),
        (GOOD + b"2014-01-03,1.0,1.2,0.9,\xff\xfe,1.1,100\n", r"bad\.txt:3: not UTF-8"),
        (b"When,O,H,L,C,V\n2014-01-02,1,1,1,1,1\n", r"bad\.txt:1: missing columns \['Date', 'Open'"),
        (GOOD + b"2014-01-03,abc,1.2,0.9,1.1,1.1,100\n", r"bad\.txt:3: field 2 \('abc'\) is not a number"),
        (b"", r"bad\.txt:1: empty file"),
    ],
)
def test_a_corrupt_file_names_file_and_line_and_leaves_the_lake_unchanged(
    tmp_path: Path, body: bytes, message: str
) -> None:
    root = tmp_path / "lake"
    ingest(
        root, [write(tmp_path / "good.txt", GOOD)], lambda p: parse_yahoo(p, symbol="AAA", calendar="XNYS")
    )
    before = snapshot(root)
    bad = write(tmp_path / "bad.txt", body)
    other = write(tmp_path / "other.txt", GOOD.replace(b"2014-01-02", b"2014-01-06"))
    with pytest.raises(IngestError, match=message):
        ingest(root, [other, bad], lambda p: parse_yahoo(p, symbol="AAA", calendar="XNYS"))
    assert snapshot(root) == before


def test_lake_export_feeds_the_kernel_and_tampering_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    rows = b"Date,Open,High,Low,Close,Volume\n" + b"".join(
        f"2014-01-{d:02d},1.0{d},1.2{d},0.9{d},1.1{d},{100 + d}\n".encode() for d in (2, 3, 6, 7, 8)
    )
    ingest(root, [write(tmp_path / "aaa.txt", rows)], lambda p: parse_yahoo(p, symbol="AAA"))
    lake = Lake(root)
    ref = lake.export(tmp_path / "set", "1d", calendar="XNYS")
    panel, loaded = load_panel(tmp_path / "set", expected_hash=ref.content_hash)
    assert panel.close[:, 0].tolist() == [112, 113, 116, 117, 118]
    assert loaded.content_hash == ref.content_hash
    # An export that would hold no bar is refused, not written as an empty data set (exit 0):
    # a frequency the lake does not hold, a window with no bar, a start after the end.
    day = 86_400_000_000_000
    after = int(panel.ts_ns[-1]) // day * day + day  # 2014-01-09, past the last bar
    for frequency, start_ns, end_ns, message in (
        ("1m", None, None, "no 1m bars to export \\(bar frequencies stored: 1d\\)"),
        ("1d", after, None, "no 1d bars from --start to --end to export"),
        ("1d", after, after - day, "start is after its end"),
    ):
        with pytest.raises(DatasetError, match=message):
            lake.export(tmp_path / "empty", frequency, calendar="XNYS", start_ns=start_ns, end_ns=end_ns)
        assert not (tmp_path / "empty").exists()
    # Into the lake itself: the data set's instruments.parquet replaced the lake's (verify failed
    # and every later export was refused).
    for inside in (root, root / "bars"):
        with pytest.raises(DatasetError, match="would be written inside the lake"):
            lake.export(inside, "1d", calendar="XNYS")
    assert lake.verify() == []
    part = next(root.glob("bars/freq=1d/year=2014/*.parquet"))
    table = pq.read_table(part)
    pq.write_table(table.slice(1), part)
    assert lake.verify() == ["bars/freq=1d/year=2014/part-0.parquet: content differs from the manifest"]
    with pytest.raises(DatasetError, match="refusing to export"):
        lake.export(tmp_path / "set2", "1d", calendar="XNYS")
    shutil.rmtree(tmp_path / "set2", ignore_errors=True)


@needs_shared
def test_hikyuu_float32_truncations_are_snapped_to_the_fen_and_counted(tmp_path: Path) -> None:
    """hikyuu stores float32 and prints it truncated: 16.309 is 16.31. Those bars used to be
    quarantined as off the grid (33 of SPDB's), shifting the previous close that price limits
    use; now each such price is snapped and counted, and nothing is dropped."""
    report = ingest(tmp_path, [SHARED / "cn" / "hikyuu" / "h5_600000.SH_day_raw.csv"], parse_hikyuu_day)
    (file,) = report.files
    assert (file.rows_in, file.accepted, file.quarantined, file.snapped) == (2_836, 2_836, 0, 46)
    bars = Lake(tmp_path).read(Kind.BARS, "1d").to_pylist()
    by_day = {row["day"]: row for row in bars}
    # 2001-10-23 in the file: 16.309,16.309,15.850,16.309 (the limit-up close 16.31)
    assert [by_day[20011023][k] for k in ("open", "high", "low", "close")] == [1631, 1631, 1585, 1631]
    assert by_day[20020329]["low"] == 1631


def test_a_price_half_a_tick_off_the_grid_is_not_snapped(tmp_path: Path) -> None:
    from lake.validate import snap_grid

    values, moved = snap_grid(np.array([16.149, 16.145, 16.15, 8.029, 8.0291]), 2, 0.15)
    assert moved.tolist() == [True, False, False, True, True]
    assert values.tolist() == [16.15, 16.145, 16.15, 8.03, 8.03]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("header_only.txt", b"Date,Open,High,Low,Close,Adj Close,Volume\n",
         ":2: no data rows after the header"),
        ("not_utf8.txt", b"Date,Op\xffen,High,Low,Close,Adj Close,Volume\n2014-01-02,1,1,1,1,1,1\n",
         ":1: the header is not UTF-8 text"),
        ("bare_cr.txt", b"Date,Open,High,Low,Close,Adj Close,Volume\n2014-01-02,1,1\r,1,1,1,1\n",
         ":2: malformed line"),
    ],
)  # fmt: skip
def test_files_that_are_not_bar_files_are_named_with_their_line(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(IngestError, match=re.escape(f"{path}{message}")):
        ingest(tmp_path / "lake", [path], lambda p: parse_yahoo(p, symbol="AAA"))
    assert not (tmp_path / "lake" / "bars").exists()


@needs_shared
def test_an_impossible_date_is_quarantined_not_rolled_over(tmp_path: Path) -> None:
    """QA: a yahoo row dated 2014-02-31 was accepted and stored as 2014-03-03 (Arrow's strptime
    rolls the day over). Each parser refuses it: quarantined, and in = accepted + quarantined."""
    yahoo = tmp_path / "orcl-2014.txt"
    yahoo.write_text((SHARED / "us" / "orcl-2014.txt").read_text().replace("\n2014-03-03,", "\n2014-02-31,"))
    hikyuu = tmp_path / "600000.SH_day_raw_tdx.csv"
    source = (SHARED / "cn" / "hikyuu" / "600000.SH_day_raw_tdx.csv").read_text()
    hikyuu.write_text(source.replace("\n2014-03-03,", "\n2014-02-30,"))
    daily = tmp_path / "daily.csv"
    daily.write_text("d,o,h,l,c,v\n20140227,1,1,1,1,5\n20140228,1,1,1,1,5\n20140229,1,1,1,1,5\n")
    minute = tmp_path / "minute.csv"
    minute.write_text("t,o,h,l,c,v\n2014-02-28 10:00,1,1,1,1,5\n2014-02-29 10:00,1,1,1,1,5\n")
    columns = "ts=d,open=o,high=h,low=l,close=c,volume=v"
    for path, parse, rows_in, gone in [
        (yahoo, parse_yahoo, 252, 20140303),
        (hikyuu, parse_hikyuu_day, None, 20140303),
        (
            daily,
            lambda p: parse_generic_csv(
                p,
                ColumnMap.parse(columns, daily=True, ts_format="%Y%m%d"),
                symbol="D",
                venue="X",
                calendar="24x7",
                frequency="1d",
            ),
            3,
            20140301,
        ),
        (
            minute,
            lambda p: parse_generic_csv(
                p,
                ColumnMap.parse(columns.replace("ts=d", "ts=t"), daily=False, ts_format="%Y-%m-%d %H:%M"),
                symbol="M",
                venue="X",
                calendar="24x7",
                frequency="1m",
            ),
            2,
            None,
        ),
    ]:
        lake = tmp_path / f"lake-{path.stem}"
        file = ingest(lake, [path], parse).files[0]
        assert file.rows_in == file.accepted + file.quarantined, path.name
        assert rows_in is None or file.rows_in == rows_in, path.name
        assert (file.quarantined, file.reasons) == (1, {"missing_value": 1}), path.name
        if gone is not None:
            days = Lake(lake).read(Kind.BARS, "1d", columns=["day"]).column("day").to_pylist()
            assert gone not in days, path.name
        else:
            stamps = Lake(lake).read(Kind.BARS, "1m", columns=["ts_ns"]).column("ts_ns").to_pylist()
            assert stamps == [np.datetime64("2014-02-28T10:00", "ns").astype(np.int64)]
