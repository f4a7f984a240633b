"""Exchange rates as a data-set table from the user's file (``tape export --fx FILE``, ``lake.fx_rates``).

Real bars: SPDB 600000.SH (hikyuu daily, CNY) and AAPL (abu daily, USD), ingested into one lake
through ``tape ingest`` and exported together for 2014-06-10..2014-12-31. The rates are
CONSTRUCTED (no shared data set has CNY/USD rates): the three-market test's deterministic wave,
written as the CSV a user would supply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli.wiring import replay_builder
from domain.events import (
    CurrenciesMarked,
    DayClosed,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from domain.fx import FxRate
from domain.market import Panel
from domain.markets import CnFeeRows, session_intervals_ns
from kernel.replay import replay
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.fx_rates import FxFileError, read_fx_rows
from lake.store import fx_table, write_dataset
from sim.backtest import FxConfig, StrategyConfig, run_backtest
from tests.integration import test_fx_three_markets as three
from tests.integration import test_instrument_metadata as meta


def test_an_fx_file_is_validated_whole_with_its_lines(tmp_path: Path) -> None:
    good = tmp_path / "fx.csv"
    good.write_text(
        "date,currency,base,rate\n2014-06-11,CNY,USD,0.16037\n2014-06-10,CNY,USD,0.16\n2014-06-10,USD,CNY,6.2356\n"
    )
    assert read_fx_rows(good) == [
        FxRate(day=20140610, currency="CNY", base="USD", rate_e8=16_000_000),
        FxRate(day=20140610, currency="USD", base="CNY", rate_e8=623_560_000),
        FxRate(day=20140611, currency="CNY", base="USD", rate_e8=16_037_000),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "date,currency,base,rate\n"
        "2014-06-31,CNY,USD,0.16\n"  # no such day
        "2014-06-10,CNX,USD,0.16\n"  # unknown currency
        "2014-06-10,USD,USD,1\n"  # currency is the base
        "2014-06-10,CNY,USD,0.123456789\n"  # finer than 1e-8: refused, not rounded
        "2014-06-11,CNY,USD,-0.16\n"
        "2014-06-12,CNY,USD,abc\n"
        "2014-06-13,CNY,USD,0.16\n"
        "2014-06-13,CNY,USD,0.17\n"  # a second rate for the day
        "2014-06-14,CNY,USD,inf\n"  # was "more than 8 decimal places"
    )
    with pytest.raises(FxFileError) as raised:
        read_fx_rows(bad)
    problems = str(raised.value).split("; ")
    assert [p.split(": ", 1)[0] for p in problems] == [f"{bad}:{n}" for n in (2, 3, 4, 5, 6, 7, 9, 10)]
    assert "rate 'inf' is not a finite decimal number" in problems[7]
    assert "'2014-06-31' is not a date" in problems[0]
    assert "currency 'CNX' is not a known currency" in problems[1]
    assert "both USD" in problems[2]
    assert "more than 8 decimal places" in problems[3]
    assert "must be positive" in problems[4]
    assert "not a decimal number" in problems[5]
    assert "a second CNY/USD rate on 20140613 (line 8)" in problems[6]
    header = tmp_path / "header.csv"
    header.write_text("day,currency,base,rate_e8\n20140610,CNY,USD,16000000\n")
    with pytest.raises(FxFileError, match="the header must be date,currency,base,rate"):
        read_fx_rows(header)


class TwoMarkets(three.ThreeMarkets):
    """SPDB and AAPL at 0.3 of the base NAV each at their first bar, half at their 40th."""

    strategy_id = "two_markets"

    def __init__(self, weights: list[float] | None = None) -> None:
        super().__init__(weights or [0.3, 0.3])

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return super().schedule(panel)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return super().decide(view)


def _events(path: str | Path) -> list[Any]:
    with open_journal(path) as journal:
        return [event for _, event in journal.events()]


@pytest.mark.needs_shared_data
@pytest.mark.skipif(
    not (three.SPDB_FILE.exists() and three.AAPL_FILE.exists()),
    reason=f"real market data not present under {three.SHARED}",
)
def test_tape_export_carries_the_rates_and_a_run_values_the_book_at_them(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    assert meta.tape(["ingest", "hikyuu-day", str(three.SPDB_FILE), "--out", str(lake)]) == 0
    aapl = ["ingest", "csv", str(three.AAPL_FILE), "--out", str(lake), "--symbol", "AAPL", "--venue", "XNAS",
            "--calendar", "XNYS", "--currency", "USD", "--frequency", "1d", "--ts-format", "%Y%m%d",
            "--map", "ts=date,open=open,high=high,low=low,close=close,volume=volume"]  # fmt: skip
    assert meta.tape(aapl) == 0
    export = ["export", str(lake), str(tmp_path / "plain"), "--calendar", "mixed",
              "--start", "2014-06-10", "--end", "2014-12-31"]  # fmt: skip
    assert meta.tape(export) == 0
    days = sorted(set(pq.read_table(tmp_path / "plain" / "bars.parquet").column("day").to_pylist()))
    rates = three.constructed_rates(days)  # CONSTRUCTED, one row per session day of either market
    fx_csv = tmp_path / "fx.csv"
    lines = ["date,currency,base,rate"]
    for rate in rates:
        day = str(rate.day)
        lines.append(f"{day[:4]}-{day[4:6]}-{day[6:]},{rate.currency},{rate.base},{rate.rate_e8 / 10**8:.8f}")
    fx_csv.write_text("\n".join(lines) + "\n")
    data = tmp_path / "data"
    assert meta.tape([*export[:2], str(data), *export[3:], "--fx", str(fx_csv)]) == 0
    stored = [FxRate(**row) for row in pq.read_table(data / "fx.parquet").to_pylist()]
    assert stored == sorted(rates, key=lambda r: (r.day, r.currency, r.base))
    bad = tmp_path / "bad.csv"
    bad.write_text("date,currency,base,rate\n2014-06-10,CNY,USD,0\n")
    assert meta.tape([*export[:2], str(tmp_path / "refused"), *export[3:], "--fx", str(bad)]) == 2
    assert not (tmp_path / "refused").exists()

    cfg = three.config(
        tmp_path, data, fx=FxConfig(initial_cash={"CNY": "2000000"}),
        strategy=StrategyConfig(entry="tests.integration.test_fx_dataset:TwoMarkets"),
    )  # fmt: skip
    run_backtest(cfg, TwoMarkets())
    events = _events(cfg.journal)
    assert {e.currency for e in events if isinstance(e, OrderFilled)} == {"CNY", "USD"}
    by_day = {(r.day, r.currency): r.rate_e8 for r in rates if r.base == "USD"}
    marked = [e for e in events if isinstance(e, CurrenciesMarked)]
    assert len(marked) == len(days)
    for event in marked:  # each close values CNY at the file's rate of that day
        assert {m.currency: m.rate_e8 for m in event.currencies}["CNY"] == by_day[(event.day, "CNY")]
    with open_journal(cfg.journal) as journal:
        assert replay(journal, replay_builder).ok
    # The rates are pinned by the data set's hash: a changed table is refused on replay.
    changed = [FxRate(r.day, r.currency, r.base, r.rate_e8 + (r.day == days[5])) for r in stored]
    pq.write_table(fx_table(changed), data / "fx.parquet")
    with open_journal(cfg.journal) as journal, pytest.raises(Exception, match="hash"):
        replay(journal, replay_builder)


class AtTheAShareClose:
    """SPDB 0.3 of the base NAV at its bar of 2021-11-17 (its close, 07:00 UTC) and 0 at its
    bar of 2021-11-18, XRP 0.2 at its first hour."""

    strategy_id = "a_share_close"

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        spdb = {int(panel.day[s]): int(s) for s in np.flatnonzero(panel.valid[:, 0])}
        xrp = int(np.flatnonzero(panel.valid[:, 1])[0])
        nan = float("nan")
        self._plan = {spdb[20211117]: [0.3, nan], spdb[20211118]: [0.0, nan], xrp: [nan, 0.2]}
        return np.array(sorted(self._plan), dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array(self._plan[view.step])


@pytest.mark.needs_shared_data
@pytest.mark.skipif(
    not (three.SPDB_FILE.exists() and three.XRP_FILE.exists()),
    reason=f"real market data not present under {three.SHARED}",
)
def test_a_share_orders_sent_at_the_close_work_next_session_between_crypto_hours(tmp_path: Path) -> None:
    """Real SPDB daily bars and XRP/USDT:USDT hours of 2021-11-17..21 in one data set, rates
    CONSTRUCTED. The crypto hours after the A-share close used to keep SPDB's session open for
    an order sent at its close: the buy of 11-17 expired unfilled (``CN_DAY_ORDER``) at 23:00
    UTC, and a sell at the 11-18 close of shares bought that morning was refused
    ``CN_T_PLUS_1`` (judged for 11-18). Both work in the next session: the buy fills at the
    11-18 open, the sell at 11-19's."""
    rows = [*three._spdb_rows(20211101, 20211130), *(
        {**row, "instrument_id": 2} for row in three._xrp_rows()
    )]  # fmt: skip
    spdb = three.SPDB
    xrp = msgspec.structs.replace(three.XRP, instrument_id=2)
    days = sorted({row["day"] for row in rows})
    data = tmp_path / "data"
    write_dataset(
        data, name="spdb-xrp-real-bars-constructed-fx", frequency="mixed", calendar="mixed",
        instruments=[spdb, xrp], bars=pa.Table.from_pylist(rows), fx=fx_table(three.constructed_rates(days)),
    )  # fmt: skip
    cfg = three.config(
        tmp_path, data, fx=FxConfig(initial_cash={"CNY": "2000000", "USDT": "100000"}),
        strategy=StrategyConfig(entry="tests.integration.test_fx_dataset:AtTheAShareClose"),
        cn_fees=CnFeeRows(rows=[]),  # 2021: the built-in A-share tables
    )  # fmt: skip
    run_backtest(cfg, AtTheAShareClose())
    events = _events(cfg.journal)
    submitted = [e for e in events if isinstance(e, OrderSubmitted) and e.instrument_id == 1]
    assert [e.side for e in submitted] == [1, -1]
    assert not [e for e in events if isinstance(e, OrderExpired | OrderRejected)]
    filled = [e for e in events if isinstance(e, OrderFilled) and e.instrument_id == 1]
    assert [f.order_id for f in filled] == [e.order_id for e in submitted]
    assert filled[0].fill_qty_raw == filled[1].fill_qty_raw  # all of it sold
    for fill, day in zip(filled, (20211118, 20211119), strict=True):
        opened = next(r["open"] for r in rows if r["instrument_id"] == 1 and r["day"] == day)
        assert fill.ts_ns == session_intervals_ns("XSHG", day)[-1][1]
        assert abs(fill.fill_px_raw - opened) <= opened // 100  # at the open, with slippage
    xrp_steps = [r["ts_ns"] for r in rows if r["instrument_id"] == 2]
    assert submitted[0].ts_ns < max(t for t in xrp_steps if t < filled[0].ts_ns)  # crypto hours between
    with open_journal(cfg.journal) as journal:
        assert replay(journal, replay_builder).ok
        days_closed = [e.day for e in events if isinstance(e, DayClosed)]
        for day in (20211118, 20211119):  # from the snapshot with the sell reserved for 11-19
            assert day in days_closed and replay(journal, replay_builder, day=day).ok
