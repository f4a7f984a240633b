"""Perpetual liquidation in the kernel on small hand-built panels: the vectorised search finds the
same step as a step-by-step check (hypothesis), shorts use the bar's high, open orders on the
liquidated perpetual are cancelled, positions that never breach are never touched, and bad margin
tiers are named."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import Event, OrderCancelled, OrderFilled, PositionLiquidated
from domain.fixed import Rounding
from domain.instruments import Instrument, notional_minor
from domain.market import Panel
from domain.markets import is_liquidatable, maintenance_margin_minor
from domain.riskrules import PORTFOLIO_RULE_ORDER, policy_from_mapping
from kernel.liquidation import MarginTier, PerpMargin, brackets_of
from kernel.loop import Kernel
from kernel.setup import RunSetup
from kernel.strategy import MarketView
from sim.fill_models import FillModel
from sim.venue import SimVenue
from tests.factories import ListSink

PERP = Instrument(
    instrument_id=1, symbol="BTC/USDT:USDT", venue="BINANCE", asset_class="crypto_perp", currency="USDT",
    price_digits=1, tick_raw=1, qty_digits=3, lot_raw=1,
)  # fmt: skip
TIERS = [
    MarginTier(notional_max="100000", mmr_e8=500_000),
    MarginTier(mmr_e8=1_000_000, maintenance_amount="500"),
]
CASH = 10_000_000_000  # 10,000 USDT


class Weights:
    strategy_id = "s"

    def __init__(self, plan: dict[int, float]) -> None:
        self.plan = plan

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        return np.array(sorted(self.plan), dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([self.plan[view.step]])


def panel_of(close: list[int], spread: list[int], volume: list[int] | None = None) -> Panel:
    c = np.array(close, dtype=np.int64)[:, None]
    s = np.array(spread, dtype=np.int64)[:, None]
    steps = len(close)
    return Panel(
        ts_ns=np.arange(1, steps + 1, dtype=np.int64) * 60_000_000_000,
        day=np.full(steps, 20240102, dtype=np.int64),
        instruments=(PERP,),
        open=c.copy(),
        high=c + s,
        low=c - s,
        close=c.copy(),
        volume=np.array(volume or [10**9] * steps, dtype=np.int64)[:, None],
        valid=np.ones((steps, 1), dtype=np.bool_),
        last_close=c.copy(),
    )


def run(
    panel: Panel, plan: dict[int, float], margin: PerpMargin | None, fill: FillModel | None = None
) -> list[Event]:
    sink = ListSink()
    kernel = Kernel(
                 RunSetup(
                     panel=panel,
                     strategy=Weights(plan),
                     venue=SimVenue(panel, fill or FillModel(commission_e8=0)),
                     policy=policy_from_mapping(
            {rule: {"limit_e8": 2_000_000_000, "action": "clip"} for rule in PORTFOLIO_RULE_ORDER}
        ),
                     currency="USDT",
                     margin=margin,
                 ),
                 sink,
             )
    kernel.begin(CASH)
    kernel.run()
    kernel.finish()
    return sink.events


def brute_force(panel: Panel, fill: OrderFilled) -> int | None:
    """First step (the fill's on) where cash + value at the adverse extreme <= maintenance."""
    brackets = brackets_of(TIERS, "USDT", "tiers")
    qty = fill.side * fill.fill_qty_raw
    cash = CASH - fill.side * fill.notional_minor - fill.commission_minor
    first = int(np.searchsorted(panel.ts_ns, fill.ts_ns))
    for step in range(first, panel.steps):
        px = int(panel.low[step, 0] if qty > 0 else panel.high[step, 0])
        balance = cash + notional_minor(PERP, qty, px, Rounding.FLOOR)
        required = maintenance_margin_minor(
            notional_minor(PERP, abs(qty), px, Rounding.HALF_EVEN), brackets, Rounding.CEILING
        )
        if is_liquidatable(balance, required):
            return step
    return None


@settings(max_examples=60)
@given(
    moves=st.lists(st.integers(-300, 300), min_size=20, max_size=80),
    spreads=st.lists(st.integers(0, 400), min_size=81, max_size=81),
    weight=st.sampled_from([-15.0, -8.0, -3.0, 3.0, 8.0, 15.0]),
)
def test_vectorised_search_matches_a_step_by_step_check(
    moves: list[int], spreads: list[int], weight: float
) -> None:
    close = (200_000 + np.cumsum([0, *moves])).tolist()  # around 20,000.0
    panel = panel_of(close, spreads[: len(close)])
    events = run(panel, {0: weight}, PerpMargin(tiers=TIERS))
    fill = next(e for e in events if isinstance(e, OrderFilled))
    expected = brute_force(panel, fill)
    liquidated = [e for e in events if isinstance(e, PositionLiquidated)]
    if expected is None:
        assert liquidated == []
        assert events == run(panel, {0: weight}, None)  # the same journal as without margin
    else:
        assert [e.step for e in liquidated] == [expected]
        side = 1 if weight > 0 else -1
        extreme = panel.low if side > 0 else panel.high
        assert liquidated[0].mark_px_raw == int(extreme[expected, 0])
        assert liquidated[0].qty_raw == side * fill.fill_qty_raw
    assert run(panel, {0: weight}, PerpMargin(tiers=TIERS)) == events  # bit-identical rerun


def test_a_short_is_liquidated_on_the_high_and_its_open_order_is_cancelled() -> None:
    steps = 40
    close = [200_000] * steps
    spread = [10] * steps
    close[30], spread[30] = 220_000, 20_000  # a spike: high 24,000.0 (+20%)
    volume = [10**9, 10**9] + [1_000] * (steps - 2)  # thin after the first fill
    panel = panel_of(close, spread, volume)
    fill_model = FillModel(commission_e8=0, participation_e8=10_000_000)  # 10% of a bar's volume
    events = run(panel, {0: -5.0, 20: -8.0}, PerpMargin(tiers=TIERS, liquidation_fee_e8=500_000), fill_model)
    liquidated = [e for e in events if isinstance(e, PositionLiquidated)]
    assert [(e.step, e.mark_px_raw) for e in liquidated] == [(30, 240_000)]
    assert liquidated[0].qty_raw < 0
    cancelled = [e for e in events if isinstance(e, OrderCancelled)]
    assert len(cancelled) == 1 and cancelled[0].reason.startswith("PERP_LIQUIDATION: margin_balance=")
    assert events.index(cancelled[0]) < events.index(liquidated[0])
    position = sum(e.side * e.fill_qty_raw for e in events if isinstance(e, OrderFilled))
    assert position == 0


def test_without_a_breach_nothing_changes() -> None:
    close = [200_000 + 50 * i for i in range(30)]
    panel = panel_of(close, [100] * 30)
    with_margin = run(panel, {0: 2.0, 15: -2.0}, PerpMargin(tiers=TIERS))
    assert not [e for e in with_margin if isinstance(e, PositionLiquidated)]
    assert with_margin == run(panel, {0: 2.0, 15: -2.0}, None)
    assert with_margin == run(panel, {0: 2.0, 15: -2.0}, PerpMargin())  # no tiers: off


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([MarginTier(mmr_e8=0)], r"\[0\].mmr_e8: 0 is outside"),
        ([MarginTier(notional_max="10", mmr_e8=1)], "the last tier must be open-ended"),
        ([MarginTier(mmr_e8=1), MarginTier(mmr_e8=2)], "only the last tier may be open-ended"),
        (
            [MarginTier(notional_max="0.0000001", mmr_e8=1), MarginTier(mmr_e8=2)],
            "not a whole number of USDT minor",
        ),
        (
            [
                MarginTier(notional_max="10", mmr_e8=1),
                MarginTier(notional_max="5", mmr_e8=2),
                MarginTier(mmr_e8=3),
            ],
            "tiers must increase",
        ),
    ],
)
def test_bad_tiers_are_named(tiers: list[MarginTier], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run(panel_of([1, 1], [0, 0]), {0: 0.0}, PerpMargin(tiers=tiers))


def test_unknown_symbol_override_is_named() -> None:
    with pytest.raises(ValueError, match=r"perp_margin.by_symbol: \['ETH/USDT:USDT'\] are not perpetuals"):
        run(panel_of([1, 1], [0, 0]), {0: 0.0}, PerpMargin(tiers=TIERS, by_symbol={"ETH/USDT:USDT": TIERS}))
