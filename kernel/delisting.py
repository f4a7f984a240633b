"""Delisting dates from the data set (``delistings.parquet``): an event, and what the book does.

A data set that carries an instrument's delisting day (its last session, from the user's
metadata: ``tape ingest metadata`` ``delisting_date``, carried by ``tape export``) makes the
kernel journal ``instrument.delisted.v1`` (``InstrumentDelisted``) at the close of that session
(or of the data's first session after it, when the data set has no session on that day), with
what the book still holds and the last close it stays marked at. Data sets without the table
journal nothing new, so existing journals keep their bytes.

What happens to a position in the name is the run's ``[account] delisted`` policy:

* ``"hold"`` (default): nothing is traded for the delisting. What is held stays in the book,
  marked at its last close from then on (the data has no later price). This is a holder who
  neither sold before the delisting nor wrote the shares off: on the exchanges the shares
  usually move to another venue (A-shares: the NEEQ delisting board; US: OTC), which is not
  modelled. The event says so.
* ``"sell_before"``: at the close of the instrument's session before its last one (its last
  session with a bar before the delisting day), the kernel cancels the name's working orders
  and sends its own ``delisting`` market order for the whole position, which trades in the
  last session under the market's rules (an A-share at limit-down waits; an order that does not
  fill expires, and what is left is held as under ``"hold"``).

No state of its own: the steps are computed from the panel, so snapshots and ``replay --day``
need nothing more. A strategy may still trade the name in its last session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from domain.events import InstrumentDelisted
from domain.market import Panel
from domain.orders import Order
from kernel.desk import OrderDesk

__all__ = ["DELISTED_POLICIES", "DELISTING_STRATEGY_ID", "Delistings"]

DELISTED_POLICIES = ("hold", "sell_before")
DELISTING_STRATEGY_ID = "delisting"


class Delistings:
    """The steps at which delistings are announced (``last``) and, under ``"sell_before"``, at
    which the position is sold (``notice``: the close of the session before the last)."""

    def __init__(self, panel: Panel, day_end: npt.NDArray[np.bool_], policy: str) -> None:
        if policy not in DELISTED_POLICIES:
            raise ValueError(f"account.delisted must be one of {DELISTED_POLICIES}, got {policy!r}")
        self.policy = policy
        self.notice: dict[int, list[int]] = {}
        self.last: dict[int, list[tuple[int, int]]] = {}
        ends = np.flatnonzero(day_end)
        end_days = panel.day[ends]
        column = {inst.instrument_id: index for index, inst in enumerate(panel.instruments)}
        for iid, last_day in panel.delistings:
            col = column.get(iid)
            if col is None:
                continue
            at = int(np.searchsorted(end_days, last_day, side="left"))
            if at < len(ends):
                self.last.setdefault(int(ends[at]), []).append((iid, last_day))
            own = np.unique(panel.day[panel.valid[:, col]])
            before = own[own < last_day]
            if before.size:
                index = int(np.searchsorted(end_days, before[-1], side="left"))
                if index < len(ends) and end_days[index] == before[-1]:
                    self.notice.setdefault(int(ends[index]), []).append(iid)
        self.active = bool(self.notice or self.last)

    def close(self, desk: OrderDesk, step: int, ts_ns: int, day: int, marks: Mapping[int, int]) -> None:
        """At a session's close: the sales of ``"sell_before"`` and the delisting events."""
        if self.policy == "sell_before":
            for iid in self.notice.get(step, ()):
                position = desk.state.positions.get(iid)
                qty = position.qty_raw if position is not None else 0
                if not qty:
                    continue
                reason = f"DELISTING: the last session is the next one; selling {abs(qty)} (qty raw)"
                desk.cancel_where(step, ts_ns, reason, keep=_other_than(iid))
                side = -1 if qty > 0 else 1
                desk.submit(step, ts_ns, DELISTING_STRATEGY_ID, iid, side, abs(qty), marks[iid])
        for iid, last_day in self.last.get(step, ()):
            position = desk.state.positions.get(iid)
            qty = position.qty_raw if position is not None else 0
            if qty:
                note = f"held {qty} (qty raw) after the last session: marked at its last close from here on"
            else:
                note = "nothing held"
            desk.journal(
                InstrumentDelisted(
                    ts_ns=ts_ns, day=day, step=step, instrument_id=iid, last_day=last_day, qty_raw=qty,
                    mark_px_raw=int(marks.get(iid, 0)), policy=self.policy, note=note,
                )
            )  # fmt: skip


def _other_than(iid: int) -> Callable[[Order], bool]:
    return lambda order: order.instrument_id != iid
