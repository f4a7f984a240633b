"""Properties of the sleeves of a multi-strategy book (``kernel.sleeves``): every split is exact,
and however fills, shared fills and postings arrive, the sleeves sum to the book."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.events import LedgerPosted, OrderFilled, PostingRecord
from domain.fixed import RATE_SCALE
from domain.ledger import cash_account
from domain.orders import Order
from kernel.sleeves import Sleeve, SleeveBook, SleeveError, allocate

CASH = cash_account("USD")


@given(st.integers(-(10**15), 10**15), st.lists(st.integers(0, 10**9), min_size=1, max_size=8))
def test_allocate_is_exact_and_each_part_within_one_unit_of_its_share(
    amount: int, weights: list[int]
) -> None:
    if sum(weights) == 0:
        with pytest.raises(SleeveError):
            allocate(amount, weights)
        return
    parts = allocate(amount, weights)
    assert sum(parts) == amount
    total = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert amount * weight // total <= part <= amount * weight // total + 1


@given(st.integers(-(10**12), 10**12), st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=6))
def test_allocate_by_signed_positions_still_sums_exactly(amount: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        return
    assert sum(allocate(amount, weights)) == amount


# A fill: (who sent it: strategy a, b or the kill switch, instrument, signed qty, price, fee)
senders = st.sampled_from(["a", "b", "kill-switch"])
fills = st.lists(
    st.tuples(senders, st.integers(1, 3), st.integers(-50, 50), st.integers(1, 10_000), st.integers(0, 500)),
    max_size=40,
)


@given(st.integers(1, 10**9), st.integers(1, RATE_SCALE - 1), fills, st.lists(st.integers(-9999, 9999)))
def test_the_sleeves_sum_to_the_book_whatever_is_filled_and_posted(
    capital: int, budget_a: int, trades: list[tuple[str, int, int, int, int]], funding: list[int]
) -> None:
    book = SleeveBook([Sleeve("a", budget_a), Sleeve("b", RATE_SCALE - budget_a)], CASH)
    book.on_posted(_posted("capital", capital), None)
    cash, positions = capital, {}
    for index, (sender, iid, qty, px, fee) in enumerate(trades):
        held = positions.get(iid, 0)
        if sender == "kill-switch":
            if held == 0:
                continue
            qty = -held  # flattening: shared by what each sleeve holds
        if qty == 0:
            continue
        order = Order(order_id=f"o{index}", strategy_id=sender, instrument_id=iid, side=1 if qty > 0 else -1,
                      order_type="market", qty_raw=abs(qty), limit_px_raw=0)  # fmt: skip
        fill = OrderFilled(ts_ns=index, order_id=order.order_id, instrument_id=iid, side=order.side,
                           fill_qty_raw=abs(qty), fill_px_raw=px, leaves_qty_raw=0,
                           notional_minor=abs(qty) * px, commission_minor=fee, currency="USD")  # fmt: skip
        book.on_fill(fill, order)
        amount = -qty * px - fee
        book.on_posted(_posted(f"fill {order.order_id}", amount), None)
        cash += amount
        positions[iid] = held + qty
        for charge in funding[:1]:
            if positions[iid]:
                book.on_posted(_posted("funding", charge), iid)
                cash += charge
    values = {iid: qty * 7 for iid, qty in positions.items()}
    marks = book.mark(cash, {iid: q for iid, q in positions.items() if q}, values)
    assert sum(m.cash_minor for m in marks) == cash
    assert sum(m.nav_minor for m in marks) == cash + sum(values.values())
    assert sum(m.capital_minor for m in marks) == capital


def test_a_posting_about_nothing_cannot_be_attributed() -> None:
    book = SleeveBook([Sleeve("a", RATE_SCALE // 2), Sleeve("b", RATE_SCALE // 2)], CASH)
    with pytest.raises(SleeveError, match="names no instrument"):
        book.on_posted(_posted("interest", 5), None)


def test_budgets_that_do_not_sum_to_one_are_refused() -> None:
    with pytest.raises(SleeveError, match="sum to 1"):
        SleeveBook([Sleeve("a", RATE_SCALE // 2), Sleeve("b", RATE_SCALE // 3)], CASH)


def _posted(memo: str, amount: int) -> LedgerPosted:
    return LedgerPosted(
        ts_ns=0,
        txn_id=memo,
        memo=memo,
        postings=[PostingRecord(CASH, "USD", amount), PostingRecord("equity:other", "USD", -amount)],
    )
