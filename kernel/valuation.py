"""The book at the last close: prices, position values, exposures and NAV at a step."""

from __future__ import annotations

from domain.fixed import Rounding
from domain.futures import position_value_minor
from domain.instruments import Instrument, notional_minor
from domain.ledger import cash_account
from domain.market import Panel
from kernel.state import KernelState

__all__ = ["Valuation"]


class Valuation:
    """Marks one kernel's book to the panel's last closes (carried forward over gaps)."""

    def __init__(
        self, state: KernelState, panel: Panel, instruments: dict[int, Instrument], currency: str
    ) -> None:
        self._state = state
        self._panel = panel
        self._instruments = instruments
        self._cash_account = cash_account(currency)
        self.columns = {inst.instrument_id: col for col, inst in enumerate(panel.instruments)}
        self.ids = [inst.instrument_id for inst in panel.instruments]

    def cash_minor(self) -> int:
        return self._state.balances.get(self._cash_account, 0)

    def nav_minor(self, step: int) -> int:
        return self.cash_minor() + sum(self.position_values(step).values())

    def position_values(self, step: int) -> dict[int, int]:
        """Positions' values in NAV: notional, or a daily-settled future's unsettled P&L."""
        row = self._panel.last_close[step]
        columns = self.columns
        instruments = self._instruments
        return {
            iid: position_value_minor(instruments[iid], pos, int(row[columns[iid]]))
            for iid, pos in sorted(self._state.positions.items())
        }

    def exposures(self, step: int) -> dict[int, int]:
        """Positions' signed notionals at the last close (gross exposure)."""
        row = self._panel.last_close[step]
        return {
            iid: notional_minor(
                self._instruments[iid], pos.qty_raw, int(row[self.columns[iid]]), Rounding.HALF_EVEN
            )
            for iid, pos in sorted(self._state.positions.items())
        }

    def prices(self, step: int) -> dict[int, int]:
        """Every instrument's last close at ``step`` (0 before its first bar)."""
        row = self._panel.last_close[step].tolist()
        return dict(zip(self.ids, row, strict=True))
