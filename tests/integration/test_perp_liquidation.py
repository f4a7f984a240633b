"""Perpetual liquidation on real data: XRP/USDT:USDT 5-minute bars with 8-hour funding (freqtrade
test data, 2021-11-15..21, XRP fell from 1.19 to 1.01). A 10x long is liquidated at the first bar
whose low takes the account's margin balance to its maintenance margin; a 2x long never is.
Every number is checked against a plain Python re-computation over every step."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow.parquet as pq
import pytest

from domain.events import (
    LedgerPosted,
    OrderCancelled,
    OrderFilled,
    OrderSubmitted,
    PositionLiquidated,
    RunStarted,
)
from domain.fixed import Rounding, apply_rate
from domain.fx import FxRate
from domain.instruments import notional_minor
from domain.ledger import fold_positions
from domain.market import Panel
from domain.markets import is_liquidatable, maintenance_margin_minor
from domain.riskrules import PORTFOLIO_RULE_ORDER, policy_from_mapping
from kernel.liquidation import MarginTier, PerpMargin, brackets_of
from kernel.replay import replay
from kernel.store import open_journal
from kernel.strategy import MarketView, Shares
from lake.store import fx_table, load_panel, write_dataset
from sim.backtest import BacktestConfig, FxConfig, StrategyConfig, build_setup, run_backtest
from sim.fill_models import FillModel
from tests.factories import HoldLong
from tests.integration.test_perp_funding import FUTURES, PERP, _dataset

pytestmark = pytest.mark.skipif(not FUTURES.exists(), reason="needs ../shared/data/crypto/freqtrade/futures")

# Tiers in the shape of a venue's bracket table (amounts keep the margin continuous at the edges).
TIERS = [
    MarginTier(notional_max="50000", mmr_e8=1_000_000),
    MarginTier(notional_max="250000", mmr_e8=2_000_000, maintenance_amount="500"),
    MarginTier(mmr_e8=5_000_000, maintenance_amount="8000"),
]
MARGIN = PerpMargin(tiers=TIERS, liquidation_fee_e8=1_000_000)  # 1% of the closing notional
CASH_ACCOUNT = "assets:cash:USDT"


def _config(tmp_path: Path, name: str, margin: PerpMargin | None) -> BacktestConfig:
    return BacktestConfig(
        run_id=name,
        dataset=str(tmp_path / "data"),
        journal=str(tmp_path / name),
        currency="USDT",
        initial_cash="10000",
        strategy=StrategyConfig(name="hold"),
        fill=FillModel(commission_e8=50_000),
        risk=policy_from_mapping(
            {rule: {"limit_e8": 2_000_000_000, "action": "clip"} for rule in PORTFOLIO_RULE_ORDER}
        ),
        perp_margin=margin,
    )


def _events(config: BacktestConfig, weight: float) -> list[object]:
    run_backtest(config, HoldLong(weight))
    journal = open_journal(config.journal)
    outcome = replay(
        journal, lambda run, ref: build_setup(config, HoldLong(weight), expected_hash=ref.content_hash)
    )
    assert outcome.ok, outcome.divergence
    return [event for _, event in journal.events()]


def _cash_before_check(events: list[object], ts_ns: int) -> int:
    """Cash the kernel holds when it checks margin at a step: everything posted at earlier
    times, plus a strategy fill at this very step (venue fills come first; funding and the
    liquidation's own close come after the check)."""
    total = 0
    for e in events:
        if isinstance(e, LedgerPosted) and (
            e.ts_ns < ts_ns or (e.ts_ns == ts_ns and e.memo.startswith("fill hold-"))
        ):
            total += sum(p.amount_minor for p in e.postings if p.account == CASH_ACCOUNT)
    return total


def _reference_breach(panel: Panel, events: list[object], qty: int, fill_step: int) -> tuple[int, int, int]:
    """The first step (from the fill on) where cash + qty x low <= maintenance, by brute force."""
    brackets = brackets_of(TIERS, "USDT", "tiers")
    for step in range(fill_step, panel.steps):
        if not panel.valid[step, 0]:
            continue
        low = int(panel.low[step, 0])
        balance = _cash_before_check(events, int(panel.ts_ns[step])) + notional_minor(
            PERP, qty, low, Rounding.FLOOR
        )
        notional = notional_minor(PERP, qty, low, Rounding.HALF_EVEN)
        maintenance = maintenance_margin_minor(notional, brackets, Rounding.CEILING)
        if is_liquidatable(balance, maintenance):
            return step, balance, maintenance
    raise AssertionError("the reference found no breach")


def test_a_10x_long_is_liquidated_at_the_first_breaching_bar(tmp_path: Path) -> None:
    _dataset(tmp_path / "data")
    config = _config(tmp_path, "liq", MARGIN)
    events = _events(config, 10.0)
    panel, _ = load_panel(tmp_path / "data")
    liquidated = [e for e in events if isinstance(e, PositionLiquidated)]
    assert len(liquidated) == 1
    event = liquidated[0]
    opening = next(e for e in events if isinstance(e, OrderFilled))
    fill_step = int(np.searchsorted(panel.ts_ns, opening.ts_ns))
    qty = opening.fill_qty_raw
    step, balance, maintenance = _reference_breach(panel, events, qty, fill_step)
    assert (event.step, event.ts_ns) == (step, int(panel.ts_ns[step]))
    assert event.qty_raw == qty
    assert event.mark_px_raw == int(panel.low[step, 0])
    assert (event.margin_balance_minor, event.maintenance_margin_minor) == (balance, maintenance)
    assert balance <= maintenance
    notional = notional_minor(PERP, qty, event.mark_px_raw, Rounding.HALF_EVEN)
    # The fee is 1% of the closing notional, capped at the margin balance left after the close.
    left = balance + notional - notional_minor(PERP, qty, event.mark_px_raw, Rounding.FLOOR)
    full_fee = apply_rate(notional, 1_000_000, Rounding.HALF_UP)
    assert event.fee_minor == min(full_fee, max(left, 0)) > 0
    assert event.reason.startswith("PERP_LIQUIDATION: margin_balance=")
    # 10x of 10,000 USDT at ~1.19: about 9% down, with maintenance margin on top.
    assert 1_0500 < event.mark_px_raw < 1_1000

    # The close is a venue market order, filled at the mark, with the fee as its own posting.
    after = events[events.index(event) + 1 :]
    submitted, _, fill = after[0], after[1], after[2]
    assert isinstance(submitted, OrderSubmitted) and submitted.strategy_id == "liquidation"
    assert isinstance(fill, OrderFilled)
    assert (fill.side, fill.fill_qty_raw, fill.fill_px_raw, fill.notional_minor) == (
        -1,
        qty,
        event.mark_px_raw,
        notional,
    )
    assert fold_positions(e for e in events if isinstance(e, OrderFilled)) == {}
    fee_posts = [e for e in events if isinstance(e, LedgerPosted) and e.memo.startswith("liquidation fee")]
    assert len(fee_posts) == 1

    # Ledger: every account, from the postings; the book is flat and balanced.
    balances: dict[str, int] = {}
    for e in events:
        if isinstance(e, LedgerPosted):
            for p in e.postings:
                balances[p.account] = balances.get(p.account, 0) + p.amount_minor
    assert sum(balances.values()) == 0
    assert balances.get("assets:inventory:1", 0) == 0
    assert balances["expenses:liquidation_fee:USDT"] == event.fee_minor
    # Cash after = the margin balance left after the close, less the fee; no funding afterwards.
    later_funding = sum(
        p.amount_minor
        for e in events
        if isinstance(e, LedgerPosted) and e.memo.startswith("funding ") and e.ts_ns >= event.ts_ns
        for p in e.postings
        if p.account == CASH_ACCOUNT
    )
    assert later_funding == 0  # flat after the liquidation: no more funding
    assert balances[CASH_ACCOUNT] == _cash_before_check(events, event.ts_ns) + notional - event.fee_minor
    assert balances[CASH_ACCOUNT] == left - event.fee_minor >= 0
    assert not [e for e in events if isinstance(e, OrderCancelled)]  # nothing was open


def test_a_2x_long_is_never_liquidated_and_journals_as_without_margin(tmp_path: Path) -> None:
    _dataset(tmp_path / "data")
    with_margin = _events(_config(tmp_path, "with", MARGIN), 2.0)
    without = _events(_config(tmp_path, "without", None), 2.0)
    assert not [e for e in with_margin if isinstance(e, PositionLiquidated)]
    assert [e for e in with_margin if not isinstance(e, RunStarted)] == [
        e for e in without if not isinstance(e, RunStarted)
    ]
    assert '"perp_margin"' not in _config(tmp_path, "x", None).canonical_json()
    configured = _config(tmp_path, "x", MARGIN)
    assert '"perp_margin"' in configured.canonical_json()
    assert BacktestConfig.from_json(configured.canonical_json()) == configured  # `tape replay` reads it back


class HoldShares:
    """The perpetual's quantity itself (``Shares``), so two books of different NAVs hold the same."""

    strategy_id = "hold"

    def __init__(self, qty: float) -> None:
        self.qty = qty

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array([0], dtype=np.int64)

    def decide(self, view: MarketView) -> Shares:
        return Shares(np.array([self.qty]))


def test_in_a_book_of_several_currencies_the_usdt_wallet_is_liquidated_on_its_own(tmp_path: Path) -> None:
    """The same XRP bars and funding with a USD base holding 1,000,000 USD beside the 10,000 USDT
    wallet (rates CONSTRUCTED: 1.0001 USD per USDT, no shared data set has them). The USD cash is
    another account: the same 10x quantity is liquidated at the same bar, with the same margin
    balance, maintenance margin and fee, as in the USDT-only book."""
    one_path = _dataset(tmp_path / "data")
    single = _events(_config(tmp_path, "one", MARGIN), 10.0)
    [alone] = [e for e in single if isinstance(e, PositionLiquidated)]
    qty = next(e for e in single if isinstance(e, OrderFilled)).fill_qty_raw
    panel, _ = load_panel(one_path)
    days = sorted(set(panel.day.tolist()))
    several = tmp_path / "several"
    write_dataset(
        several, name="xrp-perp-usd-base-constructed-fx", frequency="5m", calendar="24x7", instruments=[PERP],
        bars=pq.read_table(one_path / "bars.parquet"), funding=pq.read_table(one_path / "funding.parquet"),
        fx=fx_table([FxRate(day=day, currency="USDT", base="USD", rate_e8=100_010_000) for day in days]),
    )  # fmt: skip
    config = msgspec.structs.replace(
        _config(tmp_path, "several", MARGIN), dataset=str(several), currency="USD", initial_cash="1000000",
        fx=FxConfig(initial_cash={"USDT": "10000"}),
    )  # fmt: skip
    strategy = HoldShares(qty / 10**PERP.qty_digits)
    run_backtest(config, strategy)
    with open_journal(config.journal) as journal:
        events = [event for _, event in journal.events()]
        assert replay(
            journal, lambda run, ref: build_setup(config, strategy, expected_hash=ref.content_hash)
        ).ok
    [liquidated] = [e for e in events if isinstance(e, PositionLiquidated)]
    assert liquidated == alone
    assert next(e for e in events if isinstance(e, OrderFilled)).fill_qty_raw == qty
