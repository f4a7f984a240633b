"""Order rules: price band, quantity, notional; whole lots, exact integer limits."""

import pytest

from domain.riskrules import OrderLimit, PriceBand, RiskPolicy, RuleAction, evaluate_orders, make_orders

REJECT, CLIP = RuleAction.REJECT, RuleAction.CLIP


def policy(notional=(0, CLIP), qty=(0, CLIP), band=(0, REJECT)) -> RiskPolicy:  # type: ignore[no-untyped-def]
    return RiskPolicy(
        order_notional=OrderLimit(limit=notional[0], action=notional[1]),
        order_qty=OrderLimit(limit=qty[0], action=qty[1]),
        price_band=PriceBand(band_e8=band[0], action=band[1]),
    )


def batch(qty, notional, px, last, lot=None):  # type: ignore[no-untyped-def]
    n = len(qty)
    return make_orders(list(range(1, n + 1)), qty, notional, px, last, lot or [1] * n)


def test_disabled_rules_pass_everything() -> None:
    result = evaluate_orders(batch([500, -300], [10**12, 10**12], [100, 100], [1, 1]), policy())
    assert [v.action for v in result.verdicts] == ["pass", "pass", "pass"]
    assert [v.rule for v in result.verdicts] == ["price_band", "order_qty", "order_notional"]
    assert result.qty_raw.tolist() == [500, -300]


def test_qty_clip_to_whole_lots_keeps_side() -> None:
    result = evaluate_orders(
        batch([1_000, -1_000, 50], [1000, 1000, 50], [1, 1, 1], [1, 1, 1], lot=[100, 100, 1]),
        policy(qty=(250, CLIP)),
    )
    assert result.qty_raw.tolist() == [200, -200, 50]
    assert result.notional_minor.tolist() == [200, 200, 50]
    v = result.verdicts[1]
    assert (v.action, v.observed, v.observed_after, v.instrument_ids) == ("clip", 1000, 200, [1, 2])


def test_qty_reject_zeroes_the_order() -> None:
    result = evaluate_orders(batch([300, 100], [3, 1], [1, 1], [1, 1]), policy(qty=(200, REJECT)))
    assert result.qty_raw.tolist() == [0, 100]
    assert result.notional_minor.tolist() == [0, 1]


def test_notional_clip_exact_and_rounded_to_lots() -> None:
    # 1,000 shares for 12,345,678 minor; cap 5,000,000 -> floor(1000*5e6/12345678)=405 -> 400 (lot 100)
    result = evaluate_orders(
        batch([-1_000], [12_345_678], [12_346], [12_346], lot=[100]), policy(notional=(5_000_000, CLIP))
    )
    assert result.qty_raw.tolist() == [-400]
    assert result.notional_minor.tolist() == [4_938_272]  # ceil(12,345,678 x 0.4)
    assert result.verdicts[2].observed_after <= 5_000_000


def test_price_band_reject_and_clip() -> None:
    orders = batch([10, 10, 10, 10], [1000] * 4, [106, 105, 94, 200], [100, 100, 100, 0])
    rejected = evaluate_orders(orders, policy(band=(5_000_000, REJECT)))
    assert rejected.qty_raw.tolist() == [0, 10, 0, 10]  # 5% inclusive; no last price: not checked
    assert rejected.verdicts[0].observed == 6_000_000
    assert rejected.verdicts[0].instrument_ids == [1, 3]
    clipped = evaluate_orders(orders, policy(band=(5_000_000, CLIP)))
    assert clipped.px_raw.tolist() == [105, 105, 95, 200]
    assert clipped.notional_minor.tolist() == [991, 1000, 1011, 1000]  # rescaled, rounded up
    assert clipped.verdicts[0].observed_after == 5_000_000


def test_band_allowance_does_not_overflow_for_large_prices() -> None:
    last = 10**15  # e.g. BTC at 8 price digits
    orders = batch([1, 1], [1, 1], [last + last // 20, last + last // 20 + 1], [last, last])
    result = evaluate_orders(orders, policy(band=(5_000_000, REJECT)))
    assert result.qty_raw.tolist() == [1, 0]


def test_band_runs_before_size_rules() -> None:
    orders = batch([1_000], [1_000_000], [200], [100])
    result = evaluate_orders(orders, policy(band=(1_000_000, REJECT), notional=(10, CLIP)))
    assert result.verdicts[0].action == "reject"
    assert result.verdicts[2].action == "pass"  # nothing left to clip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1], [1], [-1], [1], [1], [1]), "notional_minor"),
        (([1], [1], [1], [1], [1], [0]), "lot_raw"),
        (([1], [1], [1], [0], [1], [1]), "px_raw"),
        (([1, 2], [1], [1], [1], [1], [1]), "qty_raw"),
    ],
)
def test_make_orders_validates(args: tuple[list[int], ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_orders(*args)
