"""The same bars through the data set and through the queue source (one step at a time) give
byte-identical derived events and hash chains; a queued journal replays whole and by day."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.wiring import make_strategies, replay_builder
from domain.events import INPUT_KINDS, event_kind
from domain.market import Panel
from domain.riskrules import KillSwitchConfig
from kernel.replay import replay
from kernel.store import open_journal
from kernel.strategy import MarketView
from sim.backtest import run_backtest
from sim.fill_models import FillModel
from sim.queued import run_queued
from tests.factories import make_config, make_dataset, run


class RestingLimits:
    """Every ``every`` steps: half the book in the first name, or flat, by limit orders ``away``
    (1e-4) from the last close, so some rest for several steps before they fill and some are
    superseded unfilled."""

    strategy_id = "resting"

    def __init__(self, every: int, away: int) -> None:
        self._every, self._away = every, away

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.arange(30, panel.steps, self._every, dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64]:
        weights = np.full(len(view.panel.instruments), np.nan)
        weights[0] = 0.5 if (view.step // self._every) % 2 else 0.0
        return weights

    def limit_prices(self, view: MarketView) -> dict[int, int]:
        inst = view.panel.instruments[0]
        close = int(view.panel.last_close[view.step, 0])
        if close <= 0:
            return {}
        buy = (view.step // self._every) % 2 == 1
        px = close * (10_000 - self._away if buy else 10_000 + self._away) // 10_000
        return {inst.instrument_id: max(inst.tick_raw, px // inst.tick_raw * inst.tick_raw)}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), every=st.integers(2, 9), away=st.integers(0, 400))
def test_resting_limit_orders_fill_at_the_same_steps(seed: int, every: int, away: int) -> None:
    """Limit orders that rest across steps: the venue searches only rows that arrived, and asks
    again as rows come, so fills land on the same steps as in the data-set run."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_dataset(root / "data", seed=seed, symbols=2, bars=150)
        config = make_config(data, root / "j")
        batch = run_backtest(config, RestingLimits(every, away))
        (root / "j").rename(root / "batch")
        queued = run_queued(config, RestingLimits(every, away))
        assert queued.result.last_hash == batch.last_hash, f"seed={seed} every={every} away={away}"


def test_limit_orders_rest_before_they_fill(tmp_path: Path) -> None:
    """The case above with orders that do rest: filled several steps after they were sent."""
    data = make_dataset(tmp_path / "data", seed=3, symbols=2, bars=150)
    config = make_config(data, tmp_path / "j")
    batch = run_backtest(config, RestingLimits(9, 60))
    (tmp_path / "j").rename(tmp_path / "batch")
    queued = run_queued(config, RestingLimits(9, 60))
    assert queued.result.last_hash == batch.last_hash
    with open_journal(tmp_path / "j") as journal:
        events = [event for _, event in journal.events()]
    sent = {e.order_id: e.ts_ns for e in events if event_kind(e) == "order.submitted.v1"}
    waits = [e.ts_ns - sent[e.order_id] for e in events if event_kind(e) == "order.filled.v1"]
    assert len(waits) >= 3 and max(waits) >= 3 * 86_400 * 10**9, waits


def _derived(path: Path) -> list[bytes]:
    with open_journal(path) as journal:
        return [record.payload for record in journal.records() if record.kind not in INPUT_KINDS]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    strategy=st.sampled_from(["sma_crossover", "momentum"]),
    symbols=st.integers(1, 4),
    slippage_e8=st.integers(0, 200_000),
    stale=st.booleans(),
    limit_orders=st.booleans(),
)
def test_queue_source_matches_the_data_set(
    seed: int, strategy: str, symbols: int, slippage_e8: int, stale: bool, limit_orders: bool
) -> None:
    params: dict[str, object] | None = None
    if strategy == "sma_crossover":
        params = {"fast": 3 + seed % 5, "slow": 12 + seed % 9, "weight": 0.2 if limit_orders else 0.9}
    fields: dict[str, object] = {"fill": FillModel(slippage_e8=slippage_e8), "seed": seed}
    if stale:  # the kill switch reads each name's newest bar: rows that arrive late must count
        fields["kill_switch"] = KillSwitchConfig(stale_data_ns_max=3 * 86_400 * 10**9)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_dataset(root / "data", seed=seed, symbols=symbols, bars=160)
        batch = run(make_config(data, root / "j", strategy=strategy, params=params, **fields))
        (root / "j").rename(root / "batch")
        config = make_config(data, root / "j", strategy=strategy, params=params, **fields)
        queued = run_queued(config, make_strategies(config))
        assert queued.result.last_hash == batch.last_hash, f"seed={seed}"
        assert queued.counts.balanced and queued.counts.quarantined.total() == 0
        (root / "j").rename(root / "plain")
        live = run_queued(config, make_strategies(config), journal_bars=True)
        assert _derived(root / "j") == _derived(root / "batch")
        assert live.counts.accepted == queued.counts.accepted
        with open_journal(root / "j") as journal:
            kinds = {event_kind(event) for _, event in journal.events()}
            assert "market.bars_received.v1" in kinds
            outcome = replay(journal, replay_builder)
            assert outcome.ok, outcome.divergence
            days = sorted({e.day for _, e in journal.events() if event_kind(e) == "day.closed.v1"})
            for day in (days[0], days[len(days) // 2], days[-1]):
                by_day = replay(journal, replay_builder, day=day)
                assert by_day.ok, (day, by_day.divergence)
