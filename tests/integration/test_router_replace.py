"""The router's child timeout with ``on_timeout = "replace"``: a timed-out child keeps working,
amended (``OrderReplaced``) to include the parent's next slice, instead of cancel + a new child.
Journals verify and replay byte for byte (whole run and one day resumed from its snapshot); the
default (``cancel``) journals exactly as before the switch existed."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from cli.wiring import make_strategy, replay_builder
from domain.events import (
    Event,
    OrderCancelled,
    OrderReplaced,
    OrderReplaceRejected,
    OrderSubmitted,
    StateSnapshotted,
)
from domain.orders import Order
from kernel.loop import Kernel
from kernel.replay import replay
from kernel.router import ExecutionConfig
from kernel.setup import RunSetup
from kernel.store import open_journal
from lake.store import load_panel
from projections import open_ledger, rebuild_ledger
from sim.backtest import build_setup
from sim.execution_report import execution_report
from sim.fill_models import FillModel
from sim.venue import SimVenue
from tests.contracts.projection_servers import scratch_database
from tests.factories import make_config, make_dataset, run
from tests.router_checks import check_parents, parent_views


@pytest.fixture(scope="module")
def minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "m", symbols=3, bars=3000, frequency="1m")


def _execution(on_timeout: str) -> ExecutionConfig:
    return ExecutionConfig(
        algo="twap", slices=4, window_steps=12, child_timeout_steps=2, on_timeout=on_timeout
    )


FILL = FillModel(participation_e8=1_000_000)  # 1% of a bar's volume: children fill in parts


def _run(minutes: Path, journal: Path, on_timeout: str) -> list[object]:
    result = run(make_config(minutes, journal, execution=_execution(on_timeout), fill=FILL))
    opened = open_journal(journal)
    try:
        assert opened.verify().ok
        outcome = replay(opened, replay_builder)
        assert outcome.ok, outcome.divergence
        assert outcome.records_compared == result.records - 2
        return [event for _, event in opened.events()]
    finally:
        opened.close()


def test_replace_on_timeout_amends_children_verifies_and_replays(minutes: Path, tmp_path: Path) -> None:
    events = _run(minutes, tmp_path / "replace", "replace")
    panel, _ = load_panel(minutes)
    steps = {ts: step for step, ts in enumerate(panel.ts_ns.tolist())}
    views = parent_views(events, steps)  # every transition legal, replaces included
    check_parents(views)
    replaced = [e for e in events if isinstance(e, OrderReplaced)]
    assert replaced, "expected timed-out children to be amended"
    assert all(e.reason.startswith("ROUTER_CHILD_TIMEOUT") for e in replaced)
    submitted = {e.order_id: e for e in events if isinstance(e, OrderSubmitted)}
    for view in views.values():
        slices = [q for _, q in view.created.slices]
        for event in view.replaced:  # each replace adds exactly one planned slice of the parent
            before = [
                r.qty_raw for r in view.replaced if r.order_id == event.order_id and r.ts_ns < event.ts_ns
            ]
            previous = before[-1] if before else submitted[event.order_id].qty_raw
            assert event.qty_raw - previous in slices
    # the children amended were working: a timeout cancels only children with nothing left to add
    timeouts = [
        e for e in events if isinstance(e, OrderCancelled) and e.reason.startswith("ROUTER_CHILD_TIMEOUT")
    ]
    amended = {e.order_id for e in replaced}
    cancel_run = _run(minutes, tmp_path / "cancel", "cancel")
    children = Counter(isinstance(e, OrderSubmitted) for e in events)[True]
    children_cancel = Counter(isinstance(e, OrderSubmitted) for e in cancel_run)[True]
    assert children < children_cancel, (children, children_cancel)
    assert len(timeouts) < sum(
        isinstance(e, OrderCancelled) and e.reason.startswith("ROUTER_CHILD_TIMEOUT") for e in cancel_run
    )
    assert amended
    snapshots = [e for e in events if isinstance(e, StateSnapshotted)]
    journal = open_journal(tmp_path / "replace")
    try:
        for snapshot in snapshots[1:3]:
            outcome = replay(journal, replay_builder, day=snapshot.day)
            assert outcome.ok, outcome.divergence
    finally:
        journal.close()


def test_cancel_default_journals_as_before(minutes: Path, tmp_path: Path) -> None:
    """``on_timeout = "cancel"`` is left out of the journaled config: same bytes as a config
    written before the switch existed; "replace" is recorded."""
    config = make_config(minutes, tmp_path / "j", execution=_execution("cancel"), fill=FILL)
    assert "on_timeout" not in config.canonical_json()
    assert (
        '"on_timeout":"replace"'
        in make_config(minutes, tmp_path / "j", execution=_execution("replace"), fill=FILL).canonical_json()
    )
    first = run(config)
    shutil.move(tmp_path / "j", tmp_path / "first")
    again = run(
        make_config(
            minutes,
            tmp_path / "j",
            execution=ExecutionConfig(algo="twap", slices=4, window_steps=12, child_timeout_steps=2),
            fill=FILL,
        )
    )
    assert first.last_hash == again.last_hash
    assert not [e for _, e in open_journal(tmp_path / "j").events() if isinstance(e, OrderReplaced)]


def test_on_timeout_is_validated() -> None:
    with pytest.raises(ValueError, match=r"execution\.on_timeout must be one of cancel, replace"):
        ExecutionConfig(algo="twap", on_timeout="amend")


def test_replaced_children_in_the_execution_report_and_the_ledger_projection(
    minutes: Path, tmp_path: Path
) -> None:
    """A replace moves the parent's intended quantity by the child's change (no double count),
    and the ledger projection's orders table carries the amended quantity, whether the journal
    is folded in one go or in small batches (orders replaced in a later batch are updated)."""
    events = _run(minutes, tmp_path / "j", "replace")
    panel, _ = load_panel(minutes)
    views = parent_views(events, {ts: step for step, ts in enumerate(panel.ts_ns.tolist())})
    with open_journal(tmp_path / "j") as journal:
        report = execution_report(journal)
    rows = {row.parent_id: row for row in report.rows}
    replaced_parents = [pid for pid, view in views.items() if view.replaced]
    assert replaced_parents
    for parent_id in replaced_parents:
        view = views[parent_id]
        assert rows[parent_id].intended_qty_raw == sum(view.qty.values())
        assert rows[parent_id].filled_qty_raw == view.filled
    rebuilt = rebuild_ledger(tmp_path / "j", tmp_path / "ledger.sqlite")
    with open_ledger(tmp_path / "incremental.sqlite") as ledger, open_journal(tmp_path / "j") as opened:
        ledger.run(opened, batch_records_max=7)
        assert ledger.table_checksums() == rebuilt.checksums
        stored = dict(ledger.query("SELECT order_id, qty_raw FROM orders"))
        triggers = dict(ledger.query("SELECT trigger, COUNT(*) FROM order_transitions GROUP BY trigger"))
    final = {cid: qty for view in views.values() for cid, qty in view.qty.items()}
    assert {cid: stored[cid] for cid in final} == final
    assert triggers["replace"] == sum(len(view.replaced) for view in views.values())


class _NoAmendVenue(SimVenue):
    """A venue that refuses every replace."""

    def replace(self, step: int, order: Order, qty_raw: int, limit_px_raw: int) -> OrderReplaceRejected:
        return OrderReplaceRejected(
            ts_ns=0, order_id=order.order_id, qty_raw=qty_raw, limit_px_raw=limit_px_raw, reason="NO_AMEND"
        )


class _ListSink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def append(self, event: Event) -> int:
        self.events.append(event)
        return len(self.events) - 1


def _kernel_events(minutes: Path, on_timeout: str, venue_type: type[SimVenue]) -> list[Event]:
    config = make_config(minutes, minutes.parent / "unused", execution=_execution(on_timeout), fill=FILL)
    parts = build_setup(config, make_strategy(config.strategy))
    sink = _ListSink()
    kernel = Kernel(
                 RunSetup(
                     panel=parts.panel,
                     strategy=parts.strategy,
                     venue=venue_type(parts.panel, config.fill),
                     policy=parts.policy,
                     currency=parts.currency,
                     execution=parts.execution,
                 ),
                 sink,
             )
    kernel.begin(parts.initial_cash_minor)
    kernel.run()
    kernel.finish()
    return sink.events


def test_a_refused_replace_falls_back_to_the_cancel(minutes: Path) -> None:
    """Against a venue that never amends, ``replace`` journals each refusal and then does exactly
    what ``cancel`` does: the journals are equal once the refusals are taken out."""
    refused_run = _kernel_events(minutes, "replace", _NoAmendVenue)
    refusals = [e for e in refused_run if isinstance(e, OrderReplaceRejected)]
    assert refusals and all(e.reason == "NO_AMEND" for e in refusals)
    cancel_run = _kernel_events(minutes, "cancel", SimVenue)
    assert [e for e in refused_run if not isinstance(e, OrderReplaceRejected)] == cancel_run
    amended_run = _kernel_events(minutes, "replace", SimVenue)
    assert amended_run != cancel_run and any(isinstance(e, OrderReplaced) for e in amended_run)


def test_replaced_orders_project_the_same_on_postgres(minutes: Path, tmp_path: Path) -> None:
    """The PostgreSQL ledger folds replaces like SQLite: same checksums, in one go and in batches."""
    _run(minutes, tmp_path / "j", "replace")
    on_sqlite = rebuild_ledger(tmp_path / "j", tmp_path / "ledger.sqlite")
    with scratch_database() as url:
        on_postgres = rebuild_ledger(tmp_path / "j", url, schema="replaced", batch_records_max=7)
        assert on_postgres.checksums == on_sqlite.checksums
