"""A cash account's buying power (``kernel.account.BuyingPower``) with the numbers worked by hand:
working buys reserve what they may still cost, the commission's minimum and the market's fees
count, a buy that does not fit is cut to whole lots or refused, each with its verdict.
CONSTRUCTED amounts (an A-share in CNY, 100-share lots, 0.03% commission with a 5 CNY minimum,
a 0.00487% handling fee rounded up to the fen)."""

from __future__ import annotations

from domain.events import OrderFilled
from domain.instruments import Instrument
from domain.orders import Order, OrderStatus
from kernel.account import AccountConfig, BuyingPower
from kernel.pipeline import OrderIntent

A = Instrument(instrument_id=1, symbol="600000", venue="XSHG", asset_class="equity", currency="CNY",
               price_digits=2, tick_raw=1, qty_digits=0, lot_raw=100, board="main")  # fmt: skip
DAY = 20240102


def commission(inst: Instrument, notional: int, qty: int) -> int:
    return max(-(-notional * 3 // 10_000), 500)  # 0.03%, at least 5.00 CNY


def fees(day: int, fill: OrderFilled) -> int:
    return -(-fill.notional_minor * 4_870 // 100_000_000)  # 0.00487%, up to the fen


def _account() -> BuyingPower:
    return BuyingPower(AccountConfig(type="cash"), {1: A}, commission, fees)


def _working(qty: int, px: int) -> dict[str, Order]:
    order = Order(order_id="w", strategy_id="s", instrument_id=1, side=1, order_type="limit", qty_raw=qty,
                  limit_px_raw=px, status=OrderStatus.ACCEPTED)  # fmt: skip
    return {"w": order}


def test_a_working_buy_reserves_its_cost_and_a_new_buy_is_cut_to_the_lots_left() -> None:
    account = _account()
    # 3,000 at 10.00 working: 30,000.00 + commission 9.00 + handling 1.47 (1.461 up) = 30,010.47
    assert account.reserved(DAY, _working(3_000, 1_000)) == {"CNY": (3_001_047, 1)}
    intent = OrderIntent(instrument_id=1, side=1, qty_raw=7_000, decision_px_raw=1_000)
    kept, prices, verdicts = account.check(
        DAY, [intent], {1: 1_000}, {"CNY": 10_000_000}, {}, _working(3_000, 1_000)
    )
    # free = 100,000.00 - 30,010.47 = 69,989.53; 7,000 costs 70,000 + 21.00 + 3.41 = 70,024.41;
    # 6,900 costs 69,000 + 20.70 + 3.37 = 69,024.07: the most whole lots that fit.
    assert [(k.qty_raw, prices[1]) for k in kept] == [(6_900, 1_000)]
    [verdict] = verdicts
    assert (verdict.rule, verdict.action) == ("buying_power", "clip")
    assert (verdict.limit, verdict.observed, verdict.observed_after) == (6_998_953, 7_002_441, 6_902_407)
    assert "(3001047 reserved for 1 working buys); 6900 of 7000 fit" in verdict.detail


def test_the_minimum_commission_can_refuse_a_buy_the_notional_alone_would_pass() -> None:
    intent = OrderIntent(instrument_id=1, side=1, qty_raw=100, decision_px_raw=1_000)
    # 100 at 10.00 = 1,000.00; the 0.30 commission is raised to the 5.00 minimum; handling 0.05.
    kept, _, verdicts = _account().check(DAY, [intent], {1: 1_000}, {"CNY": 100_504}, {}, {})
    assert kept == []
    [verdict] = verdicts
    assert (verdict.action, verdict.limit, verdict.observed, verdict.observed_after) == (
        "reject",
        100_504,
        100_505,
        0,
    )
    kept, _, verdicts = _account().check(DAY, [intent], {1: 1_000}, {"CNY": 100_505}, {}, {})
    assert [k.qty_raw for k in kept] == [100] and verdicts == []


def test_an_unpriced_buy_is_collared_and_two_buys_share_the_free_cash() -> None:
    """Without a limit price, a buy is sent at the decision price + 2% (10.20): its bound. Two
    buys in one decision: the first takes its cost out of the free cash the second sees."""
    first = OrderIntent(instrument_id=1, side=1, qty_raw=5_000, decision_px_raw=1_000)
    second = OrderIntent(instrument_id=1, side=1, qty_raw=5_000, decision_px_raw=1_000)
    kept, prices, verdicts = _account().check(DAY, [first, second], {}, {"CNY": 10_000_000}, {}, {})
    assert prices == {1: 1_020}
    # 5,000 at 10.20 = 51,000 + 15.30 + 2.49 = 51,017.79; 48,982.21 left buys 4,800 (48,977.08).
    assert [k.qty_raw for k in kept] == [5_000, 4_800]
    assert [v.action for v in verdicts] == ["clip"]
