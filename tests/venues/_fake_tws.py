"""A loopback fake of TWS / IB Gateway speaking the TWS socket protocol (server version 176) for
the messages ib_async 2.1.0 sends in these tests: the handshake and START_API, the startup sync
(positions, open orders, completed orders, account updates, account updates multi, executions),
contract details, place / cancel order, ids. It answers the way TWS does on the wire: framed
NUL-separated text fields (4-byte big-endian length), OPEN_ORDER laid out field by field as the
decoder reads it, ORDER_STATUS, EXECUTION_DATA then COMMISSION_REPORT, ERR_MSG. Faults are
injected on request: errors (connectivity 1100/1101/1102, rejects, pacing), duplicated
executions, commission reports held back, a dropped connection. 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

SERVER_VERSION = 176


@dataclass
class FakeContract:
    con_id: int
    symbol: str
    sec_type: str  # STK, FUT, OPT
    exchange: str
    currency: str
    local_symbol: str
    primary_exchange: str = ""
    last_trade: str = ""
    strike: str = ""
    right: str = ""
    multiplier: str = ""
    min_tick: str = "0.01"
    trading_class: str = ""

    def matches(self, f: list[str]) -> bool:
        """A contract request's 12 fields (conId, symbol, secType, expiry, strike, right,
        multiplier, exchange, primaryExchange, currency, localSymbol, tradingClass)."""
        con_id, symbol, sec_type, expiry, strike, right, mult, _exch, _prim, cur, local, _tc = f
        if con_id not in ("", "0"):
            return int(con_id) == self.con_id
        if sec_type and sec_type != self.sec_type:
            return False
        if local and local != self.local_symbol:
            return False
        if symbol and symbol != self.symbol:
            return False
        if cur and cur != self.currency:
            return False
        if expiry and expiry != self.last_trade:
            return False
        if strike and float(strike) != float(self.strike or 0):
            return False
        if right and right != self.right:
            return False
        return not (mult and mult != self.multiplier)

    def short(self) -> list[Any]:
        """The 11 contract fields of POSITION / OPEN_ORDER (no primaryExchange)."""
        return [
            self.con_id,
            self.symbol,
            self.sec_type,
            self.last_trade,
            self.strike or "0",
            self.right,
            self.multiplier,
            self.exchange,
            self.currency,
            self.local_symbol,
            self.trading_class,
        ]


@dataclass
class FakeOrder:
    order_id: int
    client_id: int
    perm_id: int
    contract: FakeContract
    action: str
    qty: float
    order_type: str
    lmt: str
    aux: str
    tif: str
    order_ref: str
    account: str
    status: str = "Submitted"
    filled: float = 0.0
    avg_price: float = 0.0


@dataclass
class FakeExec:
    exec_id: str
    order: FakeOrder
    shares: float
    price: str
    commission: str
    currency: str
    time: str = "20250102 15:30:00 UTC"
    cum_qty: float = 0.0


@dataclass
class FakeTws:
    """The fake TWS. ``contracts`` it knows, ``fills`` how market orders fill:
    a list of (shares, price, commission) per execution; limit orders rest until ``fill``."""

    contracts: list[FakeContract]
    account: str = "DU1234567"
    next_valid_id: int = 1
    cash: dict[str, str] = field(default_factory=lambda: {"USD": "100000.00"})
    positions: dict[int, float] = field(default_factory=dict)  # conId -> position
    market_fills: dict[str, list[tuple[float, str, str]]] = field(default_factory=dict)  # orderRef
    reject: dict[str, tuple[int, str]] = field(default_factory=dict)  # orderRef -> (code, text)
    pace_once: set[str] = field(default_factory=set)  # orderRefs refused once with error 100
    pace_requests: int = 0  # the next reqExecutions answered with error 100 (pacing)
    refuse_cancel: bool = False  # answer cancels with 10148 (as for an order that just filled)
    duplicate_execs: bool = False  # send each live execution twice
    hold_commissions: bool = False  # send commission reports only when released
    orders: dict[int, FakeOrder] = field(default_factory=dict)
    executions: list[FakeExec] = field(default_factory=list)
    received: list[list[str]] = field(default_factory=list)
    held: list[FakeExec] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self._server: asyncio.base_events.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._client_ids: dict[asyncio.StreamWriter, int] = {}
        self._perm = 9000
        self._exec_n = 0
        self.port = 0

    # --- server ------------------------------------------------------------------------------

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        await self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def drop(self) -> None:
        """Close every client connection (TWS restarted, network cut)."""
        for writer in list(self._writers):
            writer.close()
            with _suppress():
                await writer.wait_closed()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            prefix = await reader.readexactly(4)
            assert prefix == b"API\0", prefix
            await self._frame(reader)  # "v157..178"
            self._send(writer, [SERVER_VERSION, "20250102 10:00:00 UTC"])
            while True:
                fields = await self._frame(reader)
                self.received.append(fields)
                self._handle(writer, fields)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if writer in self._writers:
                self._writers.remove(writer)
            writer.close()

    @staticmethod
    async def _frame(reader: asyncio.StreamReader) -> list[str]:
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        text = (await reader.readexactly(size)).decode()
        return text.split("\0")[:-1]

    @staticmethod
    def _send(writer: asyncio.StreamWriter, fields: list[Any]) -> None:
        body = "".join(f"{value}\0" for value in fields).encode()
        writer.write(struct.pack(">I", len(body)) + body)

    def broadcast(self, fields: list[Any]) -> None:
        for writer in self._writers:
            self._send(writer, fields)

    # --- requests ----------------------------------------------------------------------------

    def _handle(self, w: asyncio.StreamWriter, f: list[str]) -> None:
        handlers: dict[int, Callable[[asyncio.StreamWriter, list[str]], None]] = {
            71: self._start_api,
            61: self._positions,
            5: self._open_orders,
            99: lambda w, f: self._send(w, [102]),  # reqCompletedOrders: none kept here
            6: self._account_updates,
            76: lambda w, f: self._send(w, [74, 1, int(f[2])]),  # reqAccountUpdatesMulti: reqId
            7: self._executions,
            9: self._contract_details,
            3: self._place,
            4: lambda w, f: self._cancel(w, int(f[2])),  # cancelOrder: version, orderId, time
            8: lambda w, f: self._send(w, [9, 1, self._next_id()]),  # reqIds
        }
        handler = handlers.get(int(f[0]))
        if handler is not None:
            handler(w, f)

    def _next_id(self) -> int:
        return max([self.next_valid_id, *[o.order_id + 1 for o in self.orders.values()]])

    def _start_api(self, w: asyncio.StreamWriter, f: list[str]) -> None:
        """START_API: version, clientId, optional capabilities."""
        self._client_ids[w] = int(f[2])
        self._send(w, [15, 1, self.account])
        self._send(w, [9, 1, self.next_valid_id])

    def _positions(self, w: asyncio.StreamWriter, f: list[str]) -> None:
        for contract in self.contracts:
            qty = self.positions.get(contract.con_id)
            if qty:
                self._send(w, [61, 3, self.account, *contract.short(), qty, "100.0"])
        self._send(w, [62, 1])

    def _open_orders(self, w: asyncio.StreamWriter, f: list[str]) -> None:
        for order in self.orders.values():
            if order.client_id == self._client_ids[w] and order.status not in ("Filled", "Cancelled"):
                self._open_order(w, order)
                self._status(w, order)
        self._send(w, [53, 1])

    def _account_updates(self, w: asyncio.StreamWriter, f: list[str]) -> None:
        """reqAccountUpdates: version, subscribe, account."""
        for currency, value in self.cash.items():
            self._send(w, [6, 2, "CashBalance", value, currency, self.account])
        self._send(w, [6, 2, "NetLiquidation", next(iter(self.cash.values())), "USD", self.account])
        self._send(w, [54, 1, self.account])

    def _executions(self, w: asyncio.StreamWriter, f: list[str]) -> None:
        """reqExecutions: version, reqId, clientId filter (0: all), ..."""
        req_id, client_filter = int(f[2]), int(f[3] or 0)
        if self.pace_requests > 0:
            self.pace_requests -= 1
            self._error(w, req_id, 100, "Max rate of messages per second has been exceeded:max=50 rec=51")
            return
        for ex in self.executions:
            if client_filter in (0, ex.order.client_id):
                self._exec(w, ex, req_id)
                self._commission(w, ex)
        self._send(w, [55, 1, req_id])

    def _contract_details(self, w: asyncio.StreamWriter, f: list[str]) -> None:
        """reqContractDetails: version, reqId, contract (12 fields), ..."""
        req_id = int(f[2])
        found = [c for c in self.contracts if c.matches(f[3:15])]
        if not found:
            self._error(w, req_id, 200, "No security definition has been found for the request")
            return
        for contract in found:
            self._details(w, req_id, contract)
        self._send(w, [52, 1, req_id])

    def _place(self, w: asyncio.StreamWriter, f: list[str]) -> None:
        order_id = int(f[1])
        con_id = int(f[2])
        contract = next(c for c in self.contracts if c.con_id == con_id)
        order_ref = f[26]
        if order_ref in self.pace_once:
            self.pace_once.discard(order_ref)
            self._error(w, order_id, 100, "Max rate of messages per second has been exceeded:max=50 rec=56")
            return
        if order_ref in self.reject:
            code, text = self.reject[order_ref]
            self._error(w, order_id, code, text)
            return
        self._perm += 1
        order = FakeOrder(
            order_id=order_id,
            client_id=self._client_ids[w],
            perm_id=self._perm,
            contract=contract,
            action=f[16],
            qty=float(f[17]),
            order_type=f[18],
            lmt=f[19],
            aux=f[20],
            tif=f[21],
            order_ref=order_ref,
            account=f[23],
        )
        self.orders[order_id] = order
        self._open_order(w, order)
        self._status(w, order)
        for shares, price, commission in self.market_fills.get(order_ref, []):
            self.fill(order_id, shares, price, commission)

    def fill(self, order_id: int, shares: float, price: str, commission: str) -> FakeExec:
        """An execution of an open order, sent live to its client: EXECUTION_DATA, ORDER_STATUS,
        then COMMISSION_REPORT (unless held back)."""
        order = self.orders[order_id]
        self._exec_n += 1
        order.avg_price = (order.avg_price * order.filled + shares * float(price)) / (order.filled + shares)
        order.filled += shares
        order.status = "Filled" if order.filled >= order.qty else "Submitted"
        ex = FakeExec(
            exec_id=f"0000e0d5.6757{self._exec_n:04d}.01.01",
            order=order,
            shares=shares,
            price=price,
            commission=commission,
            currency=order.contract.currency,
            cum_qty=order.filled,
        )
        self.executions.append(ex)
        sign = 1 if order.action == "BUY" else -1
        paid = Decimal(str(shares)) * Decimal(price) * Decimal(order.contract.multiplier or "1")
        cash = Decimal(self.cash[ex.currency]) - sign * paid - Decimal(commission)
        self.cash[ex.currency] = str(cash)
        self.broadcast([6, 2, "CashBalance", self.cash[ex.currency], ex.currency, self.account])
        self.positions[order.contract.con_id] = self.positions.get(order.contract.con_id, 0) + sign * shares
        for writer in self._owners(order):
            self._exec(writer, ex, -1)
            if self.duplicate_execs:
                self._exec(writer, ex, -1)
            self._status(writer, order)
            if self.hold_commissions:
                self.held.append(ex)
            else:
                self._commission(writer, ex)
        return ex

    def release_commissions(self) -> None:
        for ex in self.held:
            for writer in self._owners(ex.order):
                self._commission(writer, ex)
        self.held.clear()

    def _owners(self, order: FakeOrder) -> list[asyncio.StreamWriter]:
        return [w for w in self._writers if self._client_ids.get(w) == order.client_id]

    def _cancel(self, w: asyncio.StreamWriter, order_id: int) -> None:
        order = self.orders.get(order_id)
        if order is None:
            self._error(w, order_id, 135, f"Can't find order with id ={order_id}")
        elif order.status in ("Filled", "Cancelled") or self.refuse_cancel:
            self._error(
                w,
                order_id,
                10148,
                f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {order.status}.",
            )
        else:
            order.status = "Cancelled"
            self._status(w, order)
            self._error(w, order_id, 202, "Order Canceled - reason:")

    # --- messages ----------------------------------------------------------------------------

    def _error(self, w: asyncio.StreamWriter, req_id: int, code: int, text: str) -> None:
        self._send(w, [4, 2, req_id, code, text, ""])

    def error_all(self, req_id: int, code: int, text: str) -> None:
        self.broadcast([4, 2, req_id, code, text, ""])

    def _status(self, w: asyncio.StreamWriter, o: FakeOrder) -> None:
        self._send(
            w,
            [
                3,
                o.order_id,
                o.status,
                o.filled,
                o.qty - o.filled,
                o.avg_price,
                o.perm_id,
                0,
                o.avg_price,
                o.client_id,
                "",
                0,
            ],
        )

    def _exec(self, w: asyncio.StreamWriter, ex: FakeExec, req_id: int) -> None:
        o, c = ex.order, ex.order.contract
        self._send(
            w,
            [
                11, req_id, o.order_id, *c.short(),
                ex.exec_id, ex.time, self.account, c.exchange, "BOT" if o.action == "BUY" else "SLD",
                ex.shares, ex.price, o.perm_id, o.client_id, 0, ex.cum_qty, o.avg_price, o.order_ref,
                "", "", "", 2,
            ],
        )  # fmt: skip

    def _commission(self, w: asyncio.StreamWriter, ex: FakeExec) -> None:
        self._send(
            w,
            [
                59,
                1,
                ex.exec_id,
                ex.commission,
                ex.currency,
                "1.7976931348623157E308",
                "1.7976931348623157E308",
                "",
            ],
        )

    def _details(self, w: asyncio.StreamWriter, req_id: int, c: FakeContract) -> None:
        self._send(
            w,
            [
                10, req_id, c.symbol, c.sec_type, c.last_trade, c.strike or "0", c.right, c.exchange,
                c.currency, c.local_symbol, c.symbol, c.trading_class or c.symbol, c.con_id, c.min_tick,
                c.multiplier, "ACTIVETIM,LMT,MKT,STP,STPLMT", "SMART," + c.exchange, 1, 0, c.symbol,
                c.primary_exchange, "", "", "", "", "US/Eastern", "", "", "", "", 0,
                "1", "", "", "26", "", "COMMON", "1", "1", "1",
            ],
        )  # fmt: skip

    def _open_order(self, w: asyncio.StreamWriter, o: FakeOrder) -> None:
        """OPEN_ORDER at server version 176, in the decoder's order (empty = unset)."""
        fields: list[Any] = [
            5, o.order_id, *o.contract.short(),
            o.action, o.qty, o.order_type, o.lmt, o.aux, o.tif, "", o.account, "", 0, o.order_ref,
            o.client_id, o.perm_id, 0, 0, 0, "", "", "", "", "",  # clientId .. faPercentage
            "",  # faProfile (< 177)
            "", "", "", "", "", 0, "", "", "", "", "", "", "", "", "", 0, 0, 0, "", 0, 0, 0, "",
            0, 0, "", 0, "", "",  # modelCode .. deltaNeutralAuxPrice (deltaNeutralOrderType empty)
            0, "", "", "", "", "", "",  # continuousUpdate .. comboLegsDescrip
            0, 0, 0,  # combo legs, order combo legs, smart combo routing params
            "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
            "",  # hedgeType
            0, "", "", 0, 0,  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld, dnc
            "",  # algoStrategy
            0, 0, o.status, "", "", "", "", "", "", "", "", "", "", "", "", "", "", 0, 0,
            0,  # conditions
            "", "", "", "", "", "", "", "", "", "", "", "", 0, 0, "", 0,  # adjusted .. usePriceMgmtAlgo
            "", 0, 0,  # duration, postToAts, autoCancelParent
            "", "", "", "", "",  # minTradeQty .. midOffsetAtHalf
        ]  # fmt: skip
        self._send(w, fields)


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True
