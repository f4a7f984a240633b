"""Holdings the book takes on from its venue.

A live session's reconciliation under ``[live] on_difference = "adopt"`` hands the kernel what
the venue holds beyond the book (``domain.events.AdoptionReceived``, a journaled input): signed
position quantities and cash. The kernel schedules it like an operator command, at the first
step not yet run at or after its time (``Adoptions.add``), and there books each part
(``adopt``):

* a position change as ``PositionAdopted``, valued at the step's last close, with its ledger
  transaction against ``equity:adjustment:{CCY}`` (``domain.ledger.adopted_position_postings``:
  taking on units adds them at that value; giving units up releases their cost and realises the
  difference, like a sale);
* cash as ``CashAdopted``, cash against ``equity:adjustment:{CCY}``.

No cash changes hands for a position; nothing is sent to the venue. What cannot be adopted is
refused when it arrives (the session journals the refusal, ``BAD_ADOPTION``): an instrument not
in the run, one that is not a spot holding (``ADOPTABLE_CLASSES``; perpetuals, futures and
options carry margin and settlement state an adoption does not set), an A-share (its T+1
sellable book is not adopted), a currency the book does not keep, a book of several strategies
(which sleeve would own it is not said), or a step with no price yet.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from domain.events import AdoptionReceived, CashAdopted, PositionAdopted
from domain.fixed import Rounding
from domain.instruments import Instrument, notional_minor
from domain.ledger import Position, adopted_cash_postings, adopted_position_postings
from domain.market import Panel
from kernel.desk import OrderDesk
from kernel.markets import is_cn_a_share

__all__ = ["ADOPTABLE_CLASSES", "Adoptions", "adopt"]

ADOPTABLE_CLASSES = frozenset({"crypto_spot", "equity"})
"""Holdings an adoption may change: spot positions, with no margin or settlement state."""


class Adoptions:
    """Adoptions by the step they apply at (``add``), for one kernel."""

    def __init__(
        self,
        panel: Panel,
        instruments: Mapping[int, Instrument],
        currencies: Collection[str],
        *,
        sleeves: bool,
    ) -> None:
        self._panel = panel
        self._instruments = instruments
        self._columns = {inst.instrument_id: col for col, inst in enumerate(panel.instruments)}
        self._currencies = frozenset(currencies)
        self._sleeves = sleeves
        self.by_step: dict[int, list[AdoptionReceived]] = {}
        self.mask = np.zeros(panel.steps, dtype=np.bool_)

    def add(self, received: AdoptionReceived, next_step: int) -> int:
        """Schedule an adoption that arrived when steps before ``next_step`` had run: at the first
        step not yet run at or after its time. Returns the step; raises ``ValueError`` saying why
        it cannot be adopted."""
        panel = self._panel
        step = max(int(np.searchsorted(panel.ts_ns, received.ts_ns, side="left")), next_step)
        if step >= panel.steps:
            raise ValueError(f"an adoption at {received.ts_ns} is after the run's last step")
        if self._sleeves and received.positions:
            raise ValueError("adopting positions into a book of several strategies is not built")
        for instrument_id, qty_raw in received.positions:
            self._check_position(instrument_id, qty_raw, step)
        for currency, amount_minor in received.cash:
            if currency not in self._currencies:
                raise ValueError(
                    f"cash in {currency!r}: the book keeps {', '.join(sorted(self._currencies))}"
                )
            if amount_minor == 0:
                raise ValueError(f"cash of 0 {currency}: nothing to adopt")
        self.by_step.setdefault(step, []).append(received)
        self.mask[step] = True
        return step

    def pending(self, next_step: int) -> tuple[AdoptionReceived, ...]:
        """The adoptions scheduled at ``next_step`` or later: taken, not booked yet."""
        return tuple(
            received for step in sorted(self.by_step) if step >= next_step for received in self.by_step[step]
        )

    def _check_position(self, instrument_id: int, qty_raw: int, step: int) -> None:
        inst = self._instruments.get(instrument_id)
        if inst is None:
            raise ValueError(f"instrument {instrument_id} is not in the run")
        if inst.asset_class not in ADOPTABLE_CLASSES or is_cn_a_share(inst):
            raise ValueError(
                f"{inst.symbol} ({inst.asset_class}, {inst.venue}) is not a holding an adoption sets"
            )
        if qty_raw == 0:
            raise ValueError(f"{inst.symbol}: a quantity of 0, nothing to adopt")
        if step == 0 or int(self._panel.last_close[step - 1, self._columns[instrument_id]]) <= 0:
            raise ValueError(f"{inst.symbol} has no price before step {step} to value it at")


def adopt(
    desk: OrderDesk, prices: Mapping[int, int], step: int, ts_ns: int, received: AdoptionReceived
) -> None:
    """Book one adoption at ``step`` (module docstring): each position at ``prices`` (the step's
    last closes), then the cash."""
    state = desk.state
    memo = f"adopted {received.venue}"
    for instrument_id, qty_raw in received.positions:
        inst = desk.instruments[instrument_id]
        px_raw = prices[instrument_id]
        adopted = PositionAdopted(
            ts_ns=ts_ns,
            step=step,
            venue=received.venue,
            instrument_id=instrument_id,
            qty_raw=qty_raw,
            px_raw=px_raw,
            value_minor=notional_minor(inst, abs(qty_raw), px_raw, Rounding.HALF_EVEN),
            currency=inst.currency,
        )
        postings, position = adopted_position_postings(
            state.positions.get(instrument_id, Position()), adopted
        )
        desk.journal(adopted)
        if postings:
            desk.post(ts_ns, memo, postings, about=instrument_id)
        desk.hold(instrument_id, position)
    for currency, amount_minor in received.cash:
        cash = CashAdopted(
            ts_ns=ts_ns, step=step, venue=received.venue, currency=currency, amount_minor=amount_minor
        )
        desk.journal(cash)
        desk.post(ts_ns, memo, adopted_cash_postings(cash))
