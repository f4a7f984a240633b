"""The kernel's greek stage (``kernel.options.GreekGuard``) over random books and orders: an order
only shrinks or is dropped (same side, whole lots, never larger), other orders pass untouched,
and the post-trade option book holds every enabled greek limit unless the decision could not
get there with its own orders -- then it is reduce-only and a ``greek_held`` verdict says the
book is over its limit. Reruns are identical."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.instruments import Instrument
from domain.ledger import Position
from domain.markets import OPTION_MULTIPLIER_US_EQUITY, day_to_date
from domain.riskrules import GREEK_RULE_ORDER, GreekLimit, GreekLimits, RiskPolicy, RuleAction
from domain.riskrules.greeks import greek_measures, make_greek_book
from kernel.options import DAYS_PER_YEAR, OptionModel, greek_guard
from kernel.pipeline import OrderIntent


def _equity(iid: int, symbol: str) -> Instrument:
    return Instrument(
        instrument_id=iid, symbol=symbol, venue="XNAS", asset_class="equity", currency="USD",
        price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1,
    )  # fmt: skip


def _option(iid: int, underlying: str, strike: int, right: str, expiry: int) -> Instrument:
    return Instrument(
        instrument_id=iid, symbol=f"{underlying}{expiry}{right[0]}{strike}", venue="XNAS",
        asset_class="option", currency="USD", price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1,
        multiplier=OPTION_MULTIPLIER_US_EQUITY, underlying=underlying, strike_raw=strike * 100,
        expiry_day=expiry, right=right,
    )  # fmt: skip


UNIVERSE = [
    _equity(1, "AAA"),
    _equity(2, "BBB"),
    _option(3, "AAA", 100, "call", 20260320),
    _option(4, "AAA", 100, "put", 20260320),
    _option(5, "AAA", 110, "call", 20260417),
    _option(6, "BBB", 50, "call", 20260320),
    _option(7, "BBB", 45, "put", 20260417),
]
OPTIONS = [inst for inst in UNIVERSE if inst.is_option]
MODEL = OptionModel(rate_e8=3_000_000, default_vol_e8=25_000_000, vols_e8={"BBB": 40_000_000})
DAY = 20260302
PRICES = {1: 102_00, 2: 48_50, 3: 5_10, 4: 3_20, 5: 1_80, 6: 2_00, 7: 1_10}

limits = st.builds(
    GreekLimit,
    limit=st.sampled_from([0, 0, 200_000, 2_000_000, 20_000_000, 200_000_000]),
    action=st.sampled_from(list(RuleAction)),
)
policies = st.builds(RiskPolicy, greeks=st.builds(GreekLimits, **dict.fromkeys(GREEK_RULE_ORDER, limits)))
quantities = st.integers(-400, 400)
held_quantities = st.integers(-20, 20)  # a held book mostly near the limits, orders larger


def _book_measures(qty: dict[int, int]) -> dict[str, float]:
    ids = sorted(iid for iid in qty if qty[iid])
    if not ids:
        return dict.fromkeys(GREEK_RULE_ORDER, 0.0)
    options = [inst for inst in OPTIONS if inst.instrument_id in ids]
    values = np.array([qty[inst.instrument_id] for inst in options], dtype=np.int64)
    t_years = [(day_to_date(inst.expiry_day) - day_to_date(DAY)).days / DAYS_PER_YEAR for inst in options]
    book = make_greek_book(
        options, values, values,
        underlying_px={"AAA": 102.0, "BBB": 48.5},
        vol=[0.4 if inst.underlying == "BBB" else 0.25 for inst in options],
        rate=0.03, t_years=np.array(t_years),
    )  # fmt: skip
    return greek_measures(book, values)


@settings(max_examples=150, deadline=None)
@given(
    policy=policies,
    held=st.lists(held_quantities, min_size=7, max_size=7),
    orders=st.lists(quantities, min_size=7, max_size=7),
)
def test_orders_only_shrink_and_the_book_holds_the_limits(
    policy: RiskPolicy, held: list[int], orders: list[int]
) -> None:
    guard = greek_guard(policy, MODEL, UNIVERSE, DAY)
    enabled = {rule: getattr(policy.greeks, rule).limit for rule in GREEK_RULE_ORDER}
    enabled = {rule: limit for rule, limit in enabled.items() if limit}
    if not enabled:
        assert guard is None
        return
    assert guard is not None
    positions = {inst.instrument_id: Position(q) for inst, q in zip(UNIVERSE, held, strict=True) if q}
    intents = sorted(
        (OrderIntent(inst.instrument_id, 1 if q > 0 else -1, abs(q), PRICES[inst.instrument_id])
         for inst, q in zip(UNIVERSE, orders, strict=True) if q),
        key=lambda i: (i.side, i.instrument_id),
    )  # fmt: skip
    kept, verdicts = guard.apply(DAY, intents, positions, PRICES)
    again = guard.apply(DAY, intents, positions, PRICES)
    assert (kept, verdicts) == again
    assert [v.rule for v in verdicts if v.rule != "greek_held"] == [f"greek_{r}" for r in enabled]
    original = {i.instrument_id: i for i in intents}
    for intent in kept:
        source = original[intent.instrument_id]
        assert intent.side == source.side and 0 < intent.qty_raw <= source.qty_raw
        if intent.instrument_id in (1, 2):
            assert intent == source
    assert {i.instrument_id for i in intents if i.instrument_id in (1, 2)} <= {i.instrument_id for i in kept}
    before = {iid: p.qty_raw for iid, p in positions.items() if iid > 2}
    after = dict(before)
    for intent in kept:
        if intent.instrument_id > 2:
            after[intent.instrument_id] = after.get(intent.instrument_id, 0) + intent.side * intent.qty_raw
    measures = _book_measures(after)
    held_verdict = [v for v in verdicts if v.rule == "greek_held"]
    if all(measures[rule] <= limit * (1 + 1e-9) for rule, limit in enabled.items()):
        assert not held_verdict or held_verdict[0].detail.endswith("within its limit")
        return
    assert held_verdict and held_verdict[0].detail.endswith("over its limit"), verdicts
    for iid, qty in after.items():  # reduce-only: nothing grows, nothing crosses zero
        now = before.get(iid, 0)
        assert abs(qty) <= abs(now) and qty * now >= 0
