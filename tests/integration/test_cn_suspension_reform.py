"""SPDB (600000.SH) through its 2006 share-structure reform, on the raw TDX daily bars and the
hikyuu 权息 table in ../shared/data/cn/hikyuu.

The real story in the data: SPDB's last bar before the reform is 2006-03-20 (close 10.86); it
has no bar for the 33 sessions 2006-03-21..2006-05-11, while the SSE Composite (in the same
data set, so those sessions are steps of the run) trades on every one of them; it reopens on
2006-05-12 at 10.06, the reform's ex-date, where the 权息 table records 10送3 to tradable holders
with the total share count unchanged (391,500 万股 before and after).

* Suspension: an order for a session in which SPDB has no bar is refused at submission with
  ``CN_SUSPENDED: day=D`` (journaled ``OrderRejected``); one for the reopening session is accepted.
* Reform: the row reaches the data set's actions flagged ``reform`` and a holder receives the
  3 shares per 10 (``[corporate_actions] reform = "bonus"``, the default), or not (``"ignore"``);
  the day's price limits stay on the previous close (the ex-rights formula does not apply).

The fee rows are illustrative user values (the built-in A-share tables start in 2015).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest

from cli.main import main as tape
from domain.events import (
    CorporateActionApplied,
    Event,
    OrderAccepted,
    OrderRejected,
    OrderSubmitted,
    encode_event,
)
from domain.fixed import Rounding, from_decimal_text
from domain.instruments import Instrument
from domain.ledger import Position, cash_account, inventory_account
from domain.market import Panel
from domain.markets import CnFeeRow, SellableBook, cn_fee_tables
from domain.orders import new_order
from kernel.corporate_actions import CorporateActionConfig, actions_of
from kernel.loop import Kernel
from kernel.setup import RunSetup
from kernel.state import KernelState
from kernel.strategy import MarketView
from lake.ingest import ingest
from lake.sources import parse_hikyuu_actions, parse_hikyuu_day
from lake.store import load_panel, write_dataset
from sim.backtest import BacktestConfig, StrategyConfig
from sim.fill_models import FillModel
from sim.venue import SimVenue
from tests.factories import SPDB, ListSink, one_name_policy

HIKYUU = Path(__file__).resolve().parents[3] / "shared" / "data" / "cn" / "hikyuu"
pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not HIKYUU.is_dir(), reason=f"real market data not present at {HIKYUU}"),
]
FIRST, LAST = 20060301, 20060630
LAST_BAR, REOPEN = 20060320, 20060512  # SPDB's last bar before the reform, and its reopening
SSE = Instrument(
    instrument_id=2,
    symbol="000001.SH",
    venue="XSHG",
    asset_class="index",
    currency="CNY",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=1,
)
USER_FEES = cn_fee_tables([
    CnFeeRow(effective_from=20060101, stamp_duty_buy_e8=100_000, stamp_duty_sell_e8=100_000, transfer_e8=0,
             handling_e8=8_700, regulatory_e8=0)
])  # fmt: skip


def _ts(day: int) -> int:
    stamp = f"{day // 10000}-{day // 100 % 100:02d}-{day % 100:02d}T15:00"
    return int((np.datetime64(stamp, "ns") - np.timedelta64(8, "h")).astype(np.int64))  # Asia/Shanghai


def _bars(name: str, instrument_id: int) -> list[dict[str, int]]:
    with (HIKYUU / name).open() as handle:
        rows = [r for r in csv.DictReader(handle) if FIRST <= int(r["date"].replace("-", "")) <= LAST]
    return [
        {
            "ts_ns": _ts(int(r["date"].replace("-", ""))),
            "day": int(r["date"].replace("-", "")),
            "instrument_id": instrument_id,
            **{k: from_decimal_text(r[k], 2, Rounding.HALF_EVEN) for k in ("open", "high", "low", "close")},
            "volume": int(float(r["volume"])),
        }
        for r in rows
    ]


def _dataset(path: Path, actions: pa.Table | None = None) -> Panel:
    rows = sorted(
        _bars("600000.SH_day_raw_tdx.csv", 1) + _bars("000001.SH_index_day_raw_tdx.csv", 2),
        key=lambda r: (r["ts_ns"], r["instrument_id"]),
    )
    bars = pa.table({k: [r[k] for r in rows] for k in rows[0]})
    write_dataset(
        path, name="spdb-reform", frequency="1d", calendar="XSHG", instruments=[SPDB, SSE], bars=bars,
        actions=actions,
    )  # fmt: skip
    panel, _ = load_panel(path)
    return panel


class BuyAt:
    """Target weight 0.5 of SPDB (none of the index) at the close of given sessions."""

    strategy_id = "buy_at"

    def __init__(self, *days: int) -> None:
        self.days = days

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.flatnonzero(panel.day_end_mask() & np.isin(panel.day, self.days)).astype(np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([0.5, 0.0])


def _run(panel: Panel, *days: int) -> list[Event]:
    sink = ListSink()
    kernel = Kernel(
        RunSetup(
            panel=panel,
            strategy=BuyAt(*days),
            venue=SimVenue(panel, FillModel()),
            policy=one_name_policy(),
            currency="CNY",
            cn_fees=USER_FEES,
            initial_cash_minor=10_000_000,  # 100,000.00 CNY
        ),
        sink,
    )
    kernel.begin()
    kernel.run()
    return sink.events


def test_the_data_has_the_suspension(tmp_path: Path) -> None:
    panel = _dataset(tmp_path / "set")
    days = panel.day[panel.day_end_mask()]
    spdb_days = panel.day[panel.valid[:, 0]]
    gap = days[(days > LAST_BAR) & (days < REOPEN)]
    assert len(gap) == 33  # SSE sessions 2006-03-21..2006-05-11: the index trades, SPDB does not
    assert not np.isin(gap, spdb_days).any()
    assert int(panel.valid[:, 1][np.isin(panel.day, gap)].sum()) == 33


def test_an_order_for_a_suspended_session_is_refused_at_submission(tmp_path: Path) -> None:
    panel = _dataset(tmp_path / "set")
    # Decided at the 2006-03-20 close (works on 03-21, suspended), at 04-20 (works on 04-21,
    # suspended) and at 05-11 (works on 05-12, the reopening).
    events = _run(panel, LAST_BAR, 20060420, 20060511)
    submitted = [e for e in events if isinstance(e, OrderSubmitted)]
    assert len(submitted) == 3
    answers = {e.order_id: e for e in events if isinstance(e, OrderAccepted | OrderRejected)}
    verdicts = [getattr(answers[e.order_id], "reason", "accepted") for e in submitted]
    assert verdicts == ["CN_SUSPENDED: day=20060321", "CN_SUSPENDED: day=20060421", "accepted"]
    again = _run(panel, LAST_BAR, 20060420, 20060511)
    assert [encode_event(e) for e in again] == [encode_event(e) for e in events]


def test_no_suspension_is_judged_where_the_data_cannot_tell(tmp_path: Path) -> None:
    """Constructed from the real set: SPDB's bars cut before 2006-04-03 (its data starting in
    the gap looks like a listing) — the sessions before its first bar are not suspensions."""
    panel = _dataset(tmp_path / "set")
    cut = panel.day < 20060403
    valid = panel.valid.copy()
    valid[cut, 0] = False
    last_close = panel.last_close.copy()
    last_close[cut, 0] = 0
    late = dataclasses.replace(panel, valid=valid, last_close=last_close)
    step = int(np.flatnonzero(late.day == 20060330)[-1])  # works on 2006-03-31: no bar yet
    order = new_order(
        OrderSubmitted(
            ts_ns=int(late.ts_ns[step]), order_id="o1", strategy_id="t", instrument_id=1, side=1,
            order_type="market", qty_raw=100, limit_px_raw=0, decision_px_raw=0,
        )
    )  # fmt: skip
    assert isinstance(SimVenue(late, FillModel()).submit(step, order), OrderAccepted)
    assert isinstance(SimVenue(panel, FillModel()).submit(step, order), OrderRejected)


# --- share-structure reform ------------------------------------------------------------------

REFORM_DAY = 20060512


def _lake_set(tmp_path: Path, *extra: str) -> Panel:
    """SPDB's TDX bars and 权息 rows through a lake, exported with ``tape export --actions``."""
    table = tmp_path / "actions.csv"
    with (HIKYUU / "stock_weight_corporate_actions.csv").open() as handle:
        lines = handle.readlines()
    table.write_text(lines[0] + "".join(line for line in lines[1:] if line.startswith("SH,600000,")))
    root = tmp_path / "lake"
    ingest(root, [HIKYUU / "600000.SH_day_raw_tdx.csv"], parse_hikyuu_day)
    ingest(root, [table], parse_hikyuu_actions)
    out = tmp_path / ("set" + "".join(extra))
    args = ["export", str(root), str(out), "--calendar", "XSHG", "--actions", *extra]
    assert tape([*args, "--start", "2006-03-01", "--end", "2006-06-30"]) == 0
    panel, _ = load_panel(out)
    return panel


class Hold:
    """Never trades: the holder's book through the window."""

    strategy_id = "hold"

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.zeros(0, dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return None


def _hold(
    panel: Panel, config: CorporateActionConfig, shares: int = 1_000
) -> tuple[list[Event], KernelState]:
    """``shares`` held before the window at cost = shares x the first close (seeded)."""
    (inst,) = panel.instruments
    iid = inst.instrument_id
    state = KernelState("CNY")
    cost = shares * int(panel.close[0, 0])
    state.positions = {iid: Position(shares, cost)}
    state.sellable = {iid: SellableBook(day=int(panel.day[0]), holding=shares)}
    state.balances = {
        cash_account("CNY"): 10_000_000 - cost,
        inventory_account(iid): cost,
        "equity:capital:CNY": -10_000_000,
    }
    sink = ListSink()
    setup = RunSetup(
        panel=panel,
        strategy=Hold(),
        venue=SimVenue(panel, FillModel()),
        policy=one_name_policy(),
        currency="CNY",
        cn_fees=USER_FEES,
        corporate_actions=config,
    )
    kernel = Kernel(setup, sink, state=state)
    kernel.run()
    return sink.events, kernel.state


def test_export_carries_the_reform_row_flagged(tmp_path: Path) -> None:
    panel = _lake_set(tmp_path)
    rows = [(a.ex_day, a.split_to, a.split_from, a.cash_e8, a.reform) for a in actions_of(panel)]
    assert [row for row in rows if row[4]] == [(REFORM_DAY, 13, 10, 0, True)]  # the one reform row
    assert rows == [  # only the window's actions: SPDB's earlier ones are already in its prices
        (REFORM_DAY, 13, 10, 0, True),  # 10送3 to tradable holders, total shares unchanged
        (20060525, 1, 1, 13_000_000, False),  # 10派1.3
    ]
    assert all(FIRST <= row[0] <= LAST for row in rows)
    skipped = _lake_set(tmp_path, "--reform", "skip")  # the old export: the row left out
    assert [a.ex_day for a in actions_of(skipped)] == [a.ex_day for a in actions_of(panel) if not a.reform]


def test_a_holder_receives_the_reform_shares(tmp_path: Path) -> None:
    panel = _lake_set(tmp_path)
    events, state = _hold(panel, CorporateActionConfig())
    (iid,) = [inst.instrument_id for inst in panel.instruments]
    applied = [e for e in events if isinstance(e, CorporateActionApplied)]
    assert [(e.ex_day, e.qty_before_raw, e.qty_after_raw, e.dividend_minor) for e in applied] == [
        (REFORM_DAY, 1_000, 1_300, 0),
        (20060525, 1_300, 1_300, 16_900),  # the 0.13 CNY dividend on the reform shares too
    ]
    assert state.positions[iid].qty_raw == 1_300
    assert state.sellable[iid].holding == 1_300
    assert sum(state.balances.values()) == 0
    ignored_events, ignored = _hold(panel, CorporateActionConfig(reform="ignore"))
    assert ignored.positions[iid].qty_raw == 1_000  # the book a holder had before this setting
    assert [e.ex_day for e in ignored_events if isinstance(e, CorporateActionApplied)] == [20060525]
    # The holder's value at the reform day's close (10.21): 13,273.00 CNY against 10,210.00.
    step = int(np.flatnonzero(panel.day == REFORM_DAY)[0])
    assert 1_300 * int(panel.close[step, 0]) == 1_327_300
    assert 1_000 * int(panel.close[step, 0]) == 1_021_000


def test_the_reform_day_keeps_the_previous_close_as_limit_reference(tmp_path: Path) -> None:
    """No ex-rights reference on a reform day (``lake/adjust.py``): the band stays on the last
    close, 10.86 on 2006-03-20 -> 9.77..11.95, and the reopening bar (9.80..10.66) lies in it;
    the ex-rights formula (8.35 -> 7.52..9.19) would refuse every price it traded at."""
    panel = _lake_set(tmp_path)
    step = int(np.flatnonzero(panel.day == REFORM_DAY)[0])
    assert int(panel.close[step - 1, 0]) == 1086
    venue = SimVenue(panel, FillModel())
    limits = venue._limits(step, panel.instruments[0].instrument_id)
    assert limits is not None and (limits.down_raw, limits.up_raw) == (977, 1195)
    assert limits.down_raw <= int(panel.low[step, 0]) <= int(panel.high[step, 0]) <= limits.up_raw


def test_the_setting_is_journaled_only_when_it_is_not_the_default() -> None:
    def config(**fields: object) -> BacktestConfig:
        strategy = StrategyConfig(name="sma_crossover")
        return BacktestConfig(run_id="r", dataset="d", journal="j", strategy=strategy,
                              **fields)  # type: ignore[arg-type]  # fmt: skip

    assert "corporate_actions" not in json.loads(config().canonical_json())  # as before the setting
    subscribing = config(corporate_actions=CorporateActionConfig(rights="subscribe"))
    assert json.loads(subscribing.canonical_json())["corporate_actions"] == {"rights": "subscribe"}
    old = BacktestConfig.from_json(subscribing.canonical_json())  # a journal from before reform
    assert old.corporate_actions.reform == "bonus"
    ignoring = config(corporate_actions=CorporateActionConfig(reform="ignore"))
    assert json.loads(ignoring.canonical_json())["corporate_actions"]["reform"] == "ignore"
    assert BacktestConfig.from_json(ignoring.canonical_json()) == ignoring
    with pytest.raises(ValueError, match="reform must be one of"):
        CorporateActionConfig(reform="apply")
