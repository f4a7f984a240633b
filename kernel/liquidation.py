"""Perpetual liquidation: the kernel force-closes perpetual positions when margin runs out.

Model (cross margin over the perpetuals' settlement currency; ``docs/markets.md``):

* the account is that currency's wallet: its cash and the positions that settle in it. In a book
  of several currencies (``kernel.currencies``) the other currencies' cash and positions are
  other accounts, as a venue's USDⓈ-M wallet holds only its USDT; perpetuals settling in two
  currencies (two wallets) are refused. In a book of one currency that is every position;
* margin balance = cash + every position's value, perpetuals at the bar's **adverse extreme**
  (the low for a long, the high for a short; a step without a bar keeps the last close) and
  other positions at the last close -- position values round toward -inf (``Rounding.FLOOR``):
  the check never counts a fraction of a unit in the account's favour;
* maintenance margin = the sum over perpetual positions of ``notional x MMR(bracket) - amount``
  (``domain.markets.maintenance_margin_minor``, rounded up), notional at the same marks;
* liquidation when margin balance <= maintenance margin (``is_liquidatable``). Then, at that
  step: every open order on the perpetuals held is cancelled, and each perpetual position is
  closed at its adverse extreme (the price that triggered the check: a bar has no path, so the
  close takes the worst price it traded, never a better one). Each close is journaled as a
  ``PositionLiquidated`` event (marks, margin balance, maintenance margin, fee, reason
  ``PERP_LIQUIDATION: ...``) followed by a venue market order -- ``OrderSubmitted`` /
  ``OrderAccepted`` / ``OrderFilled`` with strategy id ``liquidation`` -- so that positions,
  fills and the ledger stay one story for every projection; a liquidation fee
  (``liquidation_fee_e8`` of the closing notional, rounded half up) is a separate posting to
  ``expenses:liquidation_fee``, capped at what is left of the margin balance after the close
  (a clearance fee taken from the remaining margin). No insurance fund or auto-deleveraging is
  modelled: a bar that gaps past the bankruptcy price leaves that loss with the account.

The kernel visits only steps where something can happen, so the next breach is found
vectorised: between two such steps the positions and cash are constant, the margin balance and
maintenance margin are evaluated for the whole window in float64, and only candidate steps (within
a tolerance far above float error) are confirmed with exact integers. The first exact breach is
the liquidation step; nothing is skipped and no step costs a Python iteration.

Disabled by default (``PerpMargin()`` has no tiers): a run without it journals exactly what it did
before.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import msgspec
import numpy as np
import numpy.typing as npt

from domain.events import (
    PositionLiquidated,
    PostingRecord,
)
from domain.fixed import RATE_SCALE, Rounding, apply_rate, minor_digits
from domain.instruments import Instrument, notional_minor
from domain.ledger import Position, assert_balanced, cash_account
from domain.market import Panel
from domain.markets import MarginBracket, check_liquidation, is_liquidatable, maintenance_margin_minor
from kernel.desk import OrderDesk
from kernel.margin import checked_money_minor

__all__ = ["LIQUIDATION_STRATEGY_ID", "PERP_ASSET_CLASSES", "Liquidation", "MarginTier", "PerpMargin"]

PERP_ASSET_CLASSES = frozenset({"crypto_perp"})
LIQUIDATION_STRATEGY_ID = "liquidation"

FloatArray = npt.NDArray[np.float64]


class MarginTier(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One maintenance-margin bracket: notionals up to ``notional_max`` (decimal text in the
    settlement currency, "" = no upper bound: the last tier) pay ``mmr_e8`` minus
    ``maintenance_amount`` (decimal text)."""

    mmr_e8: int
    notional_max: str = ""
    maintenance_amount: str = "0"


class PerpMargin(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Maintenance margin of perpetuals: ``tiers`` for every perpetual, ``by_symbol`` overrides.

    No tiers anywhere = liquidation off (the default)."""

    tiers: list[MarginTier] = []
    by_symbol: dict[str, list[MarginTier]] = {}
    liquidation_fee_e8: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.tiers or self.by_symbol)


def _money(text: str, currency: str, what: str) -> int:
    """Decimal text -> minor units, exactly (more digits than the currency has is an error)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{what}: {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise ValueError(f"{what}: {text!r} is not a decimal number")
    scaled = value.scaleb(minor_digits(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{what}: {text!r} is not a whole number of {currency} minor units")
    return checked_money_minor(int(scaled), text, currency, what)


def brackets_of(tiers: list[MarginTier], currency: str, what: str) -> tuple[MarginBracket, ...]:
    """Validated brackets in minor units: increasing maxima, the last one open-ended."""
    if not tiers:
        raise ValueError(f"{what}: no margin tiers")
    brackets = []
    previous = -1
    for index, tier in enumerate(tiers):
        name = f"{what}[{index}]"
        if not 0 < tier.mmr_e8 < RATE_SCALE:
            raise ValueError(f"{name}.mmr_e8: {tier.mmr_e8} is outside (0, {RATE_SCALE})")
        amount = _money(tier.maintenance_amount, currency, f"{name}.maintenance_amount")
        if amount < 0:
            raise ValueError(f"{name}.maintenance_amount must be >= 0")
        last = index == len(tiers) - 1
        if tier.notional_max == "":
            if not last:
                raise ValueError(f"{name}.notional_max: only the last tier may be open-ended")
            brackets.append(MarginBracket(None, tier.mmr_e8, amount))
            continue
        if last:
            raise ValueError(f'{name}.notional_max: the last tier must be open-ended ("")')
        maximum = _money(tier.notional_max, currency, f"{name}.notional_max")
        if maximum <= previous:
            raise ValueError(f"{name}.notional_max: tiers must increase")
        previous = maximum
        brackets.append(MarginBracket(maximum, tier.mmr_e8, amount))
    return tuple(brackets)


def is_perpetual(instrument: Instrument) -> bool:
    return instrument.asset_class in PERP_ASSET_CLASSES


def perp_brackets(
    margin: PerpMargin, instruments: dict[int, Instrument]
) -> dict[int, tuple[MarginBracket, ...]]:
    """Each perpetual's validated brackets, by instrument id; ``ValueError`` naming the setting
    when the margin cannot apply to these instruments (a fee outside [0, 1), a ``by_symbol`` key
    that is no perpetual of the run, a perpetual without tiers, a bad tier, two settlement
    currencies). ``sim.backtest.build_setup`` calls it before a journal is opened, so such a
    configuration is refused as one (exit 2) rather than failing in the kernel."""
    if not 0 <= margin.liquidation_fee_e8 < RATE_SCALE:
        raise ValueError(
            f"perp_margin.liquidation_fee_e8: {margin.liquidation_fee_e8} is outside [0, {RATE_SCALE})"
        )
    symbols = {inst.symbol for inst in instruments.values() if is_perpetual(inst)}
    unknown = sorted(set(margin.by_symbol) - symbols)
    if unknown:
        raise ValueError(f"perp_margin.by_symbol: {unknown} are not perpetuals of this run")
    brackets: dict[int, tuple[MarginBracket, ...]] = {}
    for iid, inst in sorted(instruments.items()):
        if not is_perpetual(inst):
            continue
        tiers = margin.by_symbol.get(inst.symbol, margin.tiers)
        if not tiers:
            raise ValueError(f"{inst.symbol}: a perpetual without margin tiers (set perp_margin.tiers)")
        brackets[iid] = brackets_of(tiers, inst.currency, f"perp_margin[{inst.symbol}]")
    wallets = sorted({instruments[iid].currency for iid in brackets})
    if len(wallets) > 1:
        raise ValueError(
            f"perp_margin: perpetuals settle in {', '.join(wallets)}: one cross-margin wallet per "
            "currency is not built (liquidation margins one settlement currency)"
        )
    return brackets


class Liquidation:
    """The kernel's liquidation stage; stateless beyond the kernel's own state."""

    def __init__(
        self,
        desk: OrderDesk,
        panel: Panel,
        columns: dict[int, int],
        instruments: dict[int, Instrument],
        margin: PerpMargin,
    ) -> None:
        self._desk = desk
        self._panel = panel
        self._columns = columns
        self._instruments = instruments
        self._fee_e8 = margin.liquidation_fee_e8
        self._brackets = perp_brackets(margin, instruments)
        wallets = sorted({instruments[iid].currency for iid in self._brackets})
        # The wallet: the perpetuals' settlement currency (the run's, without perpetuals).
        self._wallet = wallets[0] if wallets else desk.state.currency
        self._in_wallet = frozenset(iid for iid, inst in instruments.items() if inst.currency == self._wallet)

    # --- exact check at one step ----------------------------------------------------------

    def _marks(self, step: int) -> dict[int, int]:
        panel = self._panel
        column = self._columns
        marks = {}
        for iid, position in sorted(self._desk.state.positions.items()):
            col = column[iid]
            mark = int(panel.last_close[step, col])
            if iid in self._brackets and panel.valid[step, col]:
                mark = int(panel.low[step, col] if position.qty_raw > 0 else panel.high[step, col])
            marks[iid] = mark
        return marks

    def _margin(self, step: int) -> tuple[int, int, dict[int, int]]:
        """(margin balance, maintenance margin, marks) of the account at ``step``."""
        state = self._desk.state
        marks = self._marks(step)
        balance = state.balances.get(cash_account(self._wallet), 0)
        maintenance = 0
        for iid, position in sorted(state.positions.items()):
            if iid not in self._in_wallet:
                continue
            inst = self._instruments[iid]
            balance += notional_minor(inst, position.qty_raw, marks[iid], Rounding.FLOOR)
            brackets = self._brackets.get(iid)
            if brackets is not None:
                notional = notional_minor(inst, abs(position.qty_raw), marks[iid], Rounding.HALF_EVEN)
                maintenance += maintenance_margin_minor(notional, brackets, Rounding.CEILING)
        return balance, maintenance, marks

    def _held_perps(self) -> list[int]:
        return [iid for iid in sorted(self._desk.state.positions) if iid in self._brackets]

    def check(self, step: int) -> bool:
        """Liquidate at ``step`` if the account breaches; True when it did."""
        if not self._held_perps():
            return False
        balance, maintenance, marks = self._margin(step)
        if not is_liquidatable(balance, maintenance):
            return False
        self._liquidate(step, balance, maintenance, marks)
        return True

    # --- vectorised search between two visited steps --------------------------------------

    def next_breach(self, first: int, bound: int) -> int:
        """The first step in ``[first, bound)`` at which the held book breaches, else ``bound``.

        Valid only while positions and cash are constant over the window (the kernel calls it
        for the gap before its next visited step)."""
        panel = self._panel
        end = min(bound, panel.steps)
        if first >= end or not self._held_perps():
            return bound
        state = self._desk.state
        cash = float(state.balances.get(cash_account(self._wallet), 0))
        window = slice(first, end)
        balance = np.full(end - first, cash, dtype=np.float64)
        maintenance = np.zeros(end - first, dtype=np.float64)
        scale = np.full(end - first, abs(cash), dtype=np.float64)
        held = [(iid, pos) for iid, pos in sorted(state.positions.items()) if iid in self._in_wallet]
        for iid, position in held:
            value, required = self._window_values(iid, position, window)
            balance += value
            maintenance += required
            scale += np.abs(value) + required
        tolerance = scale * 1e-9 + 4.0 * (len(held) + 1)
        for offset in np.flatnonzero(balance - maintenance <= tolerance).tolist():
            step = first + offset
            exact_balance, exact_maintenance, _ = self._margin(step)
            if is_liquidatable(exact_balance, exact_maintenance):
                return step
        return bound

    def _window_values(self, iid: int, position: Position, window: slice) -> tuple[FloatArray, FloatArray]:
        """Float position value and maintenance margin of one position over the window."""
        panel = self._panel
        col = self._columns[iid]
        inst = self._instruments[iid]
        px = panel.last_close[window, col].astype(np.float64)
        brackets = self._brackets.get(iid)
        if brackets is not None:
            extreme = panel.low[window, col] if position.qty_raw > 0 else panel.high[window, col]
            px = np.where(panel.valid[window, col], extreme.astype(np.float64), px)
        per_unit = (
            inst.multiplier * 10 ** minor_digits(inst.currency) / 10 ** (inst.price_digits + inst.qty_digits)
        )
        value = position.qty_raw * px * per_unit
        if brackets is None:
            return value, np.zeros_like(value)
        notional = np.abs(value)
        maxima = np.array(
            [np.inf if b.notional_max_minor is None else b.notional_max_minor for b in brackets]
        )
        index = np.searchsorted(maxima, notional, side="left")
        mmr = np.array([b.mmr_e8 for b in brackets], dtype=np.float64)[index] / RATE_SCALE
        amount = np.array([b.maintenance_amount_minor for b in brackets], dtype=np.float64)[index]
        return value, np.maximum(notional * mmr - amount, 0.0)

    # --- the forced close -------------------------------------------------------------------

    def _liquidate(self, step: int, balance: int, maintenance: int, marks: dict[int, int]) -> None:
        desk = self._desk
        ts_ns = int(self._panel.ts_ns[step])
        day = int(self._panel.day[step])
        perps = self._held_perps()
        reason = check_liquidation(balance, maintenance, self._wallet)
        assert reason is not None
        desk.cancel_where(step, ts_ns, reason, keep=lambda order: order.instrument_id not in perps)
        left = balance  # the account's margin balance as the closes go
        for iid in perps:
            left = self._close(step, ts_ns, day, iid, marks[iid], (balance, maintenance, left), reason)

    def _close(
        self,
        step: int,
        ts_ns: int,
        day: int,
        iid: int,
        mark: int,
        margin: tuple[int, int, int],
        reason: str,
    ) -> int:
        """Close one perpetual at ``mark``; ``margin`` is (balance, maintenance, balance left
        before this close). Returns the balance left after it."""
        balance, maintenance, left = margin
        desk = self._desk
        state = desk.state
        inst = self._instruments[iid]
        qty = state.positions[iid].qty_raw
        notional = notional_minor(inst, abs(qty), mark, Rounding.HALF_EVEN)
        # Closing turns the position's value (floored in the check) into cash (the fill's notional).
        left += (notional if qty > 0 else -notional) - notional_minor(inst, qty, mark, Rounding.FLOOR)
        fee = min(apply_rate(notional, self._fee_e8, Rounding.HALF_UP), max(left, 0))
        desk.journal(
            PositionLiquidated(
                ts_ns=ts_ns,
                step=step,
                instrument_id=iid,
                qty_raw=qty,
                mark_px_raw=mark,
                margin_balance_minor=balance,
                maintenance_margin_minor=maintenance,
                fee_minor=fee,
                currency=inst.currency,
                reason=f"{reason}; {inst.symbol} qty_raw={qty} closed at mark_px_raw={mark}",
            )
        )
        desk.close_at(ts_ns, day, LIQUIDATION_STRATEGY_ID, iid, qty, mark, notional)
        if fee:
            ccy = inst.currency
            memo = f"liquidation fee {inst.symbol} fee_e8={self._fee_e8} notional_minor={notional}"
            postings = [
                PostingRecord(cash_account(ccy), ccy, -fee),
                PostingRecord(f"expenses:liquidation_fee:{ccy}", ccy, fee),
            ]
            assert_balanced(postings)
            desk.post(ts_ns, memo, postings, iid)
        return left - fee
