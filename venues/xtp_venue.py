"""An A-share broker port over XTP (中泰证券's trading API, through ``vnpy_xtp``'s ``TdApi``).

``XtpVenue`` has the interface of ``venues.ccxt_venue.CcxtVenue`` (``place`` / ``cancel`` /
``lookup`` / ``fetch_open_orders`` / ``fetch_fills`` / ``fetch_balances`` / ``start_streams`` /
``stop_streams``, and the same records through the asyncio queue ``updates``), so
``venues.live_bridge.LiveBridge`` drives it unchanged. Everything XTP says arrives through its
callbacks (``onOrderEvent``, ``onTradeEvent``, ``onCancelOrderError``, ``onQueryOrderEx``,
``onQueryTrade``, ``onQueryPosition``, ``onQueryAsset``, ``onDisconnected``, ``onError``); this
class has methods of those names taking XTP's dicts as ``vnpy_xtp`` builds them, so the
translation is plain Python and is tested on recorded messages without the library. The
callbacks come on XTP's own thread: each is handed to the event loop
(``call_soon_threadsafe``) and handled there in arrival order.

* **Rules before an order leaves**: ``place`` checks the order against the A-share rules with
  the kernel's own code (``kernel.markets.MarketRules.check``: lots, STAR 200+1, odd-lot sells,
  T+1 sellable quantity) and ``domain.markets`` (tick, the day's price limits from the
  reference price given by ``set_reference``); a refused order raises ``VenueError`` with the
  rule code and never reaches ``insertOrder``. The sellable book it checks against is the
  broker's position (``fetch_balances``: total and sellable quantity) kept in step with the
  orders and trades this adapter sees. The kernel checks the same rules at submission: this
  is the second gate, for an order the kernel's book let through while the broker's differs.
* **Client order ids**: XTP echoes a ``uint32`` ``order_client_id``. The Tape id
  ``{tag}-{n}`` (``LiveBridge.client_id``, n the kernel's order counter) goes out as
  ``(crc32(tag) & 0xFF) << 24 | n``, and an id read back with the run's byte is named
  ``{tag}-{n:06d}`` again, so a restarted session knows its orders (``queryOrdersEx``) and a
  resend finds the order instead of placing it twice.
* **Fills only from trades**: ``onOrderEvent`` carries ``qty_traded`` (the order's state),
  ``onTradeEvent`` each execution; only trades become ``VenueFill``s, each once (by market,
  ``exec_id`` and side: XTP gives a self-trade's two sides the same ``exec_id``).
* **Errors**: XTP's ``error_id`` / ``error_msg`` become Tape rule codes (``map_xtp_error``),
  by the message's wording (XTP's numeric codes are kept in ``venue_code``, not interpreted).
* **Fees**: XTP's trade report carries no fee; fills go in with a zero fee and the kernel
  books the statutory A-share fees itself. The broker's commission is not booked (say so in
  reconciliation: the cash line differs by it).
* **Markets**: XSHG/SSE → ``XTP_MKT_SH_A`` (2), XSHE/SZSE → ``XTP_MKT_SZ_A`` (1); the XTP
  headers ``vnpy_xtp`` 2.2.32 ships have no Beijing market, so BJSE instruments are refused.
* **Times**: XTP's ``YYYYMMDDHHMMSSsss`` are Beijing time (UTC+8, no daylight saving) and
  become epoch ms by arithmetic; this module reads no clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from domain.events import OrderSubmitted
from domain.instruments import Instrument
from domain.markets import (
    HolidayYears,
    SellableBook,
    apply_buy_fill,
    apply_sell_fill,
    check_price_limit,
    check_tick,
    cn_instrument_limits,
    release_sell,
    reserve_sell,
)
from domain.orders import new_order
from kernel.markets import MarketRules, is_cn_a_share
from venues.ccxt_venue import (
    BALANCE_DIGITS,
    OrderRequest,
    StreamNote,
    Update,
    VenueBalance,
    VenueDataError,
    VenueError,
    VenueFill,
    VenueOrder,
    exact_raw,
    newer_state,
)

__all__ = [
    "XTP_MKT_SH_A",
    "XTP_MKT_SZ_A",
    "XtpVenue",
    "client_number",
    "load_td_api",
    "map_xtp_error",
    "open_xtp",
    "xtp_market",
    "xtp_ms",
]

# xtp_api_data_type.h (vnpy_xtp 2.2.32.2.3)
XTP_MKT_SZ_A = 1
XTP_MKT_SH_A = 2
XTP_SIDE_BUY = 1
XTP_SIDE_SELL = 2
XTP_PRICE_LIMIT = 1
XTP_PRICE_BEST5_OR_CANCEL = 4  # 最优5档即时成交剩余转撤销 (market order, SH and SZ)
XTP_POSITION_EFFECT_INIT = 0
XTP_BUSINESS_TYPE_CASH = 0
XTP_TERT_RESTART = 0
_STATUS = {
    0: "new",  # XTP_ORDER_STATUS_INIT
    1: "filled",  # ALLTRADED
    2: "partially_filled",  # PARTTRADEDQUEUEING
    3: "canceled",  # PARTTRADEDNOTQUEUEING: part traded, the rest cancelled
    4: "new",  # NOTRADEQUEUEING
    5: "canceled",  # CANCELED
    6: "rejected",  # REJECTED
}
_FINAL = ("filled", "canceled", "rejected", "expired")
_MARKETS = {"XSHG": XTP_MKT_SH_A, "SSE": XTP_MKT_SH_A, "XSHE": XTP_MKT_SZ_A, "SZSE": XTP_MKT_SZ_A}
_BEIJING = dt.timezone(dt.timedelta(hours=8))
_CLIENT_BITS = 24

# error_msg wording -> rule code (first match wins); the numbers are XTP's and kept as detail
_BY_WORDING: tuple[tuple[tuple[str, ...], str, bool], ...] = (
    (("资金不足", "可用资金", "insufficient fund", "buying power"), "INSUFFICIENT_BALANCE", False),
    (("持仓不足", "股份不足", "可卖", "可用数量", "insufficient position"), "CN_T_PLUS_1", False),
    (("涨跌停", "涨停", "跌停", "价格笼子", "price limit"), "CN_PRICE_LIMIT", False),
    (("价格", "price"), "CN_TICK", False),
    (("数量", "整数倍", "quantity"), "CN_LOT", False),
    (("停牌", "suspend"), "CN_SUSPENDED", False),
    (("不存在", "未找到", "not exist", "not found"), "ORDER_NOT_FOUND", False),
    (("已成交", "已撤", "不能撤", "不允许撤", "final state"), "ORDER_FINAL", False),
    (("流控", "频率", "too many", "flow control"), "RATE_LIMIT", True),
    (("密码", "登录", "未登录", "授权", "key", "login", "password"), "AUTH", False),
    (("断开", "连接", "超时", "connect", "timeout", "network"), "VENUE_UNAVAILABLE", True),
)
_EMPTY_QUERY = ("无记录", "没有记录", "查询结果为空", "no record", "not found")


def map_xtp_error(error: Mapping[str, Any] | None, context: str = "") -> VenueError:
    """An XTP ``{"error_id", "error_msg"}`` as a ``VenueError`` with a Tape rule code."""
    error = error or {}
    code = int(error.get("error_id") or 0)
    msg = str(error.get("error_msg") or "")
    lowered = msg.lower()
    rule, retriable = "VENUE_REJECT", False
    for words, name, again in _BY_WORDING:
        if any(word in lowered for word in words):
            rule, retriable = name, again
            break
    detail = f"xtp {code} {msg}".strip() + (f" ({context})" if context else "")
    return VenueError(rule, detail, retriable=retriable, venue_code=code)


def _is_error(error: Mapping[str, Any] | None) -> bool:
    return bool(error) and int((error or {}).get("error_id") or 0) != 0


def xtp_ms(stamp: object) -> int:
    """XTP's ``YYYYMMDDHHMMSSsss`` (Beijing time) as epoch milliseconds; 0 stays 0."""
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        raise VenueDataError(f"XTP time must be an integer YYYYMMDDHHMMSSsss, got {stamp!r}")
    if stamp == 0:
        return 0
    text = f"{stamp:017d}"
    try:
        moment = dt.datetime(
            int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]),
            int(text[12:14]), int(text[14:17]) * 1000, tzinfo=_BEIJING,
        )  # fmt: skip
    except ValueError:
        raise VenueDataError(f"XTP time {stamp} is not a YYYYMMDDHHMMSSsss time") from None
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def xtp_market(inst: Instrument) -> tuple[int, str]:
    """(XTP market, ticker) of an A-share instrument: the six-digit code of its symbol."""
    market = _MARKETS.get(inst.venue)
    if market is None:
        raise VenueError(
            "UNKNOWN_INSTRUMENT",
            f"{inst.symbol}: venue {inst.venue!r} has no XTP market (XTP 2.2.32 trades SH and SZ A-shares)",
        )
    ticker = inst.symbol.split(".")[0]
    if len(ticker) != 6 or not ticker.isdigit():
        raise VenueError("UNKNOWN_INSTRUMENT", f"{inst.symbol}: not a six-digit A-share code")
    return market, ticker


def client_number(tag: str, client_order_id: str) -> int:
    """The ``uint32`` ``order_client_id`` of a Tape client id ``{tag}-{n}`` (module docstring)."""
    prefix, _, number = client_order_id.rpartition("-")
    if prefix != tag or not number.isdigit():
        raise VenueError("BAD_REQUEST", f"client order id {client_order_id!r} is not {tag}-<number>")
    n = int(number)
    if n >= 1 << _CLIENT_BITS:
        raise VenueError("BAD_REQUEST", f"order number {n} does not fit XTP's order_client_id")
    return (zlib.crc32(tag.encode()) & 0xFF) << _CLIENT_BITS | n


def _price_text(value: object, what: str) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int | str | Decimal) and not isinstance(value, bool):
        return str(value)
    raise VenueDataError(f"{what} must be a number, got {value!r}")


def _qty(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise VenueDataError(f"{what} must be a whole number of shares, got {value!r}")
    return value


def load_td_api() -> type[Any]:
    """``vnpy_xtp``'s ``TdApi`` class. ``vnpy_xtp/__init__.py`` imports the vnpy gateway (and
    an undeclared ``importlib_metadata``); when that fails, the compiled module is loaded from
    the package's folder directly. Raises ImportError when vnpy_xtp is not installed."""
    try:
        from vnpy_xtp.api import TdApi  # type: ignore[import-not-found,import-untyped,unused-ignore]

        return TdApi  # type: ignore[no-any-return,unused-ignore]
    except ImportError:
        import importlib.machinery
        import importlib.util
        from pathlib import Path

        spec = importlib.util.find_spec("vnpy_xtp")
        if spec is None or not spec.submodule_search_locations:
            raise
        api_dir = Path(next(iter(spec.submodule_search_locations))) / "api"
        found = sorted(api_dir.glob("vnxtptd*.so")) + sorted(api_dir.glob("vnxtptd*.pyd"))
        if not found:
            raise
        loader = importlib.machinery.ExtensionFileLoader("vnxtptd", str(found[0]))
        module_spec = importlib.util.spec_from_loader("vnxtptd", loader)
        assert module_spec is not None
        module = importlib.util.module_from_spec(module_spec)
        loader.exec_module(module)
        return module.TdApi  # type: ignore[no-any-return]


class _Query:
    def __init__(self, future: asyncio.Future[list[dict[str, Any]]]) -> None:
        self.future = future
        self.rows: list[dict[str, Any]] = []


class XtpVenue:
    """One XTP trading session (``api``: a logged-in ``TdApi`` or anything with its methods)."""

    def __init__(
        self,
        api: Any,
        session_id: int,
        instruments: Iterable[Instrument],
        *,
        tag: str,
        day: int,
        answer_timeout_s: float = 5.0,
        backoff_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        relogin: Callable[[], Awaitable[int]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[float], float] = float,
        loop: asyncio.AbstractEventLoop | None = None,
        holidays: HolidayYears | None = None,
    ) -> None:
        # ``holidays``: XSHG's years past exchange_calendars' (the run's data set's
        # ``Panel.holidays``), so a listing's first sessions count on the calendar the run uses
        self.holidays = holidays
        self.api = api
        self.session_id = session_id
        self.instruments = {inst.instrument_id: inst for inst in instruments}
        self._by_ticker: dict[tuple[int, str], Instrument] = {}
        for inst in self.instruments.values():
            if not is_cn_a_share(inst):
                raise ValueError(f"{inst.symbol}: XTP trades A-shares; venue {inst.venue!r} is not one")
            self._by_ticker[xtp_market(inst)] = inst
        self.rules = MarketRules(dict(self.instruments))
        self.tag = tag
        self.day = day
        self.answer_timeout_s = answer_timeout_s
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self._relogin = relogin
        self._sleep = sleep
        self._jitter = jitter
        self._loop = loop or asyncio.get_running_loop()
        self._tag_byte = zlib.crc32(tag.encode()) & 0xFF
        self.stats: Counter[str] = Counter()
        self.updates: asyncio.Queue[Update] = asyncio.Queue()
        self.books: dict[int, SellableBook] = {}  # the second gate's T+1 book, per instrument
        self._refs: dict[int, int] = {}  # the day's reference price (previous close), raw
        self._orders: dict[str, VenueOrder] = {}  # by XTP order id
        self._sent: dict[str, OrderRequest] = {}  # by XTP order id: what this adapter sent
        self._xtp_by_client: dict[str, str] = {}
        self._seen_orders: set[tuple[str, int, str, int]] = set()
        self._seen_trades: set[tuple[int, str]] = set()
        self._first: dict[str, asyncio.Future[tuple[VenueOrder, dict[str, Any]]]] = {}
        self._cancels: dict[str, asyncio.Future[VenueError | None]] = {}
        self._queries: dict[int, _Query] = {}
        self._next_request = 1
        self._streaming = False
        self._reconnecting = False
        self._tasks: list[asyncio.Task[None]] = []
        self._reconcile_lock = asyncio.Lock()

    # --- identities ------------------------------------------------------------------------

    def instrument(self, market: object, ticker: object) -> Instrument:
        inst = self._by_ticker.get((int(market) if isinstance(market, int) else -1, str(ticker)))
        if inst is None:
            raise VenueDataError(
                f"market {market!r} ticker {ticker!r} is not one of this venue's instruments"
            )
        return inst

    def client_id_of(self, order_client_id: object) -> str:
        """The Tape client id of an XTP ``order_client_id`` ("" when it is not this run's)."""
        if isinstance(order_client_id, bool) or not isinstance(order_client_id, int):
            return ""
        if order_client_id >> _CLIENT_BITS != self._tag_byte:
            return ""
        return f"{self.tag}-{order_client_id & ((1 << _CLIENT_BITS) - 1):06d}"

    # --- the second gate -------------------------------------------------------------------

    def set_reference(self, instrument_id: int, ref_px_raw: int) -> None:
        """The day's reference price (the previous close, or the ex-rights reference) from which
        the price limits of ``day`` follow."""
        self._refs[instrument_id] = ref_px_raw

    def _book(self, instrument_id: int) -> SellableBook:
        return self.books.get(instrument_id) or SellableBook(day=self.day)

    def refusal(self, request: OrderRequest) -> str | None:
        """Why the A-share rules forbid sending ``request`` now (None: it may go)."""
        inst = self.instruments[request.instrument_id]
        order = new_order(
            OrderSubmitted(
                ts_ns=0, order_id=request.client_order_id, strategy_id="", instrument_id=inst.instrument_id,
                side=request.side, order_type=request.order_type, qty_raw=request.qty_raw,
                limit_px_raw=request.limit_px_raw, decision_px_raw=request.limit_px_raw,
            )
        )  # fmt: skip
        reason = self.rules.check({inst.instrument_id: self._book(inst.instrument_id)}, self.day, order)
        if reason or request.order_type != "limit":
            return reason
        reason = check_tick(request.limit_px_raw, inst.tick_raw, inst.price_digits)
        if reason:
            return reason
        ref = self._refs.get(inst.instrument_id)
        if ref is None:
            return f"CN_PRICE_LIMIT: no reference price for {inst.symbol} on {self.day} (set_reference)"
        limits = cn_instrument_limits(inst, self.day, ref, self.holidays)
        return check_price_limit(request.limit_px_raw, limits, inst.price_digits)

    def _book_step(self, instrument_id: int, change: Callable[[SellableBook], SellableBook]) -> None:
        try:
            self.books[instrument_id] = change(self._book(instrument_id))
        except ValueError as error:  # the broker's book moved in a way this one cannot follow
            self.stats["gate.book_out_of_step"] += 1
            self.updates.put_nowait(StreamNote(kind="bad_message", stream="gate", detail=str(error)))

    # --- callbacks (XTP's thread) ----------------------------------------------------------

    def _post(self, handler: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._guarded, handler, args)
        except RuntimeError:  # the loop is closed (the session ended): nothing may raise into XTP
            self.stats["callback_after_close"] += 1

    def _guarded(self, handler: Callable[..., None], args: tuple[Any, ...]) -> None:
        try:
            handler(*args)
        except (VenueDataError, KeyError, TypeError, ValueError) as error:
            self.stats["bad_message"] += 1
            self.updates.put_nowait(StreamNote(kind="bad_message", stream="xtp", detail=f"{error!r}"))

    def onOrderEvent(self, data: Mapping[str, Any], error: Mapping[str, Any], session: int) -> None:
        self._post(self._order_event, dict(data), dict(error or {}))

    def onTradeEvent(self, data: Mapping[str, Any], session: int) -> None:
        self._post(self._trade_event, dict(data))

    def onCancelOrderError(self, data: Mapping[str, Any], error: Mapping[str, Any], session: int) -> None:
        self._post(self._cancel_error, dict(data), dict(error or {}))

    def onQueryOrderEx(
        self, data: Mapping[str, Any], error: Mapping[str, Any], reqid: int, last: bool, session: int
    ) -> None:
        self._post(self._query_row, reqid, dict(data), dict(error or {}), last)

    onQueryTrade = onQueryOrderEx
    onQueryPosition = onQueryOrderEx
    onQueryAsset = onQueryOrderEx

    def onDisconnected(self, session: int, reason: int) -> None:
        self._post(self._disconnected, reason)

    def onError(self, error: Mapping[str, Any]) -> None:
        self._post(self._error, dict(error or {}))

    # --- callbacks (the loop) --------------------------------------------------------------

    def _state(self, data: Mapping[str, Any], source: str) -> VenueOrder:
        inst = self.instrument(data["market"], data["ticker"])
        xtp_id = str(data["order_xtp_id"])
        status = _STATUS.get(data["order_status"])
        if status is None:
            raise VenueDataError(
                f"order {xtp_id}: order_status {data['order_status']!r} is not one Tape reads"
            )
        side = {XTP_SIDE_BUY: 1, XTP_SIDE_SELL: -1}.get(data["side"])
        if side is None:
            raise VenueDataError(f"order {xtp_id}: side {data['side']!r} is not buy (1) or sell (2)")
        price = _price_text(data["price"], f"order {xtp_id} price")
        update = max(xtp_ms(data.get("update_time") or 0), xtp_ms(data.get("cancel_time") or 0))
        return VenueOrder(
            client_order_id=self.client_id_of(data.get("order_client_id")),
            venue_order_id=xtp_id,
            instrument_id=inst.instrument_id,
            side=side,
            order_type="limit" if data.get("price_type") == XTP_PRICE_LIMIT else "market",
            status=status,
            qty_raw=_qty(data["quantity"], f"order {xtp_id} quantity"),
            filled_qty_raw=_qty(data["qty_traded"], f"order {xtp_id} qty_traded"),
            limit_px_raw=exact_raw(price, inst.price_digits, f"order {xtp_id} price"),
            update_ms=update or xtp_ms(data.get("insert_time") or 0),
            source=source,
        )

    def _fill(self, data: Mapping[str, Any], source: str) -> VenueFill:
        inst = self.instrument(data["market"], data["ticker"])
        exec_id = str(data["exec_id"]).strip()
        if not exec_id:
            raise VenueDataError(f"trade of order {data.get('order_xtp_id')}: empty exec_id")
        side = {XTP_SIDE_BUY: 1, XTP_SIDE_SELL: -1}.get(data["side"])
        if side is None:
            raise VenueDataError(f"trade {exec_id}: side {data['side']!r} is not buy (1) or sell (2)")
        xtp_id = str(data["order_xtp_id"])
        known = self._orders.get(xtp_id)
        client = self.client_id_of(data.get("order_client_id")) or (known.client_order_id if known else "")
        return VenueFill(
            trade_id=f"{data['market']}:{exec_id}:{'B' if side > 0 else 'S'}",
            venue_order_id=xtp_id,
            client_order_id=client,
            instrument_id=inst.instrument_id,
            side=side,
            qty_raw=_qty(data["quantity"], f"trade {exec_id} quantity"),
            px_raw=exact_raw(
                _price_text(data["price"], "price"), inst.price_digits, f"trade {exec_id} price"
            ),
            fee_e8=0,
            fee_asset=inst.currency,
            maker=False,
            ts_ms=xtp_ms(data["trade_time"]),
            source=source,
        )

    def _order_event(self, data: dict[str, Any], error: dict[str, Any]) -> None:
        state = self._state(data, "push")
        self._accept_order(state)
        first = self._first.pop(state.venue_order_id, None)
        if first is not None and not first.done():
            first.set_result((state, error))
        if state.status in _FINAL and state.venue_order_id in self._cancels:
            waiting = self._cancels.pop(state.venue_order_id)
            if not waiting.done():
                waiting.set_result(None)

    def _trade_event(self, data: dict[str, Any]) -> None:
        self._accept_fill(self._fill(data, "push"))

    def _cancel_error(self, data: dict[str, Any], error: dict[str, Any]) -> None:
        xtp_id = str(data["order_xtp_id"])
        self.stats["cancel.refused"] += 1
        waiting = self._cancels.pop(xtp_id, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(map_xtp_error(error, f"cancel of order {xtp_id}"))

    def _query_row(self, reqid: int, data: dict[str, Any], error: dict[str, Any], last: bool) -> None:
        query = self._queries.get(reqid)
        if query is None:
            self.stats["query.late_answer"] += 1
            return
        if _is_error(error):
            message = str(error.get("error_msg") or "").lower()
            if not any(word in message for word in _EMPTY_QUERY):
                self._queries.pop(reqid)
                if not query.future.done():
                    query.future.set_exception(map_xtp_error(error, f"query {reqid}"))
                return
        elif data:
            query.rows.append(data)
        if last:
            self._queries.pop(reqid)
            if not query.future.done():
                query.future.set_result(query.rows)

    def _disconnected(self, reason: int) -> None:
        self.stats["disconnected"] += 1
        self.updates.put_nowait(StreamNote(kind="disconnected", stream="xtp", detail=f"reason {reason}"))
        for query in self._queries.values():
            if not query.future.done():
                query.future.set_exception(VenueError("VENUE_UNAVAILABLE", "disconnected", retriable=True))
        self._queries.clear()
        if self._streaming and self._relogin is not None and not self._reconnecting:
            self._reconnecting = True
            self._tasks.append(self._loop.create_task(self._reconnect()))

    def _error(self, error: dict[str, Any]) -> None:
        self.stats["error"] += 1
        mapped = map_xtp_error(error)
        self.updates.put_nowait(StreamNote(kind="bad_message", stream="xtp", detail=mapped.reason))

    # --- de-duplication --------------------------------------------------------------------

    def _accept_order(self, order: VenueOrder) -> VenueOrder:
        """Each order state once; an older state arriving after a newer one is dropped (stale).
        A sell order this adapter sent gives its unfilled rest back to the T+1 book when it ends."""
        key = (order.venue_order_id, order.update_ms, order.status, order.filled_qty_raw)
        if key in self._seen_orders:
            self.stats[f"dedup.order_duplicate.{order.source}"] += 1
            return order
        self._seen_orders.add(key)
        last = self._orders.get(order.venue_order_id)
        if last is not None and (last.status in _FINAL or not newer_state(order, last)):
            self.stats[f"dedup.order_stale.{order.source}"] += 1
            return order
        self._orders[order.venue_order_id] = order
        if order.client_order_id:
            self._xtp_by_client.setdefault(order.client_order_id, order.venue_order_id)
        sent = self._sent.get(order.venue_order_id)
        if sent is not None and sent.side < 0 and order.status in ("canceled", "rejected", "expired"):
            rest = order.qty_raw - order.filled_qty_raw
            if rest:
                self._book_step(order.instrument_id, lambda b: release_sell(b, self.day, rest))
        self.updates.put_nowait(order)
        return order

    def _accept_fill(self, fill: VenueFill) -> bool:
        key = (fill.instrument_id, fill.trade_id)
        if key in self._seen_trades:
            self.stats[f"dedup.fill_duplicate.{fill.source}"] += 1
            return False
        self._seen_trades.add(key)
        qty = fill.qty_raw
        if fill.side > 0:
            self._book_step(fill.instrument_id, lambda b: apply_buy_fill(b, self.day, qty))
        elif fill.venue_order_id in self._sent:
            self._book_step(fill.instrument_id, lambda b: apply_sell_fill(b, self.day, qty))
        self.updates.put_nowait(fill)
        return True

    # --- requests --------------------------------------------------------------------------

    def _checked(self, request: OrderRequest) -> Instrument:
        inst = self.instruments.get(request.instrument_id)
        if inst is None:
            raise VenueError("UNKNOWN_INSTRUMENT", f"instrument_id={request.instrument_id}")
        if (
            request.side not in (1, -1)
            or request.order_type not in ("market", "limit")
            or request.qty_raw <= 0
        ):
            raise VenueError(
                "BAD_REQUEST",
                f"side={request.side}, order_type={request.order_type!r}, qty_raw={request.qty_raw}",
            )
        return inst

    async def place(self, request: OrderRequest, *, resend: bool = False) -> VenueOrder:
        """Check the A-share rules, then send ``request`` once and wait for XTP's first answer;
        ``resend`` (after a restart) looks the order up by its client id first."""
        inst = self._checked(request)
        number = client_number(self.tag, request.client_order_id)
        if resend:
            existing = await self.lookup(request.instrument_id, request.client_order_id)
            if existing is not None:
                self.stats["place.found_on_resend"] += 1
                return self._accept_order(existing)
        reason = self.refusal(request)
        if reason:
            rule = reason.split(":", 1)[0]
            self.stats[f"gate.refused.{rule}"] += 1
            raise VenueError(rule, reason.split(":", 1)[1].strip() if ":" in reason else reason)
        market, ticker = xtp_market(inst)
        limit = request.order_type == "limit"
        price = float(Decimal(request.limit_px_raw).scaleb(-inst.price_digits)) if limit else 0.0
        insert = {
            "order_client_id": number,
            "ticker": ticker,
            "market": market,
            "price": price,
            "quantity": request.qty_raw,
            "price_type": XTP_PRICE_LIMIT if limit else XTP_PRICE_BEST5_OR_CANCEL,
            "side": XTP_SIDE_BUY if request.side > 0 else XTP_SIDE_SELL,
            "position_effect": XTP_POSITION_EFFECT_INIT,
            "business_type": XTP_BUSINESS_TYPE_CASH,
        }
        if request.side < 0:  # reserved before it leaves, given back if it is refused
            self._book_step(inst.instrument_id, lambda b: reserve_sell(b, self.day, request.qty_raw))
        xtp_id = str(self.api.insertOrder(insert, self.session_id) or 0)
        if xtp_id == "0":
            if request.side < 0:
                self._book_step(inst.instrument_id, lambda b: release_sell(b, self.day, request.qty_raw))
            mapped = map_xtp_error(self.api.getApiLastError(), "insertOrder")
            self.stats[f"error.{mapped.rule}"] += 1
            raise mapped
        self.stats["place.sent"] += 1
        self._sent[xtp_id] = request
        self._xtp_by_client[request.client_order_id] = xtp_id
        known = self._orders.get(xtp_id)
        if known is not None:  # its first state came before insertOrder returned
            return known
        first = self._first.setdefault(xtp_id, self._loop.create_future())
        try:
            state, error = await asyncio.wait_for(first, self.answer_timeout_s)
        except TimeoutError:
            self._first.pop(xtp_id, None)
            self.stats["place.no_answer_yet"] += 1
            return VenueOrder(
                client_order_id=request.client_order_id, venue_order_id=xtp_id,
                instrument_id=inst.instrument_id, side=request.side, order_type=request.order_type,
                status="new", qty_raw=request.qty_raw, filled_qty_raw=0,
                limit_px_raw=request.limit_px_raw, update_ms=0, source="insert",
            )  # fmt: skip
        if state.status == "rejected":
            mapped = map_xtp_error(error, f"order {xtp_id}")
            self.stats[f"error.{mapped.rule}"] += 1
            raise mapped
        return state

    async def _query(self, what: str, call: Callable[[int], int]) -> list[dict[str, Any]]:
        reqid = self._next_request
        self._next_request += 1
        query = _Query(self._loop.create_future())
        self._queries[reqid] = query
        status = call(reqid)
        if status:
            self._queries.pop(reqid, None)
            raise map_xtp_error(self.api.getApiLastError(), what)
        try:
            return await asyncio.wait_for(query.future, self.answer_timeout_s)
        except TimeoutError:
            self._queries.pop(reqid, None)
            self.stats["query.timeout"] += 1
            raise VenueError(
                "VENUE_UNAVAILABLE", f"{what}: no answer in {self.answer_timeout_s}s", retriable=True
            ) from None

    async def lookup(self, instrument_id: int, client_order_id: str) -> VenueOrder | None:
        """The order with this client id today, or ``None`` when XTP has none."""
        inst = self.instruments[instrument_id]
        _, ticker = xtp_market(inst)
        rows = await self._query(
            "queryOrdersEx",
            lambda reqid: self.api.queryOrdersEx(
                {"ticker": ticker, "begin_time": 0, "end_time": 0}, self.session_id, reqid
            ),
        )
        states = [self._state(row, "query") for row in rows]
        mine = [s for s in states if s.client_order_id == client_order_id]
        if not mine:
            return None
        best = mine[0]
        for state in mine[1:]:
            best = state if newer_state(state, best) else best
        self._xtp_by_client[client_order_id] = best.venue_order_id
        return best

    async def cancel(self, instrument_id: int, client_order_id: str) -> VenueOrder:
        """Cancel by client id and wait for the order's final state. An order already final is
        returned as it is; one XTP never had raises ``ORDER_NOT_FOUND``."""
        xtp_id = self._xtp_by_client.get(client_order_id)
        if xtp_id is None:
            found = await self.lookup(instrument_id, client_order_id)
            if found is None:
                raise VenueError("ORDER_NOT_FOUND", f"client_order_id={client_order_id}")
            xtp_id = self._accept_order(found).venue_order_id
        known = self._orders.get(xtp_id)
        if known is not None and known.status in _FINAL:
            self.stats["cancel.already_final"] += 1
            return known
        waiting = self._cancels.setdefault(xtp_id, self._loop.create_future())
        if not self.api.cancelOrder(int(xtp_id), self.session_id):
            self._cancels.pop(xtp_id, None)
            raise map_xtp_error(self.api.getApiLastError(), f"cancelOrder {xtp_id}")
        self.stats["cancel.sent"] += 1
        try:
            refused = await asyncio.wait_for(waiting, self.answer_timeout_s)
        except TimeoutError:
            self._cancels.pop(xtp_id, None)
            self.stats["cancel.no_answer_yet"] += 1
            refused = None
        state = self._orders.get(xtp_id)
        if refused is not None:
            if state is not None and state.status in _FINAL:
                self.stats["cancel.already_final"] += 1
                return state
            raise refused
        if state is None:
            raise VenueError("ORDER_NOT_FOUND", f"order {xtp_id}: no state after the cancel")
        return state

    async def fetch_order(self, instrument_id: int, client_order_id: str) -> VenueOrder:
        order = await self.lookup(instrument_id, client_order_id)
        if order is None:
            raise VenueError("ORDER_NOT_FOUND", f"client_order_id={client_order_id}")
        return self._accept_order(order)

    async def fetch_open_orders(self, instrument_id: int) -> list[VenueOrder]:
        rows = await self._query(
            "queryUnfinishedOrdersEx", lambda reqid: self.api.queryUnfinishedOrdersEx(self.session_id, reqid)
        )
        states = [self._state(row, "query") for row in rows]
        return [self._accept_order(s) for s in states if s.instrument_id == instrument_id]

    async def fetch_fills(self, instrument_id: int, *, from_trade_id: int | None = None) -> list[VenueFill]:
        """Today's trades of the instrument (XTP has no trade-id cursor: ``from_trade_id`` is
        accepted for the interface and not used; repeats are dropped by trade id downstream)."""
        _, ticker = xtp_market(self.instruments[instrument_id])
        rows = await self._query(
            "queryTrades",
            lambda reqid: self.api.queryTrades(
                {"ticker": ticker, "begin_time": 0, "end_time": 0}, self.session_id, reqid
            ),
        )
        return [self._fill(row, "query") for row in rows]

    async def fetch_balances(self) -> list[VenueBalance]:
        """Cash (``buying_power`` free, ``withholding_amount`` held for open buys) and each
        instrument's shares (sellable free, the rest locked), at 1e-8; the T+1 gate's book is
        reset from the positions (with this adapter's open sells as reserved)."""
        assets = await self._query("queryAsset", lambda reqid: self.api.queryAsset(self.session_id, reqid))
        positions = await self._query(
            "queryPosition", lambda reqid: self.api.queryPosition("", self.session_id, reqid)
        )
        if len(assets) != 1:
            raise VenueDataError(f"queryAsset answered {len(assets)} rows, not 1")
        currencies = {inst.currency for inst in self.instruments.values()}
        if len(currencies) != 1:
            raise VenueDataError(f"one cash currency expected, got {sorted(currencies)}")
        cash = next(iter(currencies))
        asset = assets[0]
        balances = [
            VenueBalance(
                asset=cash,
                free_e8=exact_raw(
                    _price_text(asset["buying_power"], "buying_power"), BALANCE_DIGITS, "buying_power"
                ),
                locked_e8=exact_raw(
                    _price_text(asset["withholding_amount"], "withholding_amount"),
                    BALANCE_DIGITS,
                    "withholding_amount",
                ),
            )
        ]
        held: dict[int, tuple[int, int]] = {}
        for row in positions:
            try:
                inst = self.instrument(row["market"], row["ticker"])
            except VenueDataError:
                self.stats["position.other_instrument"] += 1
                continue
            held[inst.instrument_id] = (
                _qty(row["total_qty"], "total_qty"),
                _qty(row["sellable_qty"], "sellable_qty"),
            )
        for iid in sorted(self.instruments):
            total, free = held.get(iid, (0, 0))
            reserved = sum(
                o.qty_raw - o.filled_qty_raw
                for xtp_id, o in self._orders.items()
                if o.instrument_id == iid and o.is_open and o.side < 0 and xtp_id in self._sent
            )
            bought_today = min(total, max(0, total - free - reserved))
            self.books[iid] = SellableBook(
                day=self.day, holding=total, bought_today=bought_today, reserved=reserved
            )
            scale = 10**BALANCE_DIGITS
            if total:
                balances.append(
                    VenueBalance(
                        asset=self.instruments[iid].symbol.split("/")[0],
                        free_e8=free * scale,
                        locked_e8=(total - free) * scale,
                    )
                )
        return balances

    # --- streams ---------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Catch up by queries after a gap: open orders, known open orders that left the open
        list, today's trades; all through the same de-duplication."""
        async with self._reconcile_lock:
            for iid in sorted(self.instruments):
                open_now = {o.venue_order_id for o in await self.fetch_open_orders(iid)}
                gone = [
                    o
                    for o in self._orders.values()
                    if o.instrument_id == iid and o.is_open and o.venue_order_id not in open_now
                ]
                for order in gone:
                    if order.client_order_id:
                        await self.fetch_order(iid, order.client_order_id)
                for fill in await self.fetch_fills(iid):
                    self._accept_fill(fill)
            self.stats["reconciled"] += 1
            self.updates.put_nowait(StreamNote(kind="reconciled", stream="xtp"))

    async def _reconnect(self) -> None:
        assert self._relogin is not None
        failures = 0
        while True:
            await self._sleep(self._jitter(min(self.backoff_cap_s, self.backoff_s * 2**failures)))
            try:
                self.session_id = await self._relogin()
                await self.reconcile()
                self._reconnecting = False
                return
            except VenueError as error:
                failures += 1
                self.stats["relogin.failed"] += 1
                self.updates.put_nowait(StreamNote(kind="disconnected", stream="xtp", detail=error.reason))

    def start_streams(self, *, websocket: bool = True) -> None:
        """XTP pushes order and trade events by itself once logged in; this only turns on
        re-login and reconciliation after a disconnect (``websocket`` is ignored)."""
        if self._streaming:
            raise RuntimeError("streams already started")
        self._streaming = True

    async def stop_streams(self) -> None:
        self._streaming = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []


_FORWARDED = (
    "onOrderEvent",
    "onTradeEvent",
    "onCancelOrderError",
    "onQueryOrderEx",
    "onQueryTrade",
    "onQueryPosition",
    "onQueryAsset",
    "onDisconnected",
    "onError",
)


async def open_xtp(
    instruments: Iterable[Instrument],
    *,
    tag: str,
    day: int,
    client_id: int,
    save_path: str,
    server_ip: str,
    server_port: int,
    user: str,
    password: str,
    software_key: str,
    sock_type: int = 1,
    log_level: int = 3,
    **venue_options: Any,
) -> XtpVenue:
    """A logged-in ``XtpVenue`` over ``vnpy_xtp``'s ``TdApi`` (raises ImportError without it).

    The order and trade stream is subscribed from the start of the trading day
    (``XTP_TERT_RESTART``), so what happened before a restart comes again and passes the same
    de-duplication. Login blocks, so it runs in a worker thread; a failed login raises the
    mapped ``getApiLastError``, read on the thread that logged in: XTP keeps the last error
    per thread (the password and key go to XTP only). After a disconnect, once
    ``start_streams`` has run, the venue logs in again the same way and reconciles."""
    td_api = load_td_api()
    forwarded: dict[str, Any] = {}

    def forward(name: str) -> Callable[..., None]:
        def call(self: Any, *args: Any) -> None:
            getattr(self.target, name)(*args)

        call.__name__ = name
        return call

    for name in _FORWARDED:
        forwarded[name] = forward(name)
    gateway_class = type("TapeXtpTd", (td_api,), forwarded)
    td = gateway_class()
    venue = XtpVenue(td, 0, instruments, tag=tag, day=day, **venue_options)
    td.target = venue
    td.createTraderApi(client_id, save_path, log_level)
    td.subscribePublicTopic(XTP_TERT_RESTART)
    td.setSoftwareKey(software_key)
    loop = asyncio.get_running_loop()

    def blocking_login() -> tuple[int, dict[str, Any]]:
        session = td.login(server_ip, server_port, user, password, sock_type)
        return int(session or 0), {} if session else dict(td.getApiLastError())  # per thread

    async def login() -> int:
        session, error = await loop.run_in_executor(None, blocking_login)
        if not session:
            raise map_xtp_error(error, f"login to {server_ip}:{server_port}")
        return session

    venue._relogin = login
    venue.session_id = await login()
    return venue
