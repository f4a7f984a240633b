"""Run a local exchange on its own (for drills where the trading process dies and comes back):

    python -m venues.local_exchange MARKET --port-file PORT_FILE [--start ISO] [--speed N] ...

It serves 127.0.0.1 on a free port (written to ``--port-file`` once it listens), plays the bars
of the data set MARKET that open at or after ``--start``, and, with ``--when-watched N`` (the
default 1), plays the next bar only while N kline subscriptions are open — so a session that
was killed misses no bar: the market waits for it to come back. Keys come from the environment
(``LOCAL_EXCHANGE_API_KEY`` / ``LOCAL_EXCHANGE_SECRET``; never a command line). When every bar
is played it lingers ``--linger`` seconds, then writes ``--state-file`` (every order with its
client id and status, and the balances) and exits. SIGTERM stops it the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from venues.local_exchange._data import markets_from_dataset
from venues.local_exchange._futures import FuturesEngine
from venues.local_exchange._server import LocalExchange


def _iso_ms(text: str) -> int:
    """An ISO time (``2020-02-29T00:00:00Z``; UTC when it names no zone) in epoch ms."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r} (e.g. 2020-02-29T00:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _decimal(low: Decimal, high: Decimal | None) -> Callable[[str], Decimal]:
    """A plain decimal in ``[low, high)`` (no upper bound: ``high`` None)."""

    def parse(text: str) -> Decimal:
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value.is_finite() or value < low or (high is not None and value >= high):
            bound = f"in [{low}, {high})" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m venues.local_exchange", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("market", type=Path, help="a Tape data set (its bars are played)")
    parser.add_argument("--port-file", type=Path, required=True, help="where the port is written")
    parser.add_argument("--state-file", type=Path, help="orders and balances, written at the end")
    parser.add_argument(
        "--start",
        type=_iso_ms,
        default=None,
        help="play bars opening at or after this ISO time (UTC): for a session's first step, its "
        "paper.start less one bar",
    )
    parser.add_argument("--speed", type=_positive, default=5.0, help="bars played a second")
    parser.add_argument(
        "--when-watched", type=int, default=1, help="play only while N kline streams are open"
    )
    parser.add_argument(
        "--cash",
        type=_decimal(Decimal(0), None),
        default="1000000",
        help="the quote assets' starting balance",
    )
    parser.add_argument(
        "--fee", type=_decimal(Decimal(0), Decimal(1)), default="0", help="maker and taker fee rate"
    )
    parser.add_argument("--fee-in", choices=("received", "quote"), default="received")
    parser.add_argument("--linger", type=float, default=5.0, help="seconds served after the last bar")
    parser.add_argument(
        "--market-type",
        choices=("spot", "usdm"),
        default="spot",
        help="spot (Binance /api) or usdm (USD-M perpetuals, /fapi: positions, funding)",
    )
    args = parser.parse_args(argv)
    for path in (args.port_file, args.state_file):  # before the market plays, not after
        if path is not None and not path.parent.is_dir():
            parser.error(f"{path}: no folder {path.parent}")
    try:
        args.markets = markets_from_dataset(args.market)
    except (ValueError, OSError, KeyError) as error:
        parser.error(f"market: {error}")
    if args.start is not None:
        args.markets = [
            dataclasses.replace(m, bars=[bar for bar in m.bars if bar.open_ms >= args.start])
            for m in args.markets
        ]
        if not any(m.bars for m in args.markets):
            parser.error(f"market {args.market}: no bar opens at or after --start")
    return args


async def _serve(args: argparse.Namespace) -> None:
    markets = args.markets
    balances = {m.quote: str(args.cash) for m in markets}
    key = os.environ.get("LOCAL_EXCHANGE_API_KEY", "local-api-key")
    secret = os.environ.get("LOCAL_EXCHANGE_SECRET") or None
    fee = args.fee
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with LocalExchange(
        markets,
        balances,
        api_key=key,
        api_secret=secret,
        maker_fee=fee,
        taker_fee=fee,
        fees_in=args.fee_in,
        market_type=args.market_type,
    ) as exchange:
        args.port_file.write_text(str(exchange.port))
        while exchange.engine.remaining_steps and not stop.is_set():
            while exchange.kline_subscriptions() < args.when_watched and not stop.is_set():
                await asyncio.sleep(0.02)
            await exchange.step()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1 / args.speed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=args.linger)
        if args.state_file is not None:
            engine = exchange.engine
            state = {
                "orders": [
                    {
                        "client_order_id": order.client_order_id,
                        "order_id": order.order_id,
                        "status": order.status,
                        "side": order.side,
                        "qty": str(order.qty),
                        "executed": str(order.executed),
                    }
                    for order in engine.orders.values()
                ],
                "balances": {
                    asset: str(engine.free[asset] + engine.locked.get(asset, 0)) for asset in engine.free
                },
                "bars_left": engine.remaining_steps,
            }
            if isinstance(engine, FuturesEngine):  # signed positions and the funding paid
                state["positions"] = {mid: str(p.qty) for mid, p in engine.positions.items()}
                state["funding"] = engine.income
            args.state_file.write_text(json.dumps(state, indent=1))


def main(argv: list[str] | None = None) -> int:
    asyncio.run(_serve(_parse(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
