"""The execution-quality fold over journal events, on hand-computed numbers (USD, cents,
price_digits 2, qty_digits 0: a notional in cents is qty x price_raw)."""

from __future__ import annotations

import pytest

from domain.events import (
    DayClosed,
    Event,
    InstrumentsDefined,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from domain.execution.posttrade_fold import ExecutionFold, ExecutionRow, summarise_rows
from domain.instruments import Instrument

T0 = 1_704_204_000 * 10**9  # 2024-01-02 14:00 UTC
XYZ, ABC = 1, 2


def _instrument(instrument_id: int, lot_raw: int = 1) -> Instrument:
    return Instrument(
        instrument_id=instrument_id, symbol=f"S{instrument_id}", venue="XNAS", asset_class="equity",
        currency="USD", price_digits=2, tick_raw=1, qty_digits=0, lot_raw=lot_raw,
    )  # fmt: skip


def _submit(
    order_id: str, iid: int, side: int, qty: int, px: int, parent_id: str = "", ts: int = T0
) -> Event:
    return OrderSubmitted(
        ts_ns=ts, order_id=order_id, strategy_id="s", instrument_id=iid, side=side, order_type="market",
        qty_raw=qty, limit_px_raw=0, decision_px_raw=px, parent_id=parent_id,
    )  # fmt: skip


def _fill(order_id: str, iid: int, side: int, qty: int, px: int, leaves: int) -> Event:
    return OrderFilled(
        ts_ns=T0 + 60 * 10**9, order_id=order_id, instrument_id=iid, side=side, fill_qty_raw=qty,
        fill_px_raw=px, leaves_qty_raw=leaves, notional_minor=qty * px, commission_minor=0, currency="USD",
    )  # fmt: skip


def _fold(events: list[Event]) -> dict[str, ExecutionRow]:
    setup: list[Event] = [InstrumentsDefined(ts_ns=T0, instruments=[_instrument(XYZ), _instrument(ABC)])]
    fold = ExecutionFold().apply_all(enumerate(setup + events))
    return {row.parent_id: row for row in fold.rows()}


def test_buy_partially_filled_then_cancelled_has_an_opportunity_cost() -> None:
    rows = _fold(
        [
            _submit("b", XYZ, +1, 100, 100_00),
            OrderAccepted(ts_ns=T0, order_id="b"),
            _fill("b", XYZ, +1, 40, 100_10, 60),
            _fill("b", XYZ, +1, 20, 100_30, 40),
            OrderCancelled(ts_ns=T0, order_id="b", reason="superseded"),
            _day_closed(20240102),
        ]
    )
    row = rows["b"]
    assert row.day == 20240102
    assert (row.status, row.filled_qty_raw, row.fill_ratio_e8) == ("done", 60, 60_000_000)
    assert row.filled_notional_minor == 40 * 100_10 + 20 * 100_30 == 601_000
    assert (row.arrival_px_raw, row.close_px_raw) == (100_10, 100_30)
    assert row.execution_cost_decision_minor == 601_000 - 60 * 100_00 == 1_000
    assert row.execution_cost_arrival_minor == 601_000 - 60 * 100_10 == 400
    assert row.opportunity_cost_decision_minor == 40 * (100_30 - 100_00) == 1_200
    assert row.opportunity_cost_arrival_minor == 40 * (100_30 - 100_10) == 800
    assert (row.shortfall_decision_minor, row.shortfall_arrival_minor) == (2_200, 1_200)
    assert row.slippage_decision_e8 == 166_667  # 1,000 / 600,000 = 16.67 bp, half-even
    assert row.slippage_arrival_e8 == 66_600  # 400 / 600,600 = 6.66 bp


def test_sell_below_the_decision_price_is_a_cost() -> None:
    row = _fold([_submit("s", XYZ, -1, 50, 200_00), _fill("s", XYZ, -1, 50, 199_50, 0)])["s"]
    assert row.status == "done" and row.fill_ratio_e8 == 100_000_000
    assert row.execution_cost_decision_minor == 50 * 50 == 2_500
    assert row.slippage_decision_e8 == 250_000  # 25 bp
    assert row.execution_cost_arrival_minor == row.opportunity_cost_decision_minor == 0
    assert row.shortfall_decision_minor == 2_500


def test_sell_above_the_decision_price_is_a_negative_cost() -> None:
    row = _fold([_submit("s", XYZ, -1, 10, 200_00), _fill("s", XYZ, -1, 10, 201_00, 0)])["s"]
    assert row.execution_cost_decision_minor == -1_000
    assert row.slippage_decision_e8 == -500_000


def test_a_rejected_order_has_fill_ratio_zero_and_no_cost() -> None:
    rows = _fold([_submit("r", ABC, +1, 10, 50_00), OrderRejected(ts_ns=T0, order_id="r", reason="LOT")])
    row = rows["r"]
    assert (row.status, row.fill_ratio_e8, row.filled_qty_raw) == ("done", 0, 0)
    assert (row.arrival_px_raw, row.close_px_raw) == (50_00, 50_00)  # no market seen
    assert row.shortfall_decision_minor == row.shortfall_arrival_minor == 0
    assert row.intended_notional_minor == 500_00


def test_router_children_are_one_parent() -> None:
    rows = _fold(
        [
            _submit("c1", XYZ, +1, 30, 10_00, parent_id="P"),
            _fill("c1", XYZ, +1, 30, 10_02, 0),
            _submit("c2", XYZ, +1, 30, 10_05, parent_id="P", ts=T0 + 600 * 10**9),
            _fill("c2", XYZ, +1, 10, 10_06, 20),
            OrderExpired(ts_ns=T0, order_id="c2", reason="end of day"),
        ]
    )
    assert list(rows) == ["P"]
    row = rows["P"]
    assert (row.children, row.open_children, row.intended_qty_raw, row.filled_qty_raw) == (2, 0, 60, 40)
    assert row.decision_px_raw == 10_00  # the first child's
    assert row.arrival_px_raw == 10_02 and row.close_px_raw == 10_06
    assert row.execution_cost_decision_minor == 30 * 2 + 10 * 6 == 120
    assert row.execution_cost_arrival_minor == 10 * 4 == 40
    assert row.opportunity_cost_decision_minor == 20 * 6 == 120


def test_an_open_order_is_reported_open() -> None:
    row = _fold([_submit("o", XYZ, +1, 10, 10_00), OrderAccepted(ts_ns=T0, order_id="o")])["o"]
    assert (row.status, row.open_children) == ("open", 1)


def test_totals_add_money_and_weight_ratios_by_notional() -> None:
    rows = _fold(
        [
            _submit("b", XYZ, +1, 100, 100_00),
            _fill("b", XYZ, +1, 100, 100_10, 0),
            _submit("r", ABC, +1, 100, 100_00),
            OrderRejected(ts_ns=T0, order_id="r", reason="x"),
        ]
    )
    totals = summarise_rows(list(rows.values()))
    assert totals.parents == 2
    assert totals.fill_ratio_e8 == 50_000_000
    assert totals.shortfall_decision_minor == 1_000
    assert totals.slippage_decision_e8 == 100_000  # 1,000 / 1,000,000 = 10 bp


def test_bad_input_is_refused_naming_the_order() -> None:
    with pytest.raises(ValueError, match="order ghost that was never submitted"):
        _fold([OrderCancelled(ts_ns=T0, order_id="ghost", reason="x")])
    with pytest.raises(ValueError, match="parent P: filled 20 > intended 10"):
        _fold([_submit("c", XYZ, +1, 10, 1_00, parent_id="P"), _fill("c", XYZ, +1, 20, 1_00, 0)])
    with pytest.raises(ValueError, match="order c2: strategy/instrument/side"):
        _fold(
            [_submit("c1", XYZ, +1, 10, 1_00, parent_id="P"), _submit("c2", ABC, +1, 10, 1_00, parent_id="P")]
        )
    with pytest.raises(ValueError, match="order x submitted twice"):
        _fold([_submit("x", XYZ, +1, 10, 1_00), _submit("x", XYZ, +1, 10, 1_00)])
    with pytest.raises(ValueError, match="instrument 9 is not defined"):
        _fold([_submit("x", 9, +1, 10, 1_00)])


def _day_closed(day: int) -> Event:
    return DayClosed(
        ts_ns=T0, day=day, step=0, nav_minor=0, cash_minor=0, gross_exposure_minor=0, currency="USD"
    )


def test_the_day_is_the_session_closed_next() -> None:
    rows = _fold(
        [
            _submit("a", XYZ, +1, 10, 1_00),
            _day_closed(20240102),
            _submit("b", XYZ, +1, 10, 1_00),
            _fill("a", XYZ, +1, 10, 1_00, 0),
            _day_closed(20240103),
            _submit("c", XYZ, +1, 10, 1_00),
        ]
    )
    assert {key: row.day for key, row in rows.items()} == {"a": 20240102, "b": 20240103, "c": 0}
