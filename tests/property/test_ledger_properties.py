"""The ledger balances exactly after any sequence of fills; positions equal the sum of fills."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import OrderFilled, PostingRecord
from domain.ledger import (
    Position,
    UnbalancedTransaction,
    apply_postings,
    assert_balanced,
    capital_postings,
    cash_account,
    fill_postings,
    fold_positions,
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
