"""Implementation shortfall, fill ratio and slippage on hand-computed fills."""

import pytest

from domain.execution import execution_quality, shortfall_minor, summarise
from domain.instruments import Instrument


def test_buy_partially_filled() -> None:
    q = execution_quality(
        "p",
        1,
        1_000,
        [400, 200],
        [10_100, 10_250],
        decision_px_raw=10_000,
        arrival_px_raw=10_050,
        close_px_raw=10_400,
    )
    assert q.filled_qty_raw == 600
    assert q.fill_ratio_e8 == 60_000_000
    assert q.avg_fill_px_raw == 10_150
    assert q.execution_cost_decision_raw == 600 * 150
    assert q.execution_cost_arrival_raw == 600 * 100
    assert q.opportunity_cost_raw == 400 * 400
    assert q.shortfall_decision_raw == 90_000 + 160_000
    assert q.slippage_arrival_e8 == 995_025  # 100 / 10,050 = 99.5 bp
    assert q.slippage_decision_e8 == 1_500_000  # 150 bp


def test_sell_better_than_reference_is_negative_cost() -> None:
    q = execution_quality("p", -1, 100, [100], [10_100], 10_000, 10_000, 9_000)
    assert q.execution_cost_decision_raw == -10_000
    assert q.opportunity_cost_raw == 0
    assert q.slippage_decision_e8 == -1_000_000


def test_no_fills() -> None:
    q = execution_quality("p", -1, 100, [], [], 10_000, 10_000, 9_000)
    assert (q.fill_ratio_e8, q.avg_fill_px_raw, q.slippage_arrival_e8) == (0, 0, 0)
    assert q.opportunity_cost_raw == 100 * 1_000  # price fell while we failed to sell


def test_overfill_is_an_error() -> None:
    with pytest.raises(ValueError, match="filled 200 > intended 100"):
        execution_quality("p", 1, 100, [200], [1], 1, 1, 1)


def test_shortfall_to_money_and_summary() -> None:
    aapl = Instrument(
        instrument_id=1,
        symbol="AAPL",
        venue="X",
        asset_class="equity",
        currency="USD",
        price_digits=2,
        tick_raw=1,
        qty_digits=0,
        lot_raw=1,
    )
    q = execution_quality("p", 1, 1_000, [400, 200], [10_100, 10_250], 10_000, 10_050, 10_400)
    assert shortfall_minor(aapl, q.shortfall_decision_raw) == 250_000  # $2,500.00 in cents
    other = execution_quality("o", -1, 100, [100], [10_100], 10_000, 10_000, 9_000)
    total = summarise([q, other])
    assert total["parents"] == 2
    assert total["fill_ratio_e8"] == 700 * 100_000_000 // 1_100 + 1  # half-even of 63.636..%
    assert total["shortfall_decision_raw"] == 250_000 - 10_000
