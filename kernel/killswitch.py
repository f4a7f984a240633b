"""The kill switch in the loop: its state (``KernelState.kill``) folded from observations.

The rules are pure functions in ``domain.riskrules.killswitch``; this stage feeds them what the
kernel sees — the NAV at decisions and day closes, venue answers and their latency (as the
desk's watcher), the age of the data a decision holds or names, operator commands — and acts on
what they decide: a trip cancels every working order (the kill switch's own excepted) and the
router's parents; while flattening it closes the book with ``kill-switch`` orders and reports
the book flat when it is.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from domain.events import KillSwitchFlattened, KillSwitchTripped, RiskVerdict
from domain.market import Panel
from domain.riskrules import (
    BookDataAged,
    KillState,
    KillSwitchConfig,
    KillSwitchEvent,
    NavMarked,
    Observation,
    RuleVerdict,
    VenueResponded,
    update_kill_switch,
)
from domain.riskrules import evolve_kill_switch as evolve_kill
from kernel.desk import OrderDesk
from kernel.pipeline import OrderIntent, verdict_events
from kernel.router import Router

__all__ = ["KILL_SWITCH_STRATEGY", "KillSwitch"]

KILL_SWITCH_STRATEGY = "kill-switch"
"""The strategy id of the orders the kill switch sends to flatten the book."""


def _last_valid_steps(valid: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """For each (step, column): the last step <= it with a bar, or -1."""
    index = np.where(valid, np.arange(valid.shape[0])[:, None], -1)
    return np.maximum.accumulate(index, axis=0).astype(np.int64)


class KillSwitch:
    """One kernel's kill switch (module docstring). Attach it to the desk with ``desk.watch``."""

    def __init__(
        self,
        config: KillSwitchConfig,
        desk: OrderDesk,
        panel: Panel,
        columns: dict[int, int],
        router: Router | None = None,
    ) -> None:
        self._config = config
        self._desk = desk
        self._panel = panel
        self._columns = columns
        self._router = router
        self.watch_nav = bool(config.daily_loss_max_minor or config.drawdown_max_e8)
        self._watch_venue = bool(config.consecutive_rejects_max or config.latency_ns_max)
        # Stale data is judged on the instruments a decision holds or names: their newest bar.
        self._last_bar = _last_valid_steps(panel.valid) if config.stale_data_ns_max else None

    def rows_arrived(self, start: int, end: int) -> None:
        """A queue source filled rows ``start .. end-1``: their newest-bar steps, carried on from
        the row before (the same values the whole panel gives)."""
        if self._last_bar is None or end <= start:
            return
        rows = _last_valid_steps(self._panel.valid[start:end])
        rows = np.where(rows >= 0, rows + start, -1)
        if start > 0:
            rows = np.maximum(rows, self._last_bar[start - 1])
        self._last_bar[start:end] = rows

    # --- state ---------------------------------------------------------------------------------

    @property
    def armed(self) -> bool:
        kill = self._desk.state.kill
        return kill is None or kill.state is KillState.ARMED

    @property
    def flattening(self) -> bool:
        kill = self._desk.state.kill
        return kill is not None and kill.state is KillState.FLATTENING

    def halt_reason(self) -> tuple[bool, str] | None:
        """(flattening, why) while the switch is not armed; None while it is."""
        kill = self._desk.state.kill
        if kill is None or kill.state is KillState.ARMED:
            return None
        reason = f"kill switch {kill.state.value} since {kill.since_ts_ns} ({kill.trigger}): {kill.reason}"
        return kill.state is KillState.FLATTENING, reason

    # --- observations --------------------------------------------------------------------------

    def observe(self, observation: Observation, step: int) -> list[KillSwitchEvent]:
        """Fold one observation into the kill switch; journal the events it decides. A trip
        cancels every working order (the kill switch's own excepted) and the router's parents."""
        desk = self._desk
        state = desk.state.kill
        assert state is not None
        state, events = update_kill_switch(state, self._config, observation)
        desk.state.kill = state
        for event in events:
            desk.journal(event)
            if isinstance(event, KillSwitchTripped):
                self._cancel_working(step, event.ts_ns, f"kill switch tripped ({event.trigger})")
        return events

    def observe_nav(self, step: int, ts_ns: int, nav_minor: int) -> None:
        if self.watch_nav:
            self.observe(NavMarked(ts_ns=ts_ns, day=int(self._panel.day[step]), nav_minor=nav_minor), step)

    def observe_data_age(self, step: int, ts_ns: int, targets: dict[int, int]) -> None:
        """The oldest newest-bar among the names a decision holds or names (stale data)."""
        if self._last_bar is None:
            return
        names = sorted(set(targets) | set(self._desk.state.positions))
        oldest: tuple[int, int] | None = None
        for iid in names:
            last = int(self._last_bar[step, self._columns[iid]])
            if last >= 0 and (oldest is None or int(self._panel.ts_ns[last]) < oldest[0]):
                oldest = (int(self._panel.ts_ns[last]), iid)
        if oldest is not None:
            self.observe(BookDataAged(ts_ns=ts_ns, instrument_id=oldest[1], data_ts_ns=oldest[0]), step)

    def trip(self, step: int, ts_ns: int, trigger: str, limit: int, observed: int, reason: str) -> bool:
        """Halt trading from inside the kernel (a margin call's ``halt`` policy): a
        ``KillSwitchTripped`` without flattening, working orders cancelled, as any trip. Only
        an armed switch trips; True when it did."""
        kill = self._desk.state.kill
        assert kill is not None
        if kill.state is not KillState.ARMED:
            return False
        event = KillSwitchTripped(
            ts_ns=ts_ns, trigger=trigger, flatten=False, limit=limit, observed=observed, reason=reason
        )
        self._desk.state.kill = evolve_kill(kill, event)
        self._desk.journal(event)
        self._cancel_working(step, ts_ns, f"kill switch tripped ({trigger})")
        return True

    # --- the desk's watcher --------------------------------------------------------------------

    def on_venue_answer(
        self, step: int, ts_ns: int, instrument_id: int, accepted: bool, latency_ns: int
    ) -> None:
        if self._watch_venue:
            venue = self._desk.instruments[instrument_id].venue
            self.observe(
                VenueResponded(ts_ns=ts_ns, venue=venue, accepted=accepted, latency_ns=latency_ns), step
            )

    def on_book_flat(self, ts_ns: int) -> None:
        if self.flattening:
            self._flattened(ts_ns)

    # --- actions -------------------------------------------------------------------------------

    def _cancel_working(self, step: int, ts_ns: int, reason: str) -> None:
        self._desk.cancel_where(
            step, ts_ns, reason, keep=lambda order: order.strategy_id == KILL_SWITCH_STRATEGY
        )
        if self._router is not None:
            self._router.cancel_parents(ts_ns, reason)

    def flatten(self, step: int, prices: dict[int, int]) -> bool:
        """Close every position with market orders (once none of ours are working); report
        the book flat when it is. True when orders were submitted."""
        desk = self._desk
        state = desk.state
        ts_ns = int(self._panel.ts_ns[step])
        if not state.positions:
            self._flattened(ts_ns)
            return False
        if any(o.strategy_id == KILL_SWITCH_STRATEGY for o in state.open_orders.values()):
            return False
        desk.cancel_where(step, ts_ns, "kill switch: flattening the book", keep=lambda order: False)
        intents = sorted(
            (
                OrderIntent(iid, -1 if position.qty_raw > 0 else 1, abs(position.qty_raw), prices[iid])
                for iid, position in state.positions.items()
            ),
            key=lambda intent: (intent.side, intent.instrument_id),
        )
        for intent in intents:
            desk.submit(
                step,
                ts_ns,
                KILL_SWITCH_STRATEGY,
                intent.instrument_id,
                intent.side,
                intent.qty_raw,
                intent.decision_px_raw,
            )
        return True

    def _flattened(self, ts_ns: int) -> None:
        state = self._desk.state.kill
        assert state is not None
        event = KillSwitchFlattened(ts_ns=ts_ns)
        self._desk.journal(event)
        self._desk.state.kill = evolve_kill(state, event)

    def refused_after_trip(
        self, ts_ns: int, sid: str, step: int, intents: list[OrderIntent]
    ) -> list[RiskVerdict]:
        """The kill switch tripped while a decision's orders were being sent: the rest are not
        sent, and a verdict names them."""
        ids = sorted({intent.instrument_id for intent in intents})
        detail = f"kill switch tripped while sending: {len(intents)} orders not sent"
        verdict = RuleVerdict(
            rule="kill_switch",
            action="reject",
            unit="orders",
            limit=0,
            observed=len(intents),
            observed_after=0,
            instrument_ids=ids,
            detail=detail,
        )
        return verdict_events(ts_ns, sid, step, [verdict])
