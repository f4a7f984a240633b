"""The book at the last close: prices, position values, exposures and NAV at a step."""

from __future__ import annotations

from collections.abc import Callable

from domain.events import CurrencyMark
from domain.fixed import Rounding
from domain.futures import position_value_minor
from domain.instruments import Instrument, notional_minor
from domain.ledger import cash_account
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

    def cash_minor(self) -> int:
        return self._state.balances.get(self._cash_account, 0)

    def nav_minor(self, step: int) -> int:
        if self.currencies is not None:
            return sum(mark.nav_base_minor for mark in self.currency_marks(step))
        return self.cash_minor() + sum(self.position_values(step).values())

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
        """Positions' values in NAV: notional, or a daily-settled future's unsettled P&L."""
        mark = self._marker(step)
        instruments = self._instruments
        return {
            iid: position_value_minor(instruments[iid], pos, mark(iid))
            for iid, pos in sorted(self._state.positions.items())
        }

    def exposures(self, step: int) -> dict[int, int]:
        """Positions' signed notionals at the last close or mark (gross exposure)."""
        mark = self._marker(step)
        return {
            iid: notional_minor(self._instruments[iid], pos.qty_raw, mark(iid), Rounding.HALF_EVEN)
            for iid, pos in sorted(self._state.positions.items())
        }

    def _marker(self, step: int) -> Callable[[int], int]:
        """The price a position is valued at: the venue's mark in effect, else the last close."""
        row = self._panel.last_close[step]
        columns = self.columns
        marks = self.marks.at(step) if self.marks.active else {}
        if not marks:
            return lambda iid: int(row[columns[iid]])
        return lambda iid: marks[iid] if iid in marks else int(row[columns[iid]])

    def prices(self, step: int) -> dict[int, int]:
        """Every instrument's last close at ``step`` (0 before its first bar)."""
        row = self._panel.last_close[step].tolist()
        return dict(zip(self.ids, row, strict=True))
