"""The account's type and, for a cash account, its buying power.

A **margin** account (the default, and how every run before this setting behaved) trades to its
targets and lets the risk policy's gross-leverage limit say how far it may borrow. A **cash**
account never borrows and never shorts:

- every buy must be paid from cash that is not already reserved: the cash balance less what
  the account's working buy orders may still cost. An order's cost bound is its quantity at
  its price bound, plus the venue's commission for that notional (with its minimum) and the
  market's fees on such a fill;
- a buy the strategy did not price is sent as a marketable limit order at the decision price
  plus ``collar_e8`` (rounded down to the tick): a market order's fill price is not known when
  it is sent, a limit order's is bounded by its limit, so the bound holds. If the next bar
  opens above the collar the order waits, like a collared market order at a broker;
- a buy that does not fit is reduced to the whole lots that do, or refused when not one lot
  does; a sell larger than the holding not already being sold is reduced to it (no shorts).

Each reduction or refusal is a ``buying_power`` / ``no_short`` risk verdict with the numbers
(unit ``minor``: the limit is the free cash, observed the order's cost bound before and after).
So no accepted order can leave a cash account's cash negative after its fees.

**Per market** (``venues``): one run may hold a cash account on some markets and a margin
account on others (A-shares cash, US stocks on margin). A key is a venue (``"XSHG"``) or a
venue and asset class (``"BINANCE:crypto_perp"``, which wins over the venue alone); markets not
named take ``type``. The buying-power check applies to the orders of cash markets, against the
cash of each order's own currency (a book of several currencies keeps cash per currency); the
margin requirements (``kernel.margin``) apply to margin markets only. A currency is the cash of
one account type: a cash market and a margin market settling in the same currency would share
one balance the margin side may borrow against, so such a run is refused at start (separate
ledgers per account are not built).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec

from domain.events import OrderFilled
from domain.fixed import RATE_SCALE, Rounding, div_round
from domain.instruments import Instrument, notional_minor
from domain.orders import Order
from domain.riskrules.pretrade import RuleVerdict
from kernel.delisting import DELISTED_POLICIES
from kernel.margin import FUTURES_MARGIN_MARKS, MAINTENANCE_CHECKS, MARGIN_CALL_POLICIES, FuturesMarginRow
from kernel.pipeline import OrderIntent

__all__ = [
    "ACCOUNT_TYPES",
    "AccountConfig",
    "BuyingPower",
    "CommissionQuote",
    "FeeQuote",
    "currency_conflicts",
]

ACCOUNT_TYPES = ("margin", "cash")

CommissionQuote = Callable[[Instrument, int, int], int]
"""(instrument, notional minor, qty raw) -> the venue's commission for such an order."""
FeeQuote = Callable[[int, OrderFilled], int]
"""(session day, a fill) -> the market's fees on it (stamp duty, transfer and regulatory fees)."""


class AccountConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[account]``: ``type`` "margin" (the default) or "cash"; ``collar_e8``: how far above
    the decision price a cash account's unpriced buys may fill (1e-8; default 2%).

    A margin account's requirements (``kernel.margin``): ``initial_e8`` / ``maintenance_e8``, a
    share of each non-future position's market value (Reg T: 50% / 25%; 0 = none set: the risk
    policy's gross limit alone, as before these settings); ``futures_margin``, dated rows per
    future; ``margin_call``, what a breach of maintenance does ("liquidate" or "halt");
    ``futures_margin_at``, what a daily-settled future is marked at in the maintenance check at a
    close ("settlement", the default, or "close": ``kernel.margin.FUTURES_MARGIN_MARKS``)."""

    type: str = "margin"
    collar_e8: int = 2_000_000
    initial_e8: int = 0
    maintenance_e8: int = 0
    margin_call: str = "liquidate"
    futures_margin: list[FuturesMarginRow] = []
    venues: dict[str, str] = {}  # "VENUE" or "VENUE:asset_class" -> "cash" | "margin"
    maintenance_check: str = "close"  # or "bar": maintenance judged at every bar (kernel.margin)
    futures_margin_at: str = "settlement"  # or "close": a future's mark in the check at a close
    delisted: str = "hold"  # or "sell_before": a delisted name's position (kernel.delisting)

    def __post_init__(self) -> None:
        if self.type not in ACCOUNT_TYPES:
            raise ValueError(f"account.type must be one of {ACCOUNT_TYPES}, got {self.type!r}")
        _check_venues(self.venues)
        if self.delisted not in DELISTED_POLICIES:
            raise ValueError(f"account.delisted must be one of {DELISTED_POLICIES}, got {self.delisted!r}")
        _check_choice("maintenance_check", self.maintenance_check, MAINTENANCE_CHECKS)
        _check_choice("futures_margin_at", self.futures_margin_at, FUTURES_MARGIN_MARKS)
        if not 0 <= self.collar_e8 < RATE_SCALE:
            raise ValueError(f"account.collar_e8 must be in [0, 1e8), got {self.collar_e8}")
        if self.margin_call not in MARGIN_CALL_POLICIES:
            raise ValueError(
                f"account.margin_call must be one of {MARGIN_CALL_POLICIES}, got {self.margin_call!r}"
            )
        if self.initial_e8 or self.maintenance_e8:
            if self.cash:
                raise ValueError(
                    "account.initial_e8 / maintenance_e8 are a margin account's; a cash account pays in full"
                    " (name the margin markets in account.venues)"
                )
            if not 0 < self.maintenance_e8 <= self.initial_e8 <= RATE_SCALE:
                raise ValueError(
                    f"account: need 0 < maintenance_e8 ({self.maintenance_e8}) <= initial_e8 "
                    f"({self.initial_e8}) <= 1e8"
                )
        if self.futures_margin and self.cash:
            raise ValueError(
                'account.futures_margin: futures trade in a margin account (type = "margin"); '
                "a cash account with futures margin is not built"
            )

    @property
    def margined(self) -> bool:
        """Explicit requirements are set (``kernel.margin`` checks orders and calls margin)."""
        return bool(self.initial_e8 or self.futures_margin)

    @property
    def cash(self) -> bool:
        """Every market of the account is a cash one (no margin market named)."""
        return self.type == "cash" and "margin" not in self.venues.values()

    @property
    def any_cash(self) -> bool:
        """Some market of the account is a cash one: the buying-power check runs."""
        return self.type == "cash" or "cash" in self.venues.values()

    def type_of(self, instrument: Instrument) -> str:
        """The account type of the market ``instrument`` trades in: its ``VENUE:asset_class``
        key, else its venue's, else ``type``."""
        venues = self.venues
        if not venues:
            return self.type
        found = venues.get(f"{instrument.venue}:{instrument.asset_class}")
        return found if found is not None else venues.get(instrument.venue, self.type)


def _check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"account.{key} must be one of {allowed}, got {value!r}")


def _check_venues(venues: Mapping[str, str]) -> None:
    for key, kind in sorted(venues.items()):
        if kind not in ACCOUNT_TYPES:
            raise ValueError(f"account.venues.{key} must be one of {ACCOUNT_TYPES}, got {kind!r}")
        venue, _, asset_class = key.partition(":")
        if not venue or key.count(":") > 1 or (":" in key and not asset_class):
            raise ValueError(
                f'account.venues: {key!r} is not a venue ("XSHG") or a venue and asset class '
                '("BINANCE:crypto_perp")'
            )


def currency_conflicts(config: AccountConfig, instruments: Mapping[int, Instrument]) -> list[str]:
    """Currencies that a cash market and a margin market of the run both settle in, each with
    its markets named (empty: every currency belongs to one account type)."""
    kinds: dict[str, dict[str, set[str]]] = {}
    for inst in instruments.values():
        if inst.asset_class == "index":
            continue
        kind = config.type_of(inst)
        kinds.setdefault(inst.currency, {}).setdefault(kind, set()).add(f"{inst.venue}:{inst.asset_class}")
    return [
        f"{currency} (cash: {', '.join(sorted(by['cash']))}; margin: {', '.join(sorted(by['margin']))})"
        for currency, by in sorted(kinds.items())
        if len(by) > 1
    ]


class BuyingPower:
    """A cash account's check of a decision's orders (``check``), run after the risk policy."""

    def __init__(
        self,
        config: AccountConfig,
        instruments: Mapping[int, Instrument],
        commission: CommissionQuote | None,
        fees: FeeQuote,
    ) -> None:
        self._config = config
        self._instruments = instruments
        self._commission = commission
        self._fees = fees
        self._cash_ids = frozenset(iid for iid, inst in instruments.items() if config.type_of(inst) == "cash")

    def is_cash(self, instrument_id: int) -> bool:
        """The instrument trades in a cash market of the account."""
        return instrument_id in self._cash_ids

    def collar(self, intent: OrderIntent) -> int:
        """The limit price of an unpriced buy: the decision price plus the collar, on the tick."""
        tick = self._instruments[intent.instrument_id].tick_raw
        raised = div_round(intent.decision_px_raw * (RATE_SCALE + self._config.collar_e8), RATE_SCALE,
                           Rounding.FLOOR)  # fmt: skip
        return max(raised // tick * tick, tick)

    def cost(self, day: int, iid: int, qty: int, px: int) -> int:
        """What a buy of ``qty`` at ``px`` may cost at most: notional, commission, market fees."""
        inst = self._instruments[iid]
        notional = notional_minor(inst, qty, px, Rounding.CEILING)
        commission = self._commission(inst, notional, qty) if self._commission is not None else 0
        probe = OrderFilled(ts_ns=0, order_id="", instrument_id=iid, side=1, fill_qty_raw=qty, fill_px_raw=px,
                            leaves_qty_raw=0, notional_minor=notional, commission_minor=commission,
                            currency=inst.currency)  # fmt: skip
        return notional + commission + self._fees(day, probe)

    def reserved(self, day: int, open_orders: Mapping[str, Order]) -> dict[str, tuple[int, int]]:
        """Per currency: (cash the cash markets' working buy orders may still cost, their count)."""
        out: dict[str, tuple[int, int]] = {}
        for order in open_orders.values():
            if order.side > 0 and order.leaves_qty_raw > 0 and order.instrument_id in self._cash_ids:
                px = order.limit_px_raw
                if px <= 0:  # a market order sent before the account was a cash one: its last bound
                    continue
                currency = self._instruments[order.instrument_id].currency
                total, count = out.get(currency, (0, 0))
                out[currency] = (
                    total + self.cost(day, order.instrument_id, order.leaves_qty_raw, px),
                    count + 1,
                )
        return out

    def check(
        self,
        day: int,
        intents: list[OrderIntent],
        limit_px: dict[int, int],
        cash_minor: Mapping[str, int],
        held: Mapping[int, int],
        open_orders: Mapping[str, Order],
    ) -> tuple[list[OrderIntent], dict[int, int], list[RuleVerdict]]:
        """The orders a cash account can pay for (sells first, then buys in order), their limit
        prices (unpriced buys collared), and a verdict for each order changed. ``cash_minor``:
        each currency's cash balance. Orders of margin markets pass unchanged."""
        reserved = self.reserved(day, open_orders)
        free = {currency: cash - reserved.get(currency, (0, 0))[0] for currency, cash in cash_minor.items()}
        selling = {iid: 0 for iid in held}
        for order in open_orders.values():
            if order.side < 0:
                selling[order.instrument_id] = selling.get(order.instrument_id, 0) + order.leaves_qty_raw
        out: list[OrderIntent] = []
        prices = dict(limit_px)
        verdicts: list[RuleVerdict] = []
        for intent in intents:
            iid = intent.instrument_id
            if iid not in self._cash_ids:
                out.append(intent)
                continue
            if intent.side < 0:
                kept = self._sell(intent, held.get(iid, 0) - selling.get(iid, 0), verdicts)
                if kept is not None:
                    out.append(kept)
                continue
            px = prices.get(iid) or self.collar(intent)
            prices[iid] = px
            currency = self._instruments[iid].currency
            reserve, working = reserved.get(currency, (0, 0))
            kept, cost = self._buy(day, intent, px, free.get(currency, 0), verdicts, reserve, working)
            if kept is not None:
                out.append(kept)
                free[currency] = free.get(currency, 0) - cost
        return out, prices, verdicts

    def _sell(self, intent: OrderIntent, sellable: int, verdicts: list[RuleVerdict]) -> OrderIntent | None:
        if intent.qty_raw <= sellable:
            return intent
        kept = max(sellable, 0)
        verdicts.append(RuleVerdict(
            rule="no_short", action="clip" if kept else "reject", unit="qty_raw", limit=kept,
            observed=intent.qty_raw, observed_after=kept, instrument_ids=[intent.instrument_id],
            detail=f"a cash account sells only what it holds: {kept} of {intent.qty_raw} (qty raw)",
        ))  # fmt: skip
        return msgspec.structs.replace(intent, qty_raw=kept) if kept else None

    def _buy(
        self, day: int, intent: OrderIntent, px: int, free: int, verdicts: list[RuleVerdict],
        reserved: int, working: int,
    ) -> tuple[OrderIntent | None, int]:  # fmt: skip
        iid = intent.instrument_id
        cost = self.cost(day, iid, intent.qty_raw, px)
        if cost <= free:
            return intent, cost
        lot = self._instruments[iid].lot_raw
        low, high = 0, intent.qty_raw // lot  # the most whole lots that fit: cost grows with qty
        while low < high:
            mid = (low + high + 1) // 2
            if self.cost(day, iid, mid * lot, px) <= free:
                low = mid
            else:
                high = mid - 1
        qty = low * lot
        after = self.cost(day, iid, qty, px) if qty else 0
        ccy = self._instruments[iid].currency
        verdicts.append(RuleVerdict(
            rule="buying_power", action="clip" if qty else "reject", unit="minor", limit=free,
            observed=cost, observed_after=after, instrument_ids=[iid],
            detail=f"a cash account: the order may cost {cost} ({ccy} minor units at {px}), {free} is free "
                   f"({reserved} reserved for {working} working buys); {qty} of {intent.qty_raw} fit",
        ))  # fmt: skip
        if not qty:
            return None, 0
        return msgspec.structs.replace(intent, qty_raw=qty), after
