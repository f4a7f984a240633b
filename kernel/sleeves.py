"""Several strategies in one book: each strategy's sleeve — its capital, cash and positions.

A multi-strategy run gives each strategy a budget (a fraction of the book, 1e-8; the budgets sum
to one). The account is one book: one set of positions and balances, one risk policy over the
combined book. Each strategy trades toward its own targets from its own positions, and its
sleeve keeps score exactly, in integers, from what the desk journals:

- the initial capital is split by budget;
- a fill of a strategy's own order moves that strategy's position and cash (its notional, fees
  and taxes: the fill's whole transaction);
- a fill of an order nobody in particular sent (the kill switch flattening, a liquidation, an
  option's expiry) and every posting about one instrument (funding, borrow, futures variation
  margin, a liquidation fee) is shared by the strategies' signed positions in that instrument;
- at each day close the book's position values are shared the same way (``SleevesMarked``).

Every split is exact (``allocate``: floor shares, then the remainder by largest fraction), so the
sleeves' cash, positions and NAVs sum to the book's at every step; ``mark`` checks that and
stops the run if it ever fails. A posting that names no instrument and is no fill or capital
cannot be attributed and stops the run with its memo.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.events import LedgerPosted, OrderFilled, SleeveMark, SleeveSnapshot
from domain.fixed import RATE_SCALE
from domain.orders import Order

__all__ = ["Sleeve", "SleeveBook", "SleeveError", "allocate"]


class SleeveError(RuntimeError):
    """The sleeves no longer add up to the book, or an amount cannot be attributed."""


def allocate(amount: int, weights: list[int]) -> list[int]:
    """``amount`` split in proportion to integer ``weights`` (signed, not summing to zero),
    exactly: each part is floored, then the units left go one each to the parts with the largest
    fractional remainders (the first on ties). The parts sum to ``amount``."""
    total = sum(weights)
    if total == 0:
        raise SleeveError(f"cannot split {amount} by weights {weights} that sum to zero")
    if total < 0:
        weights = [-w for w in weights]
        total = -total
    parts = []
    remainders = []
    for w in weights:
        part, remainder = divmod(amount * w, total)
        parts.append(part)
        remainders.append(remainder)
    left = amount - sum(parts)  # 0 <= left < len(weights)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        parts[i] += 1
    return parts


@dataclass
class Sleeve:
    strategy_id: str
    budget_e8: int
    capital_minor: int = 0
    cash_minor: int = 0
    positions: dict[int, int] = field(default_factory=dict)  # instrument_id -> qty_raw

    def move(self, instrument_id: int, qty_raw: int) -> None:
        qty = self.positions.get(instrument_id, 0) + qty_raw
        if qty:
            self.positions[instrument_id] = qty
        else:
            self.positions.pop(instrument_id, None)

    def snapshot(self) -> SleeveSnapshot:
        positions = sorted(self.positions.items())
        return SleeveSnapshot(
            self.strategy_id, self.budget_e8, self.capital_minor, self.cash_minor, positions
        )

    @classmethod
    def restore(cls, snapshot: SleeveSnapshot) -> Sleeve:
        return cls(
            snapshot.strategy_id,
            snapshot.budget_e8,
            snapshot.capital_minor,
            snapshot.cash_minor,
            dict(snapshot.positions),
        )


class SleeveBook:
    """The sleeves of one book, kept from the fills and postings the desk journals."""

    def __init__(self, sleeves: list[Sleeve], cash_account: str) -> None:
        if sum(sleeve.budget_e8 for sleeve in sleeves) != RATE_SCALE:
            raise SleeveError("strategy budgets must sum to 1")
        self.sleeves = sleeves
        self._by_id = {sleeve.strategy_id: sleeve for sleeve in sleeves}
        self._cash_account = cash_account
        self._pending: tuple[str, list[int]] | None = None  # (fill's order id, cash weights)

    def sleeve(self, strategy_id: str) -> Sleeve:
        return self._by_id[strategy_id]

    def _shares(self, instrument_id: int) -> list[int]:
        return [sleeve.positions.get(instrument_id, 0) for sleeve in self.sleeves]

    # --- what the desk journals ----------------------------------------------------------------

    def on_fill(self, fill: OrderFilled, order: Order) -> None:
        """A fill, before its transaction is posted: the position moves; the transaction's cash
        follows the same split."""
        signed = fill.fill_qty_raw * fill.side
        own = self._by_id.get(order.strategy_id)
        if own is not None:
            own.move(fill.instrument_id, signed)
            weights = [1 if sleeve is own else 0 for sleeve in self.sleeves]
        else:  # the kill switch, a liquidation, an expiry: shared by the sleeves' positions
            shares = self._shares(fill.instrument_id)
            if sum(shares) == 0:
                raise SleeveError(
                    f"{order.order_id} ({order.strategy_id}) trades instrument {fill.instrument_id}, "
                    "which no strategy holds"
                )
            weights = allocate(signed, shares)
            for sleeve, qty in zip(self.sleeves, weights, strict=True):
                sleeve.move(fill.instrument_id, qty)
        self._pending = (fill.order_id, weights)

    def on_posted(self, event: LedgerPosted, about: int | None) -> None:
        """A ledger transaction: its cash, to the sleeves it belongs to."""
        amount = sum(p.amount_minor for p in event.postings if p.account == self._cash_account)
        pending, self._pending = self._pending, None
        if pending is not None and event.memo == f"fill {pending[0]}":
            weights = pending[1]
        elif event.memo == "capital":
            weights = [sleeve.budget_e8 for sleeve in self.sleeves]
            for sleeve, part in zip(self.sleeves, allocate(amount, weights), strict=True):
                sleeve.capital_minor += part
        elif about is not None:
            weights = self._shares(about)
        else:
            raise SleeveError(f"ledger transaction {event.txn_id} ({event.memo!r}) names no instrument")
        if amount:
            for sleeve, part in zip(self.sleeves, allocate(amount, weights), strict=True):
                sleeve.cash_minor += part

    # --- day close -----------------------------------------------------------------------------

    def mark(self, cash_minor: int, positions: dict[int, int], values: dict[int, int]) -> list[SleeveMark]:
        """Each sleeve at the close; checks that the sleeves sum to the book (cash, every
        position) before sharing the positions' ``values``."""
        if sum(sleeve.cash_minor for sleeve in self.sleeves) != cash_minor:
            raise SleeveError(
                f"the sleeves' cash {[s.cash_minor for s in self.sleeves]} does not sum to the book's "
                f"{cash_minor}"
            )
        held = {iid for sleeve in self.sleeves for iid in sleeve.positions} | set(positions)
        for iid in sorted(held):
            shares = self._shares(iid)
            if sum(shares) != positions.get(iid, 0):
                raise SleeveError(
                    f"instrument {iid}: the sleeves hold {shares}, the book {positions.get(iid, 0)}"
                )
        value = [0] * len(self.sleeves)
        for iid, amount in sorted(values.items()):
            if amount:
                for index, part in enumerate(allocate(amount, self._shares(iid))):
                    value[index] += part
        return [
            SleeveMark(s.strategy_id, s.capital_minor, s.cash_minor, v, s.cash_minor + v)
            for s, v in zip(self.sleeves, value, strict=True)
        ]
