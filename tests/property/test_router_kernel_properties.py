"""For random router parameters (algo, slices, window, participation, rate limit, child timeout
and what it does -- cancel or replace --, retries) and venue participation caps: every parent's
fill is the sum of its children's fills and never above its quantity, every order transition is
legal (replaces included), and replay reproduces the journal."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.wiring import replay_builder
from kernel.replay import replay
from kernel.router import ExecutionConfig
from kernel.store import open_journal
from lake.store import load_panel
from sim.fill_models import FillModel
from tests.factories import make_config, make_dataset, run
from tests.router_checks import check_parents, parent_views

_DATA = Path(tempfile.mkdtemp(prefix="router-prop-"))


@functools.cache
def _dataset(seed: int) -> tuple[Path, dict[int, int]]:
    path = make_dataset(_DATA / f"m{seed}", seed=seed, symbols=3, bars=1800, frequency="1m")
    panel, _ = load_panel(path)
    return path, {ts: step for step, ts in enumerate(panel.ts_ns.tolist())}


def _days(seed: int) -> set[int]:
    panel, _ = load_panel(_dataset(seed)[0])
    return set(panel.day.tolist())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from([5, 11]),
    algo=st.sampled_from(["twap", "vwap", "pov"]),
    slices=st.integers(1, 8),
    window=st.integers(0, 40),
    participation_e8=st.integers(1_000_000, 100_000_000),
    rate_capacity=st.sampled_from([0, 1, 2]),
    timeout=st.integers(0, 4),
    retry_max=st.integers(0, 3),
    cap_e8=st.sampled_from([0, 500_000, 5_000_000]),
    fast=st.integers(2, 6),
    on_timeout=st.sampled_from(["cancel", "replace"]),
)
def test_parents_equal_sum_of_children_and_replay(
    seed: int,
    algo: str,
    slices: int,
    window: int,
    participation_e8: int,
    rate_capacity: int,
    timeout: int,
    retry_max: int,
    cap_e8: int,
    fast: int,
    on_timeout: str,
) -> None:
    dataset, steps = _dataset(seed)
    execution = ExecutionConfig(
        algo=algo,
        slices=slices,
        window_steps=window,
        participation_e8=participation_e8,
        rate_capacity=rate_capacity,
        child_timeout_steps=timeout,
        retry_max=retry_max,
        on_timeout=on_timeout,
    )
    with tempfile.TemporaryDirectory() as tmp:
        journal_path = Path(tmp) / "j"
        config = make_config(
            dataset,
            journal_path,
            params={"fast": fast, "slow": fast * 3, "weight": 0.9},
            execution=execution,
            fill=FillModel(participation_e8=cap_e8),
        )
        run(config)
        journal = open_journal(journal_path)
        try:
            views = parent_views((event for _, event in journal.events()), steps)  # legal transitions
            check_parents(views)
            assert views
            outcome = replay(journal, replay_builder)
            assert outcome.ok, (outcome.divergence, f"replay with seed={seed} and {execution}")
            last_day = max(step_day for step_day in _days(seed))
            outcome = replay(journal, replay_builder, day=last_day)  # resumes from the day snapshot
            assert outcome.ok, (
                outcome.divergence,
                f"replay --day {last_day} with seed={seed} and {execution}",
            )
        finally:
            journal.close()
