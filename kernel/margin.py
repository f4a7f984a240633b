"""Initial and maintenance margin of a margin account: futures and, where set, its stocks.

Two kinds of requirement, each an **initial** one (to open) and a **maintenance** one (to keep):

* **Futures** (asset class ``"future"``), from dated rows (``[[account.futures_margin]]``) the
  way exchanges publish them: per contract (``initial`` / ``maintenance`` money per contract
  in the instrument's currency, x ``|qty|``) or a share of notional (``initial_e8`` /
  ``maintenance_e8`` x ``|qty x price x multiplier|``). A row names a symbol, or ``"*"`` for
  every future; on a session day the row in force is the one with the latest ``since`` on or
  before it, among the symbol's own rows if one is in force, else among ``"*"``'s.
* **Other instruments** of the account (stocks, ETFs, spot crypto), when ``[account]`` sets
  ``initial_e8`` / ``maintenance_e8`` (Reg T: 50% / 25%): that share of ``|market value|``,
  long or short. Perpetuals keep their own liquidation (``kernel.liquidation``) and need no
  requirement here; options are not margined here (not built).

Each requirement rounds up to the minor unit. The margin **in use** is the sum over positions
at the last closes. The account's **equity** is its NAV (cash + positions' values, a future at
its unsettled P&L): free margin = equity - initial margin in use - the initial margin working
orders would add. For a book of futures alone that is the "free cash = cash - initial margin
in use" of a futures account when the settlement price is the close.

**At submission** (``check``, after the risk policy), each order in turn: one that lowers the
requirement passes (and frees what it releases for the orders after it); one that raises it
must fit the free margin with its commission, or is reduced to the whole lots that do (the
part that closes a position always passes), or refused when none do. A reduction or a refusal
is an ``initial_margin`` risk verdict with the numbers (unit ``minor``: limit = free margin,
observed = the order's increment + commission before, observed_after = after).

**At each session's close** (``close``, after daily settlement, before ``DayClosed``): if the
equity is below the maintenance margin in use, the account is **called**. The caller gives the
equity and marks a clearing house judges (``Kernel._margin_marks``): a future settled that
session at its settlement price (its unsettled P&L 0: the settled cash; its requirement on the
settled notional), unless ``[account] futures_margin_at = "close"`` (the NAV and the closes, as
before the setting). A margin call journals ``margin.called.v1``
(``MarginCalled``: equity, maintenance and initial margin in use, each position's maintenance
requirement, the policy, a ``MARGIN_CALL: ...`` reason), working orders are cancelled, and the
configured ``margin_call`` policy applies:

* ``"liquidate"`` (default): every margined position is cut to the share ``equity / initial
  margin in use`` of itself (the quantity kept floored to whole lots; all of it when the equity
  is not positive) by the kernel's own ``margin_call`` market orders, sent at the close through
  the desk like any order: they trade in the next session (a broker's forced sale the morning
  after the call), under the market's rules (an A-share bought today is not sellable until
  tomorrow; a sell at limit-down waits). What is left needs no more initial margin, at the
  call's marks, than the equity;
* ``"halt"``: no forced sale; the kill switch trips (trigger ``margin_call``, no flatten): no new
  orders until an operator re-arms it.

No state of its own: requirements are recomputed from positions, prices and the rows, so the
snapshot is unchanged and ``replay --day`` needs nothing more. A run without requirements (the
default) takes none of these paths and journals exactly what it did before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import msgspec

from domain.events import MarginCalled
from domain.fixed import (
    RATE_SCALE,
    Rounding,
    apply_rate,
    div_round,
    from_decimal_text,
    minor_digits,
    to_decimal,
)
from domain.futures import is_daily_settled
from domain.instruments import Instrument, notional_minor
from domain.ledger import Position
from domain.market import MarginRow
from domain.orders import Order
from domain.riskrules.pretrade import RuleVerdict
from kernel.desk import OrderDesk
from kernel.pipeline import OrderIntent

__all__ = [
    "FUTURES_MARGIN_MARKS",
    "MAINTENANCE_CHECKS",
    "MARGIN_CALL_POLICIES",
    "MARGIN_CALL_STRATEGY_ID",
    "FuturesMarginRow",
    "MarginBook",
    "MarginError",
    "Requirement",
]

MARGIN_CALL_POLICIES = ("liquidate", "halt")
MAINTENANCE_CHECKS = ("close", "bar")
FUTURES_MARGIN_MARKS = ("settlement", "close")
"""``[account] futures_margin_at``: what a daily-settled future is marked at in the maintenance
check at a session's close. ``"settlement"`` (the default): the session's settlement price, so
the equity is the settled cash a clearing house judges and the requirement is on the settled
notional; ``"close"``: the last close, as the NAV marks it (runs before the setting)."""
MARGIN_CALL_STRATEGY_ID = "margin_call"
_PERPETUAL_CLASSES = frozenset({"crypto_perp"})  # margined by kernel.liquidation
_UNMARGINED_CLASSES = frozenset({"option", "index"})  # options: not built; indexes do not trade


class MarginError(ValueError):
    """Margin settings the run's instruments or days cannot use."""


MONEY_MINOR_MAX = 10**15
"""The largest money amount a configuration may state, in minor units (10^13 USD or CNY, 10^9
USDT at its 6 digits): sums and products of such amounts stay far inside the 64-bit integers a
journal's events hold (a margin row or a cash amount of ``1e400`` failed as an internal error when
its first event was encoded)."""


def checked_money_minor(value: int, text: str, currency: str, where: str) -> int:
    """``value`` (``text`` in ``currency``'s minor units) when its size is at most
    ``MONEY_MINOR_MAX``; else ``ValueError`` naming ``where`` and the largest amount allowed."""
    if abs(value) > MONEY_MINOR_MAX:
        largest = to_decimal(MONEY_MINOR_MAX, minor_digits(currency)).normalize()
        raise ValueError(f"{where}: {text!r} is too large: at most {largest:,f} {currency}")
    return value


class FuturesMarginRow(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[account.futures_margin]]``: one published requirement, in force from ``since``.

    Per contract (``initial`` and ``maintenance``, decimal money in the future's currency) or
    a share of notional (``initial_e8`` and ``maintenance_e8``), not both."""

    symbol: str  # a future's symbol, or "*" for every future of the run
    since: str  # ISO date: in force from this session day on
    initial: str = ""
    maintenance: str = ""
    initial_e8: int = 0
    maintenance_e8: int = 0

    def __post_init__(self) -> None:
        where = f"account.futures_margin[{self.symbol} since {self.since}]"
        if not self.symbol:
            raise ValueError(f'{where}: symbol is a future\'s symbol or "*"')
        self.since_day()
        per_contract = bool(self.initial or self.maintenance)
        share = bool(self.initial_e8 or self.maintenance_e8)
        if per_contract == share:
            raise ValueError(
                f"{where}: give initial and maintenance (per contract) or initial_e8 and "
                "maintenance_e8 (a share of notional), one pair"
            )
        if share:
            if not 0 < self.maintenance_e8 <= self.initial_e8 <= RATE_SCALE:
                raise ValueError(
                    f"{where}: need 0 < maintenance_e8 ({self.maintenance_e8}) <= initial_e8 "
                    f"({self.initial_e8}) <= 1e8"
                )
        elif not (self.initial and self.maintenance):
            raise ValueError(f"{where}: a per-contract row needs both initial and maintenance")

    def since_day(self) -> int:
        try:
            return int(date.fromisoformat(self.since).strftime("%Y%m%d"))
        except ValueError:
            raise ValueError(
                f"account.futures_margin: since must be a date (YYYY-MM-DD), got {self.since!r}"
            ) from None


@dataclass(frozen=True)
class Requirement:
    """One row resolved for an instrument: per contract in minor units (scaled by the
    instrument's quantity digits), or a share of notional (1e-8)."""

    since_day: int
    initial_per_contract_minor: int = 0
    maintenance_per_contract_minor: int = 0
    initial_e8: int = 0
    maintenance_e8: int = 0

    def amount(self, instrument: Instrument, qty_raw: int, px_raw: int, initial: bool) -> int:
        """The requirement of a position of ``qty_raw`` at ``px_raw``, rounded up."""
        qty = abs(qty_raw)
        if not qty:
            return 0
        per_contract = self.initial_per_contract_minor if initial else self.maintenance_per_contract_minor
        if per_contract:
            return div_round(qty * per_contract, 10**instrument.qty_digits, Rounding.CEILING)
        rate = self.initial_e8 if initial else self.maintenance_e8
        return apply_rate(
            notional_minor(instrument, qty, max(px_raw, 0), Rounding.CEILING), rate, Rounding.CEILING
        )


def _money_minor(text: str, currency: str, where: str) -> int:
    digits = minor_digits(currency)
    try:
        value = from_decimal_text(text, digits, Rounding.DOWN)
        exact = value == from_decimal_text(text, digits, Rounding.CEILING)
    except (ArithmeticError, ValueError):
        raise MarginError(f"{where}: {text!r} is not a decimal amount") from None
    if not exact:
        raise MarginError(f"{where}: {text!r} has more digits than {currency}'s minor unit")
    try:
        return checked_money_minor(value, text, currency, where)
    except ValueError as error:
        raise MarginError(str(error)) from None


def _resolved(row: FuturesMarginRow, instrument: Instrument) -> Requirement:
    if row.initial_e8:
        return Requirement(row.since_day(), initial_e8=row.initial_e8, maintenance_e8=row.maintenance_e8)
    where = f"account.futures_margin[{row.symbol} since {row.since}] for {instrument.symbol}"
    initial = _money_minor(row.initial, instrument.currency, f"{where}.initial")
    maintenance = _money_minor(row.maintenance, instrument.currency, f"{where}.maintenance")
    if not 0 < maintenance <= initial:
        raise MarginError(f"{where}: need 0 < maintenance ({row.maintenance}) <= initial ({row.initial})")
    return Requirement(row.since_day(), initial, maintenance)


def futures_schedules(
    rows: Sequence[FuturesMarginRow],
    instruments: Mapping[int, Instrument],
    dataset_rows: Sequence[MarginRow] = (),
) -> dict[int, tuple[tuple[Requirement, ...], tuple[Requirement, ...]]]:
    """Each daily-settled future's dated requirements, oldest first: (its own rows, the
    ``"*"`` rows). On a day, its own row in force applies, else the ``"*"`` row in force. A
    future's own rows are the configuration's rows naming it (the run's, e.g. a broker's house
    rates) if there are any, else the data set's (``margins.parquet``, the exchange's)."""
    futures = {iid: inst for iid, inst in sorted(instruments.items()) if is_daily_settled(inst)}
    symbols = {inst.symbol for inst in futures.values()}
    unknown = sorted({row.symbol for row in rows} - symbols - {"*"})
    if unknown:
        raise MarginError(
            f"account.futures_margin: {unknown} are not futures of this data set's margin markets"
        )
    published: dict[int, list[Requirement]] = {}
    for row in dataset_rows:
        published.setdefault(row.instrument_id, []).append(
            Requirement(
                row.since, row.initial_minor, row.maintenance_minor, row.initial_e8, row.maintenance_e8
            )
        )
    schedules = {}
    for iid, inst in futures.items():
        own = _schedule([row for row in rows if row.symbol == inst.symbol], inst)
        if not own:
            own = tuple(sorted(published.get(iid, ()), key=lambda item: item.since_day))
        every = _schedule([row for row in rows if row.symbol == "*"], inst)
        if own or every:
            schedules[iid] = (own, every)
    return schedules


def _schedule(rows: Sequence[FuturesMarginRow], instrument: Instrument) -> tuple[Requirement, ...]:
    resolved = sorted((_resolved(row, instrument) for row in rows), key=lambda item: item.since_day)
    days = [item.since_day for item in resolved]
    if len(set(days)) != len(days):
        raise MarginError(f"account.futures_margin: two rows for {instrument.symbol} on the same since day")
    return tuple(resolved)


def _in_force(schedule: tuple[Requirement, ...], day: int) -> Requirement | None:
    found = None
    for item in schedule:
        if item.since_day <= day:
            found = item
    return found


CommissionQuote = Callable[[Instrument, int, int], int]
ToBase = Callable[[int, str], int]  # (amount minor, its currency) -> minor units of the base
HaltFn = Callable[[int, int, str, int, int], None]  # (step, ts, reason, limit, observed)


class MarginBook:
    """The account's requirements, the submission check and the margin call at each close.

    Built from what it needs: the instruments, the requirements, the day of each step, the
    desk (for the margin call's orders and events), the account's equity and marks at a step,
    the venue's commission schedule, and how to halt trading."""

    def __init__(
        self,
        instruments: Mapping[int, Instrument],
        *,
        futures_margin: Sequence[FuturesMarginRow],
        stock_initial_e8: int,
        stock_maintenance_e8: int,
        policy: str,
        currency: str,
        commission: CommissionQuote | None = None,
        unmargined: frozenset[int] = frozenset(),
        dataset_rows: Sequence[MarginRow] = (),
    ) -> None:
        """``unmargined``: instruments of the account's cash markets (``[account] venues``),
        which carry no requirement here. ``dataset_rows``: the data set's published futures
        margin rows (``margins.parquet``), used for a future the configuration names no row for."""
        if policy not in MARGIN_CALL_POLICIES:
            raise MarginError(f"account.margin_call must be one of {MARGIN_CALL_POLICIES}, got {policy!r}")
        self._instruments = dict(instruments)
        self._unmargined = unmargined
        margined = {iid: inst for iid, inst in instruments.items() if iid not in unmargined}
        self._futures = futures_schedules(futures_margin, margined, dataset_rows)
        self._stock = None
        if stock_initial_e8 or stock_maintenance_e8:
            if not 0 < stock_maintenance_e8 <= stock_initial_e8 <= RATE_SCALE:
                raise MarginError(
                    f"account: need 0 < maintenance_e8 ({stock_maintenance_e8}) <= initial_e8 "
                    f"({stock_initial_e8}) <= 1e8"
                )
            self._stock = Requirement(0, initial_e8=stock_initial_e8, maintenance_e8=stock_maintenance_e8)
        self.policy = policy
        self.currency = currency
        self._commission = commission
        self._to_base: ToBase | None = None
        self.active = bool(self._futures) or self._stock is not None

    # --- requirements -------------------------------------------------------------------------

    def covers(self, days_traded: Mapping[int, int]) -> None:
        """Every future with requirements has a row in force on its first day traded
        (``days_traded``: instrument -> first session day); else a ``MarginError`` naming it."""
        for iid in sorted(self._futures):
            first = days_traded.get(iid)
            if first is not None:
                self.requirement(iid, first)

    def requirement(self, iid: int, day: int) -> Requirement | None:
        """The requirement in force for ``iid`` on ``day``; None where it is not margined here."""
        schedules = self._futures.get(iid)
        if schedules is not None:
            own, every = schedules
            found = _in_force(own, day) or _in_force(every, day)
            if found is None:
                first = min(item.since_day for item in own + every)
                raise MarginError(
                    f"account.futures_margin: no row for {self._instruments[iid].symbol} in force on {day} "
                    f"(its first row is since {first}); add a row with an earlier since"
                )
            return found
        inst = self._instruments[iid]
        if (
            self._stock is None
            or iid in self._unmargined
            or is_daily_settled(inst)
            or inst.asset_class in _PERPETUAL_CLASSES
        ):
            return None
        if inst.asset_class in _UNMARGINED_CLASSES:
            return None
        return self._stock

    def amount(self, iid: int, day: int, qty_raw: int, px_raw: int, *, initial: bool) -> int:
        found = self.requirement(iid, day)
        return 0 if found is None else found.amount(self._instruments[iid], qty_raw, px_raw, initial)

    def in_use(
        self, day: int, positions: Mapping[int, int], marks: Mapping[int, int], *, initial: bool
    ) -> dict[int, int]:
        """Each margined position's requirement at ``marks``, by instrument (sorted)."""
        used = {}
        for iid, qty in sorted(positions.items()):
            amount = self.amount(iid, day, qty, marks.get(iid, 0), initial=initial)
            if amount:
                used[iid] = amount
        return used

    # --- at submission ------------------------------------------------------------------------

    def check(
        self,
        day: int,
        intents: list[OrderIntent],
        limit_px: Mapping[int, int],
        equity_minor: int,
        positions: Mapping[int, int],
        marks: Mapping[int, int],
        open_orders: Mapping[str, Order],
        to_base: ToBase | None = None,
    ) -> tuple[list[OrderIntent], list[RuleVerdict]]:
        """The orders the account's free margin allows, and a verdict for each order changed.
        ``to_base``: a book of several currencies converts each requirement into the base (the
        equity's currency) at the day's rate; None: one currency."""
        self._to_base = to_base
        in_use = sum(
            self._base(iid, amount)
            for iid, amount in self.in_use(day, positions, marks, initial=True).items()
        )
        projected = dict(positions)
        reserved = 0
        for order_id in sorted(open_orders):
            order = open_orders[order_id]
            if order.leaves_qty_raw <= 0:
                continue
            iid = order.instrument_id
            px = order.limit_px_raw or marks.get(iid, 0)
            held = projected.get(iid, 0)
            after = held + order.side * order.leaves_qty_raw
            reserved += self._base(
                iid,
                max(
                    self.amount(iid, day, after, px, initial=True)
                    - self.amount(iid, day, held, px, initial=True),
                    0,
                ),
            )
            projected[iid] = after
        free = equity_minor - in_use - reserved
        context = (equity_minor, in_use, reserved)
        out: list[OrderIntent] = []
        verdicts: list[RuleVerdict] = []
        for intent in intents:
            px = limit_px.get(intent.instrument_id) or intent.decision_px_raw
            kept, used = self._order(day, intent, px, projected, free, context, verdicts)
            if kept is not None:
                out.append(kept)
                projected[kept.instrument_id] = (
                    projected.get(kept.instrument_id, 0) + kept.side * kept.qty_raw
                )
                free -= used
        return out, verdicts

    def _increment(self, day: int, iid: int, held: int, signed_qty: int, px: int) -> int:
        after = self.amount(iid, day, held + signed_qty, px, initial=True)
        return after - self.amount(iid, day, held, px, initial=True)

    def _cost(self, day: int, iid: int, held: int, side: int, qty: int, px: int) -> int:
        """Initial margin an order of ``qty`` adds, with its commission; <= 0 when it lowers it."""
        increment = self._increment(day, iid, held, side * qty, px)
        if increment <= 0 or self._commission is None:
            return self._base(iid, increment)
        inst = self._instruments[iid]
        return self._base(
            iid, increment + self._commission(inst, notional_minor(inst, qty, px, Rounding.CEILING), qty)
        )

    def _base(self, iid: int, amount: int) -> int:
        """``amount`` (minor units of the instrument's currency) in the base."""
        if self._to_base is None:
            return amount
        return self._to_base(amount, self._instruments[iid].currency)

    def _order(
        self,
        day: int,
        intent: OrderIntent,
        px: int,
        projected: Mapping[int, int],
        free: int,
        context: tuple[int, int, int],
        verdicts: list[RuleVerdict],
    ) -> tuple[OrderIntent | None, int]:
        iid, side, qty = intent.instrument_id, intent.side, intent.qty_raw
        if self.requirement(iid, day) is None:
            return intent, 0
        held = projected.get(iid, 0)
        cost = self._cost(day, iid, held, side, qty, px)
        if cost <= 0 or cost <= free:
            return intent, cost
        closing = min(qty, abs(held)) if held * side < 0 else 0  # the part that closes: always allowed
        lot = self._instruments[iid].lot_raw
        low, high = 0, (qty - closing) // lot  # the most whole lots beyond it that fit
        while low < high:
            mid = (low + high + 1) // 2
            if self._cost(day, iid, held, side, closing + mid * lot, px) <= free:
                low = mid
            else:
                high = mid - 1
        kept = closing + low * lot
        after = self._cost(day, iid, held, side, kept, px) if kept else 0
        equity, in_use, reserved = context
        ccy = self._instruments[iid].currency if self._to_base is None else self.currency
        verdicts.append(RuleVerdict(
            rule="initial_margin", action="clip" if kept else "reject", unit="minor", limit=free,
            observed=cost, observed_after=after, instrument_ids=[iid],
            detail=f"initial margin: the order needs {cost} ({ccy} minor at px_raw {px}, commission "
                   f"included), {free} is free (equity {equity} - initial margin in use {in_use} - "
                   f"{reserved} for working orders); {kept} of {qty} fit",
        ))  # fmt: skip
        if not kept:
            return None, 0
        return msgspec.structs.replace(intent, qty_raw=kept), after

    # --- at the close -------------------------------------------------------------------------

    def close(
        self,
        desk: OrderDesk,
        step: int,
        ts_ns: int,
        day: int,
        equity_minor: int,
        marks: Mapping[int, int],
        halt: HaltFn,
        *,
        intraday: bool = False,
        to_base: ToBase | None = None,
    ) -> MarginCalled | None:
        """The maintenance check at a session's close (``intraday``: at a bar inside it, with
        ``[account] maintenance_check = "bar"``); journals and acts on a margin call. With
        ``to_base`` (several currencies) each position's requirement is converted into the base,
        the equity's currency, before the sums."""
        self._to_base = to_base
        positions = {iid: position.qty_raw for iid, position in desk.state.positions.items()}
        maintenance = {
            iid: self._base(iid, amount)
            for iid, amount in self.in_use(day, positions, marks, initial=False).items()
        }
        total = sum(maintenance.values())
        if not maintenance or equity_minor >= total:
            return None
        initial = sum(
            self._base(iid, amount)
            for iid, amount in self.in_use(day, positions, marks, initial=True).items()
        )
        digits = minor_digits(self.currency)
        reason = (
            f"MARGIN_CALL: equity={to_decimal(equity_minor, digits)} < maintenance="
            f"{to_decimal(total, digits)} {self.currency} (initial={to_decimal(initial, digits)}"
            + ("; at a bar" if intraday else "")
            + "); "
            + ("liquidate to initial margin" if self.policy == "liquidate" else "halt")
        )
        called = MarginCalled(
            ts_ns=ts_ns, day=day, step=step, equity_minor=equity_minor, maintenance_minor=total,
            initial_minor=initial, currency=self.currency, policy=self.policy,
            instrument_ids=list(maintenance), maintenance_by_position_minor=list(maintenance.values()),
            reason=reason,
        )  # fmt: skip
        desk.journal(called)
        if self.policy == "halt":
            halt(step, ts_ns, reason, total, equity_minor)
            return called
        desk.cancel_where(step, ts_ns, reason, keep=lambda order: False)
        for iid, qty in _liquidation_plan(
            desk.state.positions, maintenance, equity_minor, initial, self._instruments
        ):
            side = -1 if qty > 0 else 1
            desk.submit(step, ts_ns, MARGIN_CALL_STRATEGY_ID, iid, side, abs(qty), marks[iid])
        return called

    def intrabar(
        self,
        desk: OrderDesk,
        step: int,
        ts_ns: int,
        day: int,
        equity_minor: int,
        marks: Mapping[int, int],
        halt: HaltFn,
        halted: bool,
        to_base: ToBase | None = None,
    ) -> MarginCalled | None:
        """The maintenance check at a bar inside a session. Not while a call is being acted on:
        the margin call's own orders still working (they trade at the next bar), or trading
        halted (``halted``: the kill switch is not armed). Otherwise as at the close."""
        if halted or any(
            order.strategy_id == MARGIN_CALL_STRATEGY_ID for order in desk.state.open_orders.values()
        ):
            return None
        return self.close(desk, step, ts_ns, day, equity_minor, marks, halt, intraday=True, to_base=to_base)


def _liquidation_plan(
    positions: Mapping[int, Position],
    margined: Mapping[int, int],
    equity_minor: int,
    initial_minor: int,
    instruments: Mapping[int, Instrument],
) -> list[tuple[int, int]]:
    """(instrument, signed quantity to close): each margined position cut to ``equity /
    initial`` of itself, whole lots toward zero (all of it when the equity is not positive)."""
    plan = []
    for iid in sorted(margined):
        qty = positions[iid].qty_raw
        keep = 0
        if equity_minor > 0 and initial_minor > 0:
            keep = abs(qty) * equity_minor // initial_minor
            keep = keep // instruments[iid].lot_raw * instruments[iid].lot_raw
        close = abs(qty) - keep
        lot = instruments[iid].lot_raw
        if close % lot:  # whole lots (an odd remainder stays held), or the whole position
            close = min(abs(qty), -(-close // lot) * lot)
        if close:
            plan.append((iid, close if qty > 0 else -close))
    return plan
