"""The execution router in the kernel, end to end on seeded synthetic minute bars: TWAP, VWAP and
POV parents journal, verify and replay byte for byte (whole run and one day resumed mid-parent);
parent fills are the sum of child fills; algo = "market" journals exactly what the kernel did
before the router; rate limits, child timeouts and retries of rejected children."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from msgspec import UnsetType

from cli.wiring import replay_builder
from domain.events import OrderCancelled, OrderRejected, OrderSubmitted, StateSnapshotted
from domain.market import Panel
from kernel.replay import replay
from kernel.router import ExecutionConfig
from kernel.store import open_journal
from lake.store import load_panel, write_dataset
from sim.backtest import BacktestConfig, StrategyConfig, build_setup, run_backtest
from sim.fill_models import FillModel
from tests.factories import SPDB, Scripted, make_config, make_dataset, one_name_policy, run
from tests.router_checks import check_parents, parent_views


@pytest.fixture(scope="module")
def minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 24x7 calendar: a session is a UTC day of 1,440 one-minute bars; 3,600 bars = 2.5 days
    return make_dataset(tmp_path_factory.mktemp("data") / "m", symbols=3, bars=3600, frequency="1m")


def _events(path: Path) -> list[object]:
    return [event for _, event in open_journal(path).events()]


def _ts_to_step(dataset: Path) -> dict[int, int]:
    panel, _ = load_panel(dataset)
    return {ts: step for step, ts in enumerate(panel.ts_ns.tolist())}


def _run_checked(dataset: Path, journal: Path, execution: ExecutionConfig, **fields: object) -> list[object]:
    result = run(make_config(dataset, journal, execution=execution, **fields))
    opened = open_journal(journal)
    assert opened.verify().ok
    outcome = replay(opened, replay_builder)
    assert outcome.ok, outcome.divergence
    assert outcome.records_compared == result.records - 2
    return _events(journal)


@pytest.mark.parametrize("algo", ["twap", "vwap", "pov"])
def test_algo_runs_replay_and_children_sum_to_parents(minutes: Path, tmp_path: Path, algo: str) -> None:
    execution = ExecutionConfig(algo=algo, slices=4, window_steps=12, participation_e8=20_000_000)
    events = _run_checked(minutes, tmp_path / "j", execution)
    views = parent_views(events, _ts_to_step(minutes))
    check_parents(views)
    assert len(views) > 50
    kinds = Counter(type(e).__name__ for e in events)
    assert kinds["ParentCreated"] == len(views)
    # every child goes through the kernel's submit path with its parent named
    assert all(e.parent_id for e in events if isinstance(e, OrderSubmitted))
    done = [v for v in views.values() if v.done is not None]
    assert {v.done.reason for v in done if v.done} <= {"filled", "cancelled", "exhausted"}
    assert any(v.done and v.done.reason == "filled" for v in done)
    if algo != "pov":
        # no rate limit, no timeouts, market children fill whole at the next bar: every child
        # is exactly a planned slice, at its step, until a new decision cancels the parent
        for view in views.values():
            sent = list(zip(view.child_steps, [c.qty_raw for c in view.children], strict=True))
            assert sent == [tuple(s) for s in view.created.slices[: len(sent)]]
            if view.done is not None and view.done.reason == "filled":
                assert len(sent) == len(view.created.slices)
    else:
        panel, _ = load_panel(minutes)
        for view in views.values():
            _check_pov(panel, view.created.instrument_id, view.created.step, view, 20_000_000)


def _check_pov(panel: Panel, instrument_id: int, start: int, view: object, participation_e8: int) -> None:
    column = [i.instrument_id for i in panel.instruments].index(instrument_id)
    volume = np.where(panel.valid[:, column], panel.volume[:, column], 0)
    sent = 0
    for step, child in zip(view.child_steps, view.children, strict=True):  # type: ignore[attr-defined]
        sent += child.qty_raw
        observed = int(volume[start + 1 : step + 1].sum())
        assert sent <= observed * participation_e8 // 100_000_000, (view, step, sent, observed)


def test_market_algo_journals_exactly_as_without_the_router(minutes: Path, tmp_path: Path) -> None:
    """An explicit ``[execution] algo = "market"`` table and no table give one journal hash (the
    config's JSON leaves the default table out), and no router event or snapshot field appears."""
    journal = tmp_path / "j"
    plain = run(make_config(minutes, journal))
    shutil.move(journal, tmp_path / "plain")
    explicit = run(make_config(minutes, journal, execution=ExecutionConfig(algo="market")))
    assert plain.last_hash == explicit.last_hash
    events = _events(journal)
    assert not [e for e in events if type(e).__name__.startswith(("Parent", "Child"))]
    snapshots = [e for e in events if isinstance(e, StateSnapshotted)]
    assert snapshots and all(isinstance(s.snapshot.router, UnsetType) for s in snapshots)
    assert "execution" not in make_config(minutes, journal).canonical_json()
    tweaked = make_config(minutes, journal, execution=ExecutionConfig(algo="twap"))
    assert '"execution":{' in tweaked.canonical_json()


def test_day_replay_resumes_a_parent_that_spans_the_day_boundary(minutes: Path, tmp_path: Path) -> None:
    execution = ExecutionConfig(algo="twap", slices=6, window_steps=12)
    params = {"fast": 10, "slow": 40, "weight": 0.95}
    events = _run_checked(minutes, tmp_path / "j", execution, params=params)
    snapshots = [e for e in events if isinstance(e, StateSnapshotted)]
    spanning = [
        s
        for s in snapshots[:-1]
        if not isinstance(s.snapshot.router, UnsetType) and s.snapshot.router.parents
    ]
    assert spanning, "expected a parent working across a day end"
    snapshot = spanning[0]  # day 20200101: a parent decided at step 1437 works until 1449
    working = {p.parent_id for p in snapshot.snapshot.router.parents}  # type: ignore[union-attr]
    next_day = snapshots[snapshots.index(snapshot) + 1].day
    views = parent_views(events, _ts_to_step(minutes))
    boundary = snapshot.snapshot.next_step  # the first step of the next day
    assert any(min(views[pid].child_steps) < boundary <= max(views[pid].child_steps) for pid in working), (
        "a parent with children on both sides of the day end"
    )
    journal = open_journal(tmp_path / "j")
    outcome = replay(journal, replay_builder, day=next_day)
    assert outcome.ok, outcome.divergence
    assert outcome.records_compared > 100


def test_rate_limit_defers_children_and_timeouts_roll_remainders(minutes: Path, tmp_path: Path) -> None:
    """One token per venue and step-time; a 1% participation cap leaves children partly filled,
    so they time out and their remainders join the next slice."""
    execution = ExecutionConfig(
        algo="twap", slices=3, window_steps=9, rate_capacity=1, rate_per_second=1, child_timeout_steps=2
    )
    fill = FillModel(participation_e8=1_000_000)
    events = _run_checked(minutes, tmp_path / "j", execution, fill=fill)
    views = parent_views(events, _ts_to_step(minutes))
    check_parents(views)
    deferred = [d for v in views.values() for d in v.deferred]
    assert deferred and all(d.reason.startswith("RATE_LIMIT: venue SYNTH") for d in deferred)
    assert all(d.retry_step == d.step + 1 for d in deferred)
    timeouts = [
        e for e in events if isinstance(e, OrderCancelled) and e.reason.startswith("ROUTER_CHILD_TIMEOUT")
    ]
    assert timeouts
    # a timed-out child's remainder is sent again with a later slice: some child is larger
    # than every planned slice of its parent
    assert any(
        max(c.qty_raw for c in v.children) > max(q for _, q in v.created.slices)
        for v in views.values()
        if v.children
    )
    assert any(v.done and v.done.reason == "exhausted" for v in views.values())


# --- retries of rejected children (A-share T+1) ------------------------------------------------


def _cn_minutes(path: Path) -> Path:
    stamps = [(20240102, t) for t in ("01:30", "02:00", "02:30", "03:00", "06:00")]
    stamps += [(20240103, t) for t in ("01:30", "02:00", "02:30", "03:00", "06:00")]  # UTC
    ts = [
        int(np.datetime64(f"{d // 10000}-{d // 100 % 100:02d}-{d % 100:02d}T{t}", "ns").astype(np.int64))
        for d, t in stamps
    ]
    bars = pa.table(
        {
            "ts_ns": ts,
            "day": [d for d, _ in stamps],
            "instrument_id": [1] * len(stamps),
            "open": [1000] * len(stamps),
            "high": [1010] * len(stamps),
            "low": [990] * len(stamps),
            "close": [1000] * len(stamps),
            "volume": [1_000_000] * len(stamps),
        }
    )
    write_dataset(path, name="cn-router", frequency="1m", calendar="XSHG", instruments=[SPDB], bars=bars)
    return path


def test_rejected_children_retry_with_backoff_until_t_plus_1_allows(tmp_path: Path) -> None:
    """Buy at step 0; the sell decided at step 2 is refused by T+1 the same session; retries after
    1 then 2 steps: the one at step 5 is in the next session and goes through."""
    data = _cn_minutes(tmp_path / "data")
    targets = {0: 0.5, 2: 0.0}
    config = BacktestConfig(
        run_id="cn-router",
        dataset=str(data),
        journal=str(tmp_path / "j"),
        currency="CNY",
        strategy=StrategyConfig(name="scripted"),
        execution=ExecutionConfig(algo="twap", slices=1, window_steps=0, retry_max=3, retry_backoff_steps=1),
        risk=one_name_policy(),
    )
    run_backtest(config, Scripted(targets))
    journal = open_journal(tmp_path / "j")
    outcome = replay(
        journal, lambda r, ref: build_setup(config, Scripted(targets), expected_hash=ref.content_hash)
    )
    assert outcome.ok, outcome.divergence
    events = [e for _, e in journal.events()]
    steps = _ts_to_step(data)
    views = parent_views(events, steps)
    check_parents(views)
    buy, sell = views.values()
    assert buy.done is not None and buy.done.reason == "filled"
    assert sell.child_steps == [2, 3, 5]
    rejected = [e for e in events if isinstance(e, OrderRejected)]
    assert [e.reason.split(":")[0] for e in rejected] == ["CN_T_PLUS_1", "CN_T_PLUS_1"]
    assert sell.done is not None and sell.done.reason == "filled"
    assert sell.filled == buy.filled == 50_000
