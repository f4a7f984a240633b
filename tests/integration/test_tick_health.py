"""Data health of trades (ticks) and quotes: ``lake.tick_health`` and ``tape health``.

The real files in ../shared/data (Kraken, freqtrade and nautilus samples, the ones
``test_lake_trades_quotes.py`` ingests) are skipped when /work/shared is absent; the
constructed cases (labelled) plant a gap, an empty day, quarantined rows and crossed / locked
quotes and assert the exact counts."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from cli.ingest import add_health_parser, cmd_health, format_span, tick_health_line
from cli.wiring import ConfigError
from lake.health import dataset_health
from lake.ingest import ingest
from lake.partitioned import Lake
from lake.schema import Kind
from lake.tick_health import GAP_NS, tick_gaps, tick_health
from lake.tick_sources import (
    parse_freqtrade_trades,
    parse_kraken_trades,
    parse_nautilus_quotes,
    parse_nautilus_trades,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CRYPTO = SHARED / "crypto"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}")
S = 1_000_000_000
DAY1 = 1_704_067_200  # 2024-01-01 00:00:00 UTC, in seconds


def health_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tape")
    verbs = parser.add_subparsers(dest="verb", required=True)
    add_health_parser(verbs)
    return cmd_health(parser.parse_args(["health", *argv]))


def constructed_lake(root: Path) -> Path:
    """CONSTRUCTED CASE (not market data): TST/EUR trades on 2024-01-01 every 10 minutes from
    00:00 to 02:00, a planted 3-hour gap, every 10 minutes from 05:00 to 06:00, nothing on
    2024-01-02, one trade on 2024-01-03 00:30; plus one trade at price 0 and one row repeated
    (both quarantined). TST/USDT quotes: four good ones with a planted 2-hour gap, one crossed
    (bid above ask), one locked (bid equals ask)."""
    stamps = [DAY1 + m * 60 for m in range(0, 121, 10)] + [DAY1 + m * 60 for m in range(300, 361, 10)]
    stamps.append(DAY1 + 2 * 86_400 + 1800)
    lines = [f"{ts},10.50,1.0" for ts in stamps]
    lines.insert(3, f"{DAY1 + 25 * 60},0,1.0")  # non_positive_price
    lines.insert(5, lines[4])  # identical to the row before: duplicate
    trades = root / "TSTEUR.csv"
    trades.write_text("\n".join(lines) + "\n")
    quote_rows = [
        ("2024-01-01 00:00:00.000+00:00", 100.5, 100.0),
        ("2024-01-01 00:10:00.000+00:00", 100.5, 100.1),
        ("2024-01-01 00:20:00.000+00:00", 100.0, 100.2),  # crossed: bid 100.2 above ask 100.0
        ("2024-01-01 00:30:00.000+00:00", 100.3, 100.3),  # locked
        ("2024-01-01 02:30:00.000+00:00", 100.6, 100.4),  # 2h 20m after the last good one
        ("2024-01-01 02:31:00.000+00:00", 100.7, 100.4),
    ]
    quotes = root / "tstusdt-quotes.csv"
    quotes.write_text(
        "timestamp,symbol,ask_size,ask,bid_size,bid\n"
        + "".join(f"{ts},TST/USDT,1.5,{ask},2.5,{bid}\n" for ts, ask, bid in quote_rows)
    )
    lake = root / "lake"
    ingest(lake, [trades], parse_kraken_trades)
    ingest(lake, [quotes], parse_nautilus_quotes)
    return lake


def test_constructed_gap_empty_day_quarantine_and_crossed_quotes(tmp_path: Path) -> None:
    lake = Lake(constructed_lake(tmp_path))
    health = {item.dataset: item for item in tick_health(lake)}
    assert sorted(health) == ["quotes", "trades"]
    trades = health["trades"]
    assert (trades.instruments, trades.rows, trades.ingested) == (1, 21, 23)
    assert trades.quarantined == {"duplicate": 1, "non_positive_price": 1}
    assert trades.reconciled and trades.rows + trades.quarantined_rows == trades.ingested
    tst = trades.per_instrument["kraken:TST/EUR"]
    assert tst.calendar == "24x7" and tst.days_with_data == 2
    assert (tst.sessions_expected, tst.sessions_without_data, tst.days_without_data) == (3, 1, [20240102])
    # the planted 3h gap and the 42h 30m from 2024-01-01 06:00 to 2024-01-03 00:30 (24x7: any gap)
    assert tst.gaps == 2
    assert tst.largest_gaps[:3] == [
        ((DAY1 + 360 * 60) * S, (42 * 3600 + 1800) * S),
        ((DAY1 + 120 * 60) * S, 3 * 3600 * S),
        ((DAY1 + 0) * S, 600 * S),
    ]
    assert (trades.first_ts_ns, trades.last_ts_ns) == (DAY1 * S, (DAY1 + 2 * 86_400 + 1800) * S)
    quotes = health["quotes"]
    # validation rejects crossed and locked quotes: they are counted in the quarantine only
    assert quotes.quarantined == {"crossed_quote": 1, "locked_quote": 1}
    assert (quotes.rows, quotes.ingested, quotes.reconciled) == (4, 6, True)
    assert (quotes.gaps, quotes.largest_gap_ns) == (1, (2 * 3600 + 20 * 60) * S)
    assert quotes.sessions_without_data == 0 and quotes.days_with_data == 1
    book = lake.read(Kind.QUOTES)
    assert (np.asarray(book.column("bid_price")) < np.asarray(book.column("ask_price"))).all()
    # a higher threshold counts only the 42h 30m gap; trades and quotes no longer appear as
    # quarantine-only rows of the bar health
    assert [item.gaps for item in tick_health(lake, gap_ns=4 * 3600 * S)] == [1, 0]
    assert dataset_health(lake) == []


def test_constructed_stray_row_does_not_add_up(tmp_path: Path) -> None:
    """CONSTRUCTED CASE: an ingest report that lost a row is said, not hidden."""
    lake_root = constructed_lake(tmp_path)
    report_path = sorted((lake_root / "reports").glob("ingest-*.json"))[0]
    report = json.loads(report_path.read_text())
    report["files"][0]["rows_in"] -= 1
    report["files"][0]["accepted"] -= 1
    report_path.write_text(json.dumps(report))
    trades = tick_health(Lake(lake_root))[0]
    assert (trades.rows, trades.accepted, trades.reconciled) == (21, 20, False)
    assert "does not add up" in tick_health_line(trades)


def test_constructed_exchange_sessions_lunch_break_and_overnight() -> None:
    """CONSTRUCTED CASE (XSHG, UTC+8, sessions 09:30-11:30 and 13:00-15:00): gaps across the
    close or the lunch break are not counted; a session with no tick and a tick after the close
    are."""
    day2, day4 = 1_704_153_600, 1_704_326_400  # 2024-01-02 and 2024-01-04 00:00 UTC
    hm = [(1, 31), (3, 29), (5, 1), (6, 59), (8, 0)]  # 09:31, 11:29, 13:01, 14:59 CST; 16:00 CST
    ts = np.array([(day2 + h * 3600 + m * 60) * S for h, m in hm] + [(day4 + 5400 + 60) * S], dtype=np.int64)
    report = tick_gaps(ts, "XSHG")
    # 09:31 -> 11:29 and 13:01 -> 14:59 (118 min each); 11:29 -> 13:01 is 2 min of trading
    assert report.gaps == 2
    assert report.largest_gaps[:3] == [(ts[0], 118 * 60 * S), (ts[2], 118 * 60 * S), (ts[1], 2 * 60 * S)]
    assert (report.sessions_expected, report.sessions_without_data, report.days_without_data) == (
        3,
        1,
        [20240103],
    )
    assert report.outside_sessions == 1 and report.days_with_data == 2
    unknown = tick_gaps(ts, None)
    assert unknown.gaps == 5 and unknown.sessions_expected == 0  # no calendar: every gap counts


def test_constructed_tape_health_json_csv_and_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = constructed_lake(tmp_path)
    assert health_cli([str(lake), "--json"]) == 0
    items = {item["dataset"]: item for item in json.loads(capsys.readouterr().out)}
    assert sorted(items) == ["quotes", "trades"]
    assert items["trades"]["gaps"] == 2 and items["trades"]["gap_ns"] == GAP_NS
    assert items["trades"]["quarantined"] == {"duplicate": 1, "non_positive_price": 1}
    assert (items["trades"]["rows"], items["trades"]["ingested"], items["trades"]["reconciled"]) == (
        21,
        23,
        True,
    )
    assert items["trades"]["per_instrument"]["kraken:TST/EUR"]["days_without_data"] == [20240102]
    assert items["quotes"]["quarantined"] == {"crossed_quote": 1, "locked_quote": 1}
    assert health_cli([str(lake), "--csv", "-", "--gap-minutes", "150"]) == 0
    rows = {row["dataset"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert rows["trades"]["gaps"] == "2" and rows["quotes"]["gaps"] == "0"  # 2h 20m < 150 min
    assert rows["trades"]["quarantined"] == "duplicate=1;non_positive_price=1"
    assert rows["quotes"]["largest_gap_ns"] == str(8400 * S) and rows["quotes"]["suspension_sessions"] == ""
    assert health_cli([str(lake)]) == 0
    table = capsys.readouterr().out
    assert "data health: trades and quotes" in table and "data health\n" not in table
    assert "1d 18h 30m" in table  # the largest gap (42h 30m), whole
    words = " ".join(table.split())  # the console wraps long lines at words
    assert "trades: ingested 23 = 21 stored + 2 quarantined (duplicate 1, non_positive_price 1)" in words
    assert max(len(line) for line in table.splitlines()) <= 80
    assert health_cli([str(lake), "--gap-minutes", "0"]) == 2
    for bad in ("nan", "inf", "-inf", "1e300"):  # were a ValueError / OverflowError (internal error)
        assert health_cli([str(lake), f"--gap-minutes={bad}"]) == 2
        assert "--gap-minutes must be a positive number of minutes" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="--json - and --csv - both write to stdout"):  # exit 2 in `tape`
        health_cli([str(lake), "--json", "--csv", "-"])
    assert health_cli([str(lake), "--json", "--csv", str(tmp_path / "out" / "health.csv")]) == 0
    assert json.loads(capsys.readouterr().out)[0]["dataset"] == "trades"
    assert (tmp_path / "out" / "health.csv").read_text().splitlines()[1].startswith("trades,1,21,")


def test_the_trades_and_quotes_table_keeps_every_figure_at_60_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 60 columns the table ran off the terminal's edge: 'empty' read 'empt' and its
    figures and the quarantined counts were not printed at all. Now the span wraps between its
    words and every figure is whole."""
    from cli.progress import console

    lake = constructed_lake(tmp_path)
    monkeypatch.setattr(console, "width", 60)
    assert health_cli([str(lake)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 60
    header = next(i for i, line in enumerate(lines) if "max gap" in line)
    assert lines[header].split()[-3:] == ["gap", "empty", "quar."]
    trades = next(line for line in lines if line.startswith("trades "))
    assert trades.split() == ["trades", "1", "21", "2", "2", "1d", "18h", "30m", "1", "2"]
    quotes = next(line for line in lines if line.startswith("quotes "))
    assert quotes.split() == ["quotes", "1", "4", "1", "1", "2h", "20m", "0", "2"]


def test_format_span() -> None:
    assert [format_span(ns) for ns in (622_000_000, 3600 * S, 6327 * S, (2 * 86_400 + 3600) * S)] == [
        "0.622s",
        "1h",
        "1h 45m 27s",
        "2d 1h",
    ]


@needs_shared
def test_real_trades_and_quotes_health(tmp_path: Path) -> None:
    kraken, binance = CRYPTO / "freqtrade" / "kraken_trades", CRYPTO / "nautilus" / "binance"
    ingest(tmp_path, [CRYPTO / "freqtrade" / "XRP_ETH-trades.parquet"], parse_freqtrade_trades)
    ingest(tmp_path, [kraken / "BCHEUR.csv", kraken / "BCHEUR_incremental_q2.csv"], parse_kraken_trades)
    ingest(tmp_path, [binance / "btcusdt-trades.parquet"], parse_nautilus_trades)
    ingest(tmp_path, [binance / "btcusdt-quotes.parquet"], parse_nautilus_quotes)
    lake = Lake(tmp_path)
    health = {item.dataset: item for item in tick_health(lake)}
    trades, quotes = health["trades"], health["quotes"]
    assert (trades.instruments, trades.rows, trades.ingested, trades.quarantined) == (
        3,
        12477 + 585 + 2001,
        12477 + 634 + 2001,
        {"duplicate": 49},
    )
    assert trades.reconciled and quotes.reconciled
    assert (quotes.rows, quotes.ingested, quotes.quarantined) == (428, 451, {"duplicate": 23})
    bch = trades.per_instrument["kraken:BCH/EUR"]
    # Kraken BCH/EUR over 2023-01-01..02 is thin: 6 gaps over an hour, the longest 1h 45m 27s
    assert (bch.rows, bch.days_with_data, bch.gaps, bch.sessions_without_data) == (585, 2, 6, 0)
    assert bch.largest_gaps[0] == (1672541045 * S, 6327 * S)
    xrp = trades.per_instrument["binance:XRP/ETH"]
    assert (xrp.rows, xrp.days_with_data, xrp.gaps, xrp.sessions_expected) == (12477, 3, 0, 3)
    assert trades.largest_gap_ns == 6327 * S
    # the largest gaps are the largest differences of the stored times (24x7: every gap counts)
    for name, report in trades.per_instrument.items():
        ids = [i.instrument_id for i in lake.instruments() if f"{i.venue}:{i.symbol}" == name]
        stored = np.sort(lake.read(Kind.TRADES, instrument_ids=ids).column("ts_ns").to_numpy())
        assert report.largest_gaps[0][1] == int(np.diff(stored).max())
        assert report.gaps == int((np.diff(stored) > GAP_NS).sum())
    assert quotes.per_instrument["binance:BTC/USDT"].largest_gaps[0][1] == 622_000_000


@needs_shared
def test_real_tape_health_json_includes_trades_and_quotes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binance = CRYPTO / "nautilus" / "binance"
    ingest(tmp_path, [binance / "btcusdt-trades.parquet"], parse_nautilus_trades)
    ingest(
        tmp_path, [binance / "btcusdt-quotes.parquet", binance / "btcusdt-quotes.csv"], parse_nautilus_quotes
    )
    assert health_cli([str(tmp_path), "--json"]) == 0
    items = {item["dataset"]: item for item in json.loads(capsys.readouterr().out)}
    assert (items["trades"]["rows"], items["trades"]["quarantined_rows"], items["trades"]["ingested"]) == (
        2001,
        0,
        2001,
    )
    # the CSV twin is the same quotes: all of it already stored (its 23 quotes sharing a
    # millisecond rejected as the parquet's were), still adding up: 428 + 23 + 451 = 902
    assert items["quotes"]["quarantined"] == {"duplicate": 23}
    assert (
        items["quotes"]["rows"],
        items["quotes"]["ingested"],
        items["quotes"]["already_stored"],
        items["quotes"]["reconciled"],
    ) == (428, 902, 451, True)
