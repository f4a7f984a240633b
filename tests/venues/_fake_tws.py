"""A loopback fake of TWS / IB Gateway speaking the TWS socket protocol (server version 176) for
the messages ib_async 2.1.0 sends in these tests: the handshake and START_API, the startup sync
(positions, open orders, completed orders, account updates, account updates multi, executions),
contract details, place / cancel order, ids, and market data: historical bars
(REQ_HISTORICAL_DATA, with ``keepUpToDate`` subscriptions answered by HISTORICAL_DATA_UPDATE),
CANCEL_HISTORICAL_DATA and REQ_CURRENT_TIME, and quotes: REQ_MKT_DATA streams answered by
MARKET_DATA_TYPE, TICK_PRICE and TICK_SIZE (bid / ask, tick types 1 / 2 and 0 / 3), ended by
CANCEL_MKT_DATA. It answers the way TWS does on the wire: framed
NUL-separated text fields (4-byte big-endian length), OPEN_ORDER laid out field by field as the
decoder reads it, ORDER_STATUS, EXECUTION_DATA then COMMISSION_REPORT, ERR_MSG. Faults are
injected on request: errors (connectivity 1100/1101/1102, rejects, pacing), duplicated
executions, commission reports held back or sent before their execution, a dropped connection,
historical-data pacing (162, on request or by IB's rules: ``history_limits``), a bar the
``keepUpToDate`` stream skips (``skip_updates``: its updates never sent, its history kept).

With a ``market`` (``FakeBar``s per conId, e.g. ``market_from_dataset``) it plays bars like a
venue: ``play`` closes one bar a step — the forming bar's final update, then the next bar's first
(IB starts a new bar: the one before is closed) — while every contract is subscribed; market
orders fill at the forming bar's open, resting limit orders when a played bar crosses them,
each execution with an IB-like commission (``ib_commission``, to 1e-8). Each bar played first
sends every streamed contract's quote at its close: the bid one tick below the close (at least
one tick), the ask ``quote_spread_ticks`` ticks above the bid, both sized ``quote_size`` — a
fixed spread, no randomness; a new stream starts with the quote standing (the last close, or
before any bar the first open). Its clock (CURRENT_TIME,
execution times) is the close of the last bar played. ``FakeTwsThread`` runs it on its own event
loop in a thread, for sessions that run ``asyncio.run`` themselves. 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

SERVER_VERSION = 176
ENDED = ("Filled", "Cancelled", "Inactive")  # an order's final states


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


@dataclass(frozen=True)
class FakeBar:
    """One bar as TWS states it: ``date`` is the session day (``YYYYMMDD``) for daily bars, the
    start's epoch seconds for intraday ones (``formatDate=2``); prices and volume as text."""

    date: str
    open_s: int
    close_s: int
    open: str
    high: str
    low: str
    close: str
    volume: str


def ib_commission(shares: float, price: str) -> str:
    """An IB-like tiered commission: 0.0035 a share (at least 0.35) plus 0.000175 a share in
    exchange and clearing fees, at most 1 % of the value; stated to 1e-8 (sub-cent, as IB's)."""
    qty, value = Decimal(str(shares)), Decimal(str(shares)) * Decimal(price)
    fee = min(max(Decimal("0.35"), qty * Decimal("0.0035")) + qty * Decimal("0.000175"), value / 100)
    return str(fee.quantize(Decimal("1e-8"), ROUND_HALF_EVEN))


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
    why: str = ""  # completedStatus, once ended (IB's text: "Cancelled by Trader", ...)


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
    commission_first: bool = False  # send a live execution's commission report before it
    clients_in_use: set[int] = field(default_factory=set)  # START_API with these ids: 326, closed
    orders: dict[int, FakeOrder] = field(default_factory=dict)
    executions: list[FakeExec] = field(default_factory=list)
    received: list[list[str]] = field(default_factory=list)
    held: list[FakeExec] = field(default_factory=list)
    connections: int = 0
    market: dict[int, list[FakeBar]] = field(default_factory=dict)  # conId -> bars to play
    played: int = 0  # bars closed so far (each contract's bar[played] is forming)
    pace_history: int = 0  # the next N historical-data requests refused with 162 (pacing)
    # IB's historical-data pacing rules, enforced (None: not): a request breaking one is refused
    # with 162 as TWS does -- an identical one within ``identical_s``, more than
    # ``contract_max`` of one contract within ``contract_window_s``, more than ``window_max``
    # within ``window_s`` (numbers of a ``venues.ib_pacing.HistoryPacing``, small in tests)
    history_limits: Any = None
    history_asked: list[tuple[float, int, tuple[str, ...]]] = field(
        default_factory=list
    )  # (at, conId, params)
    history_refused: int = 0  # requests refused for breaking ``history_limits``
    skip_updates: dict[int, set[int]] = field(default_factory=dict)  # conId -> bar indices never streamed
    after_bar: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # bar n -> errors sent
    paused: bool = False  # ``play`` plays no bar while set
    play_on_subscribe: bool = False  # close a bar in the same write as the next subscription's answer
    pause_on_order: bool = False  # set ``paused`` when an order arrives (a drill kills meanwhile)
    resting: set[str] = field(default_factory=set)  # orderRefs whose limit no played bar reaches
    hold_cancels: bool = False  # cancels are kept unanswered in ``held_cancels`` (TWS slow)
    held_cancels: list[int] = field(default_factory=list)  # their order ids
    quote_spread_ticks: int = 2  # ask - bid, in the contract's minimum ticks
    quote_size: str = "100"  # both sides' size
    quote_refusal: tuple[int, str] | None = None  # REQ_MKT_DATA answered with this error only
    delayed_quotes: bool = False  # REQ_MKT_DATA answered with 10167 and delayed ticks (66 / 67)

    def __post_init__(self) -> None:
        self._server: asyncio.base_events.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._client_ids: dict[asyncio.StreamWriter, int] = {}
        self._perm = 9000
        self._exec_n = 0
        self.port = 0
        self._subscriptions: dict[tuple[asyncio.StreamWriter, int], int] = {}  # (client, reqId) -> conId
        self.quote_streams: dict[tuple[asyncio.StreamWriter, int], int] = {}  # REQ_MKT_DATA's, the same

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
            for key in [key for key in self._subscriptions if key[0] is writer]:
                del self._subscriptions[key]
            for key in [key for key in self.quote_streams if key[0] is writer]:
                del self.quote_streams[key]
            writer.close()

    @staticmethod
    async def _frame(reader: asyncio.StreamReader) -> list[str]:
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        text = (await reader.readexactly(size)).decode()
        return text.split("\0")[:-1]

    @staticmethod
    def _frame_bytes(fields: list[Any]) -> bytes:
        body = "".join(f"{value}\0" for value in fields).encode()
        return struct.pack(">I", len(body)) + body

    def _send(self, writer: asyncio.StreamWriter, fields: list[Any]) -> None:
        writer.write(self._frame_bytes(fields))

    def broadcast(self, fields: list[Any]) -> None:
        for writer in self._writers:
            self._send(writer, fields)

    # --- requests ----------------------------------------------------------------------------

    def _handle(self, w: asyncio.StreamWriter, f: list[str]) -> None:
        handlers: dict[int, Callable[[asyncio.StreamWriter, list[str]], None]] = {
            71: self._start_api,
            61: self._positions,
            5: self._open_orders,
            99: self._completed_orders,
            6: self._account_updates,
            76: lambda w, f: self._send(w, [74, 1, int(f[2])]),  # reqAccountUpdatesMulti: reqId
            7: self._executions,
            9: self._contract_details,
            3: self._place,
            4: lambda w, f: self._cancel(w, int(f[2])),  # cancelOrder: version, orderId, time
            8: lambda w, f: self._send(w, [9, 1, self._next_id()]),  # reqIds
            20: self._historical,
            25: lambda w, f: self._unsubscribe(w, int(f[2])),  # cancelHistoricalData
            49: lambda w, f: self._send(w, [49, 1, self.now_s()]),  # reqCurrentTime
            1: self._mkt_data,
            2: lambda w, f: self.quote_streams.pop((w, int(f[2])), None),  # cancelMktData: version, reqId
        }
        handler = handlers.get(int(f[0]))
        if handler is not None:
            handler(w, f)

    def _next_id(self) -> int:
        return max([self.next_valid_id, *[o.order_id + 1 for o in self.orders.values()]])

    def _start_api(self, w: asyncio.StreamWriter, f: list[str]) -> None:
        """START_API: version, clientId, optional capabilities."""
        if int(f[2]) in self.clients_in_use:  # TWS: another API session holds the id
            self._error(
                w,
                -1,
                326,
                "Unable to connect as the client id is already in use.  Retry with a unique client id.",
            )
            w.close()
            return
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
            if order.client_id == self._client_ids[w] and order.status not in ENDED:
                self._open_order(w, order)
                self._status(w, order)
        self._send(w, [53, 1])

    def _completed_orders(self, w: asyncio.StreamWriter, f: list[str]) -> None:
        """reqCompletedOrders: apiOnly. Every order that ended (filled, cancelled, inactive) of
        the account, whichever client sent it, as IB answers (apiOnly only leaves out orders
        entered in TWS by hand, and the fake has none), then COMPLETED_ORDERS_END."""
        for order in self.orders.values():
            if order.status in ENDED:
                self._completed_order(w, order)
        self._send(w, [102])

    def end_order(self, order_id: int, status: str = "Cancelled", why: str = "Cancelled by System") -> None:
        """TWS ends a working order by itself (a DAY order expired, a cancel in TWS, a reject
        after acknowledgement: ``Inactive``): ORDER_STATUS to its client if connected, nothing
        kept back for one that is not (a client reconnecting does not hear of it again)."""
        order = self.orders[order_id]
        order.status = status
        order.why = why
        for writer in self._owners(order):
            self._status(writer, order)

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
                if ex not in self.held:  # a report TWS has not made yet is not in the answer
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
        self.paused = self.paused or self.pause_on_order
        self._open_order(w, order)
        self._status(w, order)
        for shares, price, commission in self.market_fills.get(order_ref, []):
            self.fill(order_id, shares, price, commission)
        if order.order_type == "MKT" and order_ref not in self.market_fills and con_id in self.market:
            price = self._forming(con_id).open  # the market now: the forming bar's open
            self.fill(order_id, order.qty, price, ib_commission(order.qty, price))

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
            time=self._exec_time() if self.market else "20250102 15:30:00 UTC",
        )
        self.executions.append(ex)
        sign = 1 if order.action == "BUY" else -1
        paid = Decimal(str(shares)) * Decimal(price) * Decimal(order.contract.multiplier or "1")
        cash = Decimal(self.cash[ex.currency]) - sign * paid - Decimal(commission)
        self.cash[ex.currency] = str(cash)
        self.broadcast([6, 2, "CashBalance", self.cash[ex.currency], ex.currency, self.account])
        self.positions[order.contract.con_id] = self.positions.get(order.contract.con_id, 0) + sign * shares
        for writer in self._owners(order):
            if self.commission_first:  # out of order: ib_async drops a report for no execution
                self._commission(writer, ex)
            self._exec(writer, ex, -1)
            if self.duplicate_execs:
                self._exec(writer, ex, -1)
            self._status(writer, order)
            if self.hold_commissions:
                self.held.append(ex)
            elif not self.commission_first:
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
        if self.hold_cancels:
            self.held_cancels.append(order_id)
        elif order is None:
            self._error(w, order_id, 135, f"Can't find order with id ={order_id}")
        elif order.status in ENDED or self.refuse_cancel:
            self._error(
                w,
                order_id,
                10148,
                f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {order.status}.",
            )
        else:
            order.status = "Cancelled"
            order.why = "Cancelled by Trader"
            self._status(w, order)
            self._error(w, order_id, 202, "Order Canceled - reason:")

    # --- market data -------------------------------------------------------------------------

    def now_s(self) -> int:
        """The fake's clock: the close of the last bar played (before any: the first's open)."""
        bars = next(iter(self.market.values()), [])
        if not bars:
            return 1_735_830_000
        return bars[self.played - 1].close_s if self.played else bars[0].open_s

    def _exec_time(self) -> str:
        return datetime.fromtimestamp(self.now_s(), UTC).strftime("%Y%m%d %H:%M:%S UTC")

    def _forming(self, con_id: int) -> FakeBar:
        """The bar forming now: the next bar's open only (IB's first update of a new bar), or
        after the last one a bar of the next period at the last close."""
        bars = self.market[con_id]
        if self.played < len(bars):
            bar = bars[self.played]
            return FakeBar(bar.date, bar.open_s, bar.close_s, bar.open, bar.open, bar.open, bar.open, "0")
        last = bars[-1]
        span = last.close_s - last.open_s
        date = (
            datetime.fromtimestamp(last.close_s + 43_200, UTC).strftime("%Y%m%d")
            if len(last.date) == 8
            else str(last.open_s + span)
        )
        px = last.close
        return FakeBar(date, last.close_s, last.close_s + span, px, px, px, px, "0")

    def _historical(self, w: asyncio.StreamWriter, f: list[str]) -> None:
        """REQ_HISTORICAL_DATA: reqId, contract (12 fields), includeExpired, endDateTime,
        barSize, duration, useRTH, whatToShow, formatDate, keepUpToDate, chartOptions. The bars
        closed within the duration up to now, then the forming one (as TWS: the current bar)."""
        req_id, con_id, duration, keep = int(f[1]), int(f[2] or 0), f[17], f[21] == "1"
        broken = self._breaks_pacing(con_id, tuple(f[2:]))
        if self.pace_history > 0 or broken:
            self.pace_history = max(0, self.pace_history - 1)
            self._error(
                w,
                req_id,
                162,
                "Historical Market Data Service error message:"
                "API historical data query cancelled: pacing violation",
            )
            return
        if con_id not in self.market:
            self._error(
                w, req_id, 162, "Historical Market Data Service error message:HMDS query returned no data"
            )
            return
        count, unit = duration.split()
        span = int(count) * {"S": 1, "D": 86_400, "W": 604_800, "M": 2_678_400, "Y": 31_536_000}[unit]
        now = self.now_s()
        bars = [b for b in self.market[con_id][: self.played] if b.close_s > now - span]
        bars.append(self._forming(con_id))
        rows: list[Any] = []
        for b in bars:
            rows += [b.date, b.open, b.high, b.low, b.close, b.volume, b.close, 1]
        self._send(w, [17, req_id, "", "", len(bars), *rows])
        if keep:
            self._subscriptions[(w, req_id)] = con_id
            if self.play_on_subscribe:  # a bar closes right behind the first answer
                self.play_on_subscribe = False
                self._play_bar()

    def _breaks_pacing(self, con_id: int, params: tuple[str, ...]) -> bool:
        """Whether this request breaks ``history_limits`` (every request counts, refused or not)."""
        now = asyncio.get_running_loop().time()
        earlier, self.history_asked = self.history_asked, [*self.history_asked, (now, con_id, params)]
        limits = self.history_limits
        if limits is None:
            return False
        broken = (
            any(p == params and now - at < limits.identical_s for at, _, p in earlier)
            or sum(c == con_id and now - at < limits.contract_window_s for at, c, _ in earlier)
            >= limits.contract_max
            or sum(now - at < limits.window_s for at, _, _ in earlier) >= limits.window_max
        )
        self.history_refused += broken
        return broken

    def _mkt_data(self, w: asyncio.StreamWriter, f: list[str]) -> None:
        """REQ_MKT_DATA: version, reqId, contract (12 fields), deltaNeutral, genericTickList,
        snapshot, regulatorySnapshot, mktDataOptions. The stream opens with MARKET_DATA_TYPE
        and the quote standing; ``quote_refusal``: that error only (354: not subscribed)."""
        req_id, con_id = int(f[2]), int(f[3] or 0)
        if self.quote_refusal is not None:
            self._error(w, req_id, *self.quote_refusal)
            return
        if con_id not in self.market:
            self._error(w, req_id, 200, "No security definition has been found for the request")
            return
        self.quote_streams[(w, req_id)] = con_id
        bars, delayed = self.market[con_id], self.delayed_quotes
        if delayed:
            self._error(
                w, req_id, 10167, "Requested market data is not subscribed. Displaying delayed market data."
            )
        self._send(w, [58, 1, req_id, 3 if delayed else 1])
        if bars:
            px = bars[self.played - 1].close if self.played else bars[0].open
            self.send_quote(con_id, *self.quote_at(con_id, px), writers=[(w, req_id)])

    def quote_at(self, con_id: int, px: str) -> tuple[str, str, str, str]:
        """The fake's quote around ``px``: bid, bid size, ask, ask size (module docstring)."""
        tick = Decimal(next(c.min_tick for c in self.contracts if c.con_id == con_id))
        bid = max(Decimal(px) - tick, tick)
        ask = bid + self.quote_spread_ticks * tick
        return str(bid), self.quote_size, str(ask), self.quote_size

    def send_quote(
        self,
        con_id: int,
        bid: str,
        bid_size: str,
        ask: str,
        ask_size: str,
        *,
        writers: list[tuple[asyncio.StreamWriter, int]] | None = None,
    ) -> None:
        """One quote to each stream of ``con_id`` (or to ``writers``), in one write as TWS sends
        a batch: TICK_PRICE bid and ask (price, size, attribute mask) then TICK_SIZE bid and ask
        (version, reqId, tickType, ...). An empty side is IB's -1 at size 0."""
        targets = writers or [key for key, c in self.quote_streams.items() if c == con_id]
        bid_tick, ask_tick, bid_sz, ask_sz = (66, 67, 69, 70) if self.delayed_quotes else (1, 2, 0, 3)
        for w, req_id in targets:
            messages = [
                [1, 6, req_id, bid_tick, bid, bid_size, 0],
                [1, 6, req_id, ask_tick, ask, ask_size, 0],
                [2, 6, req_id, bid_sz, bid_size],
                [2, 6, req_id, ask_sz, ask_size],
            ]
            w.write(b"".join(self._frame_bytes(m) for m in messages))

    def _update(self, w: asyncio.StreamWriter, req_id: int, b: FakeBar) -> None:
        """HISTORICAL_DATA_UPDATE: reqId, barCount, date, open, close, high, low, WAP, volume."""
        self._send(w, [90, req_id, 1, b.date, b.open, b.close, b.high, b.low, b.close, b.volume])

    def _unsubscribe(self, w: asyncio.StreamWriter, req_id: int) -> None:
        self._subscriptions.pop((w, req_id), None)

    def subscribed(self) -> set[int]:
        return set(self._subscriptions.values())

    async def play_step(self) -> bool:
        """Close the forming bar of every contract (its final update, then the next bar's
        first), fill resting limit orders it crossed, send the errors due after it. False: no
        bar left."""
        if not self._play_bar():
            return False
        for w in list(self._writers):
            with _suppress():
                await w.drain()
        return True

    def _play_bar(self) -> bool:
        if not self.market or self.played >= len(next(iter(self.market.values()))):
            return False
        closing = {con_id: bars[self.played] for con_id, bars in self.market.items()}
        for con_id in sorted(set(self.quote_streams.values())):  # the quote at the close, first
            self.send_quote(con_id, *self.quote_at(con_id, closing[con_id].close))
        self._stream(lambda con_id: closing[con_id])
        self.played += 1
        self._stream(self._forming)
        for order in list(self.orders.values()):
            bar = closing.get(order.contract.con_id)
            if (
                bar is None
                or order.order_type != "LMT"
                or order.status in ENDED
                or order.order_ref in self.resting
            ):
                continue
            limit = Decimal(order.lmt)
            if (order.action == "BUY" and Decimal(bar.low) <= limit) or (
                order.action == "SELL" and Decimal(bar.high) >= limit
            ):
                shares = order.qty - order.filled
                self.fill(order.order_id, shares, order.lmt, ib_commission(shares, order.lmt))
        for code, text in self.after_bar.get(self.played, []):
            self.error_all(-1, code, text)
            if code == 1101:  # restored, data lost: the market data subscriptions are gone
                self._subscriptions.clear()
                self.quote_streams.clear()
        return True

    def _stream(self, bar_of: Callable[[int], FakeBar]) -> None:
        """An update of bar ``played`` to every subscription, but where TWS skips it."""
        for (w, req_id), con_id in list(self._subscriptions.items()):
            if self.played not in self.skip_updates.get(con_id, ()):
                self._update(w, req_id, bar_of(con_id))

    async def play(self, speed: float, *, wait_for_all: bool = True) -> None:
        """A bar every ``1 / speed`` s while every contract is subscribed (``wait_for_all``),
        until the market ends: a session that is down misses no bar."""
        while self.market and self.played < len(next(iter(self.market.values()))):
            if self.paused or (wait_for_all and self.subscribed() != set(self.market)):
                await asyncio.sleep(0.01)
                continue
            if not await self.play_step():
                return
            await asyncio.sleep(1 / speed)

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

    def _completed_order(self, w: asyncio.StreamWriter, o: FakeOrder) -> None:
        """COMPLETED_ORDER at server version 176, in the decoder's order (``completedOrder``):
        no orderId or clientId on the wire (IB states neither for a completed order), the
        permId, the final status, filledQuantity, completedTime and completedStatus."""
        fields: list[Any] = [
            101, *o.contract.short(),
            o.action, o.qty, o.order_type, o.lmt, o.aux, o.tif, "", o.account, "", 0, o.order_ref,
            o.perm_id, 0, 0, "", "", "", "", "",  # permId .. faPercentage
            "",  # faProfile (< 177)
            "", "", "", "", "", 0, "", "", "", "", "", "", "", 0, 0, 0, "", 0, 0, "", 0,
            "", "",  # modelCode .. deltaNeutralAuxPrice (deltaNeutralOrderType empty)
            0, "", "", "", "",  # continuousUpdate .. comboLegsDescrip
            0, 0, 0,  # combo legs, order combo legs, smart combo routing params
            "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
            "",  # hedgeType
            "", "", 0, 0,  # clearingAccount, clearingIntent, notHeld, dnc
            "",  # algoStrategy
            0, o.status, 0, 0,  # solicited, status, randomizeSize, randomizePrice
            0,  # conditions
            "", "", "", 0, 0, "", o.filled, 0, 0, "", 0, 0, "",  # trailStopPrice .. parentPermId
            self._exec_time() if self.market else "20250102 16:00:00 America/New_York",  # completedTime
            o.why or o.status,  # completedStatus
            "", "", "", "", "",  # minTradeQty .. midOffsetAtHalf
        ]  # fmt: skip
        self._send(w, fields)


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


def market_from_dataset(
    path: Path, first_close_ns: int, con_id_base: int = 1000
) -> tuple[list[FakeContract], dict[int, list[FakeBar]]]:
    """A Tape data set's instruments as SMART-routed stocks (conId ``con_id_base + id``) and
    their bars closing at or after ``first_close_ns``, as TWS states them."""
    from domain.fixed import to_decimal
    from lake.sessions import frequency_ns
    from lake.store import load_panel, read_manifest

    panel, _ = load_panel(path)
    interval_s = frequency_ns(str(read_manifest(path)["frequency"])) // 1_000_000_000
    daily = interval_s == 86_400
    contracts, market = [], {}
    for column, inst in enumerate(panel.instruments):
        con_id = con_id_base + inst.instrument_id
        contracts.append(FakeContract(con_id, inst.symbol, "STK", "SMART", inst.currency, inst.symbol))
        bars = []
        for row in range(panel.steps):
            close_s = int(panel.ts_ns[row]) // 1_000_000_000
            if int(panel.ts_ns[row]) < first_close_ns or not panel.valid[row, column]:
                continue
            o, h, low, c = (
                str(to_decimal(int(a[row, column]), inst.price_digits))
                for a in (panel.open, panel.high, panel.low, panel.close)
            )
            volume = str(to_decimal(int(panel.volume[row, column]), inst.qty_digits))
            date = str(int(panel.day[row])) if daily else str(close_s - interval_s)
            bars.append(FakeBar(date, close_s - interval_s, close_s, o, h, low, c, volume))
        market[con_id] = bars
    return contracts, market


class FakeTwsThread:
    """A ``FakeTws`` on its own event loop in a daemon thread (``call`` runs a coroutine there)."""

    def __init__(self, tws: FakeTws) -> None:
        self.tws = tws
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.port = self.call(tws.start())

    def call(self, work: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    def close(self) -> None:
        self.call(self.tws.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
