"""kernel/router.py on hand-made panels: config validation, TWAP/VWAP plans, a causal VWAP
profile, POV sizing, timeouts, deferral, snapshot round trips."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import msgspec
import numpy as np
import pytest
from msgspec import UNSET

from domain.events import (
    ChildDeferred,
    Event,
    KernelSnapshot,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderSubmitted,
    ParentCreated,
    ParentDone,
    decode_event,
    encode_event,
)
from domain.instruments import Instrument
from domain.market import Panel
from kernel.pipeline import OrderIntent
from kernel.router import ExecutionBook, ExecutionConfig, Router, RouterError
from kernel.state import KernelState
from sim.backtest import BacktestConfig

INST = Instrument(
    instrument_id=7,
    symbol="X",
    venue="V",
    asset_class="equity",
    currency="USD",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=10,
)


def _panel(volume: list[int], per_day: int) -> Panel:
    steps = len(volume)
    ts = (np.arange(steps, dtype=np.int64) + 1) * 60_000_000_000
    day = 20240101 + np.arange(steps, dtype=np.int64) // per_day
    col = np.full((steps, 1), 1000, dtype=np.int64)
    return Panel(
        ts_ns=ts,
        day=day,
        instruments=(INST,),
        open=col,
        high=col,
        low=col,
        close=col,
        volume=np.array(volume, dtype=np.int64)[:, None],
        valid=np.ones((steps, 1), dtype=np.bool_),
        last_close=col,
    )


class Harness:
    """A stand-in for the kernel: submit accepts every child; fills are fed by the test."""

    def __init__(self, panel: Panel, config: ExecutionConfig, book: ExecutionBook | None = None) -> None:
        self.panel = panel
        self.events: list[Event] = []
        self.counter = 0
        self.router = Router(
            config=config,
            panel=panel,
            instruments={INST.instrument_id: INST},
            columns={INST.instrument_id: 0},
            book=book if book is not None else ExecutionBook(),
            sink=self,
            submit=self.submit,
            cancel=self.cancel,
        )
        self.tap = self.router.tap(self)

    def append(self, event: Event) -> int:
        self.events.append(event)
        return len(self.events) - 1

    def submit(
        self, step: int, ts: int, sid: str, iid: int, side: int, qty: int, px: int, parent: str
    ) -> None:
        self.counter += 1
        oid = f"o{self.counter}"
        self.tap.append(
            OrderSubmitted(
                ts_ns=ts,
                order_id=oid,
                strategy_id=sid,
                instrument_id=iid,
                side=side,
                order_type="market",
                qty_raw=qty,
                limit_px_raw=0,
                decision_px_raw=px,
                parent_id=parent,
            )
        )
        self.tap.append(OrderAccepted(ts_ns=ts, order_id=oid))

    def cancel(self, step: int, order_id: str, reason: str) -> None:
        self.tap.append(OrderCancelled(ts_ns=int(self.panel.ts_ns[step]), order_id=order_id, reason=reason))

    def fill(self, step: int, child: OrderSubmitted, qty: int, leaves: int) -> None:
        self.tap.append(
            OrderFilled(
                ts_ns=int(self.panel.ts_ns[step]),
                order_id=child.order_id,
                instrument_id=child.instrument_id,
                side=child.side,
                fill_qty_raw=qty,
                fill_px_raw=1000,
                leaves_qty_raw=leaves,
                notional_minor=0,
                commission_minor=0,
                currency="USD",
            )
        )

    def decide(self, step: int, qty: int, side: int = 1) -> ParentCreated:
        ts = int(self.panel.ts_ns[step])
        self.router.on_decision(step, ts, "s", [OrderIntent(INST.instrument_id, side, qty, 1000)])
        created = [e for e in self.events if isinstance(e, ParentCreated)][-1]
        return created

    def children(self) -> list[OrderSubmitted]:
        return [e for e in self.events if isinstance(e, OrderSubmitted)]

    def run(self, first: int, last: int) -> None:
        for step in range(first, last + 1):
            self.router.work(step)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"algo": "iceberg"}, "execution.algo must be one of"),
        ({"slices": 0}, "execution.slices must be at least 1"),
        ({"window_steps": -1}, "execution.window_steps must not be negative"),
        ({"participation_e8": 0}, "execution.participation_e8 must be in"),
        ({"participation_e8": 100_000_001}, "execution.participation_e8 must be in"),
        ({"retry_backoff_steps": 9, "retry_backoff_cap_steps": 3}, "retry_backoff_cap_steps"),
        ({"rate_per_second": 0}, "execution.rate_per_second must be at least 1"),
        ({"slice": 3}, "unknown field"),
    ],
)
def test_bad_execution_tables_are_refused_by_name(fields: dict[str, object], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(fields, ExecutionConfig)


def test_execution_table_decodes_inside_a_backtest_config() -> None:
    raw = {"run_id": "r", "dataset": "d", "journal": "j", "strategy": {"name": "x"}}
    assert msgspec.convert(raw, BacktestConfig).execution.algo == "market"
    raw["execution"] = {"algo": "pov", "participation_e8": 5_000_000}
    config = msgspec.convert(raw, BacktestConfig)
    assert config.execution.participation_e8 == 5_000_000
    assert BacktestConfig.from_json(config.canonical_json()) == config


def test_router_refuses_market() -> None:
    with pytest.raises(RouterError, match="market orders go direct"):
        Harness(_panel([1] * 10, 10), ExecutionConfig())


def test_twap_plans_equal_lots_and_sends_children_at_their_steps() -> None:
    h = Harness(_panel([100] * 40, 40), ExecutionConfig(algo="twap", slices=4, window_steps=8))
    created = h.decide(2, 230)  # 23 lots over slices at steps 2, 4, 6, 8
    assert created.slices == [(2, 50), (4, 60), (6, 60), (8, 60)]
    assert (created.step, created.end_step) == (2, 10)
    for step in range(2, 12):
        h.router.work(step)
        for child in h.children():
            if child.ts_ns == h.panel.ts_ns[step]:
                h.fill(step, child, child.qty_raw, 0)
    assert [c.qty_raw for c in h.children()] == [50, 60, 60, 60]
    done = [e for e in h.events if isinstance(e, ParentDone)]
    assert [(d.reason, d.filled_qty_raw, d.children) for d in done] == [("filled", 230, 4)]
    assert not h.router.book.parents


def test_odd_lot_remainder_joins_the_last_slice() -> None:
    h = Harness(_panel([100] * 40, 40), ExecutionConfig(algo="twap", slices=2, window_steps=4))
    assert h.decide(0, 25, side=-1).slices == [(0, 10), (2, 15)]
    assert h.decide(1, 5, side=-1).slices == [(1, 5)]  # below one lot: one slice now


def test_vwap_profile_is_causal_and_shapes_the_slices() -> None:
    per_day = 6
    history = [10, 10, 40, 40, 0, 0] * 3  # three earlier sessions: volume in the middle bars
    later = [999] * 2 * per_day  # the decision's own session and the next: must not count
    config = ExecutionConfig(algo="vwap", slices=3, window_steps=6)
    h = Harness(_panel(history + later, per_day), config)
    profile = h.router.volume_profile(7, 18)
    assert profile.tolist() == [30, 30, 120, 120, 0, 0]
    # bins [18,19], [20,21], [22,23,24]: bars-of-session 0-1, 2-3, 4-5 and the next session's 0;
    # weights 60, 240, 30 of 330 -> cumulative floors of 20 lots: 3, 18, 20
    created = h.decide(18, 200)
    assert created.slices == [(18, 30), (20, 150), (22, 20)]
    h2 = Harness(_panel(history + [1] * 2 * per_day, per_day), config)
    assert h2.decide(18, 200).slices == created.slices
    h3 = Harness(
        _panel([5] * 12, per_day),
        ExecutionConfig(algo="vwap", slices=2, window_steps=3, vwap_lookback_sessions=0),
    )
    assert h3.decide(0, 40).slices == [(0, 20), (1, 20)]  # no history: equal bins


def test_pov_sizes_children_from_observed_volume() -> None:
    volume = [0, 100, 35, 300, 0, 500, 500, 500]
    h = Harness(_panel(volume, 8), ExecutionConfig(algo="pov", participation_e8=10_000_000, window_steps=6))
    created = h.decide(0, 60)
    assert created.slices == []
    h.run(0, 7)
    sent = [(int(np.searchsorted(h.panel.ts_ns, c.ts_ns)), c.qty_raw) for c in h.children()]
    # 10% of cumulative volume: step 1 -> 10; step 2 -> 13.5 (not a lot more); step 3 -> 43.5
    # (3 lots more); step 5 -> 93.5, capped by the 20 left
    assert sent == [(1, 10), (3, 30), (5, 20)]
    for child in h.children():
        h.fill(7, child, child.qty_raw, 0)
    h.router.work(7)
    assert [e.reason for e in h.events if isinstance(e, ParentDone)] == ["filled"]


def test_timeout_cancels_and_rolls_the_remainder_into_the_next_slice() -> None:
    h = Harness(
        _panel([100] * 20, 20), ExecutionConfig(algo="twap", slices=2, window_steps=4, child_timeout_steps=1)
    )
    h.decide(0, 100)  # slices (0, 50), (2, 50)
    h.router.work(0)
    first = h.children()[0]
    h.fill(1, first, 20, 30)
    assert h.router.next_due(1) == 1
    h.router.work(1)
    cancels = [e for e in h.events if isinstance(e, OrderCancelled)]
    assert [c.reason for c in cancels] == ["ROUTER_CHILD_TIMEOUT: open 1 steps after sending"]
    assert h.router.book.parents[first.parent_id].pending == [[2, 80, 0]]
    h.router.work(2)
    assert [c.qty_raw for c in h.children()] == [50, 80]
    h.router.work(3)  # the second child times out too: nothing pending, the parent is exhausted
    (done,) = [e for e in h.events if isinstance(e, ParentDone)]
    assert (done.reason, done.filled_qty_raw) == ("exhausted", 20)


def test_empty_bucket_defers_to_the_next_step() -> None:
    config = ExecutionConfig(algo="twap", slices=3, window_steps=0, rate_capacity=1, rate_per_second=1)
    h = Harness(_panel([100] * 20, 20), config)
    h.decide(0, 30)  # all three slices at step 0 merge into one child
    h.router.on_decision(0, int(h.panel.ts_ns[0]), "t", [OrderIntent(7, -1, 10, 1000)])
    h.router.work(0)
    deferred = [e for e in h.events if isinstance(e, ChildDeferred)]
    assert [(d.qty_raw, d.step, d.retry_step) for d in deferred] == [(10, 0, 1)]
    assert deferred[0].reason.startswith("RATE_LIMIT: venue V has no token")
    h.router.work(1)  # a minute later: 60 tokens earned, capped at 1
    assert [c.qty_raw for c in h.children()] == [30, 10]


def test_book_snapshot_round_trips_through_the_kernel_snapshot() -> None:
    state = KernelState("USD")
    assert state.snapshot().router is UNSET
    h = Harness(
        _panel([100] * 20, 20), ExecutionConfig(algo="pov", window_steps=9, rate_capacity=2), state.execution
    )
    h.decide(0, 100)
    h.run(0, 3)
    snapshot = state.snapshot()
    assert snapshot.router is not UNSET
    encoded = msgspec.msgpack.encode(snapshot)
    decoded = msgspec.msgpack.decode(encoded, type=KernelSnapshot)
    restored = KernelState.restore(decoded, "USD")
    assert restored.snapshot() == snapshot
    assert set(restored.execution.child_parent) == {c.order_id for c in h.children()}
    # the restored router carries on exactly like the original
    h2 = Harness(h.panel, ExecutionConfig(algo="pov", window_steps=9, rate_capacity=2), restored.execution)
    h2.counter = h.counter
    h.run(4, 9)
    h2.run(4, 9)
    tail = [encode_event(e) for e in h.events if e.ts_ns > h.panel.ts_ns[3]]
    assert tail == [encode_event(e) for e in h2.events]
    assert decode_event(tail[0])


def test_new_decision_cancels_the_strategys_parents() -> None:
    h = Harness(_panel([100] * 20, 20), ExecutionConfig(algo="twap", slices=4, window_steps=8))
    h.decide(0, 100)
    h.run(0, 1)
    child = h.children()[0]
    h.fill(1, child, child.qty_raw, 0)
    h.decide(3, 40, side=-1)
    done = [e for e in h.events if isinstance(e, ParentDone)]
    assert [(d.reason, d.filled_qty_raw, d.detail) for d in done] == [
        ("cancelled", 20, "superseded by a new decision")
    ]
    assert len(h.router.book.parents) == 1


def test_shipped_twap_example_config_loads(tmp_path: Path) -> None:
    from cli.wiring import load_config

    text = resources.files("cli.defaults").joinpath("sma_minute_twap.toml").read_text()
    (tmp_path / "c.toml").write_text(text)
    config = load_config(tmp_path / "c.toml")
    assert config.execution == ExecutionConfig(
        algo="twap", slices=4, window_steps=20, rate_capacity=10, rate_per_second=1, child_timeout_steps=5
    )
    bad = text.replace('algo = "twap"', 'algo = "twapp"')
    (tmp_path / "bad.toml").write_text(bad)
    with pytest.raises(ValueError, match=r"execution\.algo must be one of"):
        load_config(tmp_path / "bad.toml")


def test_pov_without_a_window_ends_at_its_decision_step() -> None:
    """Found by the replay property: a parent with nothing to do must end at once, not whenever
    the router next happens to wake (that would differ between a run and a --day replay)."""
    h = Harness(_panel([100] * 10, 10), ExecutionConfig(algo="pov", window_steps=0))
    h.router.work(2)  # nothing to do
    assert h.router.next_due(3) > 9
    h.decide(3, 50)
    assert h.router.next_due(3) == 3
    h.router.work(3)
    (done,) = [e for e in h.events if isinstance(e, ParentDone)]
    assert (done.reason, done.children, done.ts_ns) == ("exhausted", 0, int(h.panel.ts_ns[3]))


def test_parent_filled_at_the_decision_step_is_reported_filled() -> None:
    h = Harness(_panel([100] * 10, 10), ExecutionConfig(algo="twap", slices=1, window_steps=0))
    h.decide(0, 30)
    h.router.work(0)
    h.fill(1, h.children()[0], 30, 0)  # filled at step 1; the next decision comes at step 1 too
    h.decide(1, 10, side=-1)
    assert [e.reason for e in h.events if isinstance(e, ParentDone)] == ["filled"]
