"""Books of several currencies: every transaction's postings sum to zero in each currency (fills
in three currencies, capital per currency, conversions between them); conversions round
half-even to the minor unit, within half a unit of the exact value."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import OrderFilled, PostingRecord
from domain.fixed import minor_digits
from domain.fx import cross_minor, from_base_minor, to_base_minor
from domain.ledger import (
    Position,
    UnbalancedTransaction,
    apply_postings,
    assert_balanced,
    capital_postings,
    cash_account,
    conversion_postings,
    fill_postings,
)

CURRENCY_OF = {1: "CNY", 2: "USD", 3: "USDT"}
currencies = st.sampled_from(sorted(CURRENCY_OF.values()))
rates = st.integers(1, 10**12)  # 1e-8 .. 10,000 units of the base per unit

fill_steps = st.tuples(
    st.just("fill"), st.sampled_from([1, 2, 3]), st.sampled_from([1, -1]),
    st.integers(1, 5_000), st.integers(1, 10**6), st.integers(0, 5_000),
)  # fmt: skip
conversion_steps = st.tuples(st.just("convert"), currencies, currencies, st.integers(1, 10**9), rates, rates)
capital_steps = st.tuples(st.just("capital"), currencies, st.integers(1, 10**12))


def _fill(iid: int, side: int, qty: int, px: int, fee: int) -> OrderFilled:
    return OrderFilled(
        ts_ns=0, order_id="o", instrument_id=iid, side=side, fill_qty_raw=qty, fill_px_raw=px,
        leaves_qty_raw=0, notional_minor=qty * px, commission_minor=fee, currency=CURRENCY_OF[iid],
    )  # fmt: skip


def _per_currency(postings: list[PostingRecord]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for posting in postings:
        totals[posting.currency] = totals.get(posting.currency, 0) + posting.amount_minor
    return totals


@given(st.lists(st.one_of(fill_steps, conversion_steps, capital_steps), max_size=60))
@settings(max_examples=300, deadline=None)
def test_postings_sum_to_zero_per_currency(steps: list[tuple[object, ...]]) -> None:
    positions: dict[int, Position] = {}
    balances: dict[str, int] = {}
    ledger: list[PostingRecord] = []
    for step in steps:
        match step:
            case ("fill", int(iid), int(side), int(qty), int(px), int(fee)):
                postings, positions[iid] = fill_postings(
                    positions.get(iid, Position()), _fill(iid, side, qty, px, fee)
                )
            case ("convert", str(source), str(target), int(amount), int(source_rate), int(target_rate)):
                if source == target:
                    continue
                got = cross_minor(amount, source, source_rate, target, target_rate)
                if got <= 0:
                    continue
                postings = conversion_postings(source, amount, target, got)
            case ("capital", str(currency), int(amount)):
                postings = capital_postings(amount, currency)
            case _:
                raise AssertionError(step)
        assert all(total == 0 for total in _per_currency(postings).values()), step
        for posting in postings:  # an account holds one currency only
            assert posting.account.endswith(posting.currency) or posting.account.startswith(
                "assets:inventory:"
            )
        apply_postings(balances, postings)
        ledger.extend(postings)
    assert all(total == 0 for total in _per_currency(ledger).values())
    assert sum(balances.values()) == sum(p.amount_minor for p in ledger) == 0


def test_a_mixed_currency_transaction_is_caught() -> None:
    """Canary: a conversion whose legs were summed across currencies (100 USD against 700 CNY
    as if one currency) must not pass the per-currency check."""
    bad = [
        PostingRecord(cash_account("USD"), "USD", -10_000),
        PostingRecord(cash_account("CNY"), "CNY", 70_000),
        PostingRecord("equity:fx_conversion:USD", "USD", -60_000),
    ]
    with pytest.raises(UnbalancedTransaction, match="USD"):
        assert_balanced(bad)


@given(st.integers(-(10**15), 10**15), currencies, currencies, rates)
@settings(max_examples=300, deadline=None)
def test_conversions_round_half_even_within_half_a_minor_unit(
    amount: int, currency: str, base: str, rate: int
) -> None:
    if currency == base:
        assert to_base_minor(amount, currency, base, 10**8) == amount
        return
    exact = Fraction(amount * rate * 10 ** minor_digits(base), 10**8 * 10 ** minor_digits(currency))
    got = to_base_minor(amount, currency, base, rate)
    assert abs(got - exact) <= Fraction(1, 2)
    assert got == round(exact)  # Python's round on a Fraction is half-even
    back = Fraction(amount * 10**8 * 10 ** minor_digits(currency), rate * 10 ** minor_digits(base))
    assert from_base_minor(amount, currency, base, rate) == round(back)
