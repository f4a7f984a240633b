"""Rights issues (配股) applied by the kernel at the ex-date: the holder's decision from
``[corporate_actions] rights``, the entitlement, the subscription postings, the cost basis, the
A-share T+1 book and the tax lots, with numbers computed by hand."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from domain.events import (
    CorporateActionApplied,
    Event,
    LedgerPosted,
    OrderCancelled,
    OrderSubmitted,
    RightsIssueApplied,
    decode_event,
    encode_event,
)
from domain.fixed import Rounding
from domain.ledger import Position, cash_account, inventory_account
from domain.market import Panel, PanelError
from domain.markets import (
    CorporateAction,
    SellableBook,
    TaxLot,
    rights_affordable,
    rights_cost_minor,
    rights_shares,
    roll_to,
    sellable,
)
from domain.orders import new_order
from kernel.corporate_actions import CorporateActionBook, CorporateActionConfig, actions_of
from kernel.desk import OrderDesk
from kernel.futures import FuturesBook
from kernel.loop import Kernel
from kernel.markets import MarketRules
from kernel.setup import RunSetup
from kernel.state import KernelState
from lake.store import DatasetError, actions_table, content_hash, load_panel, write_dataset
from sim.backtest import BacktestConfig, StrategyConfig
from sim.fill_models import FillModel
from sim.venue import SimVenue
from tests.factories import SPDB, ListSink, Scripted, one_name_policy

DAYS = [20200106, 20200107, 20200108, 20200109, 20200110]
EX = 2  # 2020-01-08 trades ex
CLOSE = 1_000  # 10.00 CNY
COST = 10_000 * CLOSE  # 10,000 shares at 10.00 -> 100,000.00 CNY in fen


def _ts(day: int) -> int:
    stamp = f"{day // 10000}-{day // 100 % 100:02d}-{day % 100:02d}T15:00"
    return int((np.datetime64(stamp, "ns") - np.timedelta64(8, "h")).astype(np.int64))


def _panel(action: CorporateAction | None) -> Panel:
    steps = len(DAYS)
    px = np.full((steps, 1), CLOSE, dtype=np.int64)
    rows = [action] if action is not None else []
    arrays = {
        "action_instrument_id": [a.instrument_id for a in rows],
        "action_ex_day": [a.ex_day for a in rows],
        "action_pay_day": [a.pay_day for a in rows],
        "action_cash_e8": [a.cash_e8 for a in rows],
        "action_split_to": [a.split_to for a in rows],
        "action_split_from": [a.split_from for a in rows],
        "action_rights_to": [a.rights_to for a in rows],
        "action_rights_from": [a.rights_from for a in rows],
        "action_rights_price_e8": [a.rights_price_e8 for a in rows],
    }
    return Panel(
        ts_ns=np.array([_ts(d) for d in DAYS], dtype=np.int64),
        day=np.array(DAYS, dtype=np.int64),
        instruments=(SPDB,),
        open=px,
        high=px,
        low=px,
        close=px,
        volume=np.full((steps, 1), 10**9, dtype=np.int64),
        valid=np.ones((steps, 1), dtype=np.bool_),
        last_close=px.copy(),
        **{name: np.array(values, dtype=np.int64) for name, values in arrays.items()},
    )


def _rights(**fields: int) -> CorporateAction:
    """10配3 at 8.00 CNY (rights 3/10, 8.00 -> 800_000_000 x 1e-8) on 2020-01-08."""
    values = {"rights_to": 3, "rights_from": 10, "rights_price_e8": 800_000_000, **fields}
    return CorporateAction(instrument_id=1, ex_day=DAYS[EX], **values)


def _state(cash_minor: int, qty: int = 10_000) -> KernelState:
    state = KernelState("CNY")
    state.tax_lots = {1: (TaxLot(DAYS[0], qty),)}  # bought on the first session (dividend tax by lot)
    cost = qty * CLOSE
    state.positions = {1: Position(qty, cost)}
    state.sellable = {1: SellableBook(day=DAYS[0], holding=qty)}
    state.balances = {
        cash_account("CNY"): cash_minor,
        inventory_account(1): cost,
        "equity:capital:CNY": -(cash_minor + cost),
    }
    return state


def _run(
    action: CorporateAction, rights: str, cash_minor: int, *, steps: int = EX + 1, qty: int = 10_000
) -> tuple[list[Event], KernelState]:
    panel = _panel(action)
    sink = ListSink()
    kernel = Kernel(
                 RunSetup(
                     panel=panel,
                     strategy=Scripted({}),
                     venue=SimVenue(panel, FillModel()),
                     policy=one_name_policy(),
                     currency="CNY",
                     corporate_actions=CorporateActionConfig(rights=rights),
                 ),
                 sink,
                 state=_state(cash_minor, qty),
             )
    kernel.run(0, steps)
    return sink.events, kernel.state


def _one(events: list[Event]) -> RightsIssueApplied:
    found = [e for e in events if isinstance(e, RightsIssueApplied)]
    assert len(found) == 1
    return found[0]


def _posted(events: list[Event], prefix: str) -> list[dict[str, int]]:
    return [
        {p.account: p.amount_minor for p in e.postings}
        for e in events
        if isinstance(e, LedgerPosted) and e.memo.startswith(prefix)
    ]


def test_subscribe_10_for_3_at_8_on_10000_shares() -> None:
    events, state = _run(_rights(), "subscribe", 5_000_000)  # 50,000.00 CNY of cash
    event = _one(events)
    # entitlement 10,000 x 3/10 = 3,000; paid 3,000 x 8.00 = 24,000.00 CNY
    assert (event.entitlement_raw, event.subscribed_raw, event.lapsed_raw) == (3_000, 3_000, 0)
    assert event.paid_minor == 2_400_000
    assert (event.qty_before_raw, event.qty_after_raw) == (10_000, 13_000)
    assert event.cost_minor == COST + 2_400_000 and event.note == "subscribed in full"
    assert event.decision == "subscribe" and event.ts_ns == _ts(DAYS[EX])
    assert _posted(events, "rights subscription") == [
        {inventory_account(1): 2_400_000, cash_account("CNY"): -2_400_000}
    ]
    assert state.positions[1] == Position(13_000, COST + 2_400_000)
    assert state.balances[cash_account("CNY")] == 5_000_000 - 2_400_000
    assert state.balances[inventory_account(1)] == COST + 2_400_000
    assert sum(state.balances.values()) == 0
    # T+1: the new shares count as bought on the ex-date session, sellable from the next one
    book = state.sellable[1]
    assert (book.day, book.holding, book.bought_today) == (DAYS[EX], 13_000, 3_000)
    assert sellable(book) == 10_000
    assert sellable(roll_to(book, DAYS[EX + 1])) == 13_000  # every book operation rolls first
    # the action's event comes first and carries no rights numbers (old events keep their bytes)
    applied = [e for e in events if isinstance(e, CorporateActionApplied)]
    assert [(e.qty_before_raw, e.qty_after_raw, e.cost_minor) for e in applied] == [(10_000, 10_000, COST)]
    assert events.index(applied[0]) < events.index(event)
    assert decode_event(encode_event(event)) == event


def test_lapse_is_the_default_and_moves_nothing() -> None:
    events, state = _run(_rights(), "lapse", 5_000_000)
    event = _one(events)
    assert (event.entitlement_raw, event.subscribed_raw, event.lapsed_raw, event.paid_minor) == (
        3_000,
        0,
        3_000,
        0,
    )
    assert event.decision == "lapse" and "lapse" in event.note
    assert (event.qty_after_raw, event.cost_minor) == (10_000, COST)
    assert not [e for e in events if isinstance(e, LedgerPosted)]
    assert state.positions[1] == Position(10_000, COST)
    assert state.balances[cash_account("CNY")] == 5_000_000
    assert CorporateActionConfig() == CorporateActionConfig(rights="lapse")


def test_short_cash_subscribes_the_whole_shares_it_pays_for() -> None:
    # 10,000.50 CNY pays for 1,250 shares at 8.00 (10,000.00); 0.50 stays; 1,750 lapse
    events, state = _run(_rights(), "subscribe", 1_000_050)
    event = _one(events)
    assert (event.entitlement_raw, event.subscribed_raw, event.lapsed_raw) == (3_000, 1_250, 1_750)
    assert event.paid_minor == 1_000_000
    assert "pays for 1250 of 3000" in event.note and "lapsed" in event.note
    assert state.balances[cash_account("CNY")] == 50
    assert state.positions[1] == Position(11_250, COST + 1_000_000)
    # no cash at all: nothing subscribed, nothing posted
    events, state = _run(_rights(), "subscribe", 0)
    assert (_one(events).subscribed_raw, _one(events).lapsed_raw) == (0, 3_000)
    assert not _posted(events, "rights subscription")
    assert state.balances[cash_account("CNY")] == 0


def test_same_day_dividend_pays_towards_the_subscription_and_bonus_shares_get_no_rights() -> None:
    # 10送3派1.6配3 at 8.00 on 10,000 shares: dividend 1,600.00 CNY into cash first, bonus shares
    # 3,000 (13,000 held), rights on the 10,000 held before the ex-date: 3,000 (not 3,900)
    action = _rights(split_to=13, split_from=10, cash_e8=16_000_000)
    events, state = _run(action, "subscribe", 2_300_000)  # 23,000.00 + 1,600.00 = 24,600.00 CNY
    event = _one(events)
    assert (event.entitlement_raw, event.subscribed_raw, event.paid_minor) == (3_000, 3_000, 2_400_000)
    assert (event.qty_before_raw, event.qty_after_raw) == (10_000, 16_000)
    assert state.balances[cash_account("CNY")] == 2_300_000 + 160_000 - 2_400_000
    assert state.positions[1] == Position(16_000, COST + 2_400_000)
    book = state.sellable[1]
    assert (book.holding, book.bought_today) == (16_000, 3_000)
    # tax lots: the old lot got the dividend (record day 2020-01-07) and the bonus shares; the
    # rights shares are a new lot acquired on the ex-date session, with no dividend
    assert state.tax_lots[1] == (TaxLot(DAYS[0], 13_000, ((DAYS[EX - 1], 160_000),)), TaxLot(DAYS[EX], 3_000))


def test_an_odd_holding_gets_whole_rights_shares_toward_zero() -> None:
    # 万科 2000-01-10 10配2.73 at 7.50: 1,234 x 0.273 = 336.882 -> 336 shares, 2,520.00 CNY
    action = _rights(rights_to=273, rights_from=1_000, rights_price_e8=750_000_000)
    events, state = _run(action, "subscribe", 10_000_000, qty=1_234)
    event = _one(events)
    assert (event.entitlement_raw, event.paid_minor) == (336, 252_000)
    assert state.positions[1] == Position(1_570, 1_234 * CLOSE + 252_000)
    # 9 shares x 0.3 = 2.7 -> 2
    assert rights_shares(9, 3, 10, 0, Rounding.DOWN) == 2
    assert rights_shares(-500, 3, 10, 0, Rounding.DOWN) == 0  # a short holds no rights


def test_cost_and_affordable_are_exact_at_the_minor_unit() -> None:
    assert rights_cost_minor(3_000, 0, 800_000_000, "CNY") == 2_400_000
    assert rights_cost_minor(1, 0, 123_456, "CNY") == 1  # 0.00123456 CNY rounds up to 0.01
    assert rights_affordable(1, 0, 123_456, "CNY") == 8  # 8 x 0.00123456 = 0.00987648 <= 0.01
    assert rights_cost_minor(8, 0, 123_456, "CNY") == 1 and rights_cost_minor(9, 0, 123_456, "CNY") == 2
    assert rights_affordable(-5, 0, 800_000_000, "CNY") == 0
    assert rights_affordable(799, 2, 800_000_000, "USD") == 0  # qty_digits 2: 1 share = 100 raw
    assert rights_affordable(1_599, 2, 800_000_000, "USD") == 100


def test_open_orders_are_cancelled_with_the_rights_named() -> None:
    panel = _panel(_rights())
    state = _state(5_000_000)
    submitted = OrderSubmitted(
        ts_ns=_ts(DAYS[EX - 1]),
        order_id="o1",
        strategy_id="t",
        instrument_id=1,
        side=1,
        order_type="limit",
        qty_raw=100,
        limit_px_raw=900,
        decision_px_raw=900,
    )
    state.open_orders = {"o1": new_order(submitted)}
    rules = MarketRules({1: SPDB}, first_day=DAYS[0])
    book = CorporateActionBook(panel, {1: SPDB}, rules, CorporateActionConfig(rights="subscribe"))
    sink = ListSink()
    desk = OrderDesk(
        state=state,
        sink=sink,
        panel=panel,
        day_end=panel.day_end_mask(),
        instruments={1: SPDB},
        rules=rules,
        venue=SimVenue(panel, FillModel()),
        futures=FuturesBook(panel, {1: SPDB}, {1: 0}, None, perp_margin=False),
        corporate=book,
    )
    book.apply(EX, desk)
    cancelled = [e for e in sink.events if isinstance(e, OrderCancelled)]
    assert [e.reason for e in cancelled] == [
        "CORPORATE_ACTION: ex_day=20200108, split=1/1, cash_e8=0, rights=3/10, rights_price_e8=800000000"
    ]


def test_bad_rights_rows_and_config_are_refused() -> None:
    with pytest.raises(ValueError, match="needs both a ratio and a price"):
        CorporateAction(instrument_id=1, ex_day=20200108, rights_to=3, rights_from=10)
    with pytest.raises(ValueError, match="must be non-negative over positive"):
        CorporateAction(instrument_id=1, ex_day=20200108, rights_to=3, rights_from=0, rights_price_e8=1)
    with pytest.raises(ValueError, match="changes nothing"):
        CorporateAction(instrument_id=1, ex_day=20200108, rights_price_e8=0)
    with pytest.raises(ValueError, match=r"rights must be one of \('lapse', 'subscribe'\)"):
        CorporateActionConfig(rights="sell")
    with pytest.raises(PanelError, match="rights columns"):
        _panel_with_short_rights()


def _panel_with_short_rights() -> Panel:
    panel = _panel(_rights())
    return dataclasses.replace(panel, action_rights_to=np.zeros(2, dtype=np.int64))


def test_config_journals_the_decision_only_when_it_is_not_the_default() -> None:
    base = BacktestConfig(run_id="r", dataset="d", journal="j", strategy=StrategyConfig(name="s"))
    assert "corporate_actions" not in base.canonical_json()
    chosen = BacktestConfig(
        run_id="r",
        dataset="d",
        journal="j",
        strategy=StrategyConfig(name="s"),
        corporate_actions=CorporateActionConfig(rights="subscribe"),
    )
    assert '"corporate_actions":{"rights":"subscribe"}' in chosen.canonical_json()
    assert BacktestConfig.from_json(chosen.canonical_json()) == chosen
    assert BacktestConfig.from_json(base.canonical_json()) == base


# --- the data-set contract -----------------------------------------------------------------------

BARS = pa.table(
    {
        "ts_ns": [_ts(d) for d in DAYS],
        "day": DAYS,
        "instrument_id": [1] * len(DAYS),
        **{k: [CLOSE] * len(DAYS) for k in ("open", "high", "low", "close")},
        "volume": [1] * len(DAYS),
    }
)


def _write(path: Path, actions: pa.Table | None) -> Path:
    write_dataset(
        path, name="t", frequency="1d", calendar="XSHG", instruments=[SPDB], bars=BARS, actions=actions
    )
    return path


def test_rights_columns_reach_the_panel_and_old_sets_hash_as_before(tmp_path: Path) -> None:
    dividend = CorporateAction(instrument_id=1, ex_day=DAYS[1], cash_e8=16_000_000)
    # without a rights row the table is the six-column contract, byte for byte
    plain = actions_table([dividend])
    assert plain.column_names == ["instrument_id", "ex_date", "pay_date", "cash_e8", "split_to", "split_from"]
    by_hand = pa.table(
        {
            "instrument_id": [1],
            "ex_date": [DAYS[1]],
            "pay_date": [0],
            "cash_e8": [16_000_000],
            "split_to": [1],
            "split_from": [1],
        }
    )
    old = content_hash(_write(tmp_path / "old", by_hand))
    assert content_hash(_write(tmp_path / "new", plain)) == old
    panel, _ = load_panel(tmp_path / "new")
    assert panel.action_rights_to.size == 0 and actions_of(panel) == [dividend]

    table = actions_table([dividend, _rights()])
    assert table.column_names[-3:] == ["rights_to", "rights_from", "rights_price_e8"]
    panel, ref = load_panel(_write(tmp_path / "rights", table))
    assert ref.content_hash != old
    assert panel.action_rights_to.tolist() == [0, 3]
    assert panel.action_rights_from.tolist() == [1, 10]
    assert panel.action_rights_price_e8.tolist() == [0, 800_000_000]
    assert actions_of(panel) == [dividend, _rights()]


def test_bad_rights_columns_are_named(tmp_path: Path) -> None:
    table = actions_table([_rights()])
    with pytest.raises(
        DatasetError, match=r"missing columns \['rights_price_e8'\] \(the rights columns go together\)"
    ):
        _write(tmp_path / "a", table.drop_columns(["rights_price_e8"]))
    zero_price = table.set_column(8, "rights_price_e8", pa.array([0], pa.int64()))
    with pytest.raises(DatasetError, match="needs both a ratio and a price"):
        _write(tmp_path / "b", zero_price)
    nulls = table.set_column(6, "rights_to", pa.array([None], pa.int64()))
    with pytest.raises(DatasetError, match=r"null values in \['rights_to'\]"):
        _write(tmp_path / "c", nulls)
