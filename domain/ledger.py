"""Double-entry accounting for fills, fees and capital. Every transaction sums to zero.

Sign convention: debits are positive, credits negative. Accounts:

- ``assets:cash:{CCY}``                 cash at the venue
- ``assets:inventory:{instrument_id}``  open positions at cost (negative for shorts)
- ``expenses:commission:{CCY}``         commissions paid
- ``income:realized:{CCY}``             realised PnL (credit = gain)
- ``income:variation_margin:{CCY}``     daily-settled futures' variation margin (credit = gain)
- ``equity:capital:{CCY}``              contributed capital
- ``equity:adjustment:{CCY}``           holdings and cash the book took on from its venue
                                        (live reconciliation under ``on_difference = "adopt"``)
- ``equity:fx_conversion:{CCY}``        the other side of a currency conversion's leg in
                                        ``{CCY}`` (each leg balances in its own currency)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from domain.events import (
    CashAdopted,
    CorporateActionApplied,
    Event,
    FeeTakenInKind,
    OrderFilled,
    PositionAdopted,
    PostingRecord,
    RightsIssueApplied,
)
from domain.fixed import Rounding, div_round

__all__ = [
    "Position",
    "adjustment_account",
    "adopted_cash_postings",
    "adopted_position_postings",
    "UnbalancedTransaction",
    "apply_postings",
    "assert_balanced",
    "capital_postings",
    "cash_account",
    "commission_account",
    "conversion_postings",
    "fee_as_sale",
    "fee_in_kind_postings",
    "fx_conversion_account",
    "fill_postings",
    "fold_positions",
    "inventory_account",
    "margined_fill_postings",
    "position_change",
    "realized_account",
]


class UnbalancedTransaction(ValueError):
    """A transaction whose postings do not sum to zero in some currency."""


class Position(msgspec.Struct, frozen=True, gc=False):
    qty_raw: int = 0
    # Signed cost basis of the open quantity; for a daily-settled future (``domain.futures``)
    # the signed value ``qty x reference price x multiplier`` at its last settlement or fills.
    cost_minor: int = 0


def cash_account(currency: str) -> str:
    return f"assets:cash:{currency}"


def adjustment_account(currency: str) -> str:
    return f"equity:adjustment:{currency}"


def commission_account(currency: str) -> str:
    return f"expenses:commission:{currency}"


def fx_conversion_account(currency: str) -> str:
    return f"equity:fx_conversion:{currency}"


def realized_account(currency: str) -> str:
    return f"income:realized:{currency}"


def inventory_account(instrument_id: int) -> str:
    return f"assets:inventory:{instrument_id}"


def assert_balanced(postings: Iterable[PostingRecord]) -> None:
    """Raise ``UnbalancedTransaction`` unless the postings sum to zero in every currency."""
    totals: dict[str, int] = {}
    for posting in postings:
        totals[posting.currency] = totals.get(posting.currency, 0) + posting.amount_minor
    bad = {currency: total for currency, total in sorted(totals.items()) if total != 0}
    if bad:
        raise UnbalancedTransaction(f"postings do not sum to zero: {bad}")


def capital_postings(amount_minor: int, currency: str) -> list[PostingRecord]:
    postings = [
        PostingRecord(cash_account(currency), currency, amount_minor),
        PostingRecord(f"equity:capital:{currency}", currency, -amount_minor),
    ]
    assert_balanced(postings)
    return postings


def conversion_postings(
    source: str, source_minor: int, target: str, target_minor: int
) -> list[PostingRecord]:
    """A conversion of ``source_minor`` of ``source`` cash into ``target_minor`` of ``target``
    cash: two legs, each balanced in its own currency against ``equity:fx_conversion:{CCY}``
    (the rate lives in the journaled ``FxConverted``, never in a mixed-currency sum)."""
    if source == target:
        raise ValueError(f"a conversion of {source} into itself")
    if source_minor <= 0 or target_minor <= 0:
        raise ValueError(
            f"a conversion moves positive amounts, got {source_minor} {source} -> {target_minor} {target}"
        )
    postings = [
        PostingRecord(cash_account(source), source, -source_minor),
        PostingRecord(fx_conversion_account(source), source, source_minor),
        PostingRecord(cash_account(target), target, target_minor),
        PostingRecord(fx_conversion_account(target), target, -target_minor),
    ]
    assert_balanced(postings)
    return postings


def fill_postings(position: Position, fill: OrderFilled) -> tuple[list[PostingRecord], Position]:
    """Postings for one fill and the position it leaves.

    A fill that crosses through zero is split into a closing part (releases cost basis,
    books realised PnL) and an opening part (new cost basis); notional is split pro rata
    with half-even rounding and the parts add up to the fill's notional exactly.
    """
    ccy = fill.currency
    signed_qty = fill.side * fill.fill_qty_raw
    closing_qty = _closing_qty(position.qty_raw, signed_qty)
    closing_notional = div_round(fill.notional_minor * closing_qty, fill.fill_qty_raw, Rounding.HALF_EVEN)
    opening_notional = fill.notional_minor - closing_notional
    cash = -fill.side * fill.notional_minor - fill.commission_minor
    inventory = 0
    realized = 0
    cost = position.cost_minor
    qty = position.qty_raw
    if closing_qty:
        released = _released_cost(position, closing_qty)
        # Closing a long sells (cash in); closing a short buys (cash out).
        inventory -= released
        # cash(-side*closing) + inventory(-released) + realized == 0; a gain is a credit (< 0).
        realized = fill.side * closing_notional + released
        cost -= released
        qty += fill.side * closing_qty
    if opening_notional or closing_qty < fill.fill_qty_raw:
        inventory += fill.side * opening_notional
        cost += fill.side * opening_notional
        qty += fill.side * (fill.fill_qty_raw - closing_qty)
    postings = [PostingRecord(cash_account(ccy), ccy, cash)]
    if inventory:
        postings.append(PostingRecord(inventory_account(fill.instrument_id), ccy, inventory))
    if realized:
        postings.append(PostingRecord(realized_account(ccy), ccy, realized))
    if fill.commission_minor:
        postings.append(PostingRecord(commission_account(ccy), ccy, fill.commission_minor))
    assert_balanced(postings)
    assert qty == position.qty_raw + signed_qty, "position must equal the sum of fills"
    return postings, Position(qty, cost if qty else 0)


def fee_as_sale(fee: FeeTakenInKind) -> OrderFilled:
    """The fee in kind as the sale it amounts to: ``qty_raw`` sold at ``px_raw`` for
    ``value_minor``, no commission (what per-strategy books move their position by)."""
    return OrderFilled(
        ts_ns=fee.ts_ns,
        order_id=fee.order_id,
        instrument_id=fee.instrument_id,
        side=-1,
        fill_qty_raw=fee.qty_raw,
        fill_px_raw=fee.px_raw,
        leaves_qty_raw=0,
        notional_minor=fee.value_minor,
        commission_minor=0,
        currency=fee.currency,
    )


def fee_in_kind_postings(position: Position, fee: FeeTakenInKind) -> tuple[list[PostingRecord], Position]:
    """Postings for a fee the venue took out of the holding, and the position it leaves.

    The quantity leaves as a sale at the fill price whose proceeds the venue keeps: what a sale
    of ``qty_raw`` for ``value_minor`` would post (cost released, realised PnL, or a short
    opened at that value when the holding is smaller), with the proceeds debited to
    ``expenses:commission:{CCY}`` instead of cash. No cash moves.
    """
    postings, after = fill_postings(position, fee_as_sale(fee))
    return _cash_moved_to(postings, commission_account(fee.currency)), after


def adopted_position_postings(
    position: Position, adopted: PositionAdopted
) -> tuple[list[PostingRecord], Position]:
    """Postings for a position change taken on from the venue, and the position it leaves: what
    a fill of ``qty_raw`` at ``value_minor`` would post (a sale releases cost and realises PnL),
    with the cash side on ``equity:adjustment:{CCY}`` instead: no cash moves."""
    fill = OrderFilled(
        ts_ns=adopted.ts_ns,
        order_id=f"adopted {adopted.venue}",
        instrument_id=adopted.instrument_id,
        side=1 if adopted.qty_raw > 0 else -1,
        fill_qty_raw=abs(adopted.qty_raw),
        fill_px_raw=adopted.px_raw,
        leaves_qty_raw=0,
        notional_minor=adopted.value_minor,
        commission_minor=0,
        currency=adopted.currency,
    )
    postings, after = fill_postings(position, fill)
    return _cash_moved_to(postings, adjustment_account(adopted.currency)), after


def adopted_cash_postings(adopted: CashAdopted) -> list[PostingRecord]:
    """Cash taken on from the venue: cash against ``equity:adjustment:{CCY}``."""
    ccy = adopted.currency
    postings = [
        PostingRecord(cash_account(ccy), ccy, adopted.amount_minor),
        PostingRecord(adjustment_account(ccy), ccy, -adopted.amount_minor),
    ]
    assert_balanced(postings)
    return postings


def _cash_moved_to(postings: list[PostingRecord], account: str) -> list[PostingRecord]:
    """The postings with their cash lines on ``account`` instead (zero lines dropped)."""
    cash = {cash_account(p.currency) for p in postings}
    moved = [
        PostingRecord(account, p.currency, p.amount_minor) if p.account in cash else p
        for p in postings
        if p.amount_minor
    ]
    assert_balanced(moved)
    return moved


def margined_fill_postings(position: Position, fill: OrderFilled) -> tuple[list[PostingRecord], Position]:
    """Postings for one fill of a daily-settled future and the position it leaves.

    No notional changes hands: opening quantity adds its notional to the position's reference
    value (``cost_minor``), nothing to cash. A closing quantity releases its share of the
    reference value (pro rata, half-even, as ``fill_postings``) and realises the difference
    to the fill's notional in cash against ``income:realized:{CCY}``; the commission is paid
    from cash. No posting is made of a zero amount (an opening fill without commission posts
    nothing).
    """
    ccy = fill.currency
    signed_qty = fill.side * fill.fill_qty_raw
    closing_qty = _closing_qty(position.qty_raw, signed_qty)
    closing_notional = div_round(fill.notional_minor * closing_qty, fill.fill_qty_raw, Rounding.HALF_EVEN)
    opening_notional = fill.notional_minor - closing_notional
    realized = 0
    cost = position.cost_minor
    qty = position.qty_raw
    if closing_qty:
        released = _released_cost(position, closing_qty)
        realized = fill.side * closing_notional + released  # a gain is a credit (< 0)
        cost -= released
        qty += fill.side * closing_qty
    if closing_qty < fill.fill_qty_raw:
        cost += fill.side * opening_notional
        qty += fill.side * (fill.fill_qty_raw - closing_qty)
    postings = []
    cash = -realized - fill.commission_minor
    if cash:
        postings.append(PostingRecord(cash_account(ccy), ccy, cash))
    if realized:
        postings.append(PostingRecord(realized_account(ccy), ccy, realized))
    if fill.commission_minor:
        postings.append(PostingRecord(commission_account(ccy), ccy, fill.commission_minor))
    assert_balanced(postings)
    assert qty == position.qty_raw + signed_qty, "position must equal the sum of fills"
    return postings, Position(qty, cost if qty else 0)


def _closing_qty(position_qty: int, signed_fill_qty: int) -> int:
    """How much of a fill reduces the existing position (unsigned)."""
    if position_qty == 0 or (position_qty > 0) == (signed_fill_qty > 0):
        return 0
    return min(abs(position_qty), abs(signed_fill_qty))


def _released_cost(position: Position, closing_qty: int) -> int:
    if closing_qty == abs(position.qty_raw):
        return position.cost_minor
    return div_round(position.cost_minor * closing_qty, abs(position.qty_raw), Rounding.HALF_EVEN)


def apply_postings(balances: dict[str, int], postings: Iterable[PostingRecord]) -> None:
    """Add postings into an account -> balance map (in place)."""
    for posting in postings:
        balances[posting.account] = balances.get(posting.account, 0) + posting.amount_minor


def fold_positions(fills: Iterable[OrderFilled]) -> Mapping[int, int]:
    """Positions as the plain sum of signed fill quantities, per instrument."""
    positions: dict[int, int] = {}
    for fill in fills:
        positions[fill.instrument_id] = positions.get(fill.instrument_id, 0) + fill.side * fill.fill_qty_raw
    return {iid: qty for iid, qty in sorted(positions.items()) if qty != 0}


def position_change(event: Event) -> tuple[int, int] | None:
    """(instrument id, signed raw quantity) an event adds to a position: a fill, a split or
    bonus shares (``CorporateActionApplied``), subscribed rights shares, a fee the venue took
    out of the holding (``FeeTakenInKind``), a position taken on from the venue
    (``PositionAdopted``); None for any other event. The ledger
    projection's ``positions`` table is the sum of these."""
    if isinstance(event, OrderFilled):
        return event.instrument_id, event.side * event.fill_qty_raw
    if isinstance(event, FeeTakenInKind):
        return event.instrument_id, -event.qty_raw
    if isinstance(event, PositionAdopted):
        return event.instrument_id, event.qty_raw
    if isinstance(event, CorporateActionApplied):
        return event.instrument_id, event.qty_after_raw - event.qty_before_raw
    if isinstance(event, RightsIssueApplied) and event.subscribed_raw:
        return event.instrument_id, event.subscribed_raw
    return None
