"""A run whose A-shares' fee tables do not cover the first session it trades is refused when it
is set up, before a journal is opened, naming ``[cn_fees]`` and the instruments; the check and
each fill look the rates up the same way (``MarketRules.cn_fee_gap`` / ``fee_postings``).
Constructed data on the XSHG calendar around 2015-08-01, where the built-in transfer and
handling fee tables start."""

from __future__ import annotations

from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pyarrow as pa
import pytest

from domain.events import OrderFilled
from domain.instruments import Instrument
from domain.market import Panel
from domain.markets import CnFeeRow, CnFeeRows, RuleNotDefined, cn_fee_tables
from kernel.loop import KernelError
from kernel.markets import MarketRules
from lake.store import write_dataset
from sim.backtest import BacktestConfig, PaperConfig, StrategyConfig, Window, build_setup, run_backtest
from tests.factories import Scripted, one_name_policy


def _instrument(
    iid: int, symbol: str, venue: str = "XSHG", board: str = "main", asset_class: str = "equity"
) -> Instrument:
    return Instrument(
        instrument_id=iid,
        symbol=symbol,
        venue=venue,
        asset_class=asset_class,
        currency="CNY" if venue in ("XSHG", "XSHE") else "USD",
        price_digits=2 if asset_class != "fund" else 3,
        tick_raw=1,
        qty_digits=0,
        lot_raw=100 if venue in ("XSHG", "XSHE") else 1,
        board=board if venue in ("XSHG", "XSHE") and asset_class != "index" else "",
    )


STOCK = _instrument(1, "600000.SH")
FUND = _instrument(2, "510300.SH", board="fund", asset_class="etf")
INDEX = _instrument(3, "000001.SH", asset_class="index")
US = _instrument(4, "XYZ", venue="XNYS")
# A user row from 2015-07-01: the built-in rates of that day where a built-in table holds
# (stamp duty 0.1% on sells, CSRC 0.002%), its own transfer and handling fees before theirs.
ROWS = CnFeeRows(
    rows=[
        CnFeeRow(
            effective_from=20150701,
            stamp_duty_buy_e8=0,
            stamp_duty_sell_e8=100_000,
            transfer_e8=0,
            handling_e8=8_700,
            regulatory_e8=2_000,
        )
    ],
    source="test rates",
)


def _fill(instrument_id: int, side: int) -> OrderFilled:
    return OrderFilled(
        ts_ns=0,
        order_id="t-1",
        instrument_id=instrument_id,
        side=side,
        fill_qty_raw=100,
        fill_px_raw=1_000,
        leaves_qty_raw=0,
        notional_minor=100_000,
        commission_minor=0,
        currency="CNY",
    )


def _panel(days: list[int], valid: list[list[bool]] | None = None) -> Panel:
    """Bars of STOCK, FUND, INDEX and US on ``days`` (``valid``: which hold a bar, per day)."""
    shape = (len(days), 4)
    px = np.full(shape, 1_000, dtype=np.int64)
    return Panel(
        ts_ns=np.arange(1, len(days) + 1, dtype=np.int64),
        day=np.array(days, dtype=np.int64),
        instruments=(STOCK, FUND, INDEX, US),
        open=px,
        high=px,
        low=px,
        close=px,
        volume=px,
        valid=np.ones(shape, dtype=np.bool_) if valid is None else np.array(valid, dtype=np.bool_),
        last_close=px,
    )


def _rules(rows: list[CnFeeRow] | None = None) -> MarketRules:
    return MarketRules(
        {inst.instrument_id: inst for inst in (STOCK, FUND, INDEX, US)}, cn_fee_tables(rows or [])
    )


def test_the_gap_names_the_a_shares_that_need_rows_not_the_index_or_other_markets() -> None:
    gap = _rules().cn_fee_gap(_panel([20150730, 20150731, 20150803]), 1)
    assert gap is not None
    assert gap.startswith("the A-share fee rates are not defined on the first session the run trades")
    assert "600000.SH, 510300.SH (CN transfer fee: no rule before 20150801 (asked for 20150731)" in gap
    assert "000001.SH" not in gap and "XYZ" not in gap  # an index and a US stock need no [cn_fees]
    assert "add a [cn_fees] table with a row dated on or before 20150731" in gap
    assert _rules().cn_fee_gap(_panel([20150730, 20150731, 20150803]), 2) is None
    assert _rules(ROWS.rows).cn_fee_gap(_panel([20150701]), 0) is None
    assert MarketRules({4: US}).cn_fee_gap(_panel([19990104]), 0) is None  # no A-share: nothing to check


def test_each_a_share_is_checked_from_its_first_bar_in_the_run() -> None:
    # The fund's first bar is on 2015-08-03 (listed then, say): the tables cover it; the stock
    # trades from 2015-07-31. Before the run's first step nothing trades.
    valid = [[True, True, True, True], [True, False, True, True], [True, True, True, True]]
    gap = _rules().cn_fee_gap(_panel([20150730, 20150731, 20150803], valid), 1)
    assert gap is not None and "600000.SH (CN transfer fee" in gap and "510300.SH" not in gap
    # No bar yet from the first step on (a session's rows still to arrive): that step's day.
    valid = [[True, True, True, True], [False, False, True, True], [False, False, True, True]]
    gap = _rules().cn_fee_gap(_panel([20150730, 20150803, 20150804], valid), 1)
    assert gap is None


@pytest.mark.parametrize("rows", [[], ROWS.rows])
@pytest.mark.parametrize("day", [20080423, 20080424, 20150630, 20150701, 20150731, 20150801])
def test_the_start_check_and_the_fills_agree_on_every_day(rows: list[CnFeeRow], day: int) -> None:
    rules = _rules(rows)
    refused = rules.cn_fee_gap(_panel([day]), 0) is not None
    for iid in (1, 2):
        for side in (1, -1):
            if refused:
                with pytest.raises(RuleNotDefined, match=r"\[cn_fees\]"):
                    rules.fee_postings(day, _fill(iid, side))
            else:
                rules.fee_postings(day, _fill(iid, side))


def _sessions(first: str, last: str) -> list[int]:
    sessions = xcals.get_calendar("XSHG").sessions_in_range(first, last)
    return [int(s.strftime("%Y%m%d")) for s in sessions]


def _dataset(path: Path, days: list[int]) -> Path:
    close = 1_000 + np.arange(len(days), dtype=np.int64)
    ts = [
        int((np.datetime64(f"{d // 10000}-{d // 100 % 100:02d}-{d % 100:02d}T07:00", "ns")).astype(np.int64))
        for d in days
    ]
    bars = pa.table(
        {
            "ts_ns": ts,
            "day": days,
            "instrument_id": [1] * len(days),
            "open": close.tolist(),
            "high": close.tolist(),
            "low": close.tolist(),
            "close": close.tolist(),
            "volume": [10**7] * len(days),
        }
    )
    write_dataset(path, name=path.name, frequency="1d", calendar="XSHG", instruments=[STOCK], bars=bars)
    return path


def _config(tmp_path: Path, dataset: Path, **fields: object) -> BacktestConfig:
    return BacktestConfig(
        run_id="cn-start",
        dataset=str(dataset),
        journal=str(tmp_path / "journal"),
        currency="CNY",
        initial_cash="1000000",
        strategy=StrategyConfig(name="scripted"),
        risk=one_name_policy(),
        **fields,  # type: ignore[arg-type]
    )


def test_a_backtest_before_the_tables_is_refused_before_its_journal_opens(tmp_path: Path) -> None:
    days = _sessions("2015-07-01", "2015-08-31")
    dataset = _dataset(tmp_path / "cn", days)
    buy_then_sell = Scripted({5: 0.5, len(days) - 3: 0.0})
    config = _config(tmp_path, dataset)
    with pytest.raises(KernelError) as refused:
        run_backtest(config, buy_then_sell)
    message = " ".join(str(refused.value).split())
    assert message.startswith("cn-start: the A-share fee rates are not defined on the first session")
    assert "600000.SH (CN transfer fee: no rule before 20150801 (asked for 20150701)" in message
    assert "add a [cn_fees] table with a row dated on or before 20150701" in message
    assert not (tmp_path / "journal").exists()  # nothing journaled: no unfinished run left behind
    # The same run with a row that covers its first session runs to its end.
    config = _config(tmp_path, dataset, cn_fees=ROWS)
    assert run_backtest(config, buy_then_sell).steps == len(days)


def test_a_window_is_checked_from_its_first_session_not_the_data_sets(tmp_path: Path) -> None:
    days = _sessions("2015-07-01", "2015-08-31")
    dataset = _dataset(tmp_path / "cn", days)
    late = days.index(20150803)
    config = _config(tmp_path, dataset, window=Window(start="2015-08-03"))
    result = run_backtest(config, Scripted({late + 2: 0.5, len(days) - 3: 0.0}))
    assert result.steps == len(days)
    early = _config(tmp_path / "early", dataset, window=Window(start="2015-07-30"))
    with pytest.raises(KernelError, match=r"600000\.SH \(CN transfer fee: .*asked for 20150730"):
        build_setup(early, Scripted({}))


def test_a_paper_session_is_refused_when_its_live_sessions_lack_rates(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "cn", _sessions("2015-06-01", "2015-07-15"))
    early = _config(
        tmp_path, dataset, paper=PaperConfig(start="2015-07-16T00:00:00Z", end="2015-07-31T23:00:00Z")
    )
    with pytest.raises(KernelError, match=r"600000\.SH \(CN transfer fee: .*asked for 20150716.*\[cn_fees\]"):
        build_setup(early, Scripted({}))
    # History before the tables is only warm-up: live sessions from August need no rows.
    later = _dataset(tmp_path / "cn2", _sessions("2015-06-01", "2015-08-14"))
    config = _config(
        tmp_path, later, paper=PaperConfig(start="2015-08-17T00:00:00Z", end="2015-08-31T23:00:00Z")
    )
    setup = build_setup(config, Scripted({}))
    assert int(setup.panel.day[setup.start_step]) == 20150817
