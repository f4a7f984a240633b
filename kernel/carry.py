"""What holding a position costs or earns between trades: perpetual funding at its times,
short borrow fees at each session's close (``kernel.borrow``). Both post through the desk."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from domain.fixed import Rounding
from domain.instruments import Instrument
from domain.market import Panel
from domain.markets import funding_payment_minor, funding_postings
from kernel.borrow import BorrowConfig, borrow_postings
from kernel.desk import OrderDesk

__all__ = ["Carry"]


def _funding_by_step(panel: Panel) -> dict[int, list[tuple[int, int, int, int]]]:
    """Funding rows grouped by the first step at or after their time (later ones dropped); the
    last field is the mark price: the data set's mark at the funding time, 0 where it has none
    (no mark column, or none at that time: the bar's close is the mark)."""
    steps = np.searchsorted(panel.ts_ns, panel.funding_ts_ns, side="left")
    marks = panel.funding_mark_px_raw
    if not marks.size:
        marks = np.zeros(panel.funding_ts_ns.shape, dtype=np.int64)
    grouped: dict[int, list[tuple[int, int, int, int]]] = {}
    rows = zip(
        steps.tolist(),
        panel.funding_instrument_id.tolist(),
        panel.funding_rate_e8.tolist(),
        panel.funding_ts_ns.tolist(),
        marks.tolist(),
        strict=True,
    )
    for step, iid, rate_e8, ts_ns, mark in rows:
        if step < panel.steps:
            grouped.setdefault(step, []).append((iid, rate_e8, ts_ns, mark))
    return grouped


class Carry:
    """Funding and borrow of one kernel's book."""

    def __init__(
        self,
        desk: OrderDesk,
        panel: Panel,
        instruments: dict[int, Instrument],
        columns: dict[int, int],
        borrow: BorrowConfig | None,
    ) -> None:
        self._desk = desk
        self._panel = panel
        self._instruments = instruments
        self._columns = columns
        self._borrow = borrow
        self._funding = _funding_by_step(panel)
        self.funding_mask: npt.NDArray[np.bool_] = np.zeros(panel.steps, dtype=np.bool_)
        self.funding_mask[list(self._funding)] = True

    def add_funding(self, step: int, instrument_id: int, rate_e8: int, ts_ns: int, mark_px_raw: int) -> None:
        """A funding a live venue settled (``FundingReceived``), booked at ``step`` (not run yet)
        at the venue's mark, after any row already there."""
        if instrument_id not in self._instruments:
            raise ValueError(f"funding for instrument {instrument_id}, which the run does not hold")
        if mark_px_raw <= 0:
            raise ValueError(f"funding mark price must be positive, got {mark_px_raw}")
        self._funding.setdefault(step, []).append((instrument_id, rate_e8, ts_ns, mark_px_raw))
        self.funding_mask[step] = True

    def funding(self, step: int) -> None:
        """Perpetual funding for positions held through a funding time inside this step's bar,
        at the row's mark price (a venue's, or the data set's mark at the funding time), else
        at the bar's close as the mark; cash against funding income or expense."""
        rows = self._funding.get(step)
        if not rows:
            return
        panel = self._panel
        positions = self._desk.state.positions
        for iid, rate_e8, funding_ts_ns, venue_mark in rows:
            position = positions.get(iid)
            if position is None:
                continue
            inst = self._instruments[iid]
            column = self._columns[iid]
            mark = venue_mark or int(
                panel.close[step, column] if panel.valid[step, column] else panel.last_close[step, column]
            )
            amount = funding_payment_minor(inst, position.qty_raw, mark, rate_e8, Rounding.HALF_EVEN)
            postings = funding_postings(amount, inst.currency)
            if postings:
                memo = f"funding {inst.symbol} rate_e8={rate_e8} mark_px_raw={mark} at {funding_ts_ns}"
                self._desk.post(int(panel.ts_ns[step]), memo, postings, iid)

    def accrue_borrow(self, step: int) -> None:
        """Short borrow fees from this session to the next."""
        if self._borrow is None:
            return
        panel = self._panel
        day = int(panel.day[step])
        next_day = int(panel.day[step + 1]) if step + 1 < panel.steps else day
        ts_ns = int(panel.ts_ns[step])
        for iid, position in sorted(self._desk.state.positions.items()):
            close = int(panel.last_close[step, self._columns[iid]])
            postings, memo = borrow_postings(
                self._borrow, self._instruments[iid], position, close, day, next_day
            )
            if postings:
                self._desk.post(ts_ns, memo, postings, iid)
