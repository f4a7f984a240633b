"""The local exchange's USD-M perpetuals account: Binance's ``/fapi`` semantics, reduced to bars. No I/O.

One cross-margin account in one-way mode (``positionSide`` ``BOTH``) whose margin asset is the
markets' quote (USDT), on top of ``_engine.Engine``'s markets, played bars, filters, client order
ids and matching prices:

* a **position** per symbol is a signed quantity (short below zero) and its cost (``|qty| x entry``
  as an exact decimal). A fill that reduces it realizes ``qty x (price - entry)`` (a long; the
  reverse for a short), rounded half-even to 1e-8, and takes exactly ``qty x price - realized``
  out of the cost, so realized profits plus traded notionals always equal the cost left; a fill
  that crosses zero closes, then opens the rest;
* the **wallet balance** (USDT) moves by realized profit, fees (``qty x price x rate`` rounded up
  to 1e-8, always in USDT: taker for market orders, maker for limits) and funding; opening a
  position costs nothing but margin;
* **margin**: an order that adds exposure needs ``qty x price / leverage`` of the available
  balance (wallet + unrealized profit at the last close - the margin of positions and of other
  open orders that add exposure), else ``-2019 Margin is insufficient.``; no liquidation;
* **funding** is settled at each funding time of the market's funding table (``LocalMarket.funding``,
  from the data set's ``funding.parquet``) that falls in a bar (after its open, at or before its
  close): when that bar is played, *before* its matching (on the positions held when the bar
  starts: its fills are stamped with the bar's close, after the funding time), at the mark the
  data set states at that funding time (``LocalMarket.funding_marks``, ``funding.parquet``'s
  ``mark``), else the bar's close (the prices a backtest books funding at): ``position x mark x rate``
  rounded half-even to 1e-8 goes out of the wallet (a positive rate: longs pay, shorts receive)
  as a ``FUNDING_FEE`` income row and an ``ACCOUNT_UPDATE``. A funding time before the first bar
  played is not settled (no position could be open);
* the **mark price** is the last close played (the index price too): ``premiumIndex`` and the
  ``markPriceUpdate`` stream state it with the next funding time and that time's rate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_UP, Decimal
from typing import Any

from venues.local_exchange._data import INTERVAL_MS, Bar, LocalMarket
from venues.local_exchange._engine import (
    BinanceError,
    Engine,
    EngineOrder,
    StepResult,
    fmt,
    int_param,
)

__all__ = ["FuturesEngine"]

_E8 = Decimal("1e-8")


def _round8(value: Decimal) -> Decimal:
    return value.quantize(_E8, ROUND_HALF_EVEN)


@dataclass
class _Position:
    qty: Decimal = Decimal(0)  # signed: short < 0
    cost: Decimal = Decimal(0)  # |qty| x entry, exact
    update_ms: int = 0

    @property
    def entry(self) -> Decimal:
        return (self.cost / abs(self.qty)) if self.qty else Decimal(0)


class FuturesEngine(Engine):
    """One USD-M account on a set of perpetuals (module docstring)."""

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
        leverage: int = 10,
    ) -> None:
        super().__init__(
            markets,
            balances,
            maker_fee=maker_fee,
            taker_fee=taker_fee,
            fill_fraction=fill_fraction,
            unique_client_ids=unique_client_ids,
            clock=clock,
            fees_in="quote",
        )
        quotes = {market.quote for market in markets}
        if len(quotes) != 1:
            raise ValueError(f"a USD-M account has one margin asset; the markets settle in {sorted(quotes)}")
        if not 1 <= leverage <= 125:
            raise ValueError(f"leverage must be 1..125, got {leverage}")
        self.asset = quotes.pop()
        self.leverage = Decimal(leverage)
        self.positions: dict[str, _Position] = {market.id: _Position() for market in markets}
        self.income: list[dict[str, Any]] = []
        self.funding_settled: dict[str, list[dict[str, Any]]] = {market.id: [] for market in markets}
        first = self.timeline[0] if self.timeline else 0
        self._next_funding = {
            market.id: sum(1 for time_ms, _ in market.funding if time_ms < first) for market in markets
        }
        self._next_tran_id = 1
        # The account's position mode: one-way (``BOTH``) unless set to hedge mode, where Binance
        # wants ``positionSide`` LONG / SHORT on every order (this exchange then refuses orders
        # without one, as Binance does, and trades none with one: hedge mode is not modelled).
        self.hedge_mode = False

    @property
    def wallet(self) -> Decimal:
        return self.free[self.asset]

    # --- time ---------------------------------------------------------------------------------

    def step(self) -> StepResult:
        """Funding falling in this bar time first (on the positions held when it starts), then
        the bar's matching."""
        funding: list[dict[str, Any]] = []
        if self.step_count < len(self.timeline):
            open_ms = self.timeline[self.step_count]
            for market_id in sorted(self.markets):
                bar = self._bar_at[market_id].get(open_ms)
                if bar is not None:
                    funding.extend(self._settle_funding(self.markets[market_id], bar))
        result = super().step()
        result.events[:0] = funding
        return result

    def mark_price(self, market: LocalMarket) -> Decimal:
        price = self.last_price(market)
        if price is None:
            bars = market.bars
            return bars[0].open if bars else Decimal(0)
        return price

    def next_funding(self, market: LocalMarket) -> tuple[int, Decimal]:
        """The next funding time not settled yet and its rate (0, 0 after the table's end)."""
        index = self._next_funding[market.id]
        return market.funding[index] if index < len(market.funding) else (0, Decimal(0))

    def _settle_funding(self, market: LocalMarket, bar: Bar) -> list[dict[str, Any]]:
        close_ms = bar.open_ms + INTERVAL_MS[market.interval]
        events: list[dict[str, Any]] = []
        while self._next_funding[market.id] < len(market.funding):
            time_ms, rate = market.funding[self._next_funding[market.id]]
            if time_ms > close_ms:
                break
            self._next_funding[market.id] += 1
            mark = market.funding_marks.get(time_ms, bar.close)
            self.funding_settled[market.id].append(
                {
                    "symbol": market.id,
                    "fundingTime": time_ms,
                    "fundingRate": fmt(rate),
                    "markPrice": fmt(mark),
                }
            )
            position = self.positions[market.id]
            if not position.qty:
                continue
            amount = -_round8(position.qty * mark * rate)
            if not amount:
                continue
            self.free[self.asset] += amount
            self.income.append(
                {
                    "symbol": market.id,
                    "incomeType": "FUNDING_FEE",
                    "income": fmt(amount),
                    "asset": self.asset,
                    "info": "FUNDING_FEE",
                    "time": time_ms,
                    "tranId": self._next_tran_id,
                    "tradeId": "",
                }
            )
            self._next_tran_id += 1
            events.append(self.account_update("FUNDING_FEE", [market]))
        return events

    # --- orders -------------------------------------------------------------------------------

    def _margin_need(self, market: LocalMarket, side: str, qty: Decimal, price: Decimal) -> Decimal:
        """The margin an order needs: none for the part that reduces the position."""
        position = self.positions[market.id].qty
        signed = qty if side == "BUY" else -qty
        if position and (position > 0) != (signed > 0):
            qty = max(Decimal(0), qty - abs(position))
        return qty * price / self.leverage

    def available(self, *, excluding: EngineOrder | None = None) -> Decimal:
        used = Decimal(0)
        unrealized = Decimal(0)
        for market_id, position in self.positions.items():
            market = self.markets[market_id]
            mark = self.mark_price(market)
            used += abs(position.qty) * mark / self.leverage
            unrealized += self._unrealized(position, mark)
        for order in self.orders.values():
            if order.is_open and order is not excluding:
                price = order.price or self.mark_price(order.market)
                used += self._margin_need(order.market, order.side, order.qty - order.executed, price)
        return self.wallet + unrealized - used

    @staticmethod
    def _unrealized(position: _Position, mark: Decimal) -> Decimal:
        if not position.qty:
            return Decimal(0)
        return position.qty * mark - (position.cost if position.qty > 0 else -position.cost)

    def place(self, params: Mapping[str, str]) -> tuple[EngineOrder, list[dict[str, Any]]]:
        market, side, kind, qty, price = self._shape(params)
        if self.hedge_mode:
            if params.get("positionSide", "BOTH") == "BOTH":
                raise BinanceError(-4061, "Order's position side does not match user's setting.")
            raise BinanceError(-1106, "Parameter 'positionSide' sent when not required.")  # not modelled
        if params.get("reduceOnly") in ("true", "True"):
            raise BinanceError(-1106, "Parameter 'reduceOnly' sent when not required.")
        reference = price if kind == "LIMIT" else self.last_price(market)
        if reference is None:
            raise BinanceError(-2010, "Market order refused: no bar has been played for this symbol yet.")
        if qty * reference < market.min_notional:
            raise BinanceError(-4164, f"Order's notional must be no smaller than {fmt(market.min_notional)}")
        client_id = self._client_id(params)
        if self._margin_need(market, side, qty, reference) > self.available():
            raise BinanceError(-2019, "Margin is insufficient.")
        order = self._open_order(market, client_id, side, kind, qty, price)
        return order, [self.execution_report(order, "NEW")]

    def _match(self, order: EngineOrder, bar: Bar) -> list[dict[str, Any]]:
        if order.type == "MARKET":
            price = bar.open
        elif order.side == "BUY" and bar.low <= order.price:
            price = min(order.price, bar.open)
        elif order.side == "SELL" and bar.high >= order.price:
            price = max(order.price, bar.open)
        else:
            return []
        events = self._fill(order, self._fill_qty(order), price)
        if order.type == "MARKET" and order.is_open:
            order.status = "EXPIRED"
            order.update_ms = self.now_ms()
            events.append(self.execution_report(order, "EXPIRED"))
        return events

    def _fill(self, order: EngineOrder, qty: Decimal, price: Decimal) -> list[dict[str, Any]]:
        market = order.market
        maker = order.type == "LIMIT"
        rate = self.maker_fee if maker else self.taker_fee
        fee = (qty * price * rate).quantize(_E8, ROUND_UP)
        realized = self._trade_position(
            self.positions[market.id], 1 if order.side == "BUY" else -1, qty, price
        )
        self.free[self.asset] += realized - fee
        now = self.now_ms()
        self.positions[market.id].update_ms = now
        trade_id = self._next_trade_id
        self._next_trade_id += 1
        order.executed += qty
        order.cum_quote += qty * price
        order.status = "FILLED" if order.executed == order.qty else "PARTIALLY_FILLED"
        order.update_ms = now
        order.trade_ids.append(trade_id)
        self.trades[trade_id] = {
            "symbol": market.id,
            "id": trade_id,
            "orderId": order.order_id,
            "side": order.side,
            "price": fmt(price),
            "qty": fmt(qty),
            "realizedPnl": fmt(realized),
            "marginAsset": self.asset,
            "quoteQty": fmt(qty * price),
            "commission": fmt(fee),
            "commissionAsset": self.asset,
            "time": now,
            "positionSide": "BOTH",
            "buyer": order.side == "BUY",
            "maker": maker,
        }
        report = self.execution_report(
            order, "TRADE", last_qty=qty, last_price=price, fee=fee, fee_asset=self.asset
        )
        report["o"]["t"] = trade_id
        report["o"]["m"] = maker
        report["o"]["rp"] = fmt(realized)
        return [report, self.account_update("ORDER", [market])]

    @staticmethod
    def _trade_position(position: _Position, sign: int, qty: Decimal, price: Decimal) -> Decimal:
        """Apply a fill of ``sign x qty`` at ``price``; the profit it realizes (1e-8)."""
        realized = Decimal(0)
        if position.qty and (position.qty > 0) != (sign > 0):  # reduces first
            closing = min(qty, abs(position.qty))
            held = abs(position.qty)
            share = position.cost * closing / held if closing != held else position.cost
            if position.qty > 0:
                realized = _round8(closing * price - share)
                position.cost -= closing * price - realized
            else:
                realized = _round8(share - closing * price)
                position.cost -= realized + closing * price
            position.qty += sign * closing
            if not position.qty:
                position.cost = Decimal(0)
            qty -= closing
        if qty:
            position.qty += sign * qty
            position.cost += qty * price
        return realized

    # --- views in Binance's USD-M shapes ------------------------------------------------------

    def order_json(self, order: EngineOrder) -> dict[str, Any]:
        average = order.cum_quote / order.executed if order.executed else Decimal(0)
        return {
            "orderId": order.order_id,
            "symbol": order.market.id,
            "status": order.status,
            "clientOrderId": order.client_order_id,
            "price": fmt(order.price),
            "avgPrice": fmt(_round8(average)),
            "origQty": fmt(order.qty),
            "executedQty": fmt(order.executed),
            "cumQty": fmt(order.executed),
            "cumQuote": fmt(order.cum_quote),
            "timeInForce": "GTC",
            "type": order.type,
            "reduceOnly": False,
            "closePosition": False,
            "side": order.side,
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": order.type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE",
            "goodTillDate": 0,
            "time": order.created_ms,
            "updateTime": order.update_ms,
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
        now = self.now_ms()
        average = order.cum_quote / order.executed if order.executed else Decimal(0)
        return {
            "e": "ORDER_TRADE_UPDATE",
            "E": now,
            "T": order.update_ms,
            "o": {
                "s": order.market.id,
                "c": order.client_order_id,
                "S": order.side,
                "o": order.type,
                "f": "GTC",
                "q": fmt(order.qty),
                "p": fmt(order.price),
                "ap": fmt(_round8(average)),
                "sp": "0",
                "x": execution,
                "X": order.status,
                "i": order.order_id,
                "l": fmt(last_qty),
                "z": fmt(order.executed),
                "L": fmt(last_price),
                "N": fee_asset or self.asset,
                "n": fmt(fee),
                "T": order.update_ms,
                "t": 0,
                "b": "0",
                "a": "0",
                "m": False,
                "R": False,
                "wt": "CONTRACT_PRICE",
                "ot": order.type,
                "ps": "BOTH",
                "cp": False,
                "rp": "0",
                "pP": False,
                "si": 0,
                "ss": 0,
                "V": "NONE",
                "pm": "NONE",
                "gtd": 0,
            },
        }

    def account_update(self, reason: str, markets: Sequence[LocalMarket]) -> dict[str, Any]:
        now = self.now_ms()
        return {
            "e": "ACCOUNT_UPDATE",
            "E": now,
            "T": now,
            "a": {
                "m": reason,
                "B": [{"a": self.asset, "wb": fmt(self.wallet), "cw": fmt(self.wallet), "bc": "0"}],
                "P": [self._position_event(market) for market in markets],
            },
        }

    def _position_event(self, market: LocalMarket) -> dict[str, Any]:
        position = self.positions[market.id]
        return {
            "s": market.id,
            "pa": fmt(position.qty),
            "ep": fmt(_round8(position.entry)),
            "bep": fmt(_round8(position.entry)),
            "cr": "0",
            "up": fmt(_round8(self._unrealized(position, self.mark_price(market)))),
            "mt": "cross",
            "iw": "0",
            "ps": "BOTH",
        }

    def position_risk_json(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        market = self.market(params) if params.get("symbol") else None
        rows = []
        for market_id, position in sorted(self.positions.items()):
            if market is not None and market.id != market_id:
                continue
            if not position.qty:
                continue
            m = self.markets[market_id]
            mark = self.mark_price(m)
            margin = abs(position.qty) * mark / self.leverage
            rows.append(
                {
                    "symbol": market_id,
                    "positionSide": "BOTH",
                    "positionAmt": fmt(position.qty),
                    "entryPrice": fmt(_round8(position.entry)),
                    "breakEvenPrice": fmt(_round8(position.entry)),
                    "markPrice": fmt(mark),
                    "unRealizedProfit": fmt(_round8(self._unrealized(position, mark))),
                    "liquidationPrice": "0",
                    "isolatedMargin": "0",
                    "notional": fmt(position.qty * mark),
                    "marginAsset": self.asset,
                    "isolatedWallet": "0",
                    "initialMargin": fmt(_round8(margin)),
                    "maintMargin": "0",
                    "positionInitialMargin": fmt(_round8(margin)),
                    "openOrderInitialMargin": "0",
                    "adl": 0,
                    "bidNotional": "0",
                    "askNotional": "0",
                    "updateTime": position.update_ms,
                }
            )
        return rows

    def account_json(self) -> dict[str, Any]:
        unrealized = sum(
            (self._unrealized(p, self.mark_price(self.markets[mid])) for mid, p in self.positions.items()),
            Decimal(0),
        )
        available = _round8(self.available())
        wallet, margin_balance = fmt(self.wallet), fmt(_round8(self.wallet + unrealized))
        asset = {
            "asset": self.asset,
            "walletBalance": wallet,
            "unrealizedProfit": fmt(_round8(unrealized)),
            "marginBalance": margin_balance,
            "maintMargin": "0",
            "initialMargin": "0",
            "positionInitialMargin": "0",
            "openOrderInitialMargin": "0",
            "crossWalletBalance": wallet,
            "crossUnPnl": fmt(_round8(unrealized)),
            "availableBalance": fmt(available),
            "maxWithdrawAmount": fmt(available),
            "updateTime": self.now_ms(),
        }
        return {
            "totalInitialMargin": "0",
            "totalMaintMargin": "0",
            "totalWalletBalance": wallet,
            "totalUnrealizedProfit": fmt(_round8(unrealized)),
            "totalMarginBalance": margin_balance,
            "totalPositionInitialMargin": "0",
            "totalOpenOrderInitialMargin": "0",
            "totalCrossWalletBalance": wallet,
            "totalCrossUnPnl": fmt(_round8(unrealized)),
            "availableBalance": fmt(available),
            "maxWithdrawAmount": fmt(available),
            "assets": [asset],
            "positions": [
                {
                    "symbol": row["symbol"],
                    "positionSide": "BOTH",
                    "positionAmt": row["positionAmt"],
                    "unrealizedProfit": row["unRealizedProfit"],
                    "isolatedMargin": "0",
                    "notional": row["notional"],
                    "isolatedWallet": "0",
                    "initialMargin": row["initialMargin"],
                    "maintMargin": "0",
                    "updateTime": row["updateTime"],
                }
                for row in self.position_risk_json({})
            ],
        }

    def balance_json(self) -> list[dict[str, Any]]:
        account = self.account_json()["assets"][0]
        return [
            {
                "accountAlias": "local",
                "asset": self.asset,
                "balance": account["walletBalance"],
                "crossWalletBalance": account["crossWalletBalance"],
                "crossUnPnl": account["crossUnPnl"],
                "availableBalance": account["availableBalance"],
                "maxWithdrawAmount": account["maxWithdrawAmount"],
                "marginAvailable": True,
                "updateTime": account["updateTime"],
            }
        ]

    def leverage_bracket_json(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """One bracket per symbol: the account's leverage, no maintenance tiers (no liquidation)."""
        markets = [self.market(params)] if params.get("symbol") else list(self.markets.values())
        return [
            {
                "symbol": market.id,
                "notionalCoef": 1.0,
                "brackets": [
                    {
                        "bracket": 1,
                        "initialLeverage": int(self.leverage),
                        "notionalCap": 9000000000,
                        "notionalFloor": 0,
                        "maintMarginRatio": 0.025,
                        "cum": 0.0,
                    }
                ],
            }
            for market in markets
        ]

    def premium_index_json(self, params: Mapping[str, str]) -> dict[str, Any] | list[dict[str, Any]]:
        def row(market: LocalMarket) -> dict[str, Any]:
            mark = self.mark_price(market)
            next_ms, rate = self.next_funding(market)
            return {
                "symbol": market.id,
                "markPrice": fmt(mark),
                "indexPrice": fmt(mark),
                "estimatedSettlePrice": fmt(mark),
                "lastFundingRate": fmt(rate),
                "interestRate": "0.00010000",
                "nextFundingTime": next_ms,
                "time": self.now_ms(),
            }

        if params.get("symbol"):
            return row(self.market(params))
        return [row(market) for market in self.markets.values()]

    def position_mode_json(self) -> dict[str, Any]:
        """``GET /fapi/v1/positionSide/dual``: whether the account is in hedge mode."""
        return {"dualSidePosition": self.hedge_mode}

    def mark_price_event(self, market: LocalMarket) -> dict[str, Any]:
        mark = self.mark_price(market)
        next_ms, rate = self.next_funding(market)
        return {
            "e": "markPriceUpdate",
            "E": self.now_ms(),
            "s": market.id,
            "p": fmt(mark),
            "ap": fmt(mark),
            "P": fmt(mark),
            "i": fmt(mark),
            "r": fmt(rate),
            "T": next_ms,
        }

    def funding_rate_json(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        start, end = int_param(params, "startTime"), int_param(params, "endTime")
        limit = int_param(params, "limit") or 100
        if not 1 <= limit <= 1000:
            raise BinanceError(
                -1100, "Illegal characters found in parameter 'limit'; legal range is '1-1000'."
            )
        markets = [self.market(params)] if params.get("symbol") else list(self.markets.values())
        rows = [
            row
            for market in markets
            for row in self.funding_settled[market.id]
            if (start is None or row["fundingTime"] >= start) and (end is None or row["fundingTime"] <= end)
        ]
        rows.sort(key=lambda row: (row["fundingTime"], row["symbol"]))
        return rows[:limit] if start is not None else rows[-limit:]

    def income_json(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        start, end = int_param(params, "startTime"), int_param(params, "endTime")
        limit = int_param(params, "limit") or 100
        symbol = self.market(params).id if params.get("symbol") else None
        kind = params.get("incomeType")
        rows = [
            row
            for row in self.income
            if (symbol is None or row["symbol"] == symbol)
            and (not kind or row["incomeType"] == kind)
            and (start is None or row["time"] >= start)
            and (end is None or row["time"] <= end)
        ]
        return rows[:limit]

    def exchange_info_json(self) -> dict[str, Any]:
        info = super().exchange_info_json()
        info["futuresType"] = "U_MARGINED"
        info["assets"] = [{"asset": self.asset, "marginAvailable": True, "autoAssetExchange": "0"}]
        info["symbols"] = [_perp_info(market) for market in self.markets.values()]
        return info


def _perp_info(market: LocalMarket) -> dict[str, Any]:
    def places(step: Decimal) -> int:
        return max(0, -step.normalize().as_tuple().exponent)  # type: ignore[operator]

    return {
        "symbol": market.id,
        "pair": market.id,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": market.base,
        "quoteAsset": market.quote,
        "marginAsset": market.quote,
        "pricePrecision": places(market.tick_size),
        "quantityPrecision": places(market.step_size),
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt(market.tick_size),
                "maxPrice": "1000000",
                "tickSize": fmt(market.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt(market.min_qty or market.step_size),
                "maxQty": "9000000000",
                "stepSize": fmt(market.step_size),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": fmt(market.min_qty or market.step_size),
                "maxQty": "9000000000",
                "stepSize": fmt(market.step_size),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": fmt(market.min_notional)},
        ],
        "orderTypes": ["LIMIT", "MARKET"],
        "timeInForce": ["GTC"],
    }
