"""Options in the loop: the greek limits of the risk policy (``[risk.greeks.*]``) applied to a
decision's sized orders, priced with the run's ``[option_model]``.

Where: after ``plan_orders`` (weights -> whole-lot quantities) and before the order rules, so
a decision's verdicts are journaled in the order priced -> vol target -> kill switch ->
portfolio rules -> greek rules (``GREEK_RULE_ORDER``, enabled rules only) -> order rules.

What: the post-trade option book (each held option's quantity plus this decision's order) goes
through ``domain.riskrules.evaluate_greeks``; the quantities it lets through become the orders.
An order only shrinks or is dropped, never grows nor changes side: when a rule would cut an
option below its current position (a held position the decision does not trade, or beyond the
order's start), the option stays at its current position and a ``greek_held`` verdict names
those options with the worst remaining measure (the kernel sends no order it was not asked for).

Model inputs (``OptionModel``): Black-Scholes-Merton on the underlying's last close in the panel
at the decision step (the underlying must be an instrument of the data set), a volatility per
underlying symbol (or the default), one annual rate and a dividend yield per underlying (or
none). Time to expiry counts calendar days from the decision's session day to ``expiry_day``,
ACT/365, and is 0 on and after the expiry day (greeks at intrinsic: delta the step, gamma and
vega 0).

Expiry (``ExpirySettlement``, on when a run has an ``[option_model]`` with ``settle_expiries``,
the default): at the close of the option's expiry session (the first session on or after
``expiry_day`` in the data), after that step's decision and before the day's mark, every held
position in it is cash-settled at intrinsic value on the underlying's close (European-style cash
settlement; no early exercise, no delivery of shares, no exercise fee): its open orders are
cancelled ("option expired"), an ``OptionExpired`` event carries the numbers, and an
``expiry``-strategy order (submitted, accepted, filled at the settlement price) closes the
position, so the ledger books it like any fill (cash vs inventory, realised PnL). Out-of-the-money
options settle at 0. Without an ``[option_model]`` nothing is settled: a position held past the
option's last bar keeps its last close as its mark.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt

from domain.events import OptionExpired
from domain.fixed import RATE_SCALE, Rounding, div_round
from domain.instruments import Instrument, notional_minor
from domain.ledger import Position
from domain.market import Panel
from domain.markets import day_to_date
from domain.riskrules import RiskPolicy, RuleVerdict
from domain.riskrules.greeks import (
    GREEK_RULE_ORDER,
    GreekBook,
    evaluate_greeks,
    greek_measures,
    make_greek_book,
)
from kernel.desk import OrderDesk
from kernel.pipeline import OrderIntent

__all__ = [
    "DAYS_PER_YEAR",
    "EXPIRY_STRATEGY",
    "ExpirySettlement",
    "GreekGuard",
    "OptionModel",
    "expiry_settlement",
    "greek_guard",
]

IntArray = npt.NDArray[np.int64]
DAYS_PER_YEAR = 365  # ACT/365: calendar days to expiry / 365
_SCALE_ONE = 1 << 20  # resolution of the opening orders' common factor
EXPIRY_STRATEGY = "expiry"
"""The strategy id of the orders that close expiring option positions."""


class OptionModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[option_model]`` in the backtest TOML: the inputs that price option greeks.

    Annual decimals as 1e-8 integers: ``rate_e8`` (continuously compounded risk-free rate),
    ``default_vol_e8`` and ``vols_e8`` (by underlying symbol; overrides the default),
    ``dividend_yields_e8`` (by underlying symbol; 0 when absent)."""

    rate_e8: int = 0
    default_vol_e8: int = 0
    vols_e8: dict[str, int] = {}
    dividend_yields_e8: dict[str, int] = {}
    settle_expiries: bool = True  # cash-settle held options at intrinsic value on their expiry

    def __post_init__(self) -> None:
        if not -RATE_SCALE <= self.rate_e8 <= RATE_SCALE:
            raise ValueError(f"option_model.rate_e8: {self.rate_e8}e-8 is outside [-1x, 1x]")
        for name, vol in [("default_vol_e8", self.default_vol_e8), *self.vols_e8.items()]:
            if not 0 <= vol <= 10 * RATE_SCALE:
                raise ValueError(f"option_model.vols_e8 {name}: volatility {vol}e-8 is outside [0, 10x]")
        for name, q in self.dividend_yields_e8.items():
            if not -RATE_SCALE <= q <= RATE_SCALE:
                raise ValueError(f"option_model.dividend_yields_e8 {name}: {q}e-8 is outside [-1x, 1x]")

    def vol_e8(self, underlying: str) -> int:
        return self.vols_e8.get(underlying, self.default_vol_e8)


def _enabled(policy: RiskPolicy) -> bool:
    return any(getattr(policy.greeks, rule).limit for rule in GREEK_RULE_ORDER)


def greek_guard(
    policy: RiskPolicy,
    model: OptionModel | None,
    instruments: Sequence[Instrument],
    first_day: int,
) -> GreekGuard | None:
    """The guard a run needs, or None (no enabled greek limit, or no options in the universe).

    Raises ``ValueError`` naming the problem when the limits cannot be priced: no
    ``[option_model]``, an underlying missing from the data set or without a volatility, or an
    option that expired before the data's first session."""
    options = [inst for inst in instruments if inst.is_option]
    if model is not None:
        _check_options(model, options, instruments, first_day)
    if not options or not _enabled(policy):
        return None
    if model is None:
        raise ValueError(
            "risk.greeks: greek limits are enabled and the universe has options, but the run has no "
            "[option_model] table (volatility and rate to price the greeks)"
        )
    for inst in options:
        if model.vol_e8(inst.underlying) <= 0:
            raise ValueError(
                f"{inst.symbol}: option_model has no volatility for {inst.underlying!r} "
                "(set vols_e8 or default_vol_e8)"
            )
    return GreekGuard(policy, model, instruments)


def _underlyings(instruments: Sequence[Instrument]) -> dict[str, int]:
    by_symbol: dict[str, list[int]] = {}
    for inst in instruments:
        if not inst.is_option:
            by_symbol.setdefault(inst.symbol, []).append(inst.instrument_id)
    return {symbol: ids[0] for symbol, ids in by_symbol.items() if len(ids) == 1}


def _check_options(
    model: OptionModel, options: list[Instrument], instruments: Sequence[Instrument], first_day: int
) -> None:
    underlyings = _underlyings(instruments)
    symbols = {inst.symbol for inst in instruments if not inst.is_option}
    for inst in options:
        if inst.underlying not in underlyings:
            problem = "is listed more than once" if inst.underlying in symbols else "is not in the data set"
            raise ValueError(f"{inst.symbol}: underlying {inst.underlying!r} {problem} (option_model)")
        if inst.expiry_day < first_day:
            raise ValueError(
                f"{inst.symbol}: expired on {inst.expiry_day}, before the data's first session {first_day}"
            )


class GreekGuard:
    """The enabled greek limits over one run's options."""

    def __init__(self, policy: RiskPolicy, model: OptionModel, instruments: Sequence[Instrument]) -> None:
        self.policy = policy
        self._model = model
        self._instruments = {inst.instrument_id: inst for inst in instruments}
        self._options = frozenset(inst.instrument_id for inst in instruments if inst.is_option)
        underlying_ids = _underlyings(instruments)
        self._underlying = {
            iid: underlying_ids[self._instruments[iid].underlying] for iid in sorted(self._options)
        }

    def apply(
        self,
        day: int,
        intents: list[OrderIntent],
        positions: dict[int, Position],
        prices: dict[int, int],
    ) -> tuple[list[OrderIntent], list[RuleVerdict]]:
        """The decision's orders after the greek limits, and the enabled rules' verdicts.

        ``prices`` are the last closes at the decision step (raw), by instrument id."""
        ids = sorted(
            {i.instrument_id for i in intents if i.instrument_id in self._options}
            | {iid for iid in positions if iid in self._options}
        )
        current = np.array([positions[iid].qty_raw if iid in positions else 0 for iid in ids], dtype=np.int64)
        order = {i.instrument_id: i.side * i.qty_raw for i in intents if i.instrument_id in self._options}
        target = current + np.array([order.get(iid, 0) for iid in ids], dtype=np.int64)
        book = self._book(day, ids, target, current, prices)
        result = evaluate_greeks(book, self.policy)
        verdicts = [v for v in result.verdicts if v.detail != "disabled"]
        final = np.clip(result.qty_raw, np.minimum(current, target), np.maximum(current, target))
        if not np.array_equal(final, result.qty_raw):
            clamped = final
            if not self._hold(book, final):
                final = self._opening_scaled(book, current, final)
            scaled = not np.array_equal(final, clamped)
            verdicts.append(self._held_verdict(book, ids, final, result.qty_raw, scaled))
        allowed = dict(zip(ids, (final - current).tolist(), strict=True))
        kept = []
        for intent in intents:
            if intent.instrument_id not in self._options:
                kept.append(intent)
                continue
            qty = abs(allowed[intent.instrument_id])
            if qty:
                kept.append(OrderIntent(intent.instrument_id, intent.side, qty, intent.decision_px_raw))
        return kept, verdicts

    def _book(
        self, day: int, ids: list[int], target: IntArray, current: IntArray, prices: dict[int, int]
    ) -> GreekBook:
        options = [self._instruments[iid] for iid in ids]
        spot: dict[str, float] = {}
        for iid, inst in zip(ids, options, strict=True):
            underlying = self._instruments[self._underlying[iid]]
            px = prices[underlying.instrument_id]
            if px <= 0:
                raise ValueError(f"{inst.symbol}: underlying {underlying.symbol} has no price yet on {day}")
            spot[inst.underlying] = px / 10**underlying.price_digits
        today = day_to_date(day)
        t_years = [max(0, (day_to_date(inst.expiry_day) - today).days) / DAYS_PER_YEAR for inst in options]
        model = self._model
        return make_greek_book(
            options,
            target,
            current,
            underlying_px=spot,
            vol=np.array([model.vol_e8(inst.underlying) / RATE_SCALE for inst in options], dtype=np.float64),
            rate=np.full(len(options), model.rate_e8 / RATE_SCALE, dtype=np.float64),
            t_years=np.array(t_years, dtype=np.float64),
            dividend_yield=np.array(
                [model.dividend_yields_e8.get(inst.underlying, 0) / RATE_SCALE for inst in options],
                dtype=np.float64,
            ),
        )

    def _hold(self, book: GreekBook, qty: IntArray) -> bool:
        measures = greek_measures(book, qty)
        return all(
            measures[rule] <= getattr(self.policy.greeks, rule).limit
            for rule in GREEK_RULE_ORDER
            if getattr(self.policy.greeks, rule).limit
        )

    def _opening_scaled(self, book: GreekBook, current: IntArray, wanted: IntArray) -> IntArray:
        """Orders kept inside their own range breach a limit (a reduction the rules wanted was
        not ordered): closing parts stay whole, opening parts shrink by the largest common factor
        (whole lots, toward the current position) that holds every enabled rule; factor 0 is
        reduce-only, taken even when it does not hold (the ``greek_held`` verdict says so)."""
        lots = book.lot_raw
        same = (np.sign(wanted) == np.sign(current)) & (current != 0)
        reduce = same & (np.abs(wanted) <= np.abs(current))
        grow = same & ~reduce
        base = np.where(grow, current, 0)  # what stays whatever the factor
        opening = np.where(grow, np.abs(wanted - current), np.abs(wanted))
        sign = np.sign(wanted)

        def scaled(factor: int) -> IntArray:
            part = opening * factor // _SCALE_ONE // lots * lots
            return np.where(reduce, wanted, base + sign * part)

        low, high = 0, _SCALE_ONE  # ``high`` (the orders as clamped) does not hold
        if not self._hold(book, scaled(low)):
            return scaled(low)
        while high - low > 1:
            middle = (low + high) // 2
            if self._hold(book, scaled(middle)):
                low = middle
            else:
                high = middle
        return scaled(low)

    def _held_verdict(
        self, book: GreekBook, ids: list[int], final: IntArray, wanted: IntArray, scaled: bool
    ) -> RuleVerdict:
        """Orders only shrink: the options left away from the rules' quantities (held at their
        current position, or opening orders cut further: ``scaled``, action ``clip``)."""
        held = [iid for iid, a, b in zip(ids, final.tolist(), wanted.tolist(), strict=True) if a != b]
        measures = greek_measures(book, final)
        worst_rule, worst_ratio, worst_limit, worst_value = "", -1.0, 0, 0.0
        for rule in GREEK_RULE_ORDER:
            limit = getattr(self.policy.greeks, rule).limit
            if limit and measures[rule] / limit > worst_ratio:
                worst_rule, worst_ratio = rule, measures[rule] / limit
                worst_limit, worst_value = limit, measures[rule]
        state = "over" if worst_value > worst_limit else "within"
        return RuleVerdict(
            rule="greek_held",
            action="clip" if scaled else "pass",
            unit="minor",
            limit=worst_limit,
            observed=round(worst_value),
            observed_after=round(worst_value),
            instrument_ids=held,
            detail=(
                f"orders only shrink: {len(held)} options away from the rules' quantities"
                f"{'; opening orders scaled' if scaled else ''}; greek_{worst_rule} {state} its limit"
            ),
        )


def expiry_settlement(
    desk: OrderDesk, model: OptionModel | None, panel: Panel, day_end: npt.NDArray[np.bool_]
) -> ExpirySettlement | None:
    """The run's expiry settlement, or None (no ``[option_model]``, turned off, or no options)."""
    if model is None or not model.settle_expiries or not any(i.is_option for i in panel.instruments):
        return None
    return ExpirySettlement(desk, panel, day_end)


class ExpirySettlement:
    """Cash settlement of held options at their expiry session's close (module docstring)."""

    def __init__(self, desk: OrderDesk, panel: Panel, day_end: npt.NDArray[np.bool_]) -> None:
        self._desk = desk
        self._panel = panel
        underlyings = _underlyings(panel.instruments)
        columns = {inst.instrument_id: col for col, inst in enumerate(panel.instruments)}
        closes = np.flatnonzero(day_end)
        close_days = panel.day[closes]
        self._due: dict[int, list[tuple[Instrument, Instrument, int]]] = {}
        for inst in panel.instruments:
            if not inst.is_option:
                continue
            index = int(np.searchsorted(close_days, inst.expiry_day, side="left"))
            if index == len(closes):
                continue  # the data ends before the expiry
            underlying = panel.instruments[columns[underlyings[inst.underlying]]]
            entry = (inst, underlying, columns[underlying.instrument_id])
            self._due.setdefault(int(closes[index]), []).append(entry)

    def settle(self, step: int) -> None:
        """Settle the options held whose expiry session closes at ``step``."""
        for inst, underlying, column in self._due.get(step, ()):
            if inst.instrument_id in self._desk.state.positions:
                self._settle_one(step, inst, underlying, int(self._panel.last_close[step, column]))

    def _settle_one(self, step: int, inst: Instrument, underlying: Instrument, spot_raw: int) -> None:
        desk = self._desk
        state = desk.state
        iid = inst.instrument_id
        ts_ns = int(self._panel.ts_ns[step])
        day = int(self._panel.day[step])
        if spot_raw <= 0:
            raise ValueError(f"{inst.symbol}: underlying {underlying.symbol} has no price at expiry {day}")
        session = desk.session_of_order(step)
        for order_id, order in sorted(state.open_orders.items()):
            if order.instrument_id == iid:
                desk.cancel(order_id, ts_ns, session, f"option expired on {day}")
        spot = div_round(
            spot_raw * 10**inst.price_digits, 10**underlying.price_digits, Rounding.HALF_EVEN
        )  # the underlying's close at the option's price digits
        moneyness = spot - inst.strike_raw if inst.right == "call" else inst.strike_raw - spot
        settle_px = max(0, moneyness)
        qty = state.positions[iid].qty_raw
        notional = notional_minor(inst, abs(qty), settle_px, Rounding.HALF_EVEN)
        desk.journal(
            OptionExpired(
                ts_ns=ts_ns,
                step=step,
                instrument_id=iid,
                expiry_day=inst.expiry_day,
                day=day,
                qty_raw=qty,
                strike_raw=inst.strike_raw,
                underlying_px_raw=spot_raw,
                settle_px_raw=settle_px,
                value_minor=notional if qty > 0 else -notional,
                currency=inst.currency,
            )
        )
        desk.close_at(ts_ns, day, EXPIRY_STRATEGY, iid, qty, settle_px, notional)
