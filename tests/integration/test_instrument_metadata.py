"""Instrument metadata from a user's file to the kernel (``tape ingest metadata``, ``lake.metadata``).

Real bars: SPDB 600000.SH daily (hikyuu) and the 2006 futures-like daily series in
``us/2006-volume-day-001.txt`` (probably Euro Stoxx 50 futures, per the data README). The
metadata values are **constructed** (labelled so): SPDB was never ST, and the series' contract
size is not given; the tests set them to show each value reaching the journal and the kernel.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from cli.ingest import add_export_parser, add_ingest_parser, cmd_export, cmd_ingest
from domain.events import FutureSettled, InstrumentsDefined, OrderAccepted, OrderRejected, OrderSubmitted
from domain.market import Panel
from kernel.account import AccountConfig
from kernel.futures import FuturesConfig
from kernel.margin import FuturesMarginRow
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.metadata import MetadataError, apply_metadata
from lake.partitioned import Lake
from sim.backtest import run_backtest
from tests.factories import make_config, one_name_policy
from tests.integration.test_cash_account import FEES  # illustrative user rates from 2001

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SPDB = SHARED / "cn" / "hikyuu" / "600000.SH_day_raw_tdx.csv"
FUTURES = SHARED / "us" / "2006-volume-day-001.txt"
pytestmark = pytest.mark.needs_shared_data


def tape(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tape")
    verbs = parser.add_subparsers(dest="verb", required=True)
    add_ingest_parser(verbs)
    add_export_parser(verbs)
    args = parser.parse_args(argv)
    return cmd_ingest(args) if args.verb == "ingest" else cmd_export(args)


def _spdb_lake(tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    assert tape(["ingest", "hikyuu-day", str(SPDB), "--out", str(lake)]) == 0
    return lake


class BuyAboveFivePercent:
    """At step 5, half the book in a limit order 7% above the close: inside a 10% band,
    outside ST's 5% one."""

    strategy_id = "limit7"

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array([5], dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64]:
        return np.array([0.5])

    def limit_prices(self, view: MarketView) -> dict[int, int]:
        inst = view.panel.instruments[0]
        close = int(view.panel.close[view.step, 0])
        return {inst.instrument_id: close * 107 // 100 // inst.tick_raw * inst.tick_raw}


@pytest.mark.skipif(not SPDB.exists(), reason=f"real market data not present at {SPDB}")
def test_st_periods_from_a_metadata_file_reach_the_journal_and_the_5_percent_band(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = _spdb_lake(tmp_path)
    export = ["export", str(lake), "", "--calendar", "XSHG", "--start", "2011-01-01", "--end", "2011-03-31"]
    export[2] = str(tmp_path / "before")
    assert tape(export) == 0
    # Constructed: SPDB as if ST through 2011 (it never was), in the bank sector.
    meta = tmp_path / "meta.csv"
    meta.write_text(
        "symbol,venue,st_periods,sector,listing_date\n600000.SH,SSE,2010-12-01..2011-12-31,bank,1999-11-10\n"
    )
    assert tape(["ingest", "metadata", str(meta), "--out", str(lake)]) == 0
    out = capsys.readouterr().out
    assert "SSE:600000.SH" in out and "rows 1 = changed 1 + unchanged 0" in out
    report = json.loads(sorted((lake / "reports").glob("metadata-*.json"))[-1].read_text())
    assert "st_periods: [] -> [(20101201, 20111231)]" in report["changed"]["SSE:600000.SH"]
    assert Lake(lake).verify() == []
    export[2] = str(tmp_path / "after")
    assert tape(export) == 0
    events = {}
    for name in ("before", "after"):
        config = make_config(tmp_path / name, tmp_path / f"j-{name}", currency="CNY", risk=one_name_policy(),  # type: ignore[arg-type]
                             cn_fees=FEES)  # fmt: skip
        run_backtest(config, BuyAboveFivePercent())
        with open_journal(config.journal) as journal:
            events[name] = [event for _, event in journal.events()]
    defined = next(e for e in events["after"] if isinstance(e, InstrumentsDefined)).instruments[0]
    assert (defined.st_periods, defined.sector, defined.listing_day) == (
        [(20101201, 20111231)],
        "bank",
        19991110,
    )
    assert (
        next(e for e in events["before"] if isinstance(e, InstrumentsDefined)).instruments[0].st_periods == []
    )
    # 7% above the close: inside the main board's 10% band, outside ST's 5%.
    submitted = next(e for e in events["after"] if isinstance(e, OrderSubmitted))
    assert any(isinstance(e, OrderAccepted) for e in events["before"])
    rejected = [e for e in events["after"] if isinstance(e, OrderRejected)]
    assert rejected and rejected[0].order_id == submitted.order_id
    assert rejected[0].reason.startswith("CN_PRICE_LIMIT: limit_up=")


@pytest.mark.skipif(not SPDB.exists(), reason=f"real market data not present at {SPDB}")
def test_a_bad_metadata_file_names_every_problem_and_leaves_the_lake_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = _spdb_lake(tmp_path)
    before = Lake(lake).content_hash
    meta = tmp_path / "meta.toml"
    meta.write_text(
        '[[instrument]]\nsymbol = "600000.SH"\ntick = "0.005"\n'  # finer than the 2 stored digits
        '[[instrument]]\nsymbol = "NOPE"\nboard = "main"\n'
        '[[instrument]]\nsymbol = "600000.SH"\nvenue = "SSE"\n'  # a second row for it
    )
    with pytest.raises(MetadataError) as raised:
        apply_metadata(lake, meta)
    problems = raised.value.problems
    assert problems[0] == "instrument[0]: 600000.SH: tick 0.005 is finer than the stored 2 digits"
    assert problems[1].startswith("instrument[1]: NOPE: no instrument NOPE in the lake")
    assert problems[2] == "instrument[2]: 600000.SH: 600000.SH has another row at instrument[0]"
    assert len(problems) == 3
    periods = tmp_path / "periods.csv"
    periods.write_text("symbol,st_periods,board\n600000.SH,2011-05-01..2011-01-01,mian\n")
    with pytest.raises(MetadataError) as raised:
        apply_metadata(lake, periods)
    assert raised.value.problems == [
        "line 2: 600000.SH: board must be one of ('main', 'star', 'chinext', 'bse', 'fund'), got 'mian'; "
        "st_periods: 2011-05-01..2011-01-01 ends before it starts"
    ]
    # A tick the stored prices are not on, and a delisting date before the last stored bar.
    meta.write_text('[[instrument]]\nsymbol = "600000.SH"\ntick = "0.05"\ndelisting_date = "2005-01-04"\n')
    assert tape(["ingest", "metadata", str(meta), "--out", str(lake)]) == 2
    out = capsys.readouterr().out
    assert "bar(s) have prices off the tick_raw 5" in out and "after the delisting date 20050104" in out
    assert "the lake is unchanged" in out
    assert Lake(lake).content_hash == before
    bad_csv = tmp_path / "meta.csv"
    bad_csv.write_text("symbol,colour\n600000.SH,red\n")
    with pytest.raises(MetadataError, match=r"unknown column\(s\) \['colour'\]"):
        apply_metadata(lake, bad_csv)
    # Each of these was an internal error (AttributeError, UnicodeDecodeError) or, for an empty
    # file or a header alone, "rows 0" and exit 0; a tick of nan was "finer than the digits".
    for body, problem in (
        (b"symbol,sector\n600000.SH,bank,extra\n", "line 2: 3 fields, the header has 2"),
        (b"symbol,sector\n600000.SH,\xff\xfe\n", "not UTF-8 (byte 24)"),
        (b"", "no instrument rows (an empty file, or a header alone)"),
        (b"symbol,sector\n", "no instrument rows (an empty file, or a header alone)"),
        (
            b"symbol,tick\n600000.SH,nan\n",
            "line 2: 600000.SH: tick must be a finite decimal number, got 'nan'",
        ),
    ):
        bad_csv.write_bytes(body)
        with pytest.raises(MetadataError) as raised:
            apply_metadata(lake, bad_csv)
        assert raised.value.problems == [problem]
    assert Lake(lake).content_hash == before


class LongTwoContracts:
    strategy_id = "fut"

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array([3, 120], dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64]:
        return np.array([0.5 if view.step == 3 else 0.0])


@pytest.mark.skipif(not FUTURES.exists(), reason=f"real market data not present at {FUTURES}")
def test_a_future_declared_by_metadata_settles_daily_with_its_multiplier_and_margin(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ingest = ["ingest", "csv", str(FUTURES), "--out", str(lake), "--symbol", "FESX-2006", "--venue", "XEUR",
              "--calendar", "24x7", "--currency", "EUR", "--map",
              "ts=Date,open=Open,high=High,low=Low,close=Close,volume=Volume"]  # fmt: skip
    assert tape(ingest) == 0
    meta = tmp_path / "meta.toml"  # constructed: the Euro Stoxx 50 future's 10 EUR/pt, tick 1.0
    meta.write_text(
        '[[instrument]]\nsymbol = "FESX-2006"\nasset_class = "future"\nmultiplier = 10\ntick = "1"\n'
    )
    assert apply_metadata(lake, meta).changed
    assert tape(["export", str(lake), str(tmp_path / "data"), "--calendar", "24x7"]) == 0
    rows = [FuturesMarginRow(symbol="*", since="2006-01-01", initial="3000", maintenance="2400")]
    config = make_config(tmp_path / "data", tmp_path / "j", currency="EUR", initial_cash="100000",  # type: ignore[arg-type]
                         risk=one_name_policy(), futures=FuturesConfig(settlement="close"),
                         account=AccountConfig(futures_margin=rows))  # fmt: skip
    run_backtest(config, LongTwoContracts())
    with open_journal(config.journal) as journal:
        events = [event for _, event in journal.events()]
    inst = next(e for e in events if isinstance(e, InstrumentsDefined)).instruments[0]
    assert (inst.asset_class, inst.multiplier, inst.tick_raw, inst.price_digits) == ("future", 10, 1, 0)
    settled = [e for e in events if isinstance(e, FutureSettled)]
    assert settled
    first = settled[0]
    assert first.settled_value_minor == first.qty_raw * first.settle_px_raw * 10 * 100  # EUR cents
    # 0.5 x 100,000 EUR at ~3,600 x 10 per contract: one contract (margin 3,000 fits twice over).
    assert first.qty_raw == 1
