"""For random seeds and strategy parameters, replay reproduces the journal's hash chain."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.wiring import replay_builder
from domain.events import (
    DayClosed,
    LedgerPosted,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from domain.ledger import fold_positions
from domain.orders import replay_order
from kernel.replay import replay
from kernel.store import open_journal
from tests.factories import make_config, make_dataset, run


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    fast=st.integers(2, 10),
    gap=st.integers(1, 25),
    slippage_e8=st.integers(0, 200_000),
    commit_max=st.sampled_from([7, 64, 4096]),
)
def test_replay_reproduces_chain(seed: int, fast: int, gap: int, slippage_e8: int, commit_max: int) -> None:
    from sim.fill_models import FillModel

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_dataset(root / "data", seed=seed, symbols=3, bars=150)
        config = make_config(
            data,
            root / "j",
            params={"fast": fast, "slow": fast + gap, "weight": 0.9},
            seed=seed,
            fill=FillModel(slippage_e8=slippage_e8),
        )
        result = run(config)
        journal = open_journal(root / "j", records_per_commit_max=commit_max)
        outcome = replay(journal, replay_builder)
        assert outcome.ok, f"{outcome.divergence} (replay with --seed={seed})"
        assert journal.verify().last_hash.hex() == result.last_hash
        events = [event for _, event in journal.events()]
        balances: dict[str, int] = {}
        for event in events:
            if isinstance(event, LedgerPosted):
                assert sum(p.amount_minor for p in event.postings) == 0
                for posting in event.postings:
                    balances[posting.account] = balances.get(posting.account, 0) + posting.amount_minor
        assert sum(balances.values()) == 0
        held = {k.rsplit(":", 1)[1] for k, v in balances.items() if k.startswith("assets:inventory") and v}
        positions = fold_positions(e for e in events if isinstance(e, OrderFilled))
        assert {str(iid) for iid in positions} == held
        assert isinstance(events[-3], DayClosed)
        _assert_orders_fold_legally(events)


def _assert_orders_fold_legally(events: list[object]) -> None:
    """Every order in the journal folds through the transition table without an error."""
    submitted = {e.order_id: e for e in events if isinstance(e, OrderSubmitted)}
    lifecycle: dict[str, list[object]] = {oid: [] for oid in submitted}
    for event in events:
        if isinstance(event, OrderAccepted | OrderRejected | OrderFilled | OrderCancelled):
            lifecycle[event.order_id].append(event)
    for oid, stream in lifecycle.items():
        order = replay_order(submitted[oid], stream)  # type: ignore[arg-type]
        assert order.filled_qty_raw <= order.qty_raw
