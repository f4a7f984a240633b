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
    FeeTakenInKind,
    LedgerPosted,
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
from lake.synth import synth_dataset
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


@functools.cache
def _equities() -> Path:
    synth_dataset(
        _DATA / "eq", seed=11, symbols=2, bars=20, frequency="1d", calendar="XNYS", start="2021-01-04"
    )
    return _DATA / "eq"


def _run_with_fee(tmp_path: Path, dataset: Path, fee_qty: int) -> tuple[list[object], int, int, int]:
    """The buy at step 2 acknowledged, then a ``fee`` of ``fee_qty`` (and one of 0: refused
    whatever the holding) and the fill, at step 3's close; replayed whole. Returns the events,
    the instrument id, the order quantity and the price."""
    config = BacktestConfig(
        run_id="outbox-fee",
        dataset=str(dataset),
        journal=str(tmp_path / "j"),
        strategy=StrategyConfig(name="x"),
    )
    outbox = OutboxVenue()
    setup = _setup(config, outbox)
    journal = open_journal(tmp_path / "j", writable=True)
    journal_inputs(journal, config, dataset_ref(dataset), setup.panel)
    kernel = Kernel(setup, journal)
    kernel.begin(setup.initial_cash_minor)
    kernel.run(0, 3)
    (placed,) = outbox.take_requests()
    order_id, qty = placed.order.order_id, placed.order.qty_raw
    price = int(setup.panel.close[3, 0])
    outbox.deliver([_message(1, order_id, "ack"), _message(2, order_id, "fee", 0, price)])
    outbox.deliver([_message(3, order_id, "fee", fee_qty, price), _message(4, order_id, "fill", qty, price)])
    kernel.run(3, setup.panel.steps)
    kernel.finish()
    journal.commit()
    events: list[object] = [event for _, event in journal.events()]
    assert kernel.state.positions[placed.order.instrument_id].qty_raw == qty - sum(
        e.qty_raw for e in events if isinstance(e, FeeTakenInKind)
    )

    def build(run: object, ref: object) -> RunSetup:
        return _setup(config, OutboxVenue(sending=False))

    outcome = replay(journal, build)
    assert outcome.ok, outcome.divergence
    journal.close()
    return events, placed.order.instrument_id, qty, price


def test_a_fee_in_kind_leaves_a_crypto_spot_holding(tmp_path: Path) -> None:
    """A ``fee`` message (the venue took its fee out of the asset bought) before the fill: a
    ``FeeTakenInKind`` whose ledger transaction moves no cash and books its value as commission;
    the position is the fill less the fee. A fee of nothing is refused."""
    events, iid, qty, price = _run_with_fee(tmp_path, _dataset(), 3)
    (refused,) = [e for e in events if isinstance(e, VenueMessageRefused)]
    assert (refused.message_kind, refused.outcome, refused.venue_seq) == ("fee", "illegal", 2)
    (fee,) = [e for e in events if isinstance(e, FeeTakenInKind)]
    (fill,) = [e for e in events if isinstance(e, OrderFilled)]
    assert (fee.instrument_id, fee.qty_raw, fee.px_raw) == (iid, 3, price) and fee.value_minor > 0
    assert events.index(fee) < events.index(fill) and fill.fill_qty_raw == qty
    (posted,) = [e for e in events if isinstance(e, LedgerPosted) and e.memo == f"fee in kind {fee.order_id}"]
    amounts = {p.account: p.amount_minor for p in posted.postings}
    assert not any(account.startswith("assets:cash:") for account in amounts)
    assert amounts[f"expenses:commission:{fee.currency}"] == fee.value_minor


def test_a_fee_in_kind_on_a_holding_that_cannot_pay_one_is_refused(tmp_path: Path) -> None:
    """Only a crypto spot holding pays a venue's fee in kind (``FEE_IN_KIND_CLASSES``): on these
    equities the ``fee`` is refused (``illegal``, the instrument named) and changes nothing; the
    fill after it is booked as usual."""
    events, _, _, _ = _run_with_fee(tmp_path, _equities(), 3)
    refused = [e for e in events if isinstance(e, VenueMessageRefused)]
    assert [(r.message_kind, r.outcome, r.venue_seq) for r in refused] == [
        ("fee", "illegal", 2),
        ("fee", "illegal", 3),
    ]
    assert "a fee in kind on " in refused[1].detail and "(equity)" in refused[1].detail
    assert not [e for e in events if isinstance(e, FeeTakenInKind)]
