"""A-share dividend tax at the sale, FIFO by lot and holding period (MARKET_RULES.md §1.5),
through a journaled backtest with a 10送5派2 action in 2016 (record days from 2015-09-08 are
covered by the dated tax table).

Hand-made bars (flat prices, so the numbers are exact): 10.00 before the ex-date, 6.53 from it
(the ex-rights reference (10.00 - 0.20) / 1.5). 10,000 shares are bought on 2016-06-02; the
2016-06-15 action pays 2,000.00 CNY and makes them 15,000; sells of 4,500 on 2016-06-21 (held
≤ 1 month: 20%), 4,500 on 2016-10-11 (≤ 1 year: 10%) and 6,000 on 2017-06-06 (> 1 year: 0%).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from domain.events import CorporateActionApplied, LedgerPosted, OrderFilled, StateSnapshotted
from domain.market import Panel
from domain.markets import sessions
from kernel.replay import replay
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import write_dataset
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, run_backtest
from sim.fill_models import FillModel
from tests.factories import SPDB as STOCK

EX_DAY = 20160615
DAYS = sessions("XSHG", 20160502, 20170630)
# Decisions at a session's close trade at the next session's open.
TARGETS = {20160601: 0.1, 20160620: 0.0688, 20161010: 0.0394, 20170605: 0.0}


def _ts(day: int) -> int:
    stamp = f"{day // 10000}-{day // 100 % 100:02d}-{day % 100:02d}T15:00"
    return int((np.datetime64(stamp, "ns") - np.timedelta64(8, "h")).astype(np.int64))


class ByDay:
    strategy_id = "by_day"

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.flatnonzero(np.isin(panel.day, list(TARGETS))).astype(np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([TARGETS[int(view.panel.day[view.step])]])


def _dataset(path: Path) -> Path:
    px = [1000 if day < EX_DAY else 653 for day in DAYS]
    bars = pa.table(
        {
            "ts_ns": [_ts(d) for d in DAYS],
            "day": DAYS,
            "instrument_id": [1] * len(DAYS),
            "open": px,
            "high": px,
            "low": px,
            "close": px,
            "volume": [10**8] * len(DAYS),
        }
    )
    actions = pa.table(
        {
            "instrument_id": [1],
            "ex_date": [EX_DAY],
            "pay_date": [0],
            "cash_e8": [20_000_000],  # 10派2: 0.20 CNY per share
            "split_to": [3],  # 10送5: 15/10
            "split_from": [2],
        }
    )
    write_dataset(
        path, name="cn-tax", frequency="1d", calendar="XSHG", instruments=[STOCK], bars=bars, actions=actions
    )
    return path


def test_dividend_tax_is_withheld_at_each_sale_by_holding_period(tmp_path: Path) -> None:
    config = BacktestConfig(
        run_id="cn-tax",
        dataset=str(_dataset(tmp_path / "data")),
        journal=str(tmp_path / "j"),
        currency="CNY",
        initial_cash="1000000",
        strategy=StrategyConfig(name="by_day"),
        fill=FillModel(commission_e8=25_000, commission_min_minor=500),
    )
    run_backtest(config, ByDay())
    journal = open_journal(config.journal)
    events = [event for _, event in journal.events()]

    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(e.side, e.fill_qty_raw, e.fill_px_raw) for e in fills] == [
        (1, 10_000, 1000),
        (-1, 4_500, 653),
        (-1, 4_500, 653),
        (-1, 6_000, 653),
    ]
    (applied,) = [e for e in events if isinstance(e, CorporateActionApplied)]
    numbers = (applied.qty_before_raw, applied.qty_after_raw, applied.dividend_minor)
    assert numbers == (10_000, 15_000, 200_000)  # 10送5派2 on 10,000 shares
    assert applied.tax_minor == 0 and "record day 20160614; withheld at each sale" in applied.tax_note

    def tax_of(fill: OrderFilled) -> int:
        (posted,) = [e for e in events if isinstance(e, LedgerPosted) and e.memo == f"fill {fill.order_id}"]
        return sum(p.amount_minor for p in posted.postings if p.account == "expenses:tax:dividend:CNY")

    # 4,500 of 15,000 shares carry 600.00 of the 2,000.00 dividend: 20%, then 10%, then 0%.
    assert [tax_of(f) for f in fills] == [0, 12_000, 6_000, 0]
    balances: dict[str, int] = {}
    for event in events:
        if isinstance(event, LedgerPosted):
            assert sum(p.amount_minor for p in event.postings) == 0
            for p in event.postings:
                balances[p.account] = balances.get(p.account, 0) + p.amount_minor
    assert balances["expenses:tax:dividend:CNY"] == 18_000 and sum(balances.values()) == 0

    snapshots = {e.day: e.snapshot for e in events if isinstance(e, StateSnapshotted)}
    assert [(lot.acquired_day, lot.qty, lot.dividends) for lot in snapshots[20160621].tax_lots] == [
        (20160602, 10_500, [(20160614, 140_000)])
    ]
    assert snapshots[20170630].tax_lots == [] and snapshots[20170630].positions == []

    def build(run: object, ref: object) -> object:
        return build_setup(config, ByDay(), expected_hash=ref.content_hash)  # type: ignore[attr-defined]

    assert replay(journal, build).ok  # type: ignore[arg-type]
    for day in (EX_DAY, 20161011):  # from snapshots holding lots
        outcome = replay(journal, build, day=day)  # type: ignore[arg-type]
        assert outcome.ok and outcome.records_compared > 0, outcome.divergence
