"""An asynchronous venue played back from a recording (``sim.recorded_venue.RecordedVenue``) into
a kernel run: random venue sessions (acks, rejects, partial fills, replaces, cancels, expiries, and
noise the kernel must refuse) delivered with duplicates, reordering and gaps. Every run: no order
takes an illegal transition or fills past its quantity; every duplicate is journaled as refused
and no message is applied twice; every received message is accounted for (applied, refused or
still held); the order states equal the in-sequence fold of the messages the guard let through;
positions equal the sum of the applied fills; the ledger balances; replay (whole run and one day
from its snapshot) reproduces the journal byte for byte from the journaled messages alone."""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from collections import Counter
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.events import (
    DatasetReferenced,
    KillSwitchTripped,
    LedgerPosted,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderSubmitted,
    RunStarted,
    StateSnapshotted,
    VenueMessage,
    VenueMessageReceived,
    VenueMessageRefused,
)
from domain.market import Panel
from domain.orders import IllegalTransition, Order, evolve, new_order
from domain.riskrules import KillSwitchConfig
from kernel.loop import Kernel, KernelError
from kernel.replay import replay
from kernel.router import ExecutionConfig
from kernel.setup import RunSetup
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import dataset_ref
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, journal_inputs
from sim.recorded_venue import RecordedVenue, RecordingError, read_recording, write_recording
from tests.factories import make_dataset

_DATA = Path(tempfile.mkdtemp(prefix="recorded-venue-"))
FIRST_DELIVERY = 3  # the one decision is at step 2; its orders exist from then on


class OneShot:
    """Buys the first name and sells the second short, once, at step 2."""

    strategy_id = "rec"

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array([2], dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([0.4, -0.3])


@functools.cache
def _dataset() -> Path:
    return make_dataset(_DATA / "d", seed=7, symbols=2, bars=40, frequency="1d")


def _config(journal: Path) -> BacktestConfig:
    return BacktestConfig(
        run_id="recorded",
        dataset=str(_dataset()),
        journal=str(journal),
        strategy=StrategyConfig(name="one_shot"),
    )


def _parts(config: BacktestConfig, messages: list[VenueMessage], pending_max: int) -> RunSetup:
    parts = build_setup(config, OneShot())
    return dataclasses.replace(parts, venue=RecordedVenue(parts.panel, messages, pending_max=pending_max))


def _run(journal_path: Path, recording: Path, pending_max: int) -> Kernel:
    """A run against the recording, journaled like ``sim.backtest.run_backtest`` does."""
    config = _config(journal_path)
    parts = build_setup(config, OneShot())
    venue = RecordedVenue.from_file(parts.panel, recording, pending_max=pending_max)
    panel = parts.panel
    ref = dataset_ref(Path(config.dataset))
    journal = open_journal(journal_path, writable=True)
    try:
        journal_inputs(journal, config, ref, panel)
        kernel = Kernel(
                     RunSetup(
                         panel=panel,
                         strategy=OneShot(),
                         venue=venue,
                         policy=parts.policy,
                         currency=parts.currency,
                     ),
                     journal,
                 )
        kernel.begin(parts.initial_cash_minor)
        kernel.run()
        kernel.finish()
        journal.commit()
        return kernel
    finally:
        journal.close()


@functools.cache
def _orders() -> tuple[tuple[str, int, int], ...]:
    """(order id, side, qty) of the decision's orders, from a run with an empty recording."""
    recording = _DATA / "empty.jsonl"
    write_recording(recording, [])
    _run(_DATA / "dry", recording, 1024)
    events = [e for _, e in open_journal(_DATA / "dry").events()]
    orders = tuple((e.order_id, e.side, e.qty_raw) for e in events if isinstance(e, OrderSubmitted))
    assert len(orders) == 2 and {side for _, side, _ in orders} == {1, -1}, orders
    assert not [e for e in events if isinstance(e, OrderAccepted | OrderRejected)]  # answers come later
    return orders


# --- the venue's side: legal lives per order, plus noise -----------------------------------------


@st.composite
def _life(draw: st.DrawFn, order_id: str, qty: int) -> list[tuple[str, str, int]]:
    """(order id, kind, qty) the venue sends for one order, in the venue's order."""
    if draw(st.integers(0, 5)) == 0:
        return [(order_id, "reject", 0)]
    life = [(order_id, "ack", 0)]
    total, filled = qty, 0
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            fill = draw(st.integers(1, total - filled))
            life.append((order_id, "fill", fill))
            filled += fill
            if filled == total:
                return life
        else:
            total = draw(st.integers(filled + 1, filled + 2 * qty))
            life.append((order_id, "replaced", total))
    ending = draw(st.sampled_from(["", "cancelled", "expired"]))
    if ending:
        life.append((order_id, ending, 0))
    return life


NOISE = st.sampled_from(
    [
        ("ghost", "fill", 5),  # unknown order
        ("ghost", "ack", 0),
        (0, "ack", 0),  # a second ack: accepted --accept--> is illegal
        (0, "fill", 10**12),  # more than any order
        (1, "cancel_rejected", 0),  # no cancel of ours in flight
        (1, "replaced", 0),  # replace at or below the fill
        (0, "fill", 0),  # a zero fill
        (1, "teleported", 0),  # unknown kind
    ]
)


@st.composite
def _session(draw: st.DrawFn) -> tuple[list[VenueMessage], list[tuple[int, VenueMessage]], int]:
    """(the venue's messages in sequence, the deliveries as (step, message) received, pending_max)."""
    orders = _orders()
    queues = [draw(_life(oid, qty)) for oid, _, qty in orders]
    noise = [
        (orders[n][0] if isinstance(n, int) else n, kind, q)
        for n, kind, q in draw(st.lists(NOISE, max_size=4))
    ]
    script: list[tuple[str, str, int]] = []
    while any(queues) or noise:
        choices = [i for i, queue in enumerate(queues) if queue] + ([-1] if noise else [])
        pick = draw(st.sampled_from(choices))
        script.append(noise.pop(0) if pick < 0 else queues[pick].pop(0))
    venue = [
        VenueMessage(
            venue_seq=seq,
            ts_ns=0,
            order_id=oid,
            kind=kind,
            qty_raw=qty,
            px_raw=1_000 + seq,
            commission_minor=seq % 3,
        )
        for seq, (oid, kind, qty) in enumerate(script, start=1)
    ]
    # deliveries: bounded reordering, duplicates, sometimes a message never delivered
    jitter = draw(st.lists(st.integers(0, 4), min_size=len(venue), max_size=len(venue)))
    order = sorted(range(len(venue)), key=lambda i: (i + jitter[i], i))
    if venue and draw(st.integers(0, 3)) == 0:
        order.remove(draw(st.sampled_from(order)))  # a gap that never fills
    deliveries = [venue[i] for i in order]
    for _ in range(draw(st.integers(0, 6))):
        if deliveries:
            at = draw(st.integers(0, len(deliveries) - 1))
            later = draw(st.integers(at + 1, len(deliveries)))
            deliveries.insert(later, deliveries[at])
    panel_steps = 40
    steps = sorted(
        draw(
            st.lists(
                st.integers(FIRST_DELIVERY, panel_steps - 2),
                min_size=len(deliveries),
                max_size=len(deliveries),
            )
        )
    )
    pending_max = draw(st.sampled_from([0, 2, 1024]))
    return venue, list(zip(steps, deliveries, strict=True)), pending_max


# --- an independent model of what the kernel must end with -------------------------------------


def _model_event(msg: VenueMessage, order: Order) -> object | None:
    oid = msg.order_id
    simple = {
        "ack": OrderAccepted(ts_ns=0, order_id=oid),
        "reject": OrderRejected(ts_ns=0, order_id=oid, reason=""),
        "cancelled": OrderCancelled(ts_ns=0, order_id=oid, reason=""),
        "expired": OrderExpired(ts_ns=0, order_id=oid),
        "replaced": OrderReplaced(
            ts_ns=0, order_id=oid, qty_raw=msg.qty_raw, prev_qty_raw=order.qty_raw, limit_px_raw=0
        ),
    }
    if msg.kind in simple:
        return simple[msg.kind]
    if msg.kind != "fill" or msg.qty_raw <= 0:
        return None
    return OrderFilled(
        ts_ns=0,
        order_id=oid,
        instrument_id=order.instrument_id,
        side=order.side,
        fill_qty_raw=msg.qty_raw,
        fill_px_raw=msg.px_raw,
        leaves_qty_raw=order.leaves_qty_raw - msg.qty_raw,
        notional_minor=0,
        commission_minor=0,
        currency="",
    )


def _model(orders: dict[str, Order], venue: list[VenueMessage], next_seq: int) -> dict[str, Order]:
    """Fold the venue's messages ``1 .. next_seq - 1`` in sequence; a message that does not fit
    the order's state is skipped (the kernel refuses it)."""
    model = dict(orders)
    for msg in venue[: next_seq - 1]:
        order = model.get(msg.order_id)
        if order is None or not order.is_open:
            continue
        event = _model_event(msg, order)
        if event is None:
            continue
        try:
            model[msg.order_id] = evolve(order, event)  # type: ignore[arg-type]
        except (IllegalTransition, ValueError):
            continue
    return model


def _replay_builder(pending_max: int):  # type: ignore[no-untyped-def]
    """Replay parts with an EMPTY recording: the journaled messages must be enough."""

    def build(run: RunStarted, ref: DatasetReferenced) -> RunSetup:
        config = BacktestConfig.from_json(run.config_json)
        return _parts(config, [], pending_max)

    return build


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(session=_session())
def test_messy_recorded_sessions_through_the_kernel(
    session: tuple[list[VenueMessage], list[tuple[int, VenueMessage]], int],
) -> None:
    venue, deliveries, pending_max = session
    panel = build_setup(_config(_DATA / "x"), OneShot()).panel
    received = [msgspec.structs.replace(m, ts_ns=int(panel.ts_ns[step])) for step, m in deliveries]
    with tempfile.TemporaryDirectory() as tmp:
        recording = Path(tmp) / "session.jsonl"
        write_recording(recording, received)
        assert read_recording(recording) == received
        kernel = _run(Path(tmp) / "j", recording, pending_max)
        journal = open_journal(Path(tmp) / "j")
        try:
            assert journal.verify().ok
            events = [e for _, e in journal.events()]
            _check(events, kernel, venue, pending_max)
            outcome = replay(journal, _replay_builder(pending_max))
            assert outcome.ok, outcome.divergence
            snapshots = [e for e in events if isinstance(e, StateSnapshotted)]
            held = [
                s
                for s in snapshots
                if not isinstance(s.snapshot.venue_guard, msgspec.UnsetType) and s.snapshot.venue_guard.held
            ]
            day = (held or snapshots[len(snapshots) // 2 :])[0].day
            outcome = replay(journal, _replay_builder(pending_max), day=day)  # the guard restored
            assert outcome.ok, (day, outcome.divergence)
        finally:
            journal.close()


def _check(events: list[object], kernel: Kernel, venue: list[VenueMessage], pending_max: int) -> None:
    orders, fills, applied = _fold_orders(events)
    seen, outcomes = _check_received(events)
    guard = kernel.state.venue_guard
    assert guard is not None
    assert len(guard.held) <= pending_max
    received = sum(isinstance(e, VenueMessageReceived) for e in events)
    assert received == sum(outcomes.values()) + applied + len(guard.held)  # every message accounted for
    assert set(guard.held) == {s for s in seen if s >= guard.next_seq}
    submitted = {e.order_id: new_order(e) for e in events if isinstance(e, OrderSubmitted)}
    model = _model(submitted, venue, guard.next_seq)
    assert {oid: (o.status, o.qty_raw, o.filled_qty_raw) for oid, o in orders.items()} == {
        oid: (o.status, o.qty_raw, o.filled_qty_raw) for oid, o in model.items()
    }
    positions = {iid: p.qty_raw for iid, p in kernel.state.positions.items()}
    assert positions == {iid: qty for iid, qty in fills.items() if qty}
    assert set(kernel.state.open_orders) == {oid for oid, o in orders.items() if o.is_open}
    balances: Counter[tuple[str, str]] = Counter()
    for event in events:
        if isinstance(event, LedgerPosted):
            per_currency: Counter[str] = Counter()
            for posting in event.postings:
                per_currency[posting.currency] += posting.amount_minor
                balances[(posting.account, posting.currency)] += posting.amount_minor
            assert all(total == 0 for total in per_currency.values()), event
    currency = kernel.state.currency
    assert {k: v for k, v in balances.items() if v} == {
        (account, currency): amount for account, amount in kernel.state.balances.items() if amount
    }


def _fold_orders(events: list[object]) -> tuple[dict[str, Order], Counter[int], int]:
    """Orders folded through the transition table (raises on an illegal one), signed fills per
    instrument, and the number of applied order events."""
    orders: dict[str, Order] = {}
    fills: Counter[int] = Counter()
    applied = 0
    answers = OrderAccepted | OrderRejected | OrderCancelled | OrderExpired | OrderReplaced | OrderFilled
    for event in events:
        if isinstance(event, OrderSubmitted):
            orders[event.order_id] = new_order(event)
        elif isinstance(event, answers):
            order = evolve(orders[event.order_id], event)
            assert order.filled_qty_raw <= order.qty_raw
            orders[event.order_id] = order
            applied += 1
            if isinstance(event, OrderFilled):
                fills[event.instrument_id] += event.side * event.fill_qty_raw
    return orders, fills, applied


def _check_received(events: list[object]) -> tuple[set[int], Counter[str]]:
    """A received sequence seen before is refused as a duplicate right away; returns the
    sequences taken (applied or held) and the count of each refusal outcome."""
    seen: set[int] = set()
    outcomes: Counter[str] = Counter()
    for index, event in enumerate(events):
        if isinstance(event, VenueMessageRefused):
            outcomes[event.outcome] += 1
            assert event.outcome in ("duplicate", "overflow", "illegal", "overfill", "unknown_order")
        if not isinstance(event, VenueMessageReceived):
            continue
        seq = event.message.venue_seq
        following = events[index + 1] if index + 1 < len(events) else None
        if seq in seen:
            assert isinstance(following, VenueMessageRefused), (seq, following)
            assert (following.venue_seq, following.outcome) == (seq, "duplicate")
        elif isinstance(following, VenueMessageRefused) and following.outcome == "overflow":
            assert following.venue_seq == seq
        else:
            seen.add(seq)
    return seen, outcomes


# --- edges -------------------------------------------------------------------------------------


def test_recording_errors_name_the_message(tmp_path: Path) -> None:
    panel = build_setup(_config(tmp_path / "j"), OneShot()).panel
    ts = panel.ts_ns.tolist()
    late = VenueMessage(venue_seq=2, ts_ns=ts[5], order_id="a", kind="ack")
    early = VenueMessage(venue_seq=3, ts_ns=ts[4], order_id="a", kind="ack")
    with pytest.raises(RecordingError, match=r"message 1 \(venue_seq 3\) was received at"):
        RecordedVenue(panel, [late, early])
    with pytest.raises(RecordingError, match="after the data's end"):
        RecordedVenue(panel, [msgspec.structs.replace(late, ts_ns=ts[-1] + 1)])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"venue_seq": 1, "ts_ns": 0, "order_id": "a", "kind": "ack"}\n{"venue_seq": "x"}\n')
    with pytest.raises(RecordingError, match="line 2"):
        read_recording(bad)
    venue = RecordedVenue(panel, [msgspec.structs.replace(early, ts_ns=ts[5] - 1), late])
    assert venue.next_poll_step(0) == 5 and venue.next_poll_step(5) > panel.steps
    assert [m.venue_seq for m in venue.poll(5)] == [3, 2]  # arrival order, not sequence order


def test_a_synchronous_venue_refuses_journaled_messages_and_the_router_needs_one(tmp_path: Path) -> None:
    parts = build_setup(_config(tmp_path / "j"), OneShot())
    message = VenueMessageReceived(
        ts_ns=0, step=3, message=VenueMessage(venue_seq=1, ts_ns=0, order_id="a", kind="ack")
    )
    setup = RunSetup(panel=parts.panel, strategy=OneShot(), venue=parts.venue, currency=parts.currency)
    with pytest.raises(KernelError, match="1 received venue messages, but this venue is synchronous"):
        Kernel(setup, [], venue_messages=[message])  # type: ignore[arg-type]
    recorded = RecordedVenue(parts.panel, [])
    twap = dataclasses.replace(setup, venue=recorded, execution=ExecutionConfig(algo="twap"))
    with pytest.raises(KernelError, match="execution router works with a synchronous venue only"):
        Kernel(twap, [])  # type: ignore[arg-type]


class TwoShots(OneShot):
    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array([2, 10], dtype=np.int64)


def test_a_late_ack_of_an_order_the_kernel_cancelled_is_refused(tmp_path: Path) -> None:
    """The second decision supersedes the first decision's orders before the venue acked them
    (submitted -> cancelled); their late acks are refused as unknown orders, the new orders'
    messages apply; replay from the journal alone."""
    (first, _, _), (second, _, _) = _orders()
    panel = build_setup(_config(tmp_path / "x"), OneShot()).panel
    day10 = int(panel.day[10])
    renewed = f"rec-{day10}-000003"  # the kernel's ids: strategy, session day, order counter (the sell)
    ts = panel.ts_ns.tolist()
    recording = [
        VenueMessage(venue_seq=1, ts_ns=ts[12], order_id=first, kind="ack"),
        VenueMessage(venue_seq=2, ts_ns=ts[12], order_id=renewed, kind="ack"),
        VenueMessage(venue_seq=3, ts_ns=ts[13], order_id=renewed, kind="fill", qty_raw=1, px_raw=1_000),
    ]
    path = tmp_path / "session.jsonl"
    write_recording(path, recording)
    config = _config(tmp_path / "j")
    parts = build_setup(config, TwoShots())
    journal = open_journal(tmp_path / "j", writable=True)
    ref = dataset_ref(Path(config.dataset))
    journal_inputs(journal, config, ref, panel)
    kernel = Kernel(
                 RunSetup(
                     panel=panel,
                     strategy=TwoShots(),
                     venue=RecordedVenue.from_file(panel, path),
                     policy=parts.policy,
                     currency=parts.currency,
                 ),
                 journal,
             )
    kernel.begin(parts.initial_cash_minor)
    kernel.run()
    kernel.finish()
    journal.commit()
    events = [e for _, e in journal.events()]
    cancelled = [e for e in events if isinstance(e, OrderCancelled)]
    assert {e.order_id for e in cancelled} == {first, second}
    assert all(e.reason == "superseded by a new decision" for e in cancelled)
    refused = [e for e in events if isinstance(e, VenueMessageRefused)]
    assert [(e.venue_seq, e.order_id, e.outcome) for e in refused] == [(1, first, "unknown_order")]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(e.order_id, e.fill_qty_raw, e.fill_px_raw) for e in fills] == [(renewed, 1, 1_000)]
    assert fills[0].side == -1 and kernel.state.positions[fills[0].instrument_id].qty_raw == -1
    outcome = replay(
        journal, lambda run, ref: dataclasses.replace(_parts(config, [], 1024), strategy=TwoShots())
    )
    assert outcome.ok, outcome.divergence
    journal.close()


def test_a_slow_venue_answer_trips_the_latency_kill_switch(tmp_path: Path) -> None:
    """Latency = the answer's receive time minus the order's submit time (journaled, so a replay
    judges it the same). An ack three sessions late trips the switch; the trip cancels the other
    working order, and the journal says why, with the numbers."""
    (first, _, _), (second, _, _) = _orders()
    panel = build_setup(_config(tmp_path / "x"), OneShot()).panel
    ts = panel.ts_ns.tolist()
    one_day = 86_400 * 10**9
    recording = [VenueMessage(venue_seq=1, ts_ns=ts[5], order_id=first, kind="ack")]
    kill = KillSwitchConfig(latency_ns_max=one_day)
    config = msgspec.structs.replace(_config(tmp_path / "j"), kill_switch=kill)
    parts = dataclasses.replace(build_setup(config, OneShot()), venue=RecordedVenue(panel, recording))
    journal = open_journal(tmp_path / "j", writable=True)
    ref = dataset_ref(Path(config.dataset))
    journal_inputs(journal, config, ref, panel)
    kernel = Kernel(parts, journal)
    kernel.begin(parts.initial_cash_minor)
    kernel.run()
    kernel.finish()
    journal.commit()
    events = [e for _, e in journal.events()]
    (tripped,) = [e for e in events if isinstance(e, KillSwitchTripped)]
    assert (tripped.trigger, tripped.limit, tripped.observed) == ("latency", one_day, ts[5] - ts[2])
    assert tripped.reason == f"SYNTH latency {ts[5] - ts[2]} ns > {one_day} ns"
    cancelled = {e.order_id: e.reason for e in events if isinstance(e, OrderCancelled)}
    assert cancelled == {first: "kill switch tripped (latency)", second: "kill switch tripped (latency)"}
    outcome = replay(
        journal, lambda run, ref: dataclasses.replace(_parts(config, [], 1024), strategy=OneShot())
    )
    assert outcome.ok, outcome.divergence
    journal.close()


def test_a_sent_message_measures_the_latency_from_the_send(tmp_path: Path) -> None:
    """The same ack three sessions after the submitting step, but the edge's ``sent`` note says
    the order left two sessions late: the round trip from the send is one session, within the
    limit, so nothing trips. The restamped send is kernel state (in the snapshot) and the journal
    replays."""
    (first, _, _), _ = _orders()
    panel = build_setup(_config(tmp_path / "x"), OneShot()).panel
    ts = panel.ts_ns.tolist()
    one_day = 86_400 * 10**9
    recording = [
        VenueMessage(venue_seq=1, ts_ns=ts[4], order_id=first, kind="sent"),
        VenueMessage(venue_seq=2, ts_ns=ts[5], order_id=first, kind="ack"),
    ]
    kill = KillSwitchConfig(latency_ns_max=one_day + 1)
    config = msgspec.structs.replace(_config(tmp_path / "j"), kill_switch=kill)
    parts = dataclasses.replace(build_setup(config, OneShot()), venue=RecordedVenue(panel, recording))
    journal = open_journal(tmp_path / "j", writable=True)
    ref = dataset_ref(Path(config.dataset))
    journal_inputs(journal, config, ref, panel)
    kernel = Kernel(parts, journal)
    kernel.begin(parts.initial_cash_minor)
    kernel.run()
    kernel.finish()
    journal.commit()
    events = [e for _, e in journal.events()]
    assert not [e for e in events if isinstance(e, KillSwitchTripped)]
    assert not [e for e in events if isinstance(e, VenueMessageRefused)]
    received = [e.message.kind for e in events if isinstance(e, VenueMessageReceived)]
    assert received == ["sent", "ack"]
    outcome = replay(
        journal, lambda run, ref: dataclasses.replace(_parts(config, [], 1024), strategy=OneShot())
    )
    assert outcome.ok, outcome.divergence
    journal.close()
