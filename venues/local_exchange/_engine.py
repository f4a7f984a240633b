"""The local exchange's state: markets, played bars, orders, trades and balances. No I/O.

Binance spot semantics, reduced to bars:

* a bar is *played* by ``step``; only played bars exist for ``klines`` and matching;
* a MARKET order fills at the open of the next bar played for its symbol; a LIMIT (GTC) order
  rests and fills in any later bar that reaches its price (buy: ``low <= price``, sell:
  ``high >= price``), at its price or at the bar's open when the open is already better;
* ``fill_fraction`` caps what one order fills per bar (a fraction of its quantity, rounded down
  to the step, at least one step): a limit order fills over several bars, a market order fills
  that much and the rest EXPIRES (a thin book);
* balances are exact decimals: a limit buy locks ``qty x price`` of the quote, a sell locks the
  base quantity; fees are charged on what is received (base on a buy, quote on a sell), rounded
  up to 1e-8 — or, with ``fees_in="quote"``, always in the quote asset;
* a client order id may not repeat among open orders (Binance's rule, ``-2010 Duplicate order
  sent.``); ``unique_client_ids="all"`` makes it unique among all orders ever placed.

Every refusal is a ``BinanceError`` with Binance's code and message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

from venues.local_exchange._data import INTERVAL_MS, Bar, LocalMarket

__all__ = ["BinanceError", "Engine", "EngineOrder", "StepResult", "fmt", "int_param"]

_E8 = Decimal("1e-8")
_CLIENT_ID = re.compile(r"^[a-zA-Z0-9\-_]{1,36}$")
_NUMBER = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_OPEN = ("NEW", "PARTIALLY_FILLED")


class BinanceError(Exception):
    """A refusal as Binance states it: HTTP status, error code and message."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def fmt(value: Decimal) -> str:
    """Binance's decimal text: 8 places where that is exact, else every digit."""
    quantized = value.quantize(_E8)
    return format(quantized if quantized == value else value, "f")


def _missing(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _decimal(params: Mapping[str, str], name: str) -> Decimal:
    text = params.get(name)
    if text is None or text == "":
        raise _missing(name)
    if not _NUMBER.match(text):
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; "
            "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        )
    return Decimal(text)


def int_param(params: Mapping[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise BinanceError(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        ) from None


@dataclass
class EngineOrder:
    order_id: int
    market: LocalMarket
    client_order_id: str
    side: str  # BUY | SELL
    type: str  # LIMIT | MARKET
    qty: Decimal
    price: Decimal  # 0 for market orders
    created_ms: int
    placed_step: int
    fill_fraction: Decimal
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    update_ms: int = 0
    locked: Decimal = Decimal(0)
    trade_ids: list[int] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN


@dataclass
class StepResult:
    """What one ``step`` did: the bars it played and the user-stream events it caused."""

    time_ms: int
    bars: list[tuple[LocalMarket, Bar]]
    events: list[dict[str, Any]]


class Engine:
    """One account on a set of spot markets. ``clock`` (ms) defaults to the market clock: the close
    of the last bar played (the first bar's open before any), so a run is deterministic."""

    def __init__(
        self,
        markets: Sequence[LocalMarket],
        balances: Mapping[str, Decimal | str | int],
        *,
        maker_fee: Decimal = Decimal(0),
        taker_fee: Decimal = Decimal(0),
        fill_fraction: Decimal = Decimal(1),
        unique_client_ids: str = "open",
        clock: Callable[[], int] | None = None,
        fees_in: str = "received",
    ) -> None:
        if not markets:
            raise ValueError("the local exchange needs at least one market")
        self.markets = {market.id: market for market in markets}
        if len(self.markets) != len(markets):
            raise ValueError("market ids (base + quote) must be unique")
        if unique_client_ids not in ("open", "all"):
            raise ValueError(f"unique_client_ids must be 'open' or 'all', got {unique_client_ids!r}")
        if fees_in not in ("received", "quote"):
            raise ValueError(f"fees_in must be 'received' or 'quote', got {fees_in!r}")
        self.fees_in = fees_in
        self.maker_fee = Decimal(maker_fee)
        self.taker_fee = Decimal(taker_fee)
        self.set_fill_fraction(fill_fraction)
        self.unique_client_ids = unique_client_ids
        self._clock = clock
        self.free: dict[str, Decimal] = {}
        self.locked: dict[str, Decimal] = {}
        for asset, amount in balances.items():
            value = Decimal(amount)
            if value < 0:
                raise ValueError(f"balance {asset} must be >= 0, got {value}")
            self.free[asset] = value
            self.locked[asset] = Decimal(0)
        for market in markets:
            for asset in (market.base, market.quote):
                self.free.setdefault(asset, Decimal(0))
                self.locked.setdefault(asset, Decimal(0))
        self.timeline = sorted({bar.open_ms for market in markets for bar in market.bars})
        self._bar_at = {market.id: {bar.open_ms: bar for bar in market.bars} for market in markets}
        self.played: dict[str, list[Bar]] = {market.id: [] for market in markets}
        self.step_count = 0
        self._market_ms = self.timeline[0] if self.timeline else 0
        self.orders: dict[int, EngineOrder] = {}
        self.trades: dict[int, dict[str, Any]] = {}
        self._next_order_id = 1
        self._next_trade_id = 1
        self._next_cancel_id = 1
        self.next_order_fill_fraction: Decimal | None = None

    # --- time and bars -----------------------------------------------------------------------

    def now_ms(self) -> int:
        return self._clock() if self._clock is not None else self._market_ms

    @property
    def remaining_steps(self) -> int:
        return len(self.timeline) - self.step_count

    def set_fill_fraction(self, fraction: Decimal) -> None:
        fraction = Decimal(fraction)
        if not Decimal(0) < fraction <= Decimal(1):
            raise ValueError(f"fill_fraction must be in (0, 1], got {fraction}")
        self.fill_fraction = fraction

    def step(self) -> StepResult:
        """Play the next bar time: match open orders against each market's bar, then publish it."""
        if self.step_count >= len(self.timeline):
            raise IndexError("no bars left to play")
        open_ms = self.timeline[self.step_count]
        self.step_count += 1
        played: list[tuple[LocalMarket, Bar]] = []
        for market_id in sorted(self.markets):
            bar = self._bar_at[market_id].get(open_ms)
            if bar is not None:
                market = self.markets[market_id]
                played.append((market, bar))
        close_ms = max(open_ms + INTERVAL_MS[market.interval] for market, _ in played)
        self._market_ms = close_ms
        events: list[dict[str, Any]] = []
        for market, bar in played:
            self.played[market.id].append(bar)
            for order in [o for o in self.orders.values() if o.market is market and o.is_open]:
                if order.placed_step < self.step_count:
                    events.extend(self._match(order, bar))
        return StepResult(close_ms, played, events)

    def last_price(self, market: LocalMarket) -> Decimal | None:
        bars = self.played[market.id]
        return bars[-1].close if bars else None

    # --- orders -------------------------------------------------------------------------------

    def market(self, params: Mapping[str, str]) -> LocalMarket:
        symbol = params.get("symbol")
        if not symbol:
            raise _missing("symbol")
        market = self.markets.get(symbol)
        if market is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return market

    def _shape(self, params: Mapping[str, str]) -> tuple[LocalMarket, str, str, Decimal, Decimal]:
        """Symbol, side, type, quantity and price of a new order, checked against the filters."""
        market = self.market(params)
        side = params.get("side") or ""
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.") if side else _missing("side")
        kind = params.get("type") or ""
        if kind not in ("LIMIT", "MARKET"):
            raise BinanceError(-1116, "Invalid orderType.") if kind else _missing("type")
        if params.get("quoteOrderQty"):
            raise BinanceError(
                -1104,
                "Not all sent parameters were read; quoteOrderQty is not supported by the local exchange.",
            )
        qty = _decimal(params, "quantity")
        price = Decimal(0)
        if kind == "LIMIT":
            price = _decimal(params, "price")
            tif = params.get("timeInForce")
            if not tif:
                raise _missing("timeInForce")
            if tif != "GTC":
                raise BinanceError(-1115, "Invalid timeInForce.")
            if price <= 0 or price % market.tick_size:
                raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
        if qty <= 0 or qty < market.min_qty or qty % market.step_size:
            raise BinanceError(-1013, "Filter failure: LOT_SIZE")
        return market, side, kind, qty, price

    def _client_id(self, params: Mapping[str, str]) -> str:
        client_id = params.get("newClientOrderId") or f"local{self._next_order_id}"
        if not _CLIENT_ID.match(client_id):
            raise BinanceError(
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; "
                "legal range is '^[a-zA-Z0-9-_]{1,36}$'.",
            )
        if self._find_client_id(client_id, open_only=self.unique_client_ids == "open") is not None:
            raise BinanceError(-2010, "Duplicate order sent.")
        return client_id

    def place(self, params: Mapping[str, str]) -> tuple[EngineOrder, list[dict[str, Any]]]:
        """Validate and accept a new order (Binance's checks and codes); its NEW report."""
        market, side, kind, qty, price = self._shape(params)
        reference = price if kind == "LIMIT" else self.last_price(market)
        if reference is None:
            raise BinanceError(-2010, "Market order refused: no bar has been played for this symbol yet.")
        if qty * reference < market.min_notional:
            raise BinanceError(-1013, "Filter failure: NOTIONAL")
        client_id = self._client_id(params)
        lock_asset, lock = (market.quote, qty * price) if side == "BUY" else (market.base, qty)
        # a market buy pays at its fill; it is checked here against the last close
        need = qty * reference if side == "BUY" and kind == "MARKET" else lock
        if self.free[lock_asset] < need:
            raise BinanceError(-2010, "Account has insufficient balance for requested action.")
        self.free[lock_asset] -= lock
        self.locked[lock_asset] += lock
        order = self._open_order(market, client_id, side, kind, qty, price, locked=lock)
        events = [self.execution_report(order, "NEW")]
        if lock:
            events.append(self.account_position([lock_asset]))
        return order, events

    def _open_order(
        self,
        market: LocalMarket,
        client_id: str,
        side: str,
        kind: str,
        qty: Decimal,
        price: Decimal,
        *,
        locked: Decimal = Decimal(0),
    ) -> EngineOrder:
        """A new order, accepted: numbered, stamped now, filling the next order's set fraction
        (``set_fill_fraction`` for one order) or the engine's, and open in ``orders``."""
        now = self.now_ms()
        fraction = self.next_order_fill_fraction or self.fill_fraction
        self.next_order_fill_fraction = None
        order = EngineOrder(
            order_id=self._next_order_id,
            market=market,
            client_order_id=client_id,
            side=side,
            type=kind,
            qty=qty,
            price=price,
            created_ms=now,
            placed_step=self.step_count,
            fill_fraction=fraction,
            update_ms=now,
            locked=locked,
        )
        self._next_order_id += 1
        self.orders[order.order_id] = order
        return order

    def _find_client_id(self, client_id: str, *, open_only: bool) -> EngineOrder | None:
        for order in reversed(self.orders.values()):
            if order.client_order_id == client_id and (order.is_open or not open_only):
                return order
        return None

    def find(self, params: Mapping[str, str]) -> EngineOrder:
        """The order named by ``orderId`` or ``origClientOrderId`` (the latest with that id)."""
        market = self.market(params)
        order_id = int_param(params, "orderId")
        client_id = params.get("origClientOrderId")
        order: EngineOrder | None = None
        if order_id is not None:
            order = self.orders.get(order_id)
        elif client_id:
            order = self._find_client_id(client_id, open_only=False)
        else:
            raise BinanceError(
                -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
            )
        if order is None or order.market is not market:
            raise BinanceError(-2013, "Order does not exist.")
        return order

    def cancel(self, params: Mapping[str, str]) -> tuple[EngineOrder, list[dict[str, Any]]]:
        try:
            order = self.find(params)
        except BinanceError as error:
            if error.code == -2013:
                raise BinanceError(-2011, "Unknown order sent.") from None
            raise
        if not order.is_open:
            raise BinanceError(-2011, "Unknown order sent.")
        order.status = "CANCELED"
        order.update_ms = self.now_ms()
        events = [self.execution_report(order, "CANCELED")]
        events.extend(self._release(order))
        return order, events

    def _release(self, order: EngineOrder) -> list[dict[str, Any]]:
        if not order.locked:
            return []
        asset = order.market.quote if order.side == "BUY" else order.market.base
        self.locked[asset] -= order.locked
        self.free[asset] += order.locked
        order.locked = Decimal(0)
        return [self.account_position([asset])]

    def _fill_qty(self, order: EngineOrder) -> Decimal:
        remaining = order.qty - order.executed
        step = order.market.step_size
        cap = (order.qty * order.fill_fraction / step).to_integral_value(ROUND_DOWN) * step
        return min(remaining, max(cap, step))

    def _match(self, order: EngineOrder, bar: Bar) -> list[dict[str, Any]]:
        market = order.market
        if order.type == "MARKET":
            price = bar.open
        elif order.side == "BUY" and bar.low <= order.price:
            price = min(order.price, bar.open)
        elif order.side == "SELL" and bar.high >= order.price:
            price = max(order.price, bar.open)
        else:
            return []
        qty = self._fill_qty(order)
        if order.type == "MARKET" and order.side == "BUY":
            affordable = (self.free[market.quote] / price / market.step_size).to_integral_value(ROUND_DOWN)
            qty = min(qty, affordable * market.step_size)
        events: list[dict[str, Any]] = []
        if qty > 0:
            events.extend(self._fill(order, qty, price))
        if order.type == "MARKET" and order.is_open:
            order.status = "EXPIRED"
            order.update_ms = self.now_ms()
            events.append(self.execution_report(order, "EXPIRED"))
            events.extend(self._release(order))
        return events

    def _fill(self, order: EngineOrder, qty: Decimal, price: Decimal) -> list[dict[str, Any]]:
        market = order.market
        maker = order.type == "LIMIT"
        rate = self.maker_fee if maker else self.taker_fee
        quote = qty * price
        if order.side == "BUY" and self.fees_in == "received":
            fee_asset, fee = market.base, (qty * rate).quantize(_E8, ROUND_UP)
            release = qty * order.price if order.type == "LIMIT" else Decimal(0)
            self.locked[market.quote] -= release
            order.locked -= release
            self.free[market.quote] += release - quote
            self.free[market.base] += qty - fee
        elif order.side == "BUY":  # fees in the quote asset (as Binance's fee-in-BNB, in the quote)
            fee_asset, fee = market.quote, (quote * rate).quantize(_E8, ROUND_UP)
            release = qty * order.price if order.type == "LIMIT" else Decimal(0)
            self.locked[market.quote] -= release
            order.locked -= release
            self.free[market.quote] += release - quote - fee
            self.free[market.base] += qty
        else:
            fee_asset, fee = market.quote, (quote * rate).quantize(_E8, ROUND_UP)
            self.locked[market.base] -= qty
            order.locked -= qty
            self.free[market.quote] += quote - fee
        now = self.now_ms()
        trade_id = self._next_trade_id
        self._next_trade_id += 1
        order.executed += qty
        order.cum_quote += quote
        order.status = "FILLED" if order.executed == order.qty else "PARTIALLY_FILLED"
        order.update_ms = now
        order.trade_ids.append(trade_id)
        self.trades[trade_id] = {
            "symbol": market.id,
            "id": trade_id,
            "orderId": order.order_id,
            "orderListId": -1,
            "price": fmt(price),
            "qty": fmt(qty),
            "quoteQty": fmt(quote),
            "commission": fmt(fee),
            "commissionAsset": fee_asset,
            "time": now,
            "isBuyer": order.side == "BUY",
            "isMaker": maker,
            "isBestMatch": True,
        }
        report = self.execution_report(
            order, "TRADE", last_qty=qty, last_price=price, fee=fee, fee_asset=fee_asset
        )
        report["t"] = trade_id
        report["m"] = maker
        return [report, self.account_position(sorted({market.base, market.quote}))]

    # --- views in Binance's shapes ------------------------------------------------------------

    def order_json(self, order: EngineOrder) -> dict[str, Any]:
        return {
            "symbol": order.market.id,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "price": fmt(order.price),
            "origQty": fmt(order.qty),
            "executedQty": fmt(order.executed),
            "cummulativeQuoteQty": fmt(order.cum_quote),
            "status": order.status,
            "timeInForce": "GTC",
            "type": order.type,
            "side": order.side,
            "stopPrice": "0.00000000",
            "icebergQty": "0.00000000",
            "time": order.created_ms,
            "updateTime": order.update_ms,
            "isWorking": True,
            "workingTime": order.created_ms,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "NONE",
        }

    def execution_report(
        self,
        order: EngineOrder,
        execution: str,
        *,
        last_qty: Decimal = Decimal(0),
        last_price: Decimal = Decimal(0),
        fee: Decimal = Decimal(0),
        fee_asset: str | None = None,
    ) -> dict[str, Any]:
        client_id, original = order.client_order_id, ""
        if execution == "CANCELED":
            client_id, original = f"localcancel{self._next_cancel_id}", order.client_order_id
            self._next_cancel_id += 1
        return {
            "e": "executionReport",
            "E": self.now_ms(),
            "s": order.market.id,
            "c": client_id,
            "S": order.side,
            "o": order.type,
            "f": "GTC",
            "q": fmt(order.qty),
            "p": fmt(order.price),
            "P": "0.00000000",
            "F": "0.00000000",
            "g": -1,
            "C": original,
            "x": execution,
            "X": order.status,
            "r": "NONE",
            "i": order.order_id,
            "l": fmt(last_qty),
            "z": fmt(order.executed),
            "L": fmt(last_price),
            "n": fmt(fee),
            "N": fee_asset,
            "T": order.update_ms,
            "t": -1,
            "w": order.is_open,
            "m": False,
            "O": order.created_ms,
            "Z": fmt(order.cum_quote),
            "Y": fmt(last_qty * last_price),
            "Q": "0.00000000",
            "W": order.created_ms,
            "V": "NONE",
        }

    def account_position(self, assets: Sequence[str]) -> dict[str, Any]:
        now = self.now_ms()
        return {
            "e": "outboundAccountPosition",
            "E": now,
            "u": now,
            "B": [{"a": asset, "f": fmt(self.free[asset]), "l": fmt(self.locked[asset])} for asset in assets],
        }

    def account_json(self) -> dict[str, Any]:
        return {
            "makerCommission": int(self.maker_fee * 10_000),
            "takerCommission": int(self.taker_fee * 10_000),
            "buyerCommission": 0,
            "sellerCommission": 0,
            "canTrade": True,
            "canWithdraw": False,
            "canDeposit": False,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": [
                {"asset": asset, "free": fmt(self.free[asset]), "locked": fmt(self.locked[asset])}
                for asset in sorted(self.free)
            ],
            "permissions": ["SPOT"],
            "uid": 1,
        }

    def open_orders_json(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        market = self.market(params) if params.get("symbol") else None
        return [
            self.order_json(order)
            for order in self.orders.values()
            if order.is_open and (market is None or order.market is market)
        ]

    def my_trades_json(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        market = self.market(params)
        order_id = int_param(params, "orderId")
        start = int_param(params, "startTime")
        end = int_param(params, "endTime")
        from_id = int_param(params, "fromId")
        limit = int_param(params, "limit") or 500
        if not 1 <= limit <= 1000:
            raise BinanceError(
                -1100, "Illegal characters found in parameter 'limit'; legal range is '1-1000'."
            )
        rows = [
            trade
            for trade in self.trades.values()
            if trade["symbol"] == market.id
            and (order_id is None or trade["orderId"] == order_id)
            and (start is None or trade["time"] >= start)
            and (end is None or trade["time"] <= end)
            and (from_id is None or trade["id"] >= from_id)
        ]
        return rows[:limit] if from_id is not None or start is not None else rows[-limit:]

    def klines_json(self, params: Mapping[str, str]) -> list[list[Any]]:
        market = self.market(params)
        interval = params.get("interval")
        if not interval:
            raise _missing("interval")
        if interval != market.interval:
            raise BinanceError(
                -1120,
                f"Invalid interval: the local exchange plays {market.id} in {market.interval} bars only.",
            )
        start = int_param(params, "startTime")
        end = int_param(params, "endTime")
        limit = int_param(params, "limit") or 500
        if not 1 <= limit <= 1000:
            raise BinanceError(
                -1100, "Illegal characters found in parameter 'limit'; legal range is '1-1000'."
            )
        length = INTERVAL_MS[market.interval]
        bars = [
            bar
            for bar in self.played[market.id]
            if (start is None or bar.open_ms >= start) and (end is None or bar.open_ms <= end)
        ]
        bars = bars[:limit] if start is not None else bars[-limit:]
        return [
            [
                bar.open_ms,
                fmt(bar.open),
                fmt(bar.high),
                fmt(bar.low),
                fmt(bar.close),
                fmt(bar.volume),
                bar.open_ms + length - 1,
                fmt(bar.volume * bar.close),
                0,
                "0.00000000",
                "0.00000000",
                "0",
            ]
            for bar in bars
        ]

    def exchange_info_json(self) -> dict[str, Any]:
        symbols = [_symbol_info(market) for market in self.markets.values()]
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }


def _symbol_info(market: LocalMarket) -> dict[str, Any]:
    return {
        "symbol": market.id,
        "status": "TRADING",
        "baseAsset": market.base,
        "baseAssetPrecision": 8,
        "quoteAsset": market.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": False,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt(market.tick_size),
                "maxPrice": "0.00000000",
                "tickSize": fmt(market.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt(market.min_qty or market.step_size),
                "maxQty": "9000000000.00000000",
                "stepSize": fmt(market.step_size),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": fmt(market.min_notional),
                "applyMinToMarket": True,
                "maxNotional": "9000000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }
