"""Perpetual funding at the mark price: funding is position x MARK x rate. When the lake holds
the perpetual's mark-price candles (``SYMBOL#mark``, ``tape ingest freqtrade ...-mark.feather``),
``tape export`` writes each funding row's mark (the close of the mark candle that closes at or
just before the funding time) into ``funding.parquet``'s ``mark`` column and the kernel books the
payment at it; without a mark the bar's close stays the mark, and an old data set keeps its
bytes, hash and booked amounts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli.main import main as tape
from domain.events import LedgerPosted, OrderFilled
from domain.fixed import Rounding
from domain.markets import funding_payment_minor
from kernel.replay import replay
from kernel.store import open_journal
from lake.store import DatasetError, load_panel, write_dataset
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, run_backtest
from sim.fill_models import FillModel
from tests.factories import XRP_PERP, HoldLong, make_perp_dataset

FUTURES = Path(__file__).resolve().parents[3] / "shared" / "data" / "crypto" / "freqtrade" / "futures"
needs_perp = pytest.mark.skipif(not FUTURES.exists(), reason=f"real perpetual data not present at {FUTURES}")


def _ns(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value)


def _feather(path: Path, opens: list[str] | pd.DatetimeIndex, values: dict[str, object]) -> None:
    frame = pd.DataFrame({"date": pd.to_datetime(opens, utc=True)})
    for column in ("open", "high", "low", "close", "volume"):
        frame[column] = values.get(column, 0.0)
    frame.to_feather(path)


def _run(tmp_path: Path, data: Path, name: str) -> tuple[list[LedgerPosted], int]:
    """A long held through the data set's funding times: its funding postings and quantity."""
    config = BacktestConfig(
        run_id=name,
        dataset=str(data),
        journal=str(tmp_path / f"j-{name}"),
        currency="USDT",
        initial_cash="100000",
        strategy=StrategyConfig(name="hold"),
        fill=FillModel(commission_e8=50_000),
    )
    run_backtest(config, HoldLong())
    with open_journal(tmp_path / f"j-{name}") as journal:
        outcome = replay(
            journal, lambda run, ref: build_setup(config, HoldLong(), expected_hash=ref.content_hash)
        )
        assert outcome.ok, outcome.divergence
        events = [event for _, event in journal.events()]
    funding = [e for e in events if isinstance(e, LedgerPosted) and e.memo.startswith("funding ")]
    qty = sum(e.side * e.fill_qty_raw for e in events if isinstance(e, OrderFilled))
    return funding, qty


def _memo(posting: LedgerPosted) -> dict[str, int]:
    fields = dict(part.split("=") for part in posting.memo.split() if "=" in part)
    return {
        "mark": int(fields["mark_px_raw"]),
        "rate": int(fields["rate_e8"]),
        "at": int(posting.memo.split(" at ")[1]),
    }


def _cash(posting: LedgerPosted) -> int:
    return next(p.amount_minor for p in posting.postings if p.account == "assets:cash:USDT")


def test_funding_is_booked_at_the_mark_not_the_last_close(tmp_path: Path) -> None:
    """Constructed 5m bars of XRP/USDT:USDT (closes 1.1013 + 0.0013 a bar, 23:05 to 01:00) and
    1h mark candles far from them (closes 1.23455 at 00:00). Funding at 00:00:00.017 (taken to
    00:00) and at 00:30 is booked at that mark (1.2346 at the perpetual's 4 digits, half-even),
    the 00:30 one from the candle that closed at 00:00; at 01:00 no mark candle has closed
    within the hour, so the bar's close is the mark. The old code booked all three at the 5m
    close (00:00: 1.1156)."""
    src = tmp_path / "src"
    src.mkdir()
    opens = pd.date_range("2021-11-17 23:00", periods=24, freq="5min", tz="UTC")
    price = np.round(1.1 + 0.0013 * np.arange(24), 4)
    _feather(
        src / "XRP_USDT_USDT-5m-futures.feather",
        opens,
        {
            "open": price,
            "high": price + 0.002,
            "low": price - 0.001,
            "close": price + 0.0013,
            "volume": 1000.0,
        },
    )
    mark_close = np.array([1.20001, 1.23455])  # candles 22:00-23:00 and 23:00-00:00
    _feather(
        src / "XRP_USDT_USDT-1h-mark.feather",
        ["2021-11-17 22:00", "2021-11-17 23:00"],
        {"open": mark_close, "high": mark_close, "low": mark_close, "close": mark_close, "volume": np.nan},
    )
    _feather(
        src / "XRP_USDT_USDT-8h-funding_rate.feather",
        ["2021-11-18 00:00:00.017", "2021-11-18 00:30:00.000", "2021-11-18 01:00:00.000"],
        {"open": 0.0001},
    )
    lake, data = tmp_path / "lake", tmp_path / "data"
    assert tape(["ingest", "freqtrade", *map(str, sorted(src.iterdir())), "--out", str(lake)]) == 0
    assert tape(["export", str(lake), str(data), "--frequency", "5m", "--calendar", "24x7"]) == 0
    panel = load_panel(data)[0]
    assert panel.funding_mark_px_raw.tolist() == [12_346, 12_346, 0]
    step = int(np.searchsorted(panel.ts_ns, _ns("2021-11-18 00:00")))
    close_at_midnight = int(panel.close[step, 0])
    assert close_at_midnight == 11_156 != 12_346  # the mark is not the last close

    funding, qty = _run(tmp_path, data, "marked")
    assert qty > 0
    booked = [_memo(p) for p in funding]
    last_close = int(panel.close[-1, 0])
    assert [(b["at"], b["mark"]) for b in booked] == [
        (_ns("2021-11-18 00:00"), 12_346),  # was 11_156, the 5m bar's close
        (_ns("2021-11-18 00:30"), 12_346),
        (_ns("2021-11-18 01:00"), last_close),  # no mark candle within the hour: the close
    ]
    inst = load_panel(data)[0].instruments[0]
    for posting, row in zip(funding, booked, strict=True):
        assert _cash(posting) == funding_payment_minor(
            inst, qty, row["mark"], row["rate"], Rounding.HALF_EVEN
        )
        assert _cash(posting) < 0  # a long pays a positive rate


def test_a_data_set_without_marks_keeps_its_bytes_and_a_bad_mark_is_refused(tmp_path: Path) -> None:
    """A ``mark`` column of zeros (no mark at any funding time) is not written: the data set is
    byte for byte the one written without it (same content hash), so an old data set keeps its
    meaning. A negative mark is refused before anything is written."""
    plain, zeros, bad = tmp_path / "plain", tmp_path / "zeros", tmp_path / "bad"
    rows = {
        "ts_ns": pa.array([_ns("2021-01-01 08:00"), _ns("2021-01-01 16:00")], pa.int64()),
        "instrument_id": pa.array([1, 1], pa.int32()),
        "rate_e8": pa.array([10_000, -5_000], pa.int64()),
    }
    bars = pq.read_table(make_perp_dataset(tmp_path / "perp") / "bars.parquet")
    args = {"frequency": "1h", "calendar": "24x7", "instruments": [XRP_PERP], "bars": bars}
    ref_a = write_dataset(plain, name="perp", funding=pa.table(rows), **args)
    ref_b = write_dataset(zeros, name="perp", funding=pa.table({**rows, "mark": [0, 0]}), **args)
    assert ref_a.content_hash == ref_b.content_hash
    assert (plain / "funding.parquet").read_bytes() == (zeros / "funding.parquet").read_bytes()
    assert load_panel(zeros)[0].funding_mark_px_raw.size == 0
    with pytest.raises(DatasetError, match="mark price is missing or negative"):
        write_dataset(bad, name="perp", funding=pa.table({**rows, "mark": [10_000, -1]}), **args)
    assert not bad.exists()
    marked = write_dataset(bad, name="perp", funding=pa.table({**rows, "mark": [10_000, 0]}), **args)
    assert marked.content_hash != ref_a.content_hash  # a mark is part of what is hashed
    assert load_panel(bad)[0].funding_mark_px_raw.tolist() == [10_000, 0]


@needs_perp
def test_real_xrp_funding_books_the_same_amounts_with_the_8h_mark_candles(tmp_path: Path) -> None:
    """freqtrade's XRP/USDT:USDT: the 8h mark candles' closes equal the 5m closes at the 8-hour
    funding times, so a long held through the 12 funding times pays the same amounts with the
    mark series as without it (11 rows get a mark; 2021-11-18 00:00 has no 8h candle closing
    then and keeps the bar's close). The 1h mark candles differ from the last trade: with them
    the 2021-11-18 00:00 funding is booked at 1.0950, not the 5m close 1.0958."""
    five, rates = (
        FUTURES / "XRP_USDT_USDT-5m-futures.feather",
        FUTURES / "XRP_USDT_USDT-8h-funding_rate.feather",
    )
    sets = {
        "none": [five, rates],
        "mark8h": [five, FUTURES / "XRP_USDT_USDT-8h-mark.feather", rates],
        "mark1h": [five, FUTURES / "XRP_USDT_USDT-1h-mark.feather", rates],
    }
    booked: dict[str, list[LedgerPosted]] = {}
    for name, files in sets.items():
        lake, data = tmp_path / f"lake-{name}", tmp_path / f"data-{name}"
        assert tape(["ingest", "freqtrade", *map(str, files), "--out", str(lake)]) == 0
        assert tape(["export", str(lake), str(data), "--frequency", "5m", "--calendar", "24x7"]) == 0
        booked[name], _ = _run(tmp_path, data, name)
        assert len(booked[name]) == 12
    marks8 = load_panel(tmp_path / "data-mark8h")[0].funding_mark_px_raw
    assert int((marks8 > 0).sum()) == 11 and int(marks8[0]) == 0
    assert load_panel(tmp_path / "data-none")[0].funding_mark_px_raw.size == 0
    amounts = {name: [_cash(p) for p in postings] for name, postings in booked.items()}
    assert amounts["mark8h"] == amounts["none"]
    assert [_memo(p)["mark"] for p in booked["mark8h"]] == [_memo(p)["mark"] for p in booked["none"]]
    first = {name: _memo(postings[0]) for name, postings in booked.items()}
    assert first["none"]["at"] == _ns("2021-11-18 00:00")
    assert first["none"]["mark"] == 10_958 and first["mark1h"]["mark"] == 10_950
    assert amounts["mark1h"][0] != amounts["none"][0]


def test_mark_candles_at_the_exported_frequency_are_not_an_instrument_of_the_data_set(tmp_path: Path) -> None:
    """1h perpetual bars and 1h mark candles in one lake, exported at 1h: the data set held
    ``XRP/USDT:USDT#mark`` as a second instrument (a strategy weighting every name bought it,
    and the simulated venue filled it). The marks are the funding rows' marks only."""
    src = tmp_path / "src"
    src.mkdir()
    opens = pd.date_range("2021-11-17 20:00", periods=8, freq="1h", tz="UTC")
    price = np.round(1.1 + 0.0013 * np.arange(8), 4)
    bars = {"open": price, "high": price + 0.002, "low": price - 0.001, "close": price, "volume": 1000.0}
    _feather(src / "XRP_USDT_USDT-1h-futures.feather", opens, bars)
    marks = {**bars, "close": price + 0.0005, "volume": np.nan}
    _feather(src / "XRP_USDT_USDT-1h-mark.feather", opens, marks)
    _feather(src / "XRP_USDT_USDT-8h-funding_rate.feather", ["2021-11-18 00:00"], {"open": 0.0001})
    lake, data = tmp_path / "lake", tmp_path / "data"
    assert tape(["ingest", "freqtrade", *map(str, sorted(src.iterdir())), "--out", str(lake)]) == 0
    assert tape(["export", str(lake), str(data), "--frequency", "1h", "--calendar", "24x7"]) == 0
    panel = load_panel(data)[0]
    assert [inst.symbol for inst in panel.instruments] == ["XRP/USDT:USDT"]
    assert panel.funding_mark_px_raw.tolist() == [round((price[3] + 0.0005) * 10_000)]  # 23:00-00:00
