"""Interactive Brokers through ib_async (TWS or IB Gateway): the same plain records as ``CcxtVenue``.

``IbVenue`` has the methods and the ``updates`` queue ``venues.live_bridge.LiveBridge`` uses
(``place``, ``cancel``, ``lookup``, ``fetch_open_orders``, ``fetch_fills``, ``fetch_balances``,
``start_streams`` / ``stop_streams``, ``instruments``, ``name``), so the bridge runs unchanged on
top of it. What IB says becomes ``VenueOrder`` / ``VenueFill`` / ``VenueBalance`` / ``StreamNote``
with integer fixed-point values; this module reads no clock and journals nothing (ib_async itself
stamps its log entries with the wall clock; nothing here passes those times on to the kernel).

* **Contracts**: each Tape instrument becomes an IB contract (``contract_for``: ``equity`` /
  ``etf`` a SMART-routed stock with its primary exchange from the MIC, ``future`` by local
  symbol on its exchange, ``option`` by underlying, expiry, strike, right and multiplier) and is
  qualified once on connect through ``reqContractDetails``: exactly one match, the multiplier
  equal to the instrument's, IB's minimum tick not finer than the instrument's tick; otherwise
  ``VenueError("UNKNOWN_INSTRUMENT")``. Executions are mapped back by ``conId``.
* **Orders**: market, limit, stop and stop-limit with a time in force (``OrderRequest``; DAY when
  none is given). The Tape client order id travels in IB's ``orderRef`` and comes back in
  every open order and execution: ``place(..., resend=True)`` (after a restart) and a send whose
  answer was lost look the order up by ``orderRef`` among the open orders and the executions
  before sending again. ``place`` waits up to ``ack_timeout_s`` for IB's first answer, so a
  reject comes back as a ``VenueError`` with a Tape rule code (``map_ib_error``). An order in
  neither (cancelled, expired or inactive while no connection was up, or part filled and then
  ended) is found among IB's completed orders (``reqCompletedOrders``), asked only then.
* **Fills**: one ``VenueFill`` per ``execId``, only once both the execution and its commission
  report are in (the commission in the report's currency, at 1e-8, which the bridge books to the
  cent half-even); a fill whose report has not come after ``ack_timeout_s`` is asked for again
  (``reqExecutions``: ib_async drops a report that comes before its execution). An ``execId``
  already booked is counted (``dedup.fill_duplicate``) and dropped
  — within a session and across reconnects, where ib_async's own memory is wiped.
* **Errors**: connectivity 1100 / 1101 / 1102 (and 2110) become ``StreamNote``s; 1101 (restored,
  data lost) catches up on open orders and executions and ends with a ``reconciled`` note, like
  a reconnect. Pacing (100 max message rate, 162 historical-data pacing) is retried after a
  backoff (a 162 after IB's 15 s identical-request window, doubling), for requests and for an
  order IB dropped for it; historical-data requests keep within IB's pacing rules beforehand
  (``venues.ib_pacing``). Order rejects (201, 202 before an
  acknowledgement, 200, 203, 110, ...) become rule codes. ib_async marks an order ``Cancelled``
  on any non-warning error, including 10148 ("cannot be cancelled"): such a state is not passed
  on as a cancel; ``cancel`` raises ``NOT_CANCELLABLE`` instead.
* **Reconnect**: ib_async has none, and a disconnect wipes its trades, fills and positions
  (``wrapper.reset``). On ``disconnectedEvent`` the adapter notes it, reconnects with
  exponential backoff (capped, with seeded jitter), lets ib_async's startup sync reload open
  orders, then fetches the executions it missed through the same de-duplication, finds the
  orders that left the open list unfilled among the completed orders, and notes
  ``reconciled`` (the bridge then reconciles the book).
* **Bars** (``watch_bars``, ``fetch_bars``, ``bar_grid``): one ``keepUpToDate``
  ``reqHistoricalData`` subscription per contract and the catch-up after a drop, kept by
  ``venues.ib_bars.IbBars`` (its module docstring); the venue hands it ib_async's bar updates
  and a lost connection or 1101.
* **Quotes** (``watch_quote``, for the paper broker): one ``reqMktData`` stream per contract,
  kept by ``venues.ib_quotes.IbQuotes`` (its module docstring); the venue hands it ib_async's
  ticker batches, IB's errors for its request ids and a lost connection, and stops it with
  ``stop_streams``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from functools import partial
from typing import Any

import msgspec
import numpy as np

from domain.fixed import Rounding, from_decimal_text, to_decimal
from domain.instruments import Instrument
from venues import ib_pacing
from venues.ccxt_venue import (
    BALANCE_DIGITS,
    OrderRequest,
    StreamNote,
    VenueBalance,
    VenueBar,
    VenueDataError,
    VenueError,
    VenueFill,
    VenueOrder,
    VenueQuote,
)
from venues.ib_bars import IbBars
from venues.ib_pacing import HistoryPacer, HistoryPacing
from venues.ib_quotes import IbQuotes
from venues.ib_wire import exact, map_ib_error, ms_since_epoch, number

__all__ = ["IbVenue", "contract_for", "map_ib_error"]

ORDER_TYPES = {"market": "MKT", "limit": "LMT", "stop": "STP", "stop_limit": "STP LMT"}
TIME_IN_FORCE = ("DAY", "GTC", "IOC", "GTD", "OPG", "FOK")

# IB venues by ISO MIC (Tape's ``Instrument.venue``); a venue not listed is passed as it is.
PRIMARY_EXCHANGE = {"XNAS": "NASDAQ", "XNYS": "NYSE", "ARCX": "ARCA", "BATS": "BATS", "XASE": "AMEX"}
FUTURES_EXCHANGE = {
    "XCME": "CME",
    "GLBX": "CME",
    "XCBT": "CBOT",
    "XNYM": "NYMEX",
    "XCEC": "COMEX",
    "XCBF": "CFE",
    "XEUR": "EUREX",
}

CONNECTIVITY = {1100: "lost", 1101: "restored_data_lost", 1102: "restored", 2110: "lost"}
PACING = frozenset({100, 162})  # max message rate; historical-data pacing violation
REFUSED = frozenset({326})  # TWS refuses the API connection: the client id is in use
NOT_CANCELLABLE = frozenset({10148, 161})  # the cancel failed; the order may be live or filled


# --- contracts -----------------------------------------------------------------------------------


def contract_for(inst: Instrument) -> Any:
    """The IB contract to qualify for a Tape instrument."""
    import ib_async  # the live extra

    if inst.asset_class in ("equity", "etf", "stock"):
        return ib_async.Stock(
            inst.symbol,
            "SMART",
            inst.currency,
            primaryExchange=PRIMARY_EXCHANGE.get(inst.venue, inst.venue),
        )
    if inst.asset_class == "future":
        return ib_async.Future(
            localSymbol=inst.symbol.replace(" ", ""),
            exchange=FUTURES_EXCHANGE.get(inst.venue, inst.venue),
            currency=inst.currency,
            multiplier=str(inst.multiplier),
        )
    if inst.is_option:
        return ib_async.Option(
            inst.underlying,
            str(inst.expiry_day),
            float(to_decimal(inst.strike_raw, inst.price_digits)),
            "C" if inst.right == "call" else "P",
            "SMART",
            multiplier=str(inst.multiplier),
            currency=inst.currency,
        )
    raise VenueError(
        "UNKNOWN_INSTRUMENT", f"{inst.symbol}: IB trades no asset class {inst.asset_class!r} here"
    )


# --- numbers -------------------------------------------------------------------------------------


def _e8(value: object) -> int:
    """An amount (commission, cash) at 1e-8, half-even: IB states commissions to more places."""
    return from_decimal_text(str(number(value)), BALANCE_DIGITS, Rounding.HALF_EVEN)


_RANK = {"new": 0, "pending_cancel": 1, "partially_filled": 1, "filled": 2, "canceled": 2, "rejected": 2}
_ACKED = frozenset({"PreSubmitted", "Submitted", "ApiPending", "PendingCancel", "Filled"})
_CLOSED = frozenset({"Cancelled", "ApiCancelled", "Inactive"})  # the states of an order that ended


# --- the adapter ---------------------------------------------------------------------------------


class IbVenue:
    """One ib_async ``IB`` connection to TWS / IB Gateway and the instruments it trades."""

    def __init__(
        self,
        ib: Any,
        instruments: Iterable[Instrument],
        *,
        host: str = "127.0.0.1",
        port: int = 7497,
        client_id: int = 1,
        account: str = "",
        connect_timeout_s: float = 4.0,
        ack_timeout_s: float = 2.0,
        retries: int = 3,
        backoff_s: float = 0.05,
        backoff_cap_s: float = 30.0,
        jitter_seed: int = 0,
        max_reconnects: int | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        history_pacing: HistoryPacing | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.ib = ib
        self.instruments = {inst.instrument_id: inst for inst in instruments}
        self.host, self.port, self.client_id, self.account = host, port, client_id, account
        self.connect_timeout_s = connect_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self.max_reconnects = max_reconnects
        self._jitter = np.random.default_rng(jitter_seed)
        self._sleep = sleep
        # IB's historical-data pacing limits (``venues.ib_pacing``; read here, so a test may
        # shrink the module's default for a whole session); ``clock``: the monotonic clock its
        # waits read (the event loop's by default), given with ``sleep`` in tests
        self.history_pacing = history_pacing or ib_pacing.IB_HISTORY_PACING
        self.stats: Counter[str] = Counter()
        self.updates: asyncio.Queue[VenueOrder | VenueFill | StreamNote] = asyncio.Queue()
        self.exchange = self  # the bridge's session names a venue by ``exchange.id``
        self.id = "ib"
        self.contracts: dict[int, Any] = {}  # instrument_id -> qualified contract
        self._by_con_id: dict[int, int] = {}  # IB conId -> instrument_id
        self._orders: dict[str, VenueOrder] = {}  # by venue order id
        self._perm_ids: dict[int, str] = {}  # IB permId -> venue order id (completed orders lack it)
        self._requests: dict[str, OrderRequest] = {}  # by client order id, this session's sends
        self._seen_states: set[tuple[str, str, int]] = set()
        self._pending: dict[str, Any] = {}  # execId -> ib_async Fill waiting for its commission
        self._chasing = False  # a task asks for the waiting fills' commission reports
        self._booked: set[str] = set()
        self._filled: Counter[str] = Counter()  # venue order id -> qty booked through fills
        self._streaming = False
        self._closing = False
        self._reconnect_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._wired = False
        self._live = False
        self._errors: dict[int, tuple[int, str]] = {}  # orderId / reqId -> IB's last error
        self._refused: tuple[int, str] | None = None  # TWS refused the connection (326), and why
        self._locks: dict[str, asyncio.Lock] = {}  # requests ib_async files under a fixed key
        self.closed_bars = True  # a bar handed out is final (the assembler need not wait)
        pacer = HistoryPacer(self.history_pacing, self.stats, sleep, clock)  # historical-data requests
        self._bar_feed = IbBars(  # watch_bars' and fetch_bars' subscriptions and catch-ups
            ib, self.instruments, self.contracts, self._by_con_id, self.stats, self._request, self._bad,
            connect_timeout_s, pacer, self.updates.put_nowait,
        )  # fmt: skip
        self._quotes = IbQuotes(ib, self.instruments, self.contracts, self.stats)  # watch_quote's streams

    @property
    def name(self) -> str:
        return self.id

    # --- connection --------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect (ib_async's startup sync loads positions, open orders, account values and
        executions), follow its events and qualify every instrument's contract."""
        self.ib.RaiseRequestErrors = True  # a failed request raises (pacing is retried)
        if not self._wired:
            self.ib.orderStatusEvent += self._on_status
            self.ib.openOrderEvent += self._on_status
            self.ib.execDetailsEvent += self._on_exec
            self.ib.commissionReportEvent += self._on_commission
            self.ib.errorEvent += self._on_error
            self.ib.disconnectedEvent += self._on_disconnect
            self.ib.barUpdateEvent += self._bar_feed.on_bar_update
            self.ib.pendingTickersEvent += self._quotes.on_tickers
            self._wired = True
        self._closing = False
        self._refused = None
        import ib_async

        try:
            await self.ib.connectAsync(
                self.host,
                self.port,
                clientId=self.client_id,
                timeout=self.connect_timeout_s,
                account=self.account,
                # the day's completed orders are asked for when an order is missing (``lookup``,
                # ``_catch_up``), not loaded on every (re)connect
                fetchFields=ib_async.StartupFetchALL & ~ib_async.StartupFetch.ORDERS_COMPLETE,
            )
        except (OSError, ConnectionError, TimeoutError) as error:
            refused, self._refused = self._refused, None
            if refused is not None:  # TWS said why (326: the client id is taken)
                raise VenueError(
                    "VENUE_UNAVAILABLE",
                    f"TWS / IB Gateway at {self.host}:{self.port} refused client id {self.client_id}: "
                    f"IB {refused[0]} {refused[1]} (another API session holds that id; give each "
                    "session its own [live] client_id)",
                    retriable=True,
                    venue_code=refused[0],
                ) from error
            why = str(error) or type(error).__name__
            raise VenueError(
                "VENUE_UNAVAILABLE",
                f"no TWS / IB Gateway API at {self.host}:{self.port} (client id {self.client_id}): "
                f"{why}; is it running, with the API enabled on that port?",
                retriable=True,
            ) from error
        if not self.account:
            accounts = self.ib.managedAccounts()
            self.account = accounts[0] if len(accounts) == 1 else ""
        if not self.contracts:
            try:
                await self.qualify()
            except VenueError:
                self._closing = True  # a session that cannot map its instruments does not start
                self.ib.disconnect()
                raise
        self._live = True  # from now on a dropped socket is reconnected

    async def close(self) -> None:
        self._closing = True
        await self.stop_streams()
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
            self._reconnect_task = None
        self.ib.disconnect()

    async def qualify(self) -> None:
        """Each instrument's contract through ``reqContractDetails`` (module docstring)."""
        for iid, inst in sorted(self.instruments.items()):
            wanted = contract_for(inst)
            try:
                details = await self._request(partial(self.ib.reqContractDetailsAsync, wanted))
            except VenueError as error:
                raise VenueError(
                    error.rule, f"{inst.symbol}: {error.detail}", venue_code=error.venue_code
                ) from error
            if wanted.secType:
                details = [d for d in details if d.contract.secType == wanted.secType]
            if len(details) != 1:
                found = "no contract" if not details else f"{len(details)} contracts"
                raise VenueError("UNKNOWN_INSTRUMENT", f"{inst.symbol}: IB has {found} for {wanted}")
            contract = details[0].contract
            multiplier = int(number(contract.multiplier or 1))
            if multiplier != inst.multiplier:
                raise VenueError(
                    "UNKNOWN_INSTRUMENT",
                    f"{inst.symbol}: IB multiplier {contract.multiplier}, the instrument's {inst.multiplier}",
                )
            tick = to_decimal(inst.tick_raw, inst.price_digits)
            if details[0].minTick and number(details[0].minTick) > tick:
                raise VenueError(
                    "TICK_SIZE",
                    f"{inst.symbol}: IB minimum tick {details[0].minTick} above the instrument's {tick}",
                )
            if wanted.exchange == "SMART":
                contract.exchange = "SMART"  # route through SMART, as asked
            self.contracts[iid] = contract
            self._by_con_id[contract.conId] = iid
            self.stats["qualified"] += 1

    async def _request(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """An ib_async request; pacing violations and a lost connection are retried after a
        backoff, any other request error is a ``VenueError``."""
        from ib_async.wrapper import RequestError

        attempt = 0
        while True:
            try:
                return await call()
            except RequestError as error:
                mapped = map_ib_error(error.code, error.message)
            except ConnectionError as error:
                mapped = VenueError("VENUE_UNAVAILABLE", str(error), retriable=True)
            self.stats[f"error.{mapped.rule}"] += 1
            if not mapped.retriable or attempt >= self.retries:
                raise mapped
            delay = self._retry_delay(mapped, attempt)
            self._pacing(mapped, delay)
            await self._sleep(delay)
            attempt += 1
            self.stats["retry"] += 1

    def _retry_delay(self, error: VenueError, attempt: int) -> float:
        """The wait before asking again: after IB's historical-data pacing violation (162) its
        identical-request window, doubling (``HistoryPacing.retry_s``: 15, 30, 60 s), since the
        same request sooner is itself a violation; otherwise the exponential backoff."""
        if error.venue_code == 162:
            return self.history_pacing.retry_s(attempt)
        return float(min(self.backoff_cap_s, self.backoff_s * 2**attempt))

    async def _one_at_a_time(self, key: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """A request ib_async files under a fixed key (open orders, completed orders), one at a
        time: a second started before the first's end takes over its future, and the first
        then never ends (a reconnect's catch-up and a cancel's lookup may ask together)."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            return await self._request(call)

    async def _open_orders(self) -> list[Any]:
        return list(await self._one_at_a_time("open", self.ib.reqOpenOrdersAsync))

    def _pacing(self, error: VenueError, delay: float) -> None:
        """A pacing refusal (100, 162) as a note the session journals; it is retried."""
        if error.rule == "RATE_LIMIT":
            self.updates.put_nowait(
                StreamNote(kind="pacing", stream="ib", detail=f"{error.detail}; asking again in {delay:g} s")
            )

    # --- mapping -----------------------------------------------------------------------------

    def _instrument_of(self, contract: Any) -> Instrument:
        iid = self._by_con_id.get(contract.conId)
        if iid is None:
            raise VenueDataError(
                f"contract {contract.conId} ({contract.localSymbol or contract.symbol}) is not traded here"
            )
        return self.instruments[iid]

    @staticmethod
    def _venue_id(client_id: int, order_id: int) -> str:
        return f"{client_id}/{order_id}"

    def _state(self, trade: Any, *, completed: bool = False) -> VenueOrder | None:
        """The Tape state of an ib_async ``Trade`` (None: not a state to pass on). A
        ``completed`` one (``reqCompletedOrders``) carries no order id, no log and no status
        counts: its venue order id comes from its permId (as seen before in this process, else
        ``perm/{permId}``), its filled quantity from the order's ``filledQuantity``, and
        ``Inactive`` is a cancel (it reached IB, which holds it; whether it was acknowledged is
        not stated, and a cancel is a legal end after an acknowledgement and before one)."""
        order, status = trade.order, trade.orderStatus
        inst = self._instrument_of(trade.contract)
        code = trade.log[-1].errorCode if trade.log else 0
        raw = status.status
        if completed:
            done = order.filledQuantity if 0 <= order.filledQuantity < 1e300 else 0  # unset: none
            filled = exact(done, inst.qty_digits, f"order {order.permId} filled")
            venue_id = self._perm_ids.get(order.permId, f"perm/{order.permId}")
        else:
            filled = exact(status.filled, inst.qty_digits, f"order {order.orderId} filled")
            venue_id = self._venue_id(order.clientId or self.client_id, order.orderId)
            if order.permId and order.orderId > 0:
                self._perm_ids[order.permId] = venue_id
        qty = exact(order.totalQuantity, inst.qty_digits, f"order {order.orderId} quantity")
        acked = completed or any(entry.status in _ACKED for entry in trade.log) or filled > 0
        if raw in ("Cancelled", "ApiCancelled"):
            if code in NOT_CANCELLABLE or code in PACING:
                return None  # a failed cancel, or an order IB dropped for pacing (place resends)
            # an error before IB acknowledged the order is a reject (201, or 202 with a reason);
            # after it, IB cancelled a working order (an API cancel's 202, a DAY order's end)
            state = "rejected" if code and not acked else "canceled"
        elif raw == "Inactive":
            state = "rejected" if not acked else "canceled"
        elif raw == "Filled":
            state = "filled"
        elif raw == "PendingCancel":
            state = "pending_cancel"
        elif raw in ("PendingSubmit", "ApiPending", "PreSubmitted", "Submitted", "ValidationError"):
            state = "partially_filled" if filled else "new"
        else:
            raise VenueDataError(f"order {order.orderId}: unknown status {raw!r}")
        limit = order.lmtPrice if order.orderType in ("LMT", "STP LMT") else 0
        kind = {v: k for k, v in ORDER_TYPES.items()}.get(order.orderType, order.orderType.lower())
        return VenueOrder(
            client_order_id=order.orderRef or "",
            venue_order_id=venue_id,
            instrument_id=inst.instrument_id,
            side=1 if order.action == "BUY" else -1,
            order_type=kind,
            status=state,
            qty_raw=qty,
            filled_qty_raw=filled,
            limit_px_raw=exact(limit or 0, inst.price_digits, f"order {order.orderId} limit"),
            update_ms=0,  # IB states no time for an order state; order comes from filled + status
            source="ib",
        )

    def _accept_order(self, state: VenueOrder) -> VenueOrder:
        """Each new state once, never a step back (by filled quantity, then status rank)."""
        key = (state.venue_order_id, state.status, state.filled_qty_raw)
        if key in self._seen_states:
            self.stats["dedup.order_duplicate"] += 1
            return state
        self._seen_states.add(key)
        last = self._orders.get(state.venue_order_id)
        if last is not None and (state.filled_qty_raw, _RANK[state.status]) <= (
            last.filled_qty_raw,
            _RANK[last.status],
        ):
            self.stats["dedup.order_stale"] += 1
            return last
        self._orders[state.venue_order_id] = state
        self.updates.put_nowait(state)
        return state

    def _venue_fill(self, fill: Any) -> VenueFill:
        ex, report = fill.execution, fill.commissionReport
        inst = self._instrument_of(fill.contract)
        what = f"execution {ex.execId}"
        if ex.side not in ("BOT", "SLD"):
            raise VenueDataError(f"{what}: side must be BOT or SLD, got {ex.side!r}")
        return VenueFill(
            trade_id=ex.execId,
            venue_order_id=self._venue_id(ex.clientId, ex.orderId),
            client_order_id=ex.orderRef or "",
            instrument_id=inst.instrument_id,
            side=1 if ex.side == "BOT" else -1,
            qty_raw=exact(ex.shares, inst.qty_digits, what + " shares"),
            px_raw=exact(ex.price, inst.price_digits, what + " price"),
            fee_e8=_e8(report.commission),
            fee_asset=report.currency or inst.currency,
            maker=ex.lastLiquidity == 1,  # 1 added liquidity, 2 removed, 3 routed out
            ts_ms=ms_since_epoch(ex.time) if ex.time else 0,
            source="ib",
        )

    def _complete(self, fill: Any) -> bool:
        return bool(fill.commissionReport.execId) and fill.commissionReport.execId == fill.execution.execId

    def _book(self, fill: Any, *, queue: bool = True) -> VenueFill | None:
        """A fill whose commission report is in, once per execId (None: waiting or booked)."""
        exec_id = fill.execution.execId
        if exec_id in self._booked:
            self.stats["dedup.fill_duplicate"] += 1
            self._pending.pop(exec_id, None)
            return None
        if not self._complete(fill):
            self._pending[exec_id] = fill
            self.stats["fill.waiting_commission"] += 1
            if not self._chasing and self._live:
                self._chasing = True
                self._spawn(self._chase_commissions())
            return None
        try:
            record = self._venue_fill(fill)
        except VenueDataError as error:
            self._bad(error)
            return None
        self._pending.pop(exec_id, None)
        self._booked.add(exec_id)
        self._filled[record.venue_order_id] += record.qty_raw
        self.stats["fill.booked"] += 1
        if queue:
            self.updates.put_nowait(record)
        return record

    async def _chase_commissions(self) -> None:
        """Fills still waiting for their commission report after ``ack_timeout_s`` (doubling,
        ``retries`` times more): the day's executions are asked again, which TWS answers each
        with its report. A report TWS sent before its execution is dropped by ib_async (it has
        no execution to attach it to, and fires no event), so without this the fill waited for
        the next reconciliation while the kernel held its order open. What is still waiting at
        the end is counted (``fill.commission_missing``) and left to the live stream and the
        reconciliations."""
        try:
            for attempt in range(self.retries + 1):
                await self._sleep(self.ack_timeout_s * 2**attempt)
                if not self._pending:
                    return
                self.stats["commission.asked"] += 1
                for fill in await self._executions():
                    if fill.execution.execId in self._pending:
                        self._pending[fill.execution.execId] = fill  # the one the report is on
                self._sweep()
                if not self._pending:
                    return
            self.stats["fill.commission_missing"] += len(self._pending)
        except VenueError:
            return  # a lost connection: the reconnect's catch-up books what it finds
        finally:
            self._chasing = False

    def _sweep(self) -> None:
        """Fills waiting for a commission report that ib_async filled in without an event
        (it fires none when it has no trade for the execution's permId)."""
        for fill in list(self._pending.values()):
            if self._complete(fill):
                self._book(fill)

    def _bad(self, error: Exception) -> None:
        self.stats["bad_message"] += 1
        self.updates.put_nowait(StreamNote(kind="bad_message", stream="ib", detail=str(error)))

    # --- ib_async events ---------------------------------------------------------------------

    def _on_status(self, trade: Any) -> None:
        if trade.contract.conId not in self._by_con_id:
            self.stats["foreign_contract"] += 1  # an order of this account in another contract
            return
        try:
            state = self._state(trade)
        except VenueDataError as error:
            self._bad(error)
            return
        if state is not None:
            self._accept_order(state)
        self._sweep()

    def _on_exec(self, trade: Any, fill: Any) -> None:
        self._on_fill(fill)

    def _on_commission(self, trade: Any, fill: Any, report: Any) -> None:
        self._on_fill(fill)

    def _on_fill(self, fill: Any) -> None:
        """A live execution or commission report. One in a contract not traded here — or before
        the contracts are qualified on connect: ib_async fires commission events for the
        startup sync's executions once it holds their orders — is counted and left to
        ``fetch_fills`` (the reconciliation's), which books it once qualified."""
        if fill.contract.conId not in self._by_con_id:
            self.stats["foreign_contract"] += 1
            return
        self._book(fill)

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        self.stats[f"ib_error.{code}"] += 1
        if req_id > 0:
            self._errors[req_id] = (code, message)  # IB's own text, for the order's reject
            self._quotes.on_error(req_id, code, message)
        if code in REFUSED:
            self._refused = (code, message)
        what = CONNECTIVITY.get(code)
        if what is None:
            return
        detail = f"IB {code} {message}"
        if what == "lost":
            self.updates.put_nowait(StreamNote(kind="disconnected", stream="ib-server", detail=detail))
        elif what == "restored":  # data maintained: nothing was lost
            self.updates.put_nowait(StreamNote(kind="restored", stream="ib-server", detail=detail))
        else:  # restored, data lost: catch up as after a reconnect, market data too
            self.updates.put_nowait(StreamNote(kind="restored", stream="ib-server", detail=detail))
            self._bar_feed.lose(f"market data lost ({detail})")
            self._quotes.lose(f"market data lost ({detail})")
            self._spawn(self._catch_up("ib-server"))

    def _on_disconnect(self) -> None:
        if self._closing or not self._live:
            return
        self.stats["disconnect"] += 1
        self.updates.put_nowait(StreamNote(kind="disconnected", stream="socket", detail="TWS socket closed"))
        self._bar_feed.lose("TWS socket closed")
        self._quotes.lose("TWS socket closed")
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reconnect_delay(self, attempt: int) -> float:
        """Exponential backoff, capped, with up to 25 % seeded jitter."""
        base: float = min(self.backoff_cap_s, self.backoff_s * 2**attempt)
        return base * (1.0 + 0.25 * float(self._jitter.random()))

    async def _reconnect(self) -> None:
        attempt = 0
        while not self._closing:
            await self._sleep(self.reconnect_delay(attempt))
            try:
                await self.connect()
            except VenueError as error:
                attempt += 1
                self.stats["reconnect.failed"] += 1
                if self.max_reconnects is not None and attempt >= self.max_reconnects:
                    self.updates.put_nowait(StreamNote(kind="gave_up", stream="socket", detail=error.reason))
                    return
                continue
            self.stats["reconnect"] += 1
            await self._catch_up("socket")
            return

    async def _catch_up(self, stream: str) -> None:
        """After a gap: open orders (ib_async's startup sync reloads them), executions missed,
        orders that left the open list filled; then a ``reconciled`` note."""
        try:
            trades = await self._open_orders()
            for trade in trades:
                self._on_status(trade)
            for fill in await self._executions():
                self._book(fill)
            open_now = {self._venue_id(t.order.clientId, t.order.orderId) for t in trades}
            gone = set()
            for vid, state in list(self._orders.items()):
                if not state.is_open or vid in open_now:
                    continue
                if self._filled[vid] >= state.qty_raw:
                    self._accept_order(
                        msgspec.structs.replace(state, status="filled", filled_qty_raw=self._filled[vid])
                    )
                else:
                    gone.add(vid)
            if gone:  # left the open list short of filled: cancelled or inactive while away
                for ended in await self._completed():
                    if ended.venue_order_id in gone:
                        self._accept_order(ended)
        except VenueError as error:
            self.updates.put_nowait(StreamNote(kind="disconnected", stream=stream, detail=error.reason))
            return
        self.stats["reconciled"] += 1
        self.updates.put_nowait(StreamNote(kind="reconciled", stream=stream))

    async def _executions(self) -> list[Any]:
        """Today's executions (all of this client's, IB keeps them for the day). ib_async answers
        an execution it already holds with a fresh ``Fill`` whose commission report is empty,
        while the report lands on the one it holds: that one is used."""
        import ib_async

        answer = await self._request(lambda: self.ib.reqExecutionsAsync(ib_async.ExecutionFilter()))
        held = {fill.execution.execId: fill for fill in self.ib.fills()}
        return [held.get(fill.execution.execId, fill) for fill in answer]

    # --- orders ------------------------------------------------------------------------------

    def _checked(self, request: OrderRequest) -> Instrument:
        inst = self.instruments.get(request.instrument_id)
        if inst is None or request.instrument_id not in self.contracts:
            raise VenueError("UNKNOWN_INSTRUMENT", f"instrument_id={request.instrument_id} (not qualified)")
        needs_limit = request.order_type in ("limit", "stop_limit")
        needs_stop = request.order_type in ("stop", "stop_limit")
        if (
            request.side not in (1, -1)
            or request.order_type not in ORDER_TYPES
            or request.qty_raw <= 0
            or needs_limit != (request.limit_px_raw > 0)
            or needs_stop != (request.stop_px_raw > 0)
            or (request.time_in_force or "DAY") not in TIME_IN_FORCE
        ):
            raise VenueError(
                "BAD_REQUEST",
                f"side={request.side}, order_type={request.order_type!r}, qty_raw={request.qty_raw}, "
                f"limit_px_raw={request.limit_px_raw}, stop_px_raw={request.stop_px_raw}, "
                f"time_in_force={request.time_in_force!r}",
            )
        return inst

    def _ib_order(self, request: OrderRequest, inst: Instrument) -> Any:
        import ib_async

        order = ib_async.Order(
            action="BUY" if request.side == 1 else "SELL",
            totalQuantity=float(to_decimal(request.qty_raw, inst.qty_digits)),
            orderType=ORDER_TYPES[request.order_type],
            tif=request.time_in_force or "DAY",
            orderRef=request.client_order_id,
            account=self.account,
        )
        if request.limit_px_raw:
            order.lmtPrice = float(to_decimal(request.limit_px_raw, inst.price_digits))
        if request.stop_px_raw:
            order.auxPrice = float(to_decimal(request.stop_px_raw, inst.price_digits))
        return order

    async def place(self, request: OrderRequest, *, resend: bool = False) -> VenueOrder:
        """Send ``request`` once (module docstring); ``resend`` looks it up by orderRef first."""
        inst = self._checked(request)
        if resend or request.client_order_id in self._requests:
            existing = await self.lookup(request.instrument_id, request.client_order_id)
            if existing is not None:
                self.stats["place.found_on_resend"] += 1
                return existing
        self._requests[request.client_order_id] = request
        attempt = 0
        while True:
            if not self.ib.isConnected():
                raise VenueError("VENUE_UNAVAILABLE", "not connected to TWS", retriable=True)
            trade = self.ib.placeOrder(self.contracts[request.instrument_id], self._ib_order(request, inst))
            self.stats["place.sent"] += 1
            code, message = await self._first_answer(trade)
            if code is None:
                state = self._state(trade)
                assert state is not None
                return self._accept_order(state)
            mapped = map_ib_error(code, message)
            self.stats[f"error.{mapped.rule}"] += 1
            if not mapped.retriable or attempt >= self.retries:
                raise mapped
            delay = min(self.backoff_cap_s, self.backoff_s * 2**attempt)
            self._pacing(mapped, delay)
            await self._sleep(delay)
            attempt += 1
            self.stats["retry"] += 1

    async def _first_answer(self, trade: Any) -> tuple[int | None, str]:
        """Wait until IB acknowledges, fills or refuses the order (or ``ack_timeout_s`` passes:
        the state is then PendingSubmit, and later states arrive through ``updates``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ack_timeout_s
        while loop.time() < deadline:
            if trade.orderStatus.status in _ACKED or trade.orderStatus.status == "Inactive":
                return None, ""
            for entry in trade.log:
                if entry.errorCode and entry.status in ("Cancelled", "ApiCancelled", "Inactive"):
                    code, text = self._errors.get(trade.order.orderId, (entry.errorCode, entry.message))
                    return code, text
            await asyncio.sleep(0.005)
        self.stats["place.no_answer_yet"] += 1
        return None, ""

    async def lookup(self, instrument_id: int, client_order_id: str) -> VenueOrder | None:
        """The order with this orderRef: among the open orders, else from its executions
        (filled), else cancelled or rejected without a fill in this connection's own record of
        its orders (ib_async keeps every order it saw), else — one round trip more, only then —
        among IB's completed orders (``reqCompletedOrders``: cancelled or inactive in an earlier
        connection, or while none was up); ``None`` when IB has none of these. An order with
        executions whose quantity is not known to be filled whole (a restart forgot it) is
        looked up among the completed orders too: it may have ended part filled."""
        for trade in await self._open_orders():
            if trade.order.orderRef == client_order_id:
                state = self._state(trade)
                if state is not None:
                    return self._accept_order(state)
        fills = [f for f in await self._executions() if f.execution.orderRef == client_order_id]
        if not fills:
            closed = self._closed_unfilled(client_order_id)
            if closed is None and (ended := await self._completed_one(instrument_id, client_order_id)):
                closed = self._accept_order(ended)
            return closed
        for fill in fills:
            self._book(fill)
        inst = self.instruments[instrument_id]
        ex = fills[-1].execution
        filled = sum(exact(f.execution.shares, inst.qty_digits, "shares") for f in fills)
        venue_id = self._venue_id(ex.clientId, ex.orderId)
        if ex.permId:
            self._perm_ids[ex.permId] = venue_id
        request = self._requests.get(client_order_id)
        if (request is None or filled < request.qty_raw) and (
            ended := await self._completed_one(instrument_id, client_order_id)
        ):  # ended part filled: cancelled or expired
            return self._accept_order(
                msgspec.structs.replace(ended, filled_qty_raw=max(filled, ended.filled_qty_raw))
            )
        qty = request.qty_raw if request is not None else filled
        return self._accept_order(
            VenueOrder(
                client_order_id=client_order_id,
                venue_order_id=venue_id,
                instrument_id=instrument_id,
                side=1 if ex.side == "BOT" else -1,
                order_type=request.order_type if request is not None else "market",
                status="filled" if filled >= qty else "partially_filled",
                qty_raw=qty,
                filled_qty_raw=filled,
                limit_px_raw=request.limit_px_raw if request is not None else 0,
                update_ms=0,
                source="ib",
            )
        )

    def _closed_unfilled(self, client_order_id: str) -> VenueOrder | None:
        """The cancelled or rejected state of an order with this orderRef that this connection
        saw close (ib_async's ``trades()``), or None. The completed orders ib_async adds to
        ``trades()`` when they are asked for (no order id) are left to ``_completed``."""
        for trade in reversed(self.ib.trades()):
            if trade.order.orderRef != client_order_id or trade.orderStatus.status not in _CLOSED:
                continue
            if trade.order.orderId <= 0:
                continue
            state = self._state(trade)
            if state is not None and state.status in ("canceled", "rejected"):
                return self._accept_order(state)
        return None

    async def _completed_one(self, instrument_id: int, client_order_id: str) -> VenueOrder | None:
        """The completed order (``_completed``) with this orderRef in this instrument, if any."""
        for ended in reversed(await self._completed()):
            if ended.client_order_id == client_order_id and ended.instrument_id == instrument_id:
                self.stats["lookup.found_completed"] += 1
                return ended
        return None

    async def _completed(self) -> list[VenueOrder]:
        """The states of the account's orders that ended without filling whole — cancelled or
        inactive, as IB lists them in ``reqCompletedOrders`` (API orders only) — in this
        session's instruments; filled ones are left to the executions. Not passed on: the
        caller accepts the ones it asked about."""
        self.stats["completed.asked"] += 1
        out = []
        for trade in await self._one_at_a_time("completed", partial(self.ib.reqCompletedOrdersAsync, True)):
            order = trade.order
            if trade.orderStatus.status not in _CLOSED or trade.contract.conId not in self._by_con_id:
                continue
            if self.account and order.account and order.account != self.account:
                continue
            try:
                state = self._state(trade, completed=True)
            except VenueDataError as error:
                self._bad(error)
                continue
            if state is not None:
                out.append(state)
        return out

    async def cancel(self, instrument_id: int, client_order_id: str) -> VenueOrder:
        """Cancel by orderRef and wait for IB's answer: the cancelled state, the final state the
        order reached first (a fill crossed the cancel), ``NOT_CANCELLABLE`` (10148 / 161) or
        ``ORDER_NOT_FOUND`` when IB holds no open order with that orderRef."""
        trades = [t for t in await self._open_orders() if t.order.orderRef == client_order_id]
        if not trades:
            existing = await self.lookup(instrument_id, client_order_id)
            if existing is None:
                raise VenueError("ORDER_NOT_FOUND", f"no open order with orderRef {client_order_id}")
            self.stats["cancel.already_final"] += 1
            return existing
        trade = trades[0]
        seen = len(trade.log)
        self.ib.cancelOrder(trade.order)
        self.stats["cancel.sent"] += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ack_timeout_s
        while loop.time() < deadline:
            for entry in trade.log[seen:]:
                if entry.errorCode in NOT_CANCELLABLE:
                    code, text = self._errors.get(trade.order.orderId, (entry.errorCode, entry.message))
                    raise map_ib_error(code, text)
            if trade.orderStatus.status in ("Cancelled", "ApiCancelled", "Filled"):
                break
            await asyncio.sleep(0.005)
        state = self._state(trade)
        assert state is not None
        return self._accept_order(state)

    async def fetch_open_orders(self, instrument_id: int) -> list[VenueOrder]:
        con_id = self.contracts[instrument_id].conId
        states = []
        for trade in await self._open_orders():
            if trade.contract.conId == con_id:
                state = self._state(trade)
                if state is not None:
                    states.append(self._accept_order(state))
        return states

    async def fetch_fills(self, instrument_id: int) -> list[VenueFill]:
        """This instrument's executions whose commission report is in (today's, as IB keeps
        them), booked here so the streams do not queue them again."""
        con_id = self.contracts[instrument_id].conId
        out = []
        for fill in await self._executions():
            if fill.contract.conId != con_id:
                continue
            if fill.execution.execId in self._booked:
                if self._complete(fill):  # booked before: listed again, the bridge drops it by id
                    out.append(self._venue_fill(fill))
            elif (record := self._book(fill, queue=False)) is not None:
                out.append(record)
        return out

    async def fetch_balances(self) -> list[VenueBalance]:
        """Cash per currency (``CashBalance``, 1e-8) and each instrument's position, as an asset
        named by the instrument's symbol (the bridge compares them with the book)."""
        rows: dict[str, int] = {}
        for value in self.ib.accountValues(self.account):
            if value.tag == "CashBalance" and value.currency not in ("", "BASE"):
                rows[value.currency] = rows.get(value.currency, 0) + _e8(value.value)
        for position in await self._request(self.ib.reqPositionsAsync):
            if self.account and position.account != self.account:
                continue
            iid = self._by_con_id.get(position.contract.conId)
            if iid is None:
                self.stats["position.foreign"] += 1
                continue
            asset = self.instruments[iid].symbol.split("/")[0]
            rows[asset] = rows.get(asset, 0) + _e8(position.position)
        return [
            VenueBalance(asset=asset, free_e8=value, locked_e8=0) for asset, value in sorted(rows.items())
        ]

    # --- market data -------------------------------------------------------------------------

    def bar_grid(self, ts_ns: Iterable[int], days: Iterable[int], interval_ns: int) -> None:
        """The run's step grid (bar closes, UTC ns, and their session days), which daily bars
        are placed on (``IbBars.grid``)."""
        self._bar_feed.grid(ts_ns, days, interval_ns)

    async def watch_bars(self, instrument_id: int, timeframe: str) -> list[VenueBar]:
        """The next closed bar(s) of ``instrument_id`` from its ``keepUpToDate`` subscription
        (``IbBars.watch``: the first call subscribes; a drop or 1101 ends it with a
        ``VenueError``, after which the session watches again and fetches what it missed)."""
        return await self._bar_feed.watch(instrument_id, timeframe)

    async def fetch_bars(
        self, instrument_id: int, timeframe: str, *, since_ms: int | None = None, limit: int | None = None
    ) -> list[VenueBar]:
        """The closed bars from ``since_ms`` on (the last ``limit``, default 2, without it), up to
        TWS's own time (``IbBars.fetch``)."""
        return await self._bar_feed.fetch(instrument_id, timeframe, since_ms=since_ms, limit=limit)

    async def watch_quote(self, instrument_id: int) -> VenueQuote:
        """The next best bid / ask of ``instrument_id`` from its ``reqMktData`` stream
        (``IbQuotes.watch``: the first call subscribes; a stream that ended raises its end once,
        the next call subscribes again)."""
        return await self._quotes.watch(instrument_id)

    async def round_trip(self) -> int:
        """One timed ``reqCurrentTime`` to TWS / IB Gateway (no retries): its round trip in
        nanoseconds, the session's heartbeat (``paper.heartbeat_s``). Raises what it raised."""
        started = time.perf_counter_ns()
        await asyncio.wait_for(self.ib.reqCurrentTimeAsync(), self.connect_timeout_s)
        return time.perf_counter_ns() - started

    # --- streams -----------------------------------------------------------------------------

    def start_streams(self, *, websocket: bool = True) -> None:
        """IB pushes order states and executions on the one socket: streaming is on once
        connected; this only marks it (``websocket`` is accepted for the bridge's session)."""
        if self._streaming:
            raise RuntimeError("streams already started")
        self._streaming = True

    async def stop_streams(self) -> None:
        self._streaming = False
        self._quotes.stop()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def describe_stats(self) -> str:
        return json.dumps(dict(sorted(self.stats.items())))
