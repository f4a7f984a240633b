"""Execution-quality invariants over random order lifecycles: ratios in range, totals equal
the sum of their rows, and the projection folded in any batch sizes equals the report fold."""

from __future__ import annotations

import tempfile
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from domain.execution.posttrade_fold import ExecutionFold, summarise_rows
from domain.instruments import Instrument
from kernel.journal import Record
from kernel.store import open_journal
from projections import SqliteLedger

T0 = 1_704_204_000 * 10**9
LOT = {1: 1, 2: 100}


def _instrument(instrument_id: int) -> Instrument:
    return Instrument(
        instrument_id=instrument_id, symbol=f"S{instrument_id}", venue="XNAS", asset_class="equity",
        currency="USD", price_digits=2, tick_raw=1, qty_digits=0, lot_raw=LOT[instrument_id],
    )  # fmt: skip


ending = st.sampled_from(["filled", "cancel", "expire", "reject", "open"])
order_plan = st.tuples(
    st.sampled_from(["alpha", "beta"]),
    st.sampled_from([1, 2]),
    st.sampled_from([1, -1]),
    st.integers(1, 50),  # lots
    st.integers(1_00, 500_00),  # decision price
    st.lists(st.tuples(st.integers(1, 20), st.integers(-300, 300)), max_size=4),  # (lots, px move)
    ending,
    st.sampled_from(["", "P1", "P2"]),  # router parent (only children of one shape join one)
    st.booleans(),  # a day closes after this order
)


def _lifecycle(n: int, plan: tuple, open_parents: dict[str, tuple]) -> list[Event]:  # type: ignore[type-arg]
    strategy, iid, side, lots, px, fills, end, parent, _ = plan
    shape = (strategy, iid, side)
    if parent and open_parents.setdefault(parent, shape) != shape:
        parent = ""  # children of one parent share strategy, instrument and side
    order_id, qty = f"o{n:03d}", lots * LOT[iid]
    ts = T0 + n * 60 * 10**9
    events: list[Event] = [
        OrderSubmitted(
            ts_ns=ts, order_id=order_id, strategy_id=strategy, instrument_id=iid, side=side,
            order_type="market", qty_raw=qty, limit_px_raw=0, decision_px_raw=px, parent_id=parent,
        )
    ]  # fmt: skip
    if end == "reject":
        return [*events, OrderRejected(ts_ns=ts, order_id=order_id, reason="random")]
    events.append(OrderAccepted(ts_ns=ts, order_id=order_id))
    leaves = qty
    for fill_lots, move in fills:
        fill_qty = min(fill_lots * LOT[iid], leaves)
        if end != "filled" and fill_qty == leaves:
            break  # leave something for the cancel / expiry / open end
        leaves -= fill_qty
        fill_px = max(1, px + move)
        events.append(
            OrderFilled(
                ts_ns=ts, order_id=order_id, instrument_id=iid, side=side, fill_qty_raw=fill_qty,
                fill_px_raw=fill_px, leaves_qty_raw=leaves, notional_minor=fill_qty * fill_px,
                commission_minor=0, currency="USD",
            )
        )  # fmt: skip
        if leaves == 0:
            return events
    if end == "filled":
        events.append(
            OrderFilled(
                ts_ns=ts, order_id=order_id, instrument_id=iid, side=side, fill_qty_raw=leaves,
                fill_px_raw=px, leaves_qty_raw=0, notional_minor=leaves * px, commission_minor=0,
                currency="USD",
            )
        )  # fmt: skip
    elif end == "cancel":
        events.append(OrderCancelled(ts_ns=ts, order_id=order_id, reason="random"))
    elif end == "expire":
        events.append(OrderExpired(ts_ns=ts, order_id=order_id, reason="random"))
    return events


def _journal_events(plans: list[tuple]) -> list[Event]:  # type: ignore[type-arg]
    events: list[Event] = [InstrumentsDefined(ts_ns=T0, instruments=[_instrument(1), _instrument(2)])]
    open_parents: dict[str, tuple] = {}  # type: ignore[type-arg]
    day = 20240102
    for n, plan in enumerate(plans):
        events += _lifecycle(n, plan, open_parents)
        if plan[-1]:
            events.append(
                DayClosed(
                    ts_ns=T0 + n * 60 * 10**9, day=day, step=n, nav_minor=0, cash_minor=0,
                    gross_exposure_minor=0, currency="USD",
                )
            )  # fmt: skip
            day += 1
    return events


@settings(max_examples=150, deadline=None)
@given(st.lists(order_plan, min_size=1, max_size=25))
def test_ratios_in_range_and_totals_are_sums(plans: list[tuple]) -> None:  # type: ignore[type-arg]
    rows = ExecutionFold().apply_all(enumerate(_journal_events(plans))).rows()
    for row in rows:
        assert 0 <= row.fill_ratio_e8 <= 100_000_000
        assert 0 <= row.filled_qty_raw <= row.intended_qty_raw
        assert (
            row.shortfall_decision_minor
            == row.execution_cost_decision_minor + row.opportunity_cost_decision_minor
        )
        assert (
            row.shortfall_arrival_minor
            == row.execution_cost_arrival_minor + row.opportunity_cost_arrival_minor
        )
        if row.filled_qty_raw == row.intended_qty_raw:
            assert row.opportunity_cost_decision_minor == row.opportunity_cost_arrival_minor == 0
        if row.filled_qty_raw == 0:
            assert row.fill_ratio_e8 == 0 and row.shortfall_decision_minor == 0
    total = summarise_rows(rows)
    assert 0 <= total.fill_ratio_e8 <= 100_000_000
    for strategy in {row.strategy_id for row in rows}:
        members = [row for row in rows if row.strategy_id == strategy]
        totals = summarise_rows(members)
        assert totals.shortfall_decision_minor == sum(row.shortfall_decision_minor for row in members)
        assert totals.shortfall_arrival_minor == sum(row.shortfall_arrival_minor for row in members)
        assert 0 <= totals.fill_ratio_e8 <= 100_000_000
    assert total.shortfall_decision_minor == sum(
        summarise_rows([r for r in rows if r.strategy_id == s]).shortfall_decision_minor
        for s in {row.strategy_id for row in rows}
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(order_plan, min_size=1, max_size=15), st.lists(st.integers(1, 9), min_size=1, max_size=8))
def test_the_projection_in_any_batches_equals_the_report_fold(
    plans: list[tuple],  # type: ignore[type-arg]
    batch_sizes: list[int],
) -> None:
    events = _journal_events(plans)
    expected = [msgspec.structs.astuple(row) for row in ExecutionFold().apply_all(enumerate(events)).rows()]
    with tempfile.TemporaryDirectory() as scratch:
        with open_journal(Path(scratch) / "j", writable=True) as journal:
            for event in events:
                journal.append(event)
        with open_journal(Path(scratch) / "j") as journal:
            records: list[Record] = list(journal.records())
        with SqliteLedger.open(Path(scratch) / "ledger.sqlite") as ledger:
            start, turn = 0, 0
            while start < len(records):
                size = batch_sizes[turn % len(batch_sizes)]
                ledger.apply(records[start : start + size])
                start, turn = start + size, turn + 1
            rows = [tuple(row) for row in ledger.ordered_rows("execution_quality")]
    assert rows == [tuple(row) for row in expected]
