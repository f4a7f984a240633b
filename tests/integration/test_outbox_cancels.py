"""A venue that is asked to cancel (``kernel.outbox.OutboxVenue``, the kernel's side of a live
venue): the kernel's requests wait in the outbox, the venue's answers come in as numbered
messages. A cancel is a request (``order.cancel_requested.v1``): the order keeps working until
the venue answers, a fill that crossed the cancel is booked, a ``cancel_rejected`` ends the
request, and a decision meanwhile waits for the name's working order (a ``working_order``
verdict) instead of doubling it. Replay (whole, and each day from its snapshot, where a cancel
was still in flight at the day's end) re-derives the journal byte for byte."""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from domain.events import (
    OrderCancelled,
    OrderCancelRequested,
    OrderFilled,
    OrderSubmitted,
    RiskVerdict,
    StateSnapshotted,
    VenueMessage,
    VenueMessageRefused,
)
from domain.market import Panel
from kernel.loop import Kernel
from kernel.outbox import OutboxVenue
from kernel.replay import replay
from kernel.setup import RunSetup
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import dataset_ref
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, journal_inputs
from tests.factories import make_dataset

_DATA = Path(tempfile.mkdtemp(prefix="outbox-cancels-"))


class TwoDecisions:
    """Buys the first name at step 2, asks for less of it at step 5."""

    strategy_id = "out"

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array([2, 5], dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([0.4 if view.step == 2 else 0.1, 0.0])


@functools.cache
def _dataset() -> Path:
    return make_dataset(_DATA / "d", seed=11, symbols=2, bars=20, frequency="1d")


def _setup(config: BacktestConfig, outbox: OutboxVenue) -> RunSetup:
    return dataclasses.replace(build_setup(config, TwoDecisions()), venue=outbox)


def _message(seq: int, order_id: str, kind: str, qty: int = 0, px: int = 0) -> VenueMessage:
    return VenueMessage(venue_seq=seq, ts_ns=0, order_id=order_id, kind=kind, qty_raw=qty, px_raw=px)


def test_a_cancel_is_a_request_until_the_venue_answers(tmp_path: Path) -> None:
    config = BacktestConfig(
        run_id="outbox",
        dataset=str(_dataset()),
        journal=str(tmp_path / "j"),
        strategy=StrategyConfig(name="x"),
    )
    outbox = OutboxVenue()
    setup = _setup(config, outbox)
    journal = open_journal(tmp_path / "j", writable=True)
    journal_inputs(journal, config, dataset_ref(_dataset()), setup.panel)
    kernel = Kernel(setup, journal)
    kernel.begin(setup.initial_cash_minor)
    kernel.run(0, 3)  # the buy at step 2
    (placed,) = outbox.take_requests()
    assert placed.kind == "place" and placed.order.side == 1
    order_id, qty = placed.order.order_id, placed.order.qty_raw
    outbox.deliver([_message(1, order_id, "ack")])
    kernel.run(3, 6)  # acknowledged at 3; at 5 a new decision supersedes it: a cancel request
    (cancel,) = outbox.take_requests()
    assert cancel.kind == "cancel" and cancel.order.order_id == order_id
    assert order_id in kernel.state.open_orders and kernel.state.cancel_requested == {order_id}
    outbox.deliver([_message(2, order_id, "cancel_rejected")])  # it filled meanwhile, say
    kernel.run(6, 7)
    assert kernel.state.cancel_requested == set() and order_id in kernel.state.open_orders
    price = int(setup.panel.close[6, 0])
    outbox.deliver([_message(3, order_id, "fill", qty, price)])
    kernel.run(7, setup.panel.steps)
    kernel.finish()
    journal.commit()
    assert not kernel.state.open_orders and kernel.state.positions[placed.order.instrument_id].qty_raw == qty
    assert outbox.take_requests() == []  # the second decision's order waited for the first
    events = [event for _, event in journal.events()]
    assert [e.order_id for e in events if isinstance(e, OrderCancelRequested)] == [order_id]
    assert not [e for e in events if isinstance(e, OrderCancelled | VenueMessageRefused)]
    (deferred,) = [e for e in events if isinstance(e, RiskVerdict) and e.rule == "working_order"]
    assert deferred.action == "deferred" and deferred.step == 5
    assert [e.order_id for e in events if isinstance(e, OrderSubmitted)] == [order_id]
    assert [e.fill_qty_raw for e in events if isinstance(e, OrderFilled)] == [qty]

    def build(run: object, ref: object) -> RunSetup:
        return _setup(config, OutboxVenue(sending=False))

    outcome = replay(journal, build)
    assert outcome.ok, outcome.divergence
    days = [e.day for e in events if isinstance(e, StateSnapshotted)]
    for day in days[4:8]:  # day 5 ends with the cancel in flight; day 6 takes its rejection
        outcome = replay(journal, build, day=day)
        assert outcome.ok, (day, outcome.divergence)
    journal.close()
