"""The book at the last close: prices, position values, exposures and NAV at a step."""

from __future__ import annotations

from collections.abc import Callable
from operator import is_

from domain.events import CurrencyMark
from domain.fixed import RATE_SCALE, div_half_even
from domain.futures import is_daily_settled
from domain.instruments import Instrument, notional_factors
from domain.ledger import Position, cash_account
from domain.market import Panel
from kernel.currencies import CurrencyBook
from kernel.marks import Marks
from kernel.state import KernelState

__all__ = ["Valuation"]


class Valuation:
    """Marks one kernel's book to the panel's last closes (carried forward over gaps), or, for
    a perpetual a live venue stated a mark for, to that mark (``kernel.marks``); with
    ``currencies`` (a book of several currencies) NAV is in the base currency, each currency's
    NAV converted once at the day's rate (``kernel.currencies``)."""

    def __init__(
        self,
        state: KernelState,
        panel: Panel,
        instruments: dict[int, Instrument],
        currency: str,
        currencies: CurrencyBook | None = None,
    ) -> None:
        self._state = state
        self.currencies = currencies
        self.marks = Marks()
        self._panel = panel
        self._instruments = instruments
        self._cash_account = cash_account(currency)
        self.columns = {inst.instrument_id: col for col, inst in enumerate(panel.instruments)}
        self.ids = [inst.instrument_id for inst in panel.instruments]
        self._factors: dict[int, tuple[Instrument, tuple[int, int, bool]]] = {}
        # The last position values and what they were computed from (``position_values``).
        self._kept: tuple[
            int, list[int], list[tuple[int, Position]], list[int], list[Instrument | None], dict[int, int]
        ]
        self._kept = (-1, [], [], [], [], {})
        # Per instrument: (the instrument object, factor, divisor, column, daily-settled).
        self._terms: dict[int, tuple[Instrument, int, int, int, bool]] = {}

    def cash_minor(self) -> int:
        return self._state.balances.get(self._cash_account, 0)

    def nav_minor(self, step: int, values: dict[int, int] | None = None) -> int:
        """The NAV at ``step``; ``values``: the step's ``position_values``, already computed."""
        if values is None:
            values = self.position_values(step)
        if self.currencies is not None:
            return sum(mark.nav_base_minor for mark in self.currency_marks(step, values))
        return self.cash_minor() + sum(values.values())

    def currency_marks(self, step: int, values: dict[int, int] | None = None) -> list[CurrencyMark]:
        """Per currency: cash, position values, NAV and NAV in the base (several currencies)."""
        assert self.currencies is not None, "marks per currency are for a book of several currencies"
        if values is None:
            values = self.position_values(step)
        return self.currencies.marks(step, self._state.balances, values)

    def nav_by_instrument(self, step: int, nav_minor: int) -> dict[int, int] | None:
        """The base NAV in each instrument's currency; None for a book of one currency."""
        if self.currencies is None:
            return None
        return self.currencies.nav_by_instrument(step, nav_minor)

    def position_values(self, step: int) -> dict[int, int]:
        """Positions' values in NAV: notional, or a daily-settled future's unsettled P&L
        (``domain.futures.position_value_minor``, with each instrument's factors kept).

        A step asks for them more than once (the decision's NAV, the close): without marks,
        the last answer is given again while its inputs are equal — the step, the row of
        closes, the positions (immutable values) and the very instrument objects."""
        held = sorted(self._state.positions.items())
        kept = self._kept
        if self.marks.active:
            price = self._price_of(step)
            values = {}
            for iid, position in held:
                factor, divisor, settled = self._factors_of(iid)
                value = div_half_even(position.qty_raw * price(iid) * factor, divisor)
                values[iid] = value - position.cost_minor if settled else value
            return values
        row = self._panel.last_close[step].tolist()
        instruments = self._instruments
        if (
            kept[0] == step
            and kept[1] == row
            and kept[2] == held
            and all(map(is_, map(instruments.get, kept[3]), kept[4]))
        ):
            return dict(kept[5])
        terms = self._terms
        values = {}
        for iid, position in held:  # div_half_even inlined: the kernel's most frequent loop
            instrument = instruments[iid]
            term = terms.get(iid)
            if term is None or term[0] is not instrument:
                factor, divisor, settled = self._factors_of(iid)
                term = terms[iid] = (instrument, factor, divisor, self.columns[iid], settled)
            _, factor, divisor, column, settled = term
            value, remainder = divmod(position.qty_raw * row[column] * factor, divisor)
            if remainder:
                twice = 2 * remainder
                if twice > divisor or (twice == divisor and value & 1):
                    value += 1
            values[iid] = value - position.cost_minor if settled else value
        ids = [iid for iid, _ in held]
        self._kept = (step, row, held, ids, [instruments[iid] for iid in ids], dict(values))
        return values

    def notional_weights(self, values: dict[int, int], nav_minor: int) -> dict[int, int] | None:
        """``kernel.pipeline.current_weights`` of the held positions, from ``values``: this
        step's ``position_values``, the positions unchanged since (the notionals, no second
        pass over the instruments); None where a value is not the notional (a mark in effect,
        a daily-settled position, several currencies): the caller computes them."""
        if self.marks.active or self.currencies is not None:
            return None
        terms = self._terms
        if not all(map(terms.__contains__, values)) or any(terms[iid][4] for iid in values):
            return None
        if nav_minor <= 0:
            return {}
        weights = {}
        for iid, value in values.items():
            weight, remainder = divmod(value * RATE_SCALE, nav_minor)
            if remainder:
                twice = 2 * remainder
                if twice > nav_minor or (twice == nav_minor and weight & 1):
                    weight += 1
            weights[iid] = weight
        return weights

    def exposures(self, step: int) -> dict[int, int]:
        """Positions' signed notionals at the last close or mark (gross exposure)."""
        price = self._price_of(step)
        exposures = {}
        for iid, position in sorted(self._state.positions.items()):
            factor, divisor, _ = self._factors_of(iid)
            exposures[iid] = div_half_even(position.qty_raw * price(iid) * factor, divisor)
        return exposures

    def _factors_of(self, iid: int) -> tuple[int, int, bool]:
        """An instrument's notional factors (``domain.instruments.notional_factors``) and
        whether it settles daily, computed again when the kernel's instrument changes."""
        instrument = self._instruments[iid]
        kept = self._factors.get(iid)
        if kept is not None and kept[0] is instrument:
            return kept[1]
        factor, divisor = notional_factors(instrument)
        entry = (factor, divisor, is_daily_settled(instrument))
        self._factors[iid] = (instrument, entry)
        return entry

    def _price_of(self, step: int) -> Callable[[int], int]:
        """The price a position is valued at: the venue's mark in effect, else the last close."""
        row = self._panel.last_close[step].tolist()
        columns = self.columns
        marks = self.marks.at(step) if self.marks.active else {}
        if not marks:
            return lambda iid: row[columns[iid]]
        return lambda iid: marks[iid] if iid in marks else row[columns[iid]]

    def prices(self, step: int) -> dict[int, int]:
        """Every instrument's last close at ``step`` (0 before its first bar)."""
        row = self._panel.last_close[step].tolist()
        return dict(zip(self.ids, row, strict=True))
