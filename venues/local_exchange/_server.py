"""The loopback server: Binance spot REST + websocket streams over ``_engine.Engine``, with faults.

It binds ``127.0.0.1`` only, on a free port chosen by the operating system. ``ccxt_config`` gives
the constructor arguments that point a real ``ccxt.binance`` / ``ccxt.pro.binance`` at it.

Routes (what ccxt 4.5.90 calls for the supported methods; ``docs/local_exchange.md``):

* REST ``/api/v3/``: ``ping``, ``time``, ``exchangeInfo``, ``klines`` (public); ``account``,
  ``order`` (POST / GET / DELETE), ``openOrders`` (GET / DELETE), ``allOrders``, ``myTrades``
  (signed: ``X-MBX-APIKEY`` header, ``timestamp`` and ``signature`` parameters; the HMAC is checked
  when the server knows the secret); ``userDataStream`` (POST / PUT / DELETE, API key only).
* websocket ``/stream/ws[/<n>]``: market streams (``SUBSCRIBE`` / ``UNSUBSCRIBE`` of
  ``<symbol>@kline_<interval>`` and ``<symbol>@bookTicker``), one closed kline per bar played,
  then its best bid / ask (``quote_spread_ticks`` apart around the close).
* websocket ``/ws-api/v3``: the WebSocket API's ``userDataStream.subscribe.signature`` (how ccxt
  subscribes a spot account), ``ping``, ``time``; events arrive as ``{"subscriptionId", "event"}``.
* websocket ``/ws/<listenKey>``: the legacy listen-key user stream (raw events).

Anything else is answered with a JSON error and counted (``stats["rest.unsupported"]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from venues.local_exchange._data import INTERVAL_MS, LocalMarket
from venues.local_exchange._engine import BinanceError, Engine, StepResult, fmt
from venues.local_exchange._futures import FuturesEngine

__all__ = ["Faults", "LocalExchange", "ccxt_config", "ccxt_urls"]

_HOST = "127.0.0.1"
_KLINE = re.compile(r"^([a-z0-9]+)@kline_([0-9a-zA-Z]+)$")
_BOOK_TICKER = re.compile(r"^([a-z0-9]+)@bookTicker$")
_MARK = re.compile(r"^([a-z0-9]+)@markPrice(@1s)?$")
MARKET_TYPES = ("spot", "usdm")
_SIGNATURE = re.compile(r"&?signature=[^&]*")
Handler = Callable[[web.Request, dict[str, str]], Awaitable[Any]]


@dataclass
class Faults:
    """Faults waiting to be applied; each is used up as it fires. ``stream`` is ``user`` or ``market``."""

    rejects: list[tuple[int, str]] = field(default_factory=list)
    http_failures: list[tuple[int, int, str]] = field(default_factory=list)
    rest_delays: list[float] = field(default_factory=list)
    duplicate: dict[str, int] = field(default_factory=lambda: {"user": 0, "market": 0})
    reorder: dict[str, int] = field(default_factory=lambda: {"user": 0, "market": 0})
    held: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"user": [], "market": []})

    def reject_next_order(self, code: int, msg: str, count: int = 1) -> None:
        """The next ``count`` new orders are refused with Binance's ``code`` / ``msg`` (HTTP 400)."""
        self.rejects.extend([(code, msg)] * count)

    def fail_next_requests(self, status: int, code: int, msg: str, count: int = 1) -> None:
        """The next ``count`` REST requests (any path) answer ``status`` with ``code`` / ``msg``
        (429 / -1003 is Binance's rate limit, 503 an unavailable venue)."""
        self.http_failures.extend([(status, code, msg)] * count)

    def delay_next_requests(self, seconds: float, count: int = 1) -> None:
        """The next ``count`` REST requests are answered ``seconds`` late."""
        if seconds < 0:
            raise ValueError(f"a delay must be >= 0 seconds, got {seconds}")
        self.rest_delays.extend([seconds] * count)

    def duplicate_next(self, stream: str, count: int = 1) -> None:
        """The next ``count`` messages on ``stream`` are each sent twice."""
        self._check(stream, count)
        self.duplicate[stream] += count

    def reorder_next(self, stream: str, count: int) -> None:
        """The next ``count`` messages on ``stream`` are held and then sent in reverse order."""
        self._check(stream, count)
        if count < 2:
            raise ValueError("reordering needs at least 2 messages")
        self.reorder[stream] += count

    @staticmethod
    def _check(stream: str, count: int) -> None:
        if stream not in ("user", "market"):
            raise ValueError(f"stream must be 'user' or 'market', got {stream!r}")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")


@dataclass
class _UserSocket:
    ws: web.WebSocketResponse
    subscription_id: int | None  # WebSocket API subscription; None for a listen-key stream


class LocalExchange:
    """A Binance-spot-speaking loopback exchange. Use ``async with LocalExchange(...) as ex``."""

    def __init__(
        self,
        markets: Sequence[LocalMarket],
        balances: Mapping[str, Decimal | str | int],
        *,
        api_key: str = "local-api-key",
        api_secret: str | None = None,
        maker_fee: Decimal = Decimal(0),
        taker_fee: Decimal = Decimal(0),
        fees_in: str = "received",
        fill_fraction: Decimal = Decimal(1),
        unique_client_ids: str = "open",
        clock: Callable[[], int] | None = None,
        quote_spread_ticks: int = 2,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        host: str = _HOST,
        port: int = 0,
        market_type: str = "spot",
        leverage: int = 10,
    ) -> None:
        if host != _HOST:
            raise ValueError(f"the local exchange binds {_HOST} only, not {host!r}")
        if market_type not in MARKET_TYPES:
            raise ValueError(f"market_type must be one of {MARKET_TYPES}, got {market_type!r}")
        self.market_type = market_type
        self.engine: Engine
        if market_type == "usdm":  # USD-M perpetuals: fees always in the margin asset
            self.engine = FuturesEngine(
                markets,
                balances,
                maker_fee=maker_fee,
                taker_fee=taker_fee,
                fill_fraction=fill_fraction,
                unique_client_ids=unique_client_ids,
                clock=clock,
                leverage=leverage,
            )
        else:
            self.engine = Engine(
                markets,
                balances,
                maker_fee=maker_fee,
                taker_fee=taker_fee,
                fees_in=fees_in,
                fill_fraction=fill_fraction,
                unique_client_ids=unique_client_ids,
                clock=clock,
            )
        if quote_spread_ticks <= 0:
            raise ValueError(f"quote_spread_ticks must be positive, got {quote_spread_ticks}")
        self.quote_spread_ticks = quote_spread_ticks  # the bookTicker's bid-ask around each close
        self.api_key = api_key
        self.api_secret = api_secret
        self.faults = Faults()
        self.stats: Counter[str] = Counter()
        self.request_log: list[tuple[str, str]] = []
        self._sleep = sleep
        self._port = port
        self._runner: web.AppRunner | None = None
        self._market_sockets: dict[web.WebSocketResponse, set[str]] = {}
        self._user_sockets: list[_UserSocket] = []
        self._listen_keys: set[str] = set()
        self._next_subscription = 0
        self._player: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._routes: dict[tuple[str, str], tuple[str, Handler]] = {
            ("GET", "/api/v3/ping"): ("public", self._ping),
            ("GET", "/api/v3/time"): ("public", self._time),
            ("GET", "/api/v3/exchangeInfo"): ("public", self._exchange_info),
            ("GET", "/api/v3/klines"): ("public", self._klines),
            ("GET", "/api/v3/account"): ("signed", self._account),
            ("POST", "/api/v3/order"): ("signed", self._new_order),
            ("GET", "/api/v3/order"): ("signed", self._query_order),
            ("DELETE", "/api/v3/order"): ("signed", self._cancel_order),
            ("GET", "/api/v3/openOrders"): ("signed", self._open_orders),
            ("DELETE", "/api/v3/openOrders"): ("signed", self._cancel_all),
            ("GET", "/api/v3/allOrders"): ("signed", self._all_orders),
            ("GET", "/api/v3/myTrades"): ("signed", self._my_trades),
            ("POST", "/api/v3/userDataStream"): ("key", self._new_listen_key),
            ("PUT", "/api/v3/userDataStream"): ("key", self._keep_listen_key),
            ("DELETE", "/api/v3/userDataStream"): ("key", self._close_listen_key),
        }
        if market_type == "usdm":  # Binance's /fapi paths, as ccxt.binanceusdm 4.5.90 calls them
            self._routes = {
                ("GET", "/fapi/v1/ping"): ("public", self._ping),
                ("GET", "/fapi/v1/time"): ("public", self._time),
                ("GET", "/fapi/v1/exchangeInfo"): ("public", self._exchange_info),
                ("GET", "/fapi/v1/klines"): ("public", self._klines),
                ("GET", "/fapi/v1/premiumIndex"): ("public", self._premium_index),
                ("GET", "/fapi/v1/fundingRate"): ("public", self._funding_rate),
                ("GET", "/fapi/v2/account"): ("signed", self._account),
                ("GET", "/fapi/v3/account"): ("signed", self._account),
                ("GET", "/fapi/v2/balance"): ("signed", self._balance),
                ("GET", "/fapi/v3/balance"): ("signed", self._balance),
                ("GET", "/fapi/v2/positionRisk"): ("signed", self._position_risk),
                ("GET", "/fapi/v3/positionRisk"): ("signed", self._position_risk),
                ("GET", "/fapi/v1/income"): ("signed", self._income),
                ("GET", "/fapi/v1/leverageBracket"): ("signed", self._leverage_bracket),
                ("GET", "/fapi/v1/positionSide/dual"): ("signed", self._position_mode),
                ("POST", "/fapi/v1/order"): ("signed", self._new_order),
                ("GET", "/fapi/v1/order"): ("signed", self._query_order),
                ("DELETE", "/fapi/v1/order"): ("signed", self._cancel_order),
                ("GET", "/fapi/v1/openOrders"): ("signed", self._open_orders),
                ("DELETE", "/fapi/v1/allOpenOrders"): ("signed", self._cancel_all),
                ("GET", "/fapi/v1/allOrders"): ("signed", self._all_orders),
                ("GET", "/fapi/v1/userTrades"): ("signed", self._my_trades),
                ("POST", "/fapi/v1/listenKey"): ("key", self._new_listen_key),
                ("PUT", "/fapi/v1/listenKey"): ("key", self._keep_listen_key),
                ("DELETE", "/fapi/v1/listenKey"): ("key", self._close_listen_key),
            }

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> LocalExchange:
        app = web.Application()
        app.router.add_get("/stream/ws", self._market_ws)
        app.router.add_get("/stream/ws/{index}", self._market_ws)
        app.router.add_get("/ws-api/v3", self._ws_api)
        app.router.add_get("/ws/{listen_key}", self._listen_key_ws)
        app.router.add_get("/fstream/{category}/ws", self._fstream_ws)
        app.router.add_get("/fstream/{category}/ws/{index}", self._market_ws)
        app.router.add_route("*", "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, _HOST, self._port)
        await site.start()
        server = site._server  # the bound asyncio server: the port the OS chose
        sockets = getattr(server, "sockets", None)
        assert sockets, "the local exchange's site did not bind"
        self._port = int(sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        await self.stop_playing()
        await self.disconnect("all")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LocalExchange:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._runner is None:
            raise RuntimeError("the local exchange is not started")
        return self._port

    @property
    def http_url(self) -> str:
        return f"http://{_HOST}:{self.port}"

    @property
    def user_streams(self) -> int:
        """User-data websockets subscribed now (WebSocket API or listen key)."""
        return len(self._user_sockets)

    @property
    def market_streams(self) -> int:
        """Market-stream subscriptions open now, over all sockets."""
        return sum(len(names) for names in self._market_sockets.values())

    def ccxt_urls(self, default_api: Mapping[str, Any]) -> dict[str, Any]:
        """Every entry of ccxt's ``urls['api']`` (``default_api``) rewritten to this server."""
        return ccxt_urls(self.port, default_api)

    def ccxt_config(
        self, *, secret: str = "local-secret", rate_limit_ms: int | None = None
    ) -> dict[str, Any]:
        """Constructor arguments for ``ccxt.pro.binance`` (or ``ccxt.binance``) against this server
        -- ``ccxt.pro.binanceusdm`` for a USD-M one: its markets only, no currency / margin
        listing calls."""
        return ccxt_config(
            self.port,
            self.api_key,
            self.api_secret or secret,
            rate_limit_ms=rate_limit_ms,
            market_type=self.market_type,
        )

    # --- playing bars -------------------------------------------------------------------------

    async def step(self, count: int = 1) -> list[StepResult]:
        """Play the next ``count`` bar times and publish what they caused."""
        results = []
        for _ in range(count):
            async with self._lock:
                result = self.engine.step()
                await self._publish_klines(result)
                await self._publish_quotes(result)
                await self._publish_user(result.events)
            results.append(result)
        return results

    def kline_subscriptions(self) -> int:
        """Kline streams subscribed over all market sockets now."""
        return sum(1 for streams in self._market_sockets.values() for name in streams if _KLINE.match(name))

    async def wait_for_kline_subscriptions(self, count: int, timeout_s: float = 10.0) -> None:
        """Wait until ``count`` kline streams are subscribed (so no bar played is missed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.kline_subscriptions() < count:
            if loop.time() > deadline:
                raise TimeoutError(f"{self.kline_subscriptions()} of {count} kline streams subscribed")
            await asyncio.sleep(0.01)

    def play(self, bars_per_second: float) -> asyncio.Task[None]:
        """Play the remaining bars in the background at ``bars_per_second``."""
        if bars_per_second <= 0:
            raise ValueError(f"bars_per_second must be positive, got {bars_per_second}")
        if self._player is not None and not self._player.done():
            raise RuntimeError("already playing")

        async def run() -> None:
            while self.engine.remaining_steps:
                await self.step()
                await self._sleep(1 / bars_per_second)

        self._player = asyncio.get_running_loop().create_task(run())
        return self._player

    async def stop_playing(self) -> None:
        if self._player is not None:
            self._player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._player
            self._player = None

    # --- faults that act now ------------------------------------------------------------------

    async def disconnect(self, stream: str = "all") -> int:
        """Close the websockets of ``stream`` (``user``, ``market`` or ``all``); how many closed."""
        if stream not in ("user", "market", "all"):
            raise ValueError(f"stream must be 'user', 'market' or 'all', got {stream!r}")
        sockets: list[web.WebSocketResponse] = []
        if stream in ("market", "all"):
            sockets.extend(self._market_sockets)
            self._market_sockets.clear()
        if stream in ("user", "all"):
            sockets.extend(user.ws for user in self._user_sockets)
            self._user_sockets.clear()
        for ws in sockets:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"local exchange: injected disconnect")
        self.stats["fault.disconnected"] += len(sockets)
        return len(sockets)

    def partial_fill_next(self, fraction: Decimal) -> None:
        """The next order fills at most ``fraction`` of its quantity per bar."""
        fraction = Decimal(fraction)
        if not Decimal(0) < fraction <= Decimal(1):
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.engine.next_order_fill_fraction = fraction

    async def flush_held(self) -> None:
        """Send messages held for a reorder that never collected its count, in reverse order."""
        for stream in ("user", "market"):
            held = list(reversed(self.faults.held[stream]))
            self.faults.held[stream].clear()
            self.faults.reorder[stream] = 0
            if held:
                self.stats[f"fault.reordered.{stream}"] += len(held)
                await self._fan_out(stream, held)

    # --- websocket publishing -----------------------------------------------------------------

    def _shape(self, stream: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        faults = self.faults
        out: list[dict[str, Any]] = []
        for message in messages:
            if faults.reorder[stream]:
                faults.held[stream].append(message)
                faults.reorder[stream] -= 1
                if not faults.reorder[stream]:
                    self.stats[f"fault.reordered.{stream}"] += len(faults.held[stream])
                    out.extend(reversed(faults.held[stream]))
                    faults.held[stream].clear()
                continue
            out.append(message)
            if faults.duplicate[stream]:
                faults.duplicate[stream] -= 1
                self.stats[f"fault.duplicated.{stream}"] += 1
                out.append(message)
        return out

    async def _publish_user(self, events: list[dict[str, Any]]) -> None:
        if events:
            await self._fan_out("user", self._shape("user", events))

    async def _publish_klines(self, result: StepResult) -> None:
        messages: list[dict[str, Any]] = []
        if isinstance(self.engine, FuturesEngine):  # the mark price (and funding) at each bar's
            # close, sent before the bar, so a session has the step's mark when its bar arrives
            messages.extend(self.engine.mark_price_event(market) for market, _ in result.bars)
        for market, bar in result.bars:
            length = INTERVAL_MS[market.interval]
            messages.append(
                {
                    "e": "kline",
                    "E": result.time_ms,
                    "s": market.id,
                    "k": {
                        "t": bar.open_ms,
                        "T": bar.open_ms + length - 1,
                        "s": market.id,
                        "i": market.interval,
                        "f": -1,
                        "L": -1,
                        "o": fmt(bar.open),
                        "c": fmt(bar.close),
                        "h": fmt(bar.high),
                        "l": fmt(bar.low),
                        "v": fmt(bar.volume),
                        "n": 0,
                        "x": True,
                        "q": fmt(bar.volume * bar.close),
                        "V": "0.00000000",
                        "Q": "0.00000000",
                        "B": "0",
                    },
                }
            )
        if messages:
            await self._fan_out("market", self._shape("market", messages))

    async def _publish_quotes(self, result: StepResult) -> None:
        """Each bar's ``<symbol>@bookTicker``: a bid and an ask ``quote_spread_ticks`` apart
        around its close (the bid at least one tick), sized at the bar's volume."""
        messages = []
        for market, bar in result.bars:
            below = self.quote_spread_ticks // 2
            bid = max(bar.close - below * market.tick_size, market.tick_size)
            ask = bid + self.quote_spread_ticks * market.tick_size
            messages.append(
                {"u": result.time_ms, "s": market.id, "b": fmt(bid), "B": fmt(bar.volume),
                 "a": fmt(ask), "A": fmt(bar.volume)}
            )  # fmt: skip
        if messages:
            await self._fan_out("market", messages)

    async def _fan_out(self, stream: str, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            if stream == "market":
                symbol = message["s"].lower()
                if message.get("e") == "kline":
                    wanted = {f"{symbol}@kline_{message['k']['i']}"}
                elif "e" not in message:  # a spot bookTicker names no event
                    wanted = {f"{symbol}@bookTicker"}
                else:
                    wanted = {f"{symbol}@markPrice", f"{symbol}@markPrice@1s"}
                targets = [(ws, message) for ws, names in self._market_sockets.items() if wanted & names]
            else:
                targets = [
                    (
                        user.ws,
                        message
                        if user.subscription_id is None
                        else {"subscriptionId": user.subscription_id, "event": message},
                    )
                    for user in self._user_sockets
                ]
            for ws, payload in targets:
                if ws.closed:
                    continue
                try:
                    await ws.send_str(json.dumps(payload))
                except ConnectionError:
                    self.stats[f"ws.send_failed.{stream}"] += 1
                    continue
                self.stats[f"ws.sent.{stream}"] += 1

    # --- REST ---------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        self.stats["rest.requests"] += 1
        self.request_log.append((request.method, request.path))
        if self.faults.rest_delays:
            self.stats["fault.delayed"] += 1
            await self._sleep(self.faults.rest_delays.pop(0))
        if self.faults.http_failures:
            status, code, msg = self.faults.http_failures.pop(0)
            self.stats["fault.http_failure"] += 1
            return self._error(BinanceError(code, msg, status))
        route = self._routes.get((request.method, request.path))
        if route is None:
            self.stats["rest.unsupported"] += 1
            return self._error(
                BinanceError(
                    -1000, f"{request.method} {request.path} is not implemented by the local exchange", 404
                )
            )
        access, handler = route
        body = await request.text()
        params = dict(parse_qsl(request.query_string, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        try:
            if access != "public":
                self._check_key(request)
            if access == "signed":
                self._check_signature(params, request.query_string, body)
            async with self._lock:
                return web.json_response(await handler(request, params))
        except BinanceError as error:
            return self._error(error)

    def _error(self, error: BinanceError) -> web.Response:
        self.stats["rest.errors"] += 1
        self.stats[f"rest.error.{error.code}"] += 1
        return web.json_response({"code": error.code, "msg": error.msg}, status=error.status)

    def _check_key(self, request: web.Request) -> None:
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        if key != self.api_key:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)

    def _check_signature(self, params: Mapping[str, str], query: str, body: str) -> None:
        for name in ("timestamp", "signature"):
            if not params.get(name):
                raise BinanceError(
                    -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                )
        if self.api_secret is None:
            return
        total = _SIGNATURE.sub("", query) + _SIGNATURE.sub("", body)
        expected = hmac.new(self.api_secret.encode(), total.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params["signature"]):
            raise BinanceError(-1022, "Signature for this request is not valid.")

    async def _ping(self, request: web.Request, params: dict[str, str]) -> Any:
        return {}

    async def _time(self, request: web.Request, params: dict[str, str]) -> Any:
        return {"serverTime": self.engine.now_ms()}

    async def _exchange_info(self, request: web.Request, params: dict[str, str]) -> Any:
        return self.engine.exchange_info_json()

    async def _klines(self, request: web.Request, params: dict[str, str]) -> Any:
        return self.engine.klines_json(params)

    async def _account(self, request: web.Request, params: dict[str, str]) -> Any:
        return self.engine.account_json()

    async def _premium_index(self, request: web.Request, params: dict[str, str]) -> Any:
        return self._futures().premium_index_json(params)

    async def _funding_rate(self, request: web.Request, params: dict[str, str]) -> Any:
        return self._futures().funding_rate_json(params)

    async def _balance(self, request: web.Request, params: dict[str, str]) -> Any:
        return self._futures().balance_json()

    async def _position_risk(self, request: web.Request, params: dict[str, str]) -> Any:
        return self._futures().position_risk_json(params)

    async def _income(self, request: web.Request, params: dict[str, str]) -> Any:
        return self._futures().income_json(params)

    async def _leverage_bracket(self, request: web.Request, params: dict[str, str]) -> Any:
        return self._futures().leverage_bracket_json(params)

    async def _position_mode(self, request: web.Request, params: dict[str, str]) -> Any:
        return self._futures().position_mode_json()

    def _futures(self) -> FuturesEngine:
        assert isinstance(self.engine, FuturesEngine)
        return self.engine

    async def _new_order(self, request: web.Request, params: dict[str, str]) -> Any:
        if self.faults.rejects:
            code, msg = self.faults.rejects.pop(0)
            self.stats["fault.rejected"] += 1
            raise BinanceError(code, msg)
        order, events = self.engine.place(params)
        await self._publish_user(events)
        answer = self.engine.order_json(order)
        if self.market_type == "usdm":  # ACK and RESULT both answer the order as it stands
            return answer
        kind = params.get("newOrderRespType") or "FULL"
        if kind == "ACK":
            return {key: answer[key] for key in ("symbol", "orderId", "orderListId", "clientOrderId")} | {
                "transactTime": order.created_ms
            }
        answer["transactTime"] = order.created_ms
        if kind == "FULL":
            answer["fills"] = []
        return answer

    async def _query_order(self, request: web.Request, params: dict[str, str]) -> Any:
        return self.engine.order_json(self.engine.find(params))

    async def _cancel_order(self, request: web.Request, params: dict[str, str]) -> Any:
        order, events = self.engine.cancel(params)
        await self._publish_user(events)
        answer = self.engine.order_json(order)
        if self.market_type == "usdm":
            return answer
        answer["origClientOrderId"] = order.client_order_id
        answer["clientOrderId"] = events[0]["c"]
        answer["transactTime"] = order.update_ms
        return answer

    async def _cancel_all(self, request: web.Request, params: dict[str, str]) -> Any:
        market = self.engine.market(params)
        answers = []
        for order in [o for o in self.engine.orders.values() if o.market is market and o.is_open]:
            _, events = self.engine.cancel({"symbol": market.id, "orderId": str(order.order_id)})
            await self._publish_user(events)
            answers.append(self.engine.order_json(order) | {"origClientOrderId": order.client_order_id})
        if self.market_type == "usdm":
            return {"code": 200, "msg": "The operation of cancel all open order is done."}
        return answers

    async def _open_orders(self, request: web.Request, params: dict[str, str]) -> Any:
        return self.engine.open_orders_json(params)

    async def _all_orders(self, request: web.Request, params: dict[str, str]) -> Any:
        market = self.engine.market(params)
        return [self.engine.order_json(o) for o in self.engine.orders.values() if o.market is market]

    async def _my_trades(self, request: web.Request, params: dict[str, str]) -> Any:
        return self.engine.my_trades_json(params)

    async def _new_listen_key(self, request: web.Request, params: dict[str, str]) -> Any:
        key = f"localListenKey{len(self._listen_keys) + 1:050d}"
        self._listen_keys.add(key)
        return {"listenKey": key}

    async def _keep_listen_key(self, request: web.Request, params: dict[str, str]) -> Any:
        if params.get("listenKey") not in self._listen_keys:
            raise BinanceError(-1125, "This listenKey does not exist.")
        return {}

    async def _close_listen_key(self, request: web.Request, params: dict[str, str]) -> Any:
        if params.get("listenKey") not in self._listen_keys:
            raise BinanceError(-1125, "This listenKey does not exist.")
        self._listen_keys.discard(params["listenKey"])
        return {}

    # --- websockets ---------------------------------------------------------------------------

    async def _market_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.stats["ws.connected.market"] += 1
        streams: set[str] = set()
        self._market_sockets[ws] = streams
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                reply = self._market_request(message.data, streams)
                await ws.send_str(json.dumps(reply))
        finally:
            self._market_sockets.pop(ws, None)
        return ws

    def _market_request(self, text: str, streams: set[str]) -> dict[str, Any]:
        try:
            request = json.loads(text)
            method, names, request_id = request["method"], request.get("params", []), request["id"]
        except (ValueError, KeyError, TypeError):
            self.stats["ws.bad_message.market"] += 1
            return {"error": {"code": 3, "msg": "Invalid JSON: expected {method, params, id}"}, "id": None}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(streams), "id": request_id}
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(names, list):
            self.stats["ws.bad_message.market"] += 1
            return {
                "error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"},
                "id": request_id,
            }
        for name in names:
            match = _KLINE.match(str(name))
            book = _BOOK_TICKER.match(str(name))
            market = self.engine.markets.get(match.group(1).upper()) if match else None
            mark = _MARK.match(str(name)) if self.market_type == "usdm" else None
            if book is not None and book.group(1).upper() in self.engine.markets:
                continue
            if mark is not None and mark.group(1).upper() in self.engine.markets:
                continue
            if match is None or market is None or match.group(2) != market.interval:
                self.stats["ws.bad_message.market"] += 1
                return {
                    "error": {
                        "code": 2,
                        "msg": f"Invalid request: the local exchange has no stream {name!r}",
                    },
                    "id": request_id,
                }
        if method == "SUBSCRIBE":
            streams.update(names)
        else:
            streams.difference_update(names)
        return {"result": None, "id": request_id}

    async def _ws_api(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.stats["ws.connected.user"] += 1
        user: _UserSocket | None = None
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                reply, subscribed = self._api_request(message.data)
                if subscribed is not None:
                    user = _UserSocket(ws, subscribed)
                    self._user_sockets.append(user)
                await ws.send_str(json.dumps(reply))
        finally:
            if user is not None and user in self._user_sockets:
                self._user_sockets.remove(user)
        return ws

    def _api_request(self, text: str) -> tuple[dict[str, Any], int | None]:
        try:
            request = json.loads(text)
            request_id, method, params = request["id"], request["method"], request.get("params", {})
            if not isinstance(params, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self.stats["ws.bad_message.user"] += 1
            return {
                "id": None,
                "status": 400,
                "error": {"code": -1000, "msg": "expected {id, method, params}"},
            }, None

        def error(code: int, msg: str, status: int = 400) -> tuple[dict[str, Any], None]:
            self.stats["ws.bad_message.user"] += 1
            return {"id": request_id, "status": status, "error": {"code": code, "msg": msg}}, None

        if method == "ping":
            return {"id": request_id, "status": 200, "result": {}}, None
        if method == "time":
            return {"id": request_id, "status": 200, "result": {"serverTime": self.engine.now_ms()}}, None
        if method != "userDataStream.subscribe.signature":
            return error(-1000, f"the local exchange does not implement WebSocket API method {method!r}")
        refusal = self._check_ws_signature(params)
        if refusal is not None:
            return error(*refusal)
        subscription = self._next_subscription
        self._next_subscription += 1
        return {"id": request_id, "status": 200, "result": {"subscriptionId": subscription}}, subscription

    def _check_ws_signature(self, params: Mapping[str, Any]) -> tuple[int, str, int] | None:
        if params.get("apiKey") != self.api_key:
            return -2015, "Invalid API-key, IP, or permissions for action.", 401
        if not params.get("timestamp") or not params.get("signature"):
            return -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.", 400
        if self.api_secret is not None:
            query = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
            expected = hmac.new(self.api_secret.encode(), query.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, str(params["signature"])):
                return -1022, "Signature for this request is not valid.", 400
        return None

    async def _fstream_ws(self, request: web.Request) -> web.StreamResponse:
        """USD-M: ``/fstream/private/ws?listenKey=K`` is the user stream (how ccxt 4.5.90 reaches
        it), ``/fstream/{public,market}/ws[/<n>]`` a market socket."""
        if request.match_info["category"] == "private":
            return await self._listen_key_ws(request, request.query.get("listenKey", ""))
        return await self._market_ws(request)

    async def _listen_key_ws(self, request: web.Request, key: str | None = None) -> web.StreamResponse:
        key = request.match_info["listen_key"] if key is None else key
        if key not in self._listen_keys:
            self.stats["ws.bad_message.user"] += 1
            return self._error(BinanceError(-1125, "This listenKey does not exist.", 404))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.stats["ws.connected.user"] += 1
        user = _UserSocket(ws, None)
        self._user_sockets.append(user)
        try:
            async for _ in ws:
                pass
        finally:
            if user in self._user_sockets:
                self._user_sockets.remove(user)
        return ws


def ccxt_urls(port: int, default_api: Mapping[str, Any]) -> dict[str, Any]:
    """Every entry of ccxt's ``urls['api']`` (``default_api``) rewritten to a local exchange on
    ``127.0.0.1:port``: ccxt deep-merges ``urls``, so an entry left out would still point at
    Binance."""

    def rewrite(key: str, value: Any, ws_api: bool) -> Any:
        if isinstance(value, Mapping):
            return {k: rewrite(k, v, ws_api or k == "ws-api") for k, v in value.items()}
        if not isinstance(value, str):
            return value
        parts = urlsplit(value)
        if parts.scheme in ("ws", "wss"):
            if ws_api:
                path = "/ws-api/v3" if key == "spot" else "/unsupported" + parts.path
            elif key == "linear":  # USD-M market streams and the listen-key user stream
                path = "/fstream/ws"
            else:
                path = "/stream/ws" if key in ("spot", "margin") else "/unsupported" + parts.path
            return f"ws://{_HOST}:{port}{path}"
        return f"http://{_HOST}:{port}{parts.path}"

    return {"api": rewrite("api", default_api, False)}


def ccxt_config(
    port: int,
    api_key: str,
    secret: str,
    *,
    rate_limit_ms: int | None = None,
    market_type: str = "spot",
) -> dict[str, Any]:
    """Constructor arguments for ``ccxt.pro.binance`` (``market_type="usdm"``:
    ``ccxt.pro.binanceusdm``) against a local exchange on ``127.0.0.1:port`` (one in this
    process, or one ``python -m venues.local_exchange`` runs)."""
    import ccxt.pro  # the dev / live extra; the server itself does not need ccxt

    if market_type not in MARKET_TYPES:
        raise ValueError(f"market_type must be one of {MARKET_TYPES}, got {market_type!r}")
    usdm = market_type == "usdm"
    client = ccxt.pro.binanceusdm() if usdm else ccxt.pro.binance()
    config: dict[str, Any] = {
        "apiKey": api_key,
        "secret": secret,
        "urls": ccxt_urls(port, client.describe()["urls"]["api"]),
        "options": {
            "fetchCurrencies": False,
            "fetchMargins": False,
            "fetchMarkets": {"types": ["linear"] if usdm else ["spot"]},
            "defaultType": "swap" if usdm else "spot",
        },
    }
    if rate_limit_ms is not None:
        config["rateLimit"] = rate_limit_ms
    return config
