"""SPDB (600000.SH) held through its 2010-06-10 (10送3派1.5) and 2011-06-03 (10送3派1.6)
ex-dates, on the raw TDX daily bars and the hikyuu 权息 table in ../shared/data/cn/hikyuu.

Honest set-up notes:

* A-share statutory fee tables start 2015-08-01 (``RuleNotDefined`` before), and this branch has
  no configured pre-2015 fee schedule, so the run makes **no fills**: the 6,000-share position
  is seeded into the kernel state (as if bought before the window, cost at the first session's
  close) and the kernel runs from there. The one order it sends — a market sell decided at the
  2011-06-02 close — must be cancelled by the 2011-06-03 action before it can match.
* The 权息 table has no pay date: ``pay_date`` 0 (cash booked on the ex-date) is this test's
  choice. Record days are before 2015-09-08, so no dividend tax is applied (the event says so).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest

from domain.events import (
    CorporateActionApplied,
    Event,
    LedgerPosted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    encode_event,
)
from domain.fixed import Rounding, from_decimal_text
from domain.ledger import Position, cash_account, inventory_account
from domain.market import Panel
from domain.markets import (
    Board,
    CnCorporateAction,
    CnFeeRow,
    CorporateAction,
    SellableBook,
    cn_fee_tables,
    cn_price_limits,
)
from domain.orders import new_order
from kernel.loop import Kernel
from kernel.setup import RunSetup
from kernel.state import KernelState
from kernel.strategy import MarketView
from lake.store import load_panel, write_dataset
from sim.fill_models import FillModel
from sim.venue import SimVenue
from tests.factories import SPDB, ListSink, one_name_policy

HIKYUU = Path(__file__).resolve().parents[3] / "shared" / "data" / "cn" / "hikyuu"
pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not HIKYUU.is_dir(), reason=f"real market data not present at {HIKYUU}"),
]
FIRST, LAST = 20100504, 20110630
SELL_DAY = 20110602  # decide at this close; the order works on 2011-06-03, the ex-date


def _ts(day: int) -> int:
    stamp = f"{day // 10000}-{day // 100 % 100:02d}-{day % 100:02d}T15:00"
    return int((np.datetime64(stamp, "ns") - np.timedelta64(8, "h")).astype(np.int64))  # Asia/Shanghai


def _fen(text: str) -> int:
    return from_decimal_text(text, 2, Rounding.HALF_EVEN)


def _dataset(path: Path, *, with_actions: bool = True) -> Panel:
    with (HIKYUU / "600000.SH_day_raw_tdx.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if FIRST <= int(r["date"].replace("-", "")) <= LAST]
    days = [int(r["date"].replace("-", "")) for r in rows]
    bars = pa.table(
        {
            "ts_ns": [_ts(day) for day in days],
            "day": days,
            "instrument_id": [1] * len(days),
            **{k: [_fen(r[k]) for r in rows] for k in ("open", "high", "low", "close")},
            "volume": [int(r["volume"]) for r in rows],
        }
    )
    actions = []
    with (HIKYUU / "stock_weight_corporate_actions.csv").open() as handle:
        for r in csv.DictReader(handle):
            if (r["market"], r["code"]) != ("SH", "600000") or not FIRST <= int(r["date"]) <= LAST:
                continue
            cn = CnCorporateAction.from_text(
                int(r["date"]),
                bonus=r["bonus_shares_per10"],
                capitalization=r["capitalization_shares_per10"],
                rights=r["rights_shares_per10"],
                rights_price=r["rights_price"],
                cash=r["cash_dividend_per10"],
            )
            if cn.affects_price:  # share-count-only rows change nothing for a holder
                actions.append(CorporateAction.from_cn(1, cn))
    assert [(a.ex_day, a.split_to, a.split_from, a.cash_e8) for a in actions] == [
        (20100610, 13, 10, 15_000_000),
        (20110603, 13, 10, 16_000_000),
    ]
    table = None
    if with_actions:
        table = pa.table(
            {
                "instrument_id": [a.instrument_id for a in actions],
                "ex_date": [a.ex_day for a in actions],
                "pay_date": [a.pay_day for a in actions],
                "cash_e8": [a.cash_e8 for a in actions],
                "split_to": [a.split_to for a in actions],
                "split_from": [a.split_from for a in actions],
            }
        )
    write_dataset(
        path, name="spdb", frequency="1d", calendar="XSHG", instruments=[SPDB], bars=bars, actions=table
    )
    panel, _ = load_panel(path)
    return panel


class SellAt:
    """Target weight 0 (sell everything) at the close of one session."""

    strategy_id = "sell_at"

    def __init__(self, day: int) -> None:
        self.day = day

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.flatnonzero(panel.day_end_mask() & (panel.day == self.day)).astype(np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([0.0])


def _seeded(panel: Panel, shares: int = 6_000) -> KernelState:
    """``shares`` held before the window, at cost = shares x the first session's close."""
    state = KernelState("CNY")
    cost = shares * int(panel.close[0, 0])
    state.positions = {1: Position(shares, cost)}
    state.sellable = {1: SellableBook(day=FIRST, holding=shares)}
    state.balances = {
        cash_account("CNY"): 10_000_000 - cost,
        inventory_account(1): cost,
        "equity:capital:CNY": -10_000_000,
    }
    return state


USER_FEES = cn_fee_tables([
    CnFeeRow(effective_from=20100101, stamp_duty_buy_e8=0, stamp_duty_sell_e8=100_000, transfer_e8=0,
             handling_e8=8_700, regulatory_e8=0)
])  # fmt: skip


def _run(panel: Panel, sell_day: int = SELL_DAY, shares: int = 6_000) -> tuple[list[Event], KernelState]:
    sink = ListSink()
    kernel = Kernel(
                 RunSetup(
                     panel=panel,
                     strategy=SellAt(sell_day),
                     venue=SimVenue(panel, FillModel()),
                     policy=one_name_policy(),
                     currency="CNY",
                     cn_fees=USER_FEES,
                 ),
                 sink,
                 state=_seeded(panel, shares),
             )
    kernel.run()
    return sink.events, kernel.state


def test_spdb_bonus_shares_and_dividends_applied_on_ex_dates(tmp_path: Path) -> None:
    panel = _dataset(tmp_path / "spdb")
    cost = 6_000 * int(panel.close[0, 0])
    events, state = _run(panel)

    assert not [e for e in events if isinstance(e, OrderFilled)]
    submitted = [e for e in events if isinstance(e, OrderSubmitted)]
    assert [(e.side, e.qty_raw) for e in submitted] == [(-1, 7_800)]  # sized before the 2011 action
    cancelled = [e for e in events if isinstance(e, OrderCancelled)]
    assert [(e.order_id, e.reason) for e in cancelled] == [
        (submitted[0].order_id, "CORPORATE_ACTION: ex_day=20110603, split=13/10, cash_e8=16000000")
    ]

    applied = [e for e in events if isinstance(e, CorporateActionApplied)]
    assert [
        (e.ex_day, e.qty_before_raw, e.qty_after_raw, e.dividend_minor, e.cost_minor) for e in applied
    ] == [
        (20100610, 6_000, 7_800, 90_000, cost),  # 6,000 x 13/10; 6,000 x 0.15 CNY
        (20110603, 7_800, 10_140, 124_800, cost),  # 7,800 x 13/10; 7,800 x 0.16 CNY
    ]
    assert all(e.cash_in_lieu_minor == 0 and e.tax_minor == 0 for e in applied)
    assert "no rule for record day 20110602" in applied[1].tax_note
    ex_ts = {_ts(20100610), _ts(20110603)}
    dividends = [e for e in events if isinstance(e, LedgerPosted) and e.memo.startswith("corporate action")]
    assert [e.ts_ns in ex_ts for e in dividends] == [True, True]
    assert [{p.account: p.amount_minor for p in e.postings} for e in dividends] == [
        {"assets:cash:CNY": 90_000, "income:dividend:CNY": -90_000},
        {"assets:cash:CNY": 124_800, "income:dividend:CNY": -124_800},
    ]
    assert state.positions == {1: Position(10_140, cost)}
    book = state.sellable[1]
    assert (book.holding, book.bought_today, book.reserved) == (10_140, 0, 0)  # released, scaled
    assert state.balances[cash_account("CNY")] == 10_000_000 - cost + 90_000 + 124_800
    assert sum(state.balances.values()) == 0

    again, _ = _run(panel)  # deterministic: the same events, byte for byte
    assert [encode_event(e) for e in again] == [encode_event(e) for e in events]


def test_spdb_ex_date_limits_come_from_the_ex_rights_reference(tmp_path: Path) -> None:
    panel = _dataset(tmp_path / "spdb")
    naive_panel = _dataset(tmp_path / "spdb-no-actions", with_actions=False)
    step = int(np.flatnonzero(panel.day == SELL_DAY)[0])  # an order sent here works on 2011-06-03
    assert int(panel.day[step + 1]) == 20110603 and int(panel.close[step, 0]) == 1321
    limits = cn_price_limits(Board.MAIN, False, 20110603, 1004, 1)  # (13.21 - 0.16) / 1.3 -> 10.04
    assert limits is not None and (limits.down_raw, limits.up_raw) == (904, 1104)

    def verdict(venue: SimVenue, side: int, px: int) -> str:
        submitted = OrderSubmitted(
            ts_ns=int(panel.ts_ns[step]),
            order_id=f"o{side}{px}",
            strategy_id="t",
            instrument_id=1,
            side=side,
            order_type="limit",
            qty_raw=100,
            limit_px_raw=px,
            decision_px_raw=px,
        )
        ack = venue.submit(step, new_order(submitted))
        return getattr(ack, "reason", "accepted")

    venue = SimVenue(panel, FillModel())
    assert verdict(venue, 1, 1104) == "accepted"
    assert verdict(venue, 1, 1105).startswith("CN_PRICE_LIMIT: limit_up=11.04")
    assert verdict(venue, -1, 904) == "accepted"
    assert verdict(venue, -1, 903).startswith("CN_PRICE_LIMIT: limit_down=9.04")
    # Without the actions table the band would come from 13.21 and refuse the real prices.
    naive = SimVenue(naive_panel, FillModel())
    assert verdict(naive, 1, 1010).startswith("CN_PRICE_LIMIT: limit_down=11.89")
    # Every price the ex-date bar traded at lies inside the ex-rights band.
    ex = step + 1
    assert limits.down_raw <= int(panel.low[ex, 0]) <= int(panel.high[ex, 0]) <= limits.up_raw


def test_an_odd_lot_left_by_a_bonus_issue_is_sold_whole(tmp_path: Path) -> None:
    """1,900 shares become 2,470 on 2010-06-10 and 3,211 on 2011-06-03 (10 for 3 bonuses): not
    whole lots of 100. A target of zero sells all 3,211 in one order (an A-share holder may sell
    an odd remainder with the rest, MARKET_RULES.md) where the simulated venue used to refuse it
    (LOT_SIZE). The fee rows are illustrative user values (the built-in tables start in 2015)."""
    panel = _dataset(tmp_path / "spdb")
    events, state = _run(panel, sell_day=20110610, shares=1_900)
    applied = [e for e in events if isinstance(e, CorporateActionApplied)]
    assert [(e.qty_before_raw, e.qty_after_raw) for e in applied] == [(1_900, 2_470), (2_470, 3_211)]
    submitted = [e for e in events if isinstance(e, OrderSubmitted)]
    assert [(e.side, e.qty_raw) for e in submitted] == [(-1, 3_211)]
    assert not [e for e in events if isinstance(e, OrderRejected)]
    assert sum(e.fill_qty_raw for e in events if isinstance(e, OrderFilled)) == 3_211
    assert state.positions == {}
