"""The ledger balances exactly after any sequence of fills; positions equal the sum of fills."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import FeeTakenInKind, OrderFilled, PositionAdopted, PostingRecord
from domain.ledger import (
    Position,
    UnbalancedTransaction,
    adopted_position_postings,
    apply_postings,
    assert_balanced,
    capital_postings,
    cash_account,
    commission_account,
    fee_in_kind_postings,
    fill_postings,
    fold_positions,
    inventory_account,
    position_change,
)

fills = st.lists(
    st.tuples(
        st.sampled_from([1, 2, 3]),
        st.sampled_from([1, -1]),
        st.integers(1, 5_000),
        st.integers(1, 10**6),
        st.integers(0, 5_000),
    ),
    max_size=60,
)


def _fill(iid: int, side: int, qty: int, px: int, fee: int) -> OrderFilled:
    return OrderFilled(
        ts_ns=0,
        order_id="o",
        instrument_id=iid,
        side=side,
        fill_qty_raw=qty,
        fill_px_raw=px,
        leaves_qty_raw=0,
        notional_minor=qty * px,
        commission_minor=fee,
        currency="USD",
    )


@settings(max_examples=300)
@given(fills)
def test_ledger_balances_and_positions_are_sums_of_fills(rows: list[tuple[int, int, int, int, int]]) -> None:
    balances: dict[str, int] = {}
    apply_postings(balances, capital_postings(10**9, "USD"))
    positions: dict[int, Position] = {}
    events = [_fill(*row) for row in rows]
    for event in events:
        postings, positions[event.instrument_id] = fill_postings(
            positions.get(event.instrument_id, Position()), event
        )
        assert sum(p.amount_minor for p in postings) == 0
        apply_postings(balances, postings)
    assert sum(balances.values()) == 0
    folded = fold_positions(events)
    assert {iid: p.qty_raw for iid, p in positions.items() if p.qty_raw} == dict(folded)
    for iid, position in positions.items():
        assert balances.get(f"assets:inventory:{iid}", 0) == position.cost_minor
        if position.qty_raw == 0:
            assert position.cost_minor == 0
    traded = sum(-e.side * e.notional_minor - e.commission_minor for e in events)
    assert balances[cash_account("USD")] == 10**9 + traded


def test_round_trip_books_realised_pnl() -> None:
    postings, position = fill_postings(Position(), _fill(1, 1, 100, 1_000, 10))
    assert position == Position(100, 100_000)
    postings, position = fill_postings(position, _fill(1, -1, 150, 1_200, 10))
    amounts = {p.account: p.amount_minor for p in postings}
    assert amounts["income:realized:USD"] == -20_000  # 100 x (12.00 - 10.00) gain, as a credit
    assert position == Position(-50, -60_000)  # the rest opened a short at 12.00


def test_unbalanced_posting_is_caught() -> None:
    with pytest.raises(UnbalancedTransaction, match="USD"):
        assert_balanced(
            [PostingRecord("assets:cash:USD", "USD", 100), PostingRecord("equity:capital:USD", "USD", -99)]
        )


# A fill (0), a fee the venue took out of the holding (1) or a position adopted from the venue
# (2), for one instrument.
fills_and_fees = st.lists(
    st.tuples(
        st.sampled_from([0, 1, 2]),
        st.sampled_from([1, -1]),
        st.integers(1, 5_000),
        st.integers(1, 10**6),
        st.integers(0, 5_000),
    ),
    max_size=60,
)


@settings(max_examples=300)
@given(fills_and_fees)
def test_fees_in_kind_and_adoptions_move_no_cash_and_the_position_by_their_quantity(
    rows: list[tuple[int, int, int, int, int]],
) -> None:
    """Whatever the fills, fees in kind and adoptions in between: every transaction balances; a
    fee in kind posts no cash, debits commission with exactly its value and takes exactly its
    quantity out of the position; an adoption posts no cash and moves the position by exactly
    its quantity; the position is the sum of every ``position_change``; and the cost basis of
    the position left equals its inventory account's balance."""
    balances: dict[str, int] = {}
    apply_postings(balances, capital_postings(10**9, "USD"))
    position = Position()
    events: list[OrderFilled | FeeTakenInKind | PositionAdopted] = []
    for kind, side, qty, px, fee in rows:
        if kind == 2:
            event: OrderFilled | FeeTakenInKind | PositionAdopted = PositionAdopted(
                ts_ns=0, step=0, venue="v", instrument_id=1, qty_raw=side * qty, px_raw=px,
                value_minor=qty * px, currency="USD",
            )  # fmt: skip
            cash_before = balances.get(cash_account("USD"), 0)
            postings, after = adopted_position_postings(position, event)
            apply_postings(balances, postings)
            assert balances.get(cash_account("USD"), 0) == cash_before
            assert after.qty_raw == position.qty_raw + side * qty
        elif kind == 1:
            event = FeeTakenInKind(
                ts_ns=0,
                order_id="o",
                instrument_id=1,
                qty_raw=qty,
                px_raw=px,
                value_minor=qty * px,
                currency="USD",
            )
            cash_before = balances.get(cash_account("USD"), 0)
            commission_before = balances.get(commission_account("USD"), 0)
            postings, after = fee_in_kind_postings(position, event)
            assert all(p.account != cash_account("USD") for p in postings)
            apply_postings(balances, postings)
            assert balances.get(cash_account("USD"), 0) == cash_before
            assert balances.get(commission_account("USD"), 0) - commission_before == qty * px
            assert after.qty_raw == position.qty_raw - qty
        else:
            event = _fill(1, side, qty, px, fee)
            postings, after = fill_postings(position, event)
            apply_postings(balances, postings)
        assert_balanced(postings)
        position = after
        events.append(event)
    assert sum(balances.values()) == 0
    changes = [position_change(event) for event in events]
    assert position.qty_raw == sum(change[1] for change in changes if change is not None)
    assert position.cost_minor == balances.get(inventory_account(1), 0)
