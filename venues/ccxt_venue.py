"""A thin adapter over a real ccxt client (``ccxt.pro`` exchange, e.g. ``ccxt.pro.binance``).

It places, cancels and queries orders, fetches bars, balances, open orders and fills, and follows
order updates and fills through ccxt.pro's websockets, falling back to REST polling. What the
venue says becomes plain frozen records with integer fixed-point values at the instrument's
digits (``VenueOrder``, ``VenueFill``, ``VenueBar``, ``VenueBalance``, ``StreamNote``) that the
edge journals; this module reads no clock and journals nothing.

* **Rate limits** come from ccxt's own metadata: the adapter keeps ``enableRateLimit`` on, so
  ccxt's throttle spaces calls by ``rateLimit`` ms times each endpoint's ``cost``; a venue
  rate-limit answer (429/418, ``-1003``) is retried after a backoff.
* **Errors** become ``VenueError`` with a Tape rule code (``LOT_SIZE``, ``TICK_SIZE``,
  ``MIN_NOTIONAL``, ``INSUFFICIENT_BALANCE``, ``RATE_LIMIT``, ``ORDER_NOT_FOUND``, ...): the
  Binance code when the message carries one, else the ccxt exception class (``map_error``).
* **Idempotent sends**: the caller's client order id goes out as ``newClientOrderId``. A
  ``-2010 Duplicate order sent.`` answer means the order is already there: it is fetched by
  its client id and returned. A send that timed out (ambiguous) is looked up the same way
  before it is sent again; ``place(..., resend=True)`` looks first (after a restart).
* **Streams**: ``start_streams`` runs ``watch_orders`` and ``watch_my_trades``; every update
  passes a de-duplicator (orders by id + update time + status + filled quantity, with older
  states arriving late counted as ``stale``; fills by trade id) into ``updates``. A dropped
  websocket is counted, noted, backed off (spread by the caller's ``jitter``), reconciled over
  REST (open orders, orders that left the open list, fills after the last trade id) and
  re-watched; after ``max_ws_failures`` failures in a row it polls REST instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from domain.fixed import Rounding, from_decimal_text, to_decimal
from domain.instruments import Instrument

__all__ = [
    "CcxtVenue",
    "OrderRequest",
    "StreamNote",
    "VenueBalance",
    "VenueBar",
    "VenueDataError",
    "VenueError",
    "VenueFill",
    "VenueFunding",
    "VenueFundingPaid",
    "VenueMark",
    "VenueOrder",
    "VenuePosition",
    "VenueQuote",
    "exact_raw",
    "map_error",
    "newer_state",
]

BALANCE_DIGITS = 8
"""Balances and fees are raw integers at 1e-8 (Binance states every asset amount to 8 places)."""

_CODE = re.compile(r'"code"\s*:\s*(-?\d+)')
_MSG = re.compile(r'"msg"\s*:\s*"([^"]*)"')
_STATUS = {
    "NEW": "new",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "PENDING_CANCEL": "pending_cancel",
    "EXPIRED": "expired",
    "EXPIRED_IN_MATCH": "expired",
    "REJECTED": "rejected",
}
_RANK = {
    "new": 0,
    "pending_cancel": 1,
    "partially_filled": 1,
    "filled": 2,
    "canceled": 2,
    "expired": 2,
    "rejected": 2,
}
OPEN_STATUSES = ("new", "partially_filled", "pending_cancel")


# --- records -------------------------------------------------------------------------------------


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An order to send. ``client_order_id`` is the caller's (derived from kernel state)."""

    client_order_id: str
    instrument_id: int
    side: int  # +1 buy, -1 sell
    order_type: str  # "market" | "limit" (IB also "stop" | "stop_limit")
    qty_raw: int
    limit_px_raw: int = 0
    stop_px_raw: int = 0  # the stop (trigger) price of a stop / stop-limit order (IB only)
    time_in_force: str = ""  # "" = the venue's default (GTC limits here; IB: DAY, GTC, IOC, ...)


class VenueOrder(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An order's state as the venue reported it. ``update_ms`` is the venue's time of that state."""

    client_order_id: str
    venue_order_id: str
    instrument_id: int
    side: int
    order_type: str
    status: str  # new, partially_filled, filled, canceled, pending_cancel, expired, rejected
    qty_raw: int
    filled_qty_raw: int
    limit_px_raw: int
    update_ms: int
    source: str  # "rest" | "ws"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class VenueFill(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One execution. ``fee_e8`` is in ``fee_asset`` at 1e-8."""

    trade_id: str
    venue_order_id: str
    client_order_id: str  # "" when the order is not one this adapter has seen
    instrument_id: int
    side: int
    qty_raw: int
    px_raw: int
    fee_e8: int
    fee_asset: str
    maker: bool
    ts_ms: int
    source: str


class VenueBar(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    instrument_id: int
    open_ms: int
    open_raw: int
    high_raw: int
    low_raw: int
    close_raw: int
    volume_raw: int  # at qty_digits, rounded half-even (venues state volume to more places)


class VenueQuote(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Best bid and ask of one instrument (``ts_ms``: the venue's time, 0 when it gives none)."""

    instrument_id: int
    bid_px_raw: int
    bid_qty_raw: int
    ask_px_raw: int
    ask_qty_raw: int
    ts_ms: int = 0


class VenueBalance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    asset: str
    free_e8: int
    locked_e8: int


class VenueFunding(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A perpetual's funding as the venue settled it: its time, rate (1e-8) and the mark price
    it settled at (raw at the instrument's price digits, rounded half-even: a venue's mark is
    not on the tick)."""

    instrument_id: int
    funding_ms: int
    rate_e8: int
    mark_raw: int


class VenueMark(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A perpetual's mark price as the venue published it: the venue's time (ms) and the mark
    (raw at the instrument's price digits, rounded half-even: a venue's mark is not on the
    tick)."""

    instrument_id: int
    ts_ms: int
    mark_raw: int


class VenueFundingPaid(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One funding payment the account received (> 0) or paid (< 0), in ``asset`` at 1e-8."""

    instrument_id: int
    funding_ms: int
    amount_e8: int
    asset: str


class VenuePosition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A derivatives position as the venue states it: signed quantity (short < 0), the mark
    price and the unrealized profit at that mark (1e-8 of the margin asset)."""

    instrument_id: int
    qty_raw: int
    mark_raw: int
    unrealized_e8: int


class StreamNote(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A change in the adapter's connection: ``disconnected``, ``reconciled``, ``polling``,
    ``bad_message`` (a venue message that could not be read; ``detail`` says why)."""

    kind: str
    stream: str
    detail: str = ""


Update = VenueOrder | VenueFill | StreamNote


# --- errors --------------------------------------------------------------------------------------


class VenueError(Exception):
    """A venue refusal or failure as a Tape rule code. ``reason`` is the journal's form."""

    def __init__(
        self, rule: str, detail: str, *, retriable: bool = False, venue_code: int | None = None
    ) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail
        self.retriable = retriable
        self.venue_code = venue_code

    @property
    def reason(self) -> str:
        return f"{self.rule}: {self.detail}"


class VenueDataError(ValueError):
    """A venue message whose numbers cannot be stated exactly at the instrument's digits."""


_BY_CODE: dict[int, tuple[str, bool]] = {
    -1001: ("VENUE_UNAVAILABLE", True),  # internal error, please try again
    -1006: ("VENUE_UNAVAILABLE", True),  # unexpected response: execution status unknown
    -1007: ("VENUE_UNAVAILABLE", True),  # backend timeout: execution status unknown
    -1008: ("VENUE_UNAVAILABLE", True),  # server busy
    -1003: ("RATE_LIMIT", True),
    -1015: ("RATE_LIMIT", True),
    -1021: ("CLOCK_SKEW", True),
    -1022: ("AUTH", False),
    -2014: ("AUTH", False),
    -2015: ("AUTH", False),
    -1121: ("UNKNOWN_INSTRUMENT", False),
    -2011: ("ORDER_NOT_FOUND", False),
    -2013: ("ORDER_NOT_FOUND", False),
    -1100: ("BAD_REQUEST", False),
    -1102: ("BAD_REQUEST", False),
    -1104: ("BAD_REQUEST", False),
    -1115: ("BAD_REQUEST", False),
    -1116: ("BAD_REQUEST", False),
    -1117: ("BAD_REQUEST", False),
    -2019: ("INSUFFICIENT_BALANCE", False),  # USD-M: margin is insufficient
    -4061: ("POSITION_MODE", False),  # USD-M: the order's position side is not the account's mode
}
_FILTERS = (("LOT_SIZE", "LOT_SIZE"), ("PRICE_FILTER", "TICK_SIZE"), ("NOTIONAL", "MIN_NOTIONAL"))
# ccxt raises an exactly matched Binance message as ``"binance " + msg`` without the code: the
# messages Binance pairs with each code name it back.
_BY_MESSAGE: dict[str, int] = {
    "Account has insufficient balance for requested action.": -2010,
    "Duplicate order sent.": -2010,
    "Order would immediately match and take.": -2010,
    "Unknown order sent.": -2011,
    "Order does not exist.": -2013,
    "Invalid symbol.": -1121,
    "Too many requests.": -1003,
    "Timestamp for this request is outside of the recvWindow.": -1021,
    "Signature for this request is not valid.": -1022,
    "API-key format invalid.": -2014,
    "Invalid API-key, IP, or permissions for action.": -2015,
}


def _by_class(error: BaseException) -> tuple[str, bool]:
    import ccxt  # the live extra

    classes: list[tuple[type[BaseException], str, bool]] = [
        (ccxt.InsufficientFunds, "INSUFFICIENT_BALANCE", False),
        (ccxt.OrderNotFound, "ORDER_NOT_FOUND", False),
        (ccxt.DuplicateOrderId, "DUPLICATE_ORDER", False),
        (ccxt.BadSymbol, "UNKNOWN_INSTRUMENT", False),
        (ccxt.InvalidOrder, "VENUE_REJECT", False),
        (ccxt.AuthenticationError, "AUTH", False),
        (ccxt.PermissionDenied, "AUTH", False),
        (ccxt.RateLimitExceeded, "RATE_LIMIT", True),
        (ccxt.DDoSProtection, "RATE_LIMIT", True),
        (ccxt.InvalidNonce, "CLOCK_SKEW", True),
        (ccxt.NetworkError, "VENUE_UNAVAILABLE", True),  # timeouts, closed sockets, 5xx
        (ccxt.BadRequest, "BAD_REQUEST", False),
        (ccxt.NotSupported, "NOT_SUPPORTED", False),
    ]
    for kind, rule, retriable in classes:
        if isinstance(error, kind):
            return rule, retriable
    return "VENUE_ERROR", False


def map_error(error: BaseException) -> VenueError:
    """A ccxt exception as a ``VenueError``: Binance's code first, then the exception class."""
    if isinstance(error, VenueError):
        return error
    text = str(error)
    code_match = _CODE.search(text)
    msg_match = _MSG.search(text)
    msg = msg_match.group(1) if msg_match else text
    if code_match:
        code: int | None = int(code_match.group(1))
    else:  # ccxt kept only the message: "binance <msg>"
        msg = msg.split(" ", 1)[1] if msg.startswith(("binance ", "binanceusdm ")) else msg
        code = _BY_MESSAGE.get(msg)
    detail = f"{type(error).__name__} {code if code is not None else ''} {msg}".replace("  ", " ").strip()
    rule: str | None = None
    retriable = False
    if code == -2010:
        lowered = msg.lower()
        if "duplicate" in lowered:
            rule = "DUPLICATE_ORDER"
        elif "insufficient" in lowered:
            rule = "INSUFFICIENT_BALANCE"
        else:
            rule = "VENUE_REJECT"
    elif code == -1013 or any(token in text for token, _ in _FILTERS):
        rule = next((name for token, name in _FILTERS if token in text), "VENUE_FILTER")
    elif code is not None and code in _BY_CODE:
        rule, retriable = _BY_CODE[code]
    if rule is None:
        rule, retriable = _by_class(error)
    return VenueError(rule, detail, retriable=retriable, venue_code=code)


# --- numbers -------------------------------------------------------------------------------------


def _text(value: object, what: str) -> str:
    if value is None or isinstance(value, bool):
        raise VenueDataError(f"{what} is missing ({value!r})")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int | str | Decimal):
        return str(value)
    raise VenueDataError(f"{what} must be a number, got {type(value).__name__}")


def exact_raw(value: object, digits: int, what: str) -> int:
    """The venue's decimal as a raw integer at ``digits``; a value off those digits is an error."""
    text = _text(value, what)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise VenueDataError(f"{what} is not a decimal number ({value!r})") from None
    if not number.is_finite():
        raise VenueDataError(f"{what} is not finite ({value!r})")
    scaled = number.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise VenueDataError(f"{what} {text} is not a whole number of 1e-{digits}")
    return int(scaled)


def _ms(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise VenueDataError(f"{what} must be an integer time in ms, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise VenueDataError(f"{what} must be an integer time in ms, got {value!r}") from None


def _side(text: object) -> int:
    side = str(text).upper()
    if side not in ("BUY", "SELL"):
        raise VenueDataError(f"side must be BUY or SELL, got {text!r}")
    return 1 if side == "BUY" else -1


def newer_state(order: VenueOrder, than: VenueOrder) -> bool:
    """Whether ``order`` is a later state than ``than`` (never a step back from a final state)."""
    return (order.filled_qty_raw, _RANK[order.status], order.update_ms) > (
        than.filled_qty_raw,
        _RANK[than.status],
        than.update_ms,
    )


# --- the adapter ---------------------------------------------------------------------------------


class CcxtVenue:
    """One ccxt.pro exchange instance and the instruments it trades (by ccxt unified symbol)."""

    def __init__(
        self,
        exchange: Any,
        instruments: Iterable[Instrument],
        *,
        retries: int = 3,
        backoff_s: float = 0.05,
        backoff_cap_s: float = 5.0,
        poll_interval_s: float = 1.0,
        max_ws_failures: int = 5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[float], float] = float,
    ) -> None:
        self.exchange = exchange
        self.instruments = {inst.instrument_id: inst for inst in instruments}
        self._by_symbol = {inst.symbol: inst for inst in self.instruments.values()}
        if len(self._by_symbol) != len(self.instruments):
            raise ValueError("instrument symbols must be unique")
        exchange.enableRateLimit = True  # ccxt's throttle: rateLimit ms x each endpoint's cost
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self.poll_interval_s = poll_interval_s
        self.max_ws_failures = max_ws_failures
        self._sleep = sleep
        self._jitter = jitter  # a backoff as slept (spread so reconnects do not come in step)
        self.stats: Counter[str] = Counter()
        self.updates: asyncio.Queue[Update] = asyncio.Queue()
        self._orders: dict[str, VenueOrder] = {}
        self._seen_orders: set[tuple[str, int, str, int]] = set()
        self._seen_trades: set[tuple[int, str]] = set()
        self._last_trade: dict[int, int] = {}
        self._filled_by_fills: Counter[str] = Counter()
        self._refreshing: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._reconcile_lock = asyncio.Lock()

    @property
    def rate_limit_ms(self) -> float:
        """ccxt's own spacing between calls of cost 1 (``exchange.rateLimit``)."""
        return float(self.exchange.rateLimit)

    # --- mapping -----------------------------------------------------------------------------

    def instrument(self, symbol: object) -> Instrument:
        inst = self._by_symbol.get(str(symbol))
        if inst is None:
            raise VenueDataError(f"symbol {symbol!r} is not one of this venue's instruments")
        return inst

    def _order(self, parsed: Mapping[str, Any], source: str) -> VenueOrder:
        """A ccxt order (REST or websocket) from its raw Binance fields in ``info``."""
        info = parsed.get("info") or {}
        inst = self.instrument(parsed.get("symbol"))
        if "X" in info:  # executionReport
            client = info.get("C") or info.get("c")
            raw_status, qty, filled, price = info["X"], info["q"], info["z"], info["p"]
            order_id, side, kind, update = info["i"], info["S"], info["o"], info.get("T") or info.get("E")
        else:
            client = info.get("origClientOrderId") or info.get("clientOrderId")
            raw_status, qty, filled, price = (
                info["status"],
                info["origQty"],
                info["executedQty"],
                info["price"],
            )
            order_id, side, kind = info["orderId"], info["side"], info["type"]
            update = info.get("updateTime") or info.get("transactTime") or info.get("time")
        status = _STATUS.get(str(raw_status))
        if status is None:
            raise VenueDataError(f"order {order_id}: unknown status {raw_status!r}")
        return VenueOrder(
            client_order_id=str(client or ""),
            venue_order_id=str(order_id),
            instrument_id=inst.instrument_id,
            side=_side(side),
            order_type=str(kind).lower(),
            status=status,
            qty_raw=exact_raw(qty, inst.qty_digits, f"order {order_id} quantity"),
            filled_qty_raw=exact_raw(filled, inst.qty_digits, f"order {order_id} filled quantity"),
            limit_px_raw=exact_raw(price, inst.price_digits, f"order {order_id} price"),
            update_ms=_ms(update, f"order {order_id} update time"),
            source=source,
        )

    def _fill(self, parsed: Mapping[str, Any], source: str) -> VenueFill:
        info = parsed.get("info") or {}
        inst = self.instrument(parsed.get("symbol"))
        if "x" in info:  # executionReport of a TRADE
            trade_id, order_id, qty, px = info["t"], info["i"], info["l"], info["L"]
            fee, fee_asset, maker, ts = info["n"], info.get("N") or "", info["m"], info["T"]
            side = _side(info["S"])
        elif "isBuyer" in info:  # spot myTrades
            trade_id, order_id, qty, px = info["id"], info["orderId"], info["qty"], info["price"]
            fee, fee_asset, maker, ts = (
                info["commission"],
                info["commissionAsset"],
                info["isMaker"],
                info["time"],
            )
            side = 1 if info["isBuyer"] else -1
        else:  # USD-M userTrades
            trade_id, order_id, qty, px = info["id"], info["orderId"], info["qty"], info["price"]
            fee, fee_asset, maker, ts = (
                info["commission"],
                info["commissionAsset"],
                info["maker"],
                info["time"],
            )
            side = _side(info["side"])
        known = self._orders.get(str(order_id))
        return VenueFill(
            trade_id=str(trade_id),
            venue_order_id=str(order_id),
            client_order_id=known.client_order_id if known else "",
            instrument_id=inst.instrument_id,
            side=side,
            qty_raw=exact_raw(qty, inst.qty_digits, f"trade {trade_id} quantity"),
            px_raw=exact_raw(px, inst.price_digits, f"trade {trade_id} price"),
            fee_e8=exact_raw(fee, BALANCE_DIGITS, f"trade {trade_id} fee"),
            fee_asset=str(fee_asset),
            maker=bool(maker),
            ts_ms=_ms(ts, f"trade {trade_id} time"),
            source=source,
        )

    # --- calls with retries --------------------------------------------------------------------

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """A ccxt call; rate limits and unavailable venues are retried after a backoff."""
        attempt = 0
        while True:
            try:
                return await getattr(self.exchange, name)(*args, **kwargs)
            except Exception as error:
                mapped = map_error(error)
                self.stats[f"error.{mapped.rule}"] += 1
                if not mapped.retriable or attempt >= self.retries:
                    raise mapped from error
            await self._sleep(self._jitter(min(self.backoff_cap_s, self.backoff_s * 2**attempt)))
            attempt += 1
            self.stats["retry"] += 1

    async def load_markets(self) -> None:
        await self._call("load_markets")
        missing = [symbol for symbol in self._by_symbol if symbol not in self.exchange.markets]
        if missing:
            raise VenueError("UNKNOWN_INSTRUMENT", f"not among {self.exchange.id}'s markets: {missing}")

    # --- orders ------------------------------------------------------------------------------

    def _checked(self, request: OrderRequest) -> Instrument:
        inst = self.instruments.get(request.instrument_id)
        if inst is None:
            raise VenueError("UNKNOWN_INSTRUMENT", f"instrument_id={request.instrument_id}")
        if (
            request.side not in (1, -1)
            or request.order_type not in ("market", "limit")
            or request.qty_raw <= 0
            or request.stop_px_raw
            or request.time_in_force not in ("", "GTC")
        ):
            raise VenueError(
                "BAD_REQUEST",
                f"side={request.side}, order_type={request.order_type!r}, qty_raw={request.qty_raw}"
                f", stop_px_raw={request.stop_px_raw}, time_in_force={request.time_in_force!r}",
            )
        return inst

    async def place(self, request: OrderRequest, *, resend: bool = False) -> VenueOrder:
        """Send ``request`` once; ``resend`` (after a restart) looks it up by client id first."""
        inst = self._checked(request)
        if resend:
            existing = await self.lookup(request.instrument_id, request.client_order_id)
            if existing is not None:
                self.stats["place.found_on_resend"] += 1
                return self._accept_order(existing)
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        price: str | None = None
        if request.order_type == "limit":
            price = str(to_decimal(request.limit_px_raw, inst.price_digits))
            params["timeInForce"] = "GTC"
        amount = str(to_decimal(request.qty_raw, inst.qty_digits))
        side = "buy" if request.side == 1 else "sell"
        attempt = 0
        while True:
            try:
                created = await self.exchange.create_order(
                    inst.symbol, request.order_type, side, amount, price, params
                )
                self.stats["place.sent"] += 1
                return self._accept_order(self._order(created, "rest"))
            except Exception as error:
                mapped = map_error(error)
                self.stats[f"error.{mapped.rule}"] += 1
                if mapped.rule == "DUPLICATE_ORDER" or mapped.rule == "VENUE_UNAVAILABLE":
                    # already there, or maybe there (the answer was lost): ask by client id
                    existing = await self.lookup(request.instrument_id, request.client_order_id)
                    if existing is not None:
                        self.stats[f"place.found_after_{mapped.rule.lower()}"] += 1
                        return self._accept_order(existing)
                if not mapped.retriable or attempt >= self.retries:
                    raise mapped from error
            await self._sleep(self._jitter(min(self.backoff_cap_s, self.backoff_s * 2**attempt)))
            attempt += 1
            self.stats["retry"] += 1

    async def lookup(self, instrument_id: int, client_order_id: str) -> VenueOrder | None:
        """The order with this client id, or ``None`` when the venue has none."""
        inst = self.instruments[instrument_id]
        try:
            found = await self._call("fetch_order", None, inst.symbol, {"origClientOrderId": client_order_id})
        except VenueError as error:
            if error.rule == "ORDER_NOT_FOUND":
                return None
            raise
        return self._order(found, "rest")

    async def cancel(self, instrument_id: int, client_order_id: str) -> VenueOrder:
        """Cancel by client id. An order that is already final is returned as it is (the
        cancel raced a fill); one the venue never had raises ``ORDER_NOT_FOUND``."""
        inst = self.instruments[instrument_id]
        try:
            answer = await self._call(
                "cancel_order", None, inst.symbol, {"origClientOrderId": client_order_id}
            )
        except VenueError as error:
            if error.rule != "ORDER_NOT_FOUND":
                raise
            existing = await self.lookup(instrument_id, client_order_id)
            if existing is None:
                raise
            self.stats["cancel.already_final"] += 1
            return self._accept_order(existing)
        return self._accept_order(self._order(answer, "rest"))

    async def fetch_order(self, instrument_id: int, client_order_id: str) -> VenueOrder:
        order = await self.lookup(instrument_id, client_order_id)
        if order is None:
            raise VenueError("ORDER_NOT_FOUND", f"client_order_id={client_order_id}")
        return self._accept_order(order)

    async def fetch_open_orders(self, instrument_id: int) -> list[VenueOrder]:
        inst = self.instruments[instrument_id]
        orders = await self._call("fetch_open_orders", inst.symbol)
        return [self._accept_order(self._order(o, "rest")) for o in orders]

    async def fetch_fills(self, instrument_id: int, *, from_trade_id: int | None = None) -> list[VenueFill]:
        inst = self.instruments[instrument_id]
        params = {"fromId": from_trade_id} if from_trade_id is not None else {}
        trades = await self._call("fetch_my_trades", inst.symbol, None, None, params)
        return [self._fill(trade, "rest") for trade in trades]

    async def fetch_bars(
        self, instrument_id: int, timeframe: str, *, since_ms: int | None = None, limit: int | None = None
    ) -> list[VenueBar]:
        inst = self.instruments[instrument_id]
        rows = await self._call("fetch_ohlcv", inst.symbol, timeframe, since_ms, limit)
        return [self._bar(inst, row) for row in rows]

    async def watch_bars(self, instrument_id: int, timeframe: str) -> list[VenueBar]:
        """The next kline update(s) from the websocket (ccxt.pro ``watch_ohlcv``)."""
        inst = self.instruments[instrument_id]
        rows = await self.exchange.watch_ohlcv(inst.symbol, timeframe)
        return [self._bar(inst, row) for row in rows]

    async def round_trip(self) -> int:
        """One timed request to the venue (ccxt ``fetch_time``, no retries): its round trip in
        nanoseconds (a heartbeat). Raises what the request raised."""
        started = time.perf_counter_ns()
        await self.exchange.fetch_time()
        return time.perf_counter_ns() - started

    async def watch_quote(self, instrument_id: int) -> VenueQuote:
        """The next best bid / ask of one instrument (ccxt.pro ``watch_bids_asks``: Binance's
        ``<symbol>@bookTicker`` stream)."""
        inst = self.instruments[instrument_id]
        tickers = await self.exchange.watch_bids_asks([inst.symbol])
        ticker = tickers.get(inst.symbol) if isinstance(tickers, dict) else None
        if not isinstance(ticker, dict) or ticker.get("bid") is None or ticker.get("ask") is None:
            raise VenueDataError(f"{inst.symbol}: a quote with no bid or ask")
        what = f"{inst.symbol} quote"
        stamp = ticker.get("timestamp")
        return VenueQuote(
            instrument_id=instrument_id,
            bid_px_raw=exact_raw(ticker["bid"], inst.price_digits, what + " bid"),
            bid_qty_raw=from_decimal_text(
                _text(ticker.get("bidVolume") or 0, what), inst.qty_digits, Rounding.HALF_EVEN
            ),
            ask_px_raw=exact_raw(ticker["ask"], inst.price_digits, what + " ask"),
            ask_qty_raw=from_decimal_text(
                _text(ticker.get("askVolume") or 0, what), inst.qty_digits, Rounding.HALF_EVEN
            ),
            ts_ms=int(stamp) if isinstance(stamp, int) else 0,
        )

    def _bar(self, inst: Instrument, row: list[Any]) -> VenueBar:
        start = _ms(row[0], f"{inst.symbol} bar time")
        what = f"{inst.symbol} bar {start}"
        volume = from_decimal_text(_text(row[5], what + " volume"), inst.qty_digits, Rounding.HALF_EVEN)
        return VenueBar(
            instrument_id=inst.instrument_id,
            open_ms=start,
            open_raw=exact_raw(row[1], inst.price_digits, what + " open"),
            high_raw=exact_raw(row[2], inst.price_digits, what + " high"),
            low_raw=exact_raw(row[3], inst.price_digits, what + " low"),
            close_raw=exact_raw(row[4], inst.price_digits, what + " close"),
            volume_raw=volume,
        )

    async def fetch_balances(self) -> list[VenueBalance]:
        """Every asset's free and locked amount (1e-8), from the raw account answer. A USD-M
        account states each margin asset's wallet balance (as ``free``; nothing is locked: an
        order reserves margin, not the asset) and its unrealized profit separately
        (``fetch_positions``)."""
        answer = await self._call("fetch_balance")
        info = answer.get("info") or {}
        if isinstance(info.get("assets"), list):  # USD-M /fapi account
            return [
                VenueBalance(
                    asset=str(row["asset"]),
                    free_e8=exact_raw(row["walletBalance"], BALANCE_DIGITS, f"{row['asset']} wallet"),
                    locked_e8=0,
                )
                for row in info["assets"]
            ]
        rows = info.get("balances")
        if not isinstance(rows, list):
            raise VenueDataError("account answer has no 'balances' list")
        return [
            VenueBalance(
                asset=str(row["asset"]),
                free_e8=exact_raw(row["free"], BALANCE_DIGITS, f"{row['asset']} free"),
                locked_e8=exact_raw(row["locked"], BALANCE_DIGITS, f"{row['asset']} locked"),
            )
            for row in rows
        ]

    # --- perpetuals: positions, funding and mark prices -------------------------------------

    async def fetch_positions(self) -> list[VenuePosition]:
        """The account's open positions in this venue's instruments (signed quantities)."""
        rows = await self._call("fetch_positions", sorted(self._by_symbol))
        out = []
        for row in rows:
            info = row.get("info") or {}
            symbol = row.get("symbol")
            if symbol not in self._by_symbol:
                continue
            inst = self._by_symbol[str(symbol)]
            what = f"{symbol} position"
            out.append(
                VenuePosition(
                    instrument_id=inst.instrument_id,
                    qty_raw=exact_raw(info["positionAmt"], inst.qty_digits, what + " quantity"),
                    mark_raw=from_decimal_text(
                        _text(info["markPrice"], what + " mark"), inst.price_digits, Rounding.HALF_EVEN
                    ),
                    unrealized_e8=exact_raw(info["unRealizedProfit"], BALANCE_DIGITS, what + " profit"),
                )
            )
        return out

    async def hedge_mode(self) -> bool:
        """Whether the USD-M account is in hedge mode (ccxt ``fetch_position_mode``: Binance's
        ``/fapi/v1/positionSide/dual``), where every order must name a position side."""
        answer = await self._call("fetch_position_mode", None)
        hedged = answer.get("hedged") if isinstance(answer, dict) else None
        if not isinstance(hedged, bool):
            raise VenueDataError(f"the venue states no position mode ({answer!r})")
        return hedged

    async def fetch_funding(self, instrument_id: int, *, since_ms: int | None = None) -> list[VenueFunding]:
        """Fundings the venue settled from ``since_ms`` on (ccxt ``fetch_funding_rate_history``:
        Binance's ``/fapi/v1/fundingRate``, which states the mark each settled at)."""
        inst = self.instruments[instrument_id]
        rows = await self._call("fetch_funding_rate_history", inst.symbol, since_ms, None)
        out = []
        for row in rows:
            info = row.get("info") or {}
            when = _ms(info.get("fundingTime"), f"{inst.symbol} funding time")
            what = f"{inst.symbol} funding {when}"
            mark = info.get("markPrice")
            if mark in (None, ""):
                raise VenueDataError(f"{what}: the venue states no mark price")
            out.append(
                VenueFunding(
                    instrument_id=instrument_id,
                    funding_ms=when,
                    rate_e8=exact_raw(info["fundingRate"], 8, what + " rate"),
                    mark_raw=from_decimal_text(
                        _text(mark, what + " mark"), inst.price_digits, Rounding.HALF_EVEN
                    ),
                )
            )
        return sorted(out, key=lambda funding: funding.funding_ms)

    async def next_funding_ms(self, instrument_id: int) -> int:
        """The venue's next funding time for the instrument (ms; 0 when it states none)."""
        inst = self.instruments[instrument_id]
        answer = await self._call("fetch_funding_rate", inst.symbol)
        value = (answer.get("info") or {}).get("nextFundingTime")
        return _ms(value, f"{inst.symbol} next funding time") if value not in (None, "") else 0

    async def watch_mark_price(self, instrument_id: int) -> VenueMark:
        """The next mark price of one perpetual (ccxt.pro ``watch_mark_price``: Binance's
        ``<symbol>@markPrice@1s`` stream). A mark with no price or time is a ``VenueDataError``."""
        inst = self.instruments[instrument_id]
        ticker = await self.exchange.watch_mark_price(inst.symbol)
        what = f"{inst.symbol} mark price"
        mark = ticker.get("markPrice") if isinstance(ticker, dict) else None
        stamp = ticker.get("timestamp") if isinstance(ticker, dict) else None
        if mark in (None, "") or not isinstance(stamp, int):
            raise VenueDataError(f"{what}: the venue states no mark or no time")
        try:
            mark_raw = from_decimal_text(_text(mark, what), inst.price_digits, Rounding.HALF_EVEN)
        except (InvalidOperation, ValueError):
            raise VenueDataError(f"{what}: {mark!r} is not a decimal number") from None
        if mark_raw <= 0:
            raise VenueDataError(f"{what}: {mark} is not a positive price")
        return VenueMark(instrument_id=instrument_id, ts_ms=stamp, mark_raw=mark_raw)

    async def fetch_funding_paid(self, instrument_id: int) -> list[VenueFundingPaid]:
        """The account's funding payments in the instrument (ccxt ``fetch_funding_history``:
        Binance's ``/fapi/v1/income`` of type ``FUNDING_FEE``)."""
        inst = self.instruments[instrument_id]
        rows = await self._call("fetch_funding_history", inst.symbol)
        return [
            VenueFundingPaid(
                instrument_id=instrument_id,
                funding_ms=_ms((row.get("info") or {}).get("time"), f"{inst.symbol} funding payment time"),
                amount_e8=exact_raw((row.get("info") or {}).get("income"), BALANCE_DIGITS, "funding income"),
                asset=str((row.get("info") or {}).get("asset")),
            )
            for row in rows
        ]

    # --- streams -----------------------------------------------------------------------------

    def _accept_order(self, order: VenueOrder) -> VenueOrder:
        """Every order state, REST or websocket, passes here once: a repeat (same id, update time,
        status and filled quantity) is counted as a duplicate, an older state arriving after a
        newer one as stale; anything else becomes the order's state and goes to ``updates``."""
        key = (order.venue_order_id, order.update_ms, order.status, order.filled_qty_raw)
        if key in self._seen_orders:
            self.stats[f"dedup.order_duplicate.{order.source}"] += 1
            return order
        self._seen_orders.add(key)
        last = self._orders.get(order.venue_order_id)
        if last is not None and not newer_state(order, last):
            self.stats[f"dedup.order_stale.{order.source}"] += 1
            return order
        self._orders[order.venue_order_id] = order
        self.updates.put_nowait(order)
        return order

    def _accept_fill(self, fill: VenueFill) -> None:
        key = (fill.instrument_id, fill.trade_id)
        if key in self._seen_trades:
            self.stats[f"dedup.fill_duplicate.{fill.source}"] += 1
            return
        self._seen_trades.add(key)
        self._filled_by_fills[fill.venue_order_id] += fill.qty_raw
        known = self._orders.get(fill.venue_order_id)
        if (
            known is None or known.filled_qty_raw < self._filled_by_fills[fill.venue_order_id]
        ) and self._tasks:
            self._spawn_refresh(fill.instrument_id, fill.venue_order_id)
        if fill.trade_id.isdigit():
            self._last_trade[fill.instrument_id] = max(
                int(fill.trade_id), self._last_trade.get(fill.instrument_id, 0)
            )
        self.updates.put_nowait(fill)

    def _spawn_refresh(self, instrument_id: int, venue_order_id: str) -> None:
        """A fill ran ahead of its order's state (the order update is late, lost or was overtaken
        by an older one): after a grace period, fetch the order if it is still behind."""
        if venue_order_id in self._refreshing:
            return
        self._refreshing.add(venue_order_id)

        async def refresh() -> None:
            try:
                await self._sleep(self.backoff_s)
                known = self._orders.get(venue_order_id)
                if known is not None and known.filled_qty_raw >= self._filled_by_fills[venue_order_id]:
                    self.stats["refresh.caught_up"] += 1
                    return
                inst = self.instruments[instrument_id]
                self.stats["refresh.fetched"] += 1
                self._accept_order(
                    self._order(await self._call("fetch_order", venue_order_id, inst.symbol), "rest")
                )
            except VenueError as error:
                self.stats["refresh.failed"] += 1
                self.updates.put_nowait(StreamNote(kind="disconnected", stream="rest", detail=error.reason))
            finally:
                self._refreshing.discard(venue_order_id)

        self._tasks.append(asyncio.get_running_loop().create_task(refresh()))

    def _bad(self, stream: str, error: Exception) -> None:
        self.stats[f"bad_message.{stream}"] += 1
        self.updates.put_nowait(StreamNote(kind="bad_message", stream=stream, detail=str(error)))

    async def catch_up_fills(self) -> int:
        """Fills after the last trade id seen, over REST, through the same de-duplication (no
        note: nothing dropped); how many were new. A perpetuals session calls it before a
        funding's step, so the book holds every fill the venue made before it settled."""
        before = len(self._seen_trades)
        for instrument_id in sorted(self.instruments):
            last = self._last_trade.get(instrument_id)
            for fill in await self.fetch_fills(
                instrument_id, from_trade_id=None if last is None else last + 1
            ):
                self._accept_fill(fill)
        return len(self._seen_trades) - before

    async def reconcile(self) -> None:
        """Catch up over REST after a gap: open orders, known open orders that left the open list,
        and fills after the last trade id seen; all through the same de-duplication."""
        async with self._reconcile_lock:
            for instrument_id in sorted(self.instruments):
                open_now = {order.venue_order_id for order in await self.fetch_open_orders(instrument_id)}
                gone = [
                    o
                    for o in self._orders.values()
                    if o.instrument_id == instrument_id and o.is_open and o.venue_order_id not in open_now
                ]
                for order in gone:
                    await self.fetch_order(instrument_id, order.client_order_id)
                last = self._last_trade.get(instrument_id)
                for fill in await self.fetch_fills(
                    instrument_id, from_trade_id=None if last is None else last + 1
                ):
                    self._accept_fill(fill)
            self.stats["reconciled"] += 1
            self.updates.put_nowait(StreamNote(kind="reconciled", stream="user"))

    async def _watch(
        self, stream: str, watch: Callable[[], Awaitable[list[Any]]], accept: Callable[[Any], None]
    ) -> None:
        failures = 0
        while True:
            if failures >= self.max_ws_failures:
                self.stats[f"polling.{stream}"] += 1
                self.updates.put_nowait(
                    StreamNote(kind="polling", stream=stream, detail=f"{failures} failures")
                )
                await self._poll_once()
                await self._sleep(self.poll_interval_s)
                failures = self.max_ws_failures - 1  # try the websocket again after each poll
                continue
            try:
                items = await watch()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                mapped = map_error(error)
                failures += 1
                self.stats[f"ws.disconnect.{stream}"] += 1
                self.updates.put_nowait(StreamNote(kind="disconnected", stream=stream, detail=mapped.reason))
                await self._sleep(self._jitter(min(self.backoff_cap_s, self.backoff_s * 2 ** (failures - 1))))
                with contextlib.suppress(VenueError):
                    await self.reconcile()
                continue
            failures = 0
            for item in items:
                try:
                    accept(item)
                except (VenueDataError, KeyError) as error:
                    self._bad(stream, error)

    async def _poll_once(self) -> None:
        try:
            await self.reconcile()
        except VenueError as error:
            self.stats["polling.failed"] += 1
            self.updates.put_nowait(StreamNote(kind="disconnected", stream="rest", detail=error.reason))

    def start_streams(self, *, websocket: bool = True) -> None:
        """Follow order updates and fills: websockets (``watch_orders``, ``watch_my_trades``), or
        REST polling every ``poll_interval_s`` when ``websocket`` is False or ccxt has no
        websocket for them."""
        if self._tasks:
            raise RuntimeError("streams already started")
        loop = asyncio.get_running_loop()
        has = getattr(self.exchange, "has", {})
        if websocket and has.get("watchOrders") and has.get("watchMyTrades"):
            self._tasks = [
                loop.create_task(self._watch("orders", self.exchange.watch_orders, self._ws_order)),
                loop.create_task(self._watch("fills", self.exchange.watch_my_trades, self._ws_fill)),
            ]
        else:
            self._tasks = [loop.create_task(self._poll_forever())]

    def _ws_order(self, parsed: Mapping[str, Any]) -> None:
        self._accept_order(self._order(parsed, "ws"))

    def _ws_fill(self, parsed: Mapping[str, Any]) -> None:
        self._accept_fill(self._fill(parsed, "ws"))

    async def _poll_forever(self) -> None:
        while True:
            await self._poll_once()
            await self._sleep(self.poll_interval_s)

    async def stop_streams(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def describe_stats(self) -> str:
        return json.dumps(dict(sorted(self.stats.items())))
