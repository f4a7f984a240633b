"""ccxt unified markets -> ``Instrument``: tick, lot, contract size and currency as exact integers.

A ccxt market (``exchange.markets[symbol]`` after ``load_markets``, or one entry of
``exchange.parse_markets(raw)``) states its price and amount precision in the exchange's
``precisionMode``:

* ``TICK_SIZE`` (almost every exchange in ccxt 4.x): ``precision.price`` is the tick itself
  (``0.01``); the price digits are the tick's decimal places and ``tick_raw`` the tick at
  those digits (a tick of ``0.5`` is ``tick_raw=5`` at 1 digit, a tick of ``5`` is
  ``tick_raw=5`` at 0 digits);
* ``DECIMAL_PLACES``: ``precision.price`` is a count of decimal places (``2`` -> tick 0.01);
* ``SIGNIFICANT_DIGITS`` (e.g. Bitfinex): the tick depends on the price level, which no fixed
  ``tick_raw`` can state -- refused.

ccxt hands numbers over as Python floats parsed from the venue's decimal text. They are turned
back into that text with ``repr`` (the shortest string that round-trips, which is the venue's
text whenever it had at most 15 significant digits) and read as ``Decimal``; every raw integer
is then exact, and a value that does not land on the chosen digits is an error, never rounded.

Refused, with a ``MarketMappingError`` naming the symbol: inverse contracts (their notional is
in the base currency, ``Instrument`` notional is ``qty x price x multiplier`` in the quote),
contract sizes that are not whole numbers, unknown settlement currencies, inactive markets
(unless asked for) and significant-digits precision.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.fixed import Rounding, div_round, minor_digits
from domain.instruments import OPTION_ASSET_CLASS, Instrument

__all__ = [
    "DECIMAL_PLACES",
    "SIGNIFICANT_DIGITS",
    "TICK_SIZE",
    "MarketMappingError",
    "instrument_from_market",
    "instruments_from_exchange",
]

# ccxt.base.decimal_to_precision's precision modes (kept here so this module imports without ccxt).
DECIMAL_PLACES = 2
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4

_ASSET_CLASS = {
    "spot": "crypto_spot",
    "swap": "crypto_perp",
    "future": "crypto_future",
    "option": OPTION_ASSET_CLASS,
}
_MS_PER_DAY = 86_400_000


class MarketMappingError(ValueError):
    """A ccxt market that cannot be stated exactly as an ``Instrument``; the message names it."""


def _decimal(symbol: str, field: str, value: object) -> Decimal:
    """The venue's decimal text behind a ccxt number (float, int or str)."""
    if value is None or isinstance(value, bool):
        raise MarketMappingError(f"{symbol}: {field} is missing ({value!r})")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MarketMappingError(f"{symbol}: {field} is not finite ({value!r})")
        text = repr(value)
    elif isinstance(value, int | str | Decimal):
        text = str(value)
    else:
        raise MarketMappingError(f"{symbol}: {field} must be a number, got {type(value).__name__}")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise MarketMappingError(f"{symbol}: {field} is not a decimal number ({value!r})") from None
    if not number.is_finite():
        raise MarketMappingError(f"{symbol}: {field} is not finite ({value!r})")
    return number


def _places(number: Decimal) -> int:
    """Decimal places needed to write ``number`` exactly (0 for whole numbers)."""
    exponent = number.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def _raw(symbol: str, field: str, number: Decimal, digits: int) -> int:
    """``number`` as an integer count of ``10**-digits``; inexact is an error."""
    scaled = number.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise MarketMappingError(f"{symbol}: {field} {number} is not a whole number of 1e-{digits} units")
    return int(scaled)


def _step(symbol: str, field: str, value: object, precision_mode: int, digits: int | None) -> tuple[int, int]:
    """(digits, step_raw) for a price tick or an amount step stated in ``precision_mode``."""
    if precision_mode == SIGNIFICANT_DIGITS:
        raise MarketMappingError(
            f"{symbol}: {field} is in SIGNIFICANT_DIGITS mode; the tick depends on the price level "
            f"and has no fixed tick_raw"
        )
    number = _decimal(symbol, field, value)
    if precision_mode == DECIMAL_PLACES:
        if number != number.to_integral_value():
            raise MarketMappingError(f"{symbol}: {field} {number} is not a count of decimal places")
        number = Decimal(1).scaleb(-int(number))
    elif precision_mode != TICK_SIZE:
        raise MarketMappingError(f"{symbol}: unknown ccxt precisionMode {precision_mode!r}")
    if number <= 0:
        raise MarketMappingError(f"{symbol}: {field} must be positive, got {number}")
    needed = _places(number)
    if digits is None:
        digits = needed
    elif digits < needed:
        raise MarketMappingError(f"{symbol}: {field} {number} needs {needed} digits, {digits} were asked for")
    return digits, _raw(symbol, field, number, digits)


def _nested(market: Mapping[str, Any], *keys: str) -> Any:
    value: Any = market
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _kind(market: Mapping[str, Any], symbol: str) -> str:
    kinds = [name for name in ("spot", "swap", "future", "option") if market.get(name)]
    if len(kinds) != 1:
        raise MarketMappingError(f"{symbol}: expected exactly one of spot/swap/future/option, got {kinds}")
    return kinds[0]


def _currency(market: Mapping[str, Any], symbol: str, kind: str) -> str:
    quote = market.get("quote")
    if kind == "spot":
        currency = quote
    else:
        if market.get("inverse"):
            raise MarketMappingError(
                f"{symbol}: inverse contract (settled in {market.get('settle')}): its notional is "
                f"contracts x size / price in the base currency, which Instrument cannot state"
            )
        if not market.get("linear") or market.get("settle") != quote:
            raise MarketMappingError(
                f"{symbol}: only linear contracts map (settle {market.get('settle')!r} == quote {quote!r})"
            )
        currency = market.get("settle")
    if not isinstance(currency, str):
        raise MarketMappingError(f"{symbol}: no quote/settle currency")
    try:
        minor_digits(currency)
    except ValueError as error:
        raise MarketMappingError(f"{symbol}: {error}") from None
    return currency


def _multiplier(market: Mapping[str, Any], symbol: str, kind: str) -> int:
    if kind == "spot":
        return 1
    size = _decimal(symbol, "contractSize", market.get("contractSize"))
    if size <= 0 or size != size.to_integral_value():
        raise MarketMappingError(
            f"{symbol}: contractSize {size} is not a positive whole number "
            "(Instrument.multiplier is an integer)"
        )
    return int(size)


def _min_notional(market: Mapping[str, Any], symbol: str, currency: str) -> int:
    """limits.cost.min in minor units, rounded up: an order at the rounded value is still enough."""
    value = _nested(market, "limits", "cost", "min")
    if value is None:
        return 0
    number = _decimal(symbol, "limits.cost.min", value)
    if number < 0:
        raise MarketMappingError(f"{symbol}: limits.cost.min must be >= 0, got {number}")
    places = _places(number)
    scaled = _raw(symbol, "limits.cost.min", number, places)
    return div_round(scaled * 10 ** minor_digits(currency), 10**places, Rounding.CEILING)


def _expiry_day(market: Mapping[str, Any], symbol: str) -> int:
    expiry = market.get("expiry")
    if isinstance(expiry, bool) or not isinstance(expiry, int) or expiry <= 0:
        raise MarketMappingError(f"{symbol}: an option needs its expiry (ms since the epoch), got {expiry!r}")
    date = dt.date(1970, 1, 1) + dt.timedelta(days=expiry // _MS_PER_DAY)
    return date.year * 10000 + date.month * 100 + date.day


def _option_fields(market: Mapping[str, Any], symbol: str, price_digits: int) -> dict[str, Any]:
    right = market.get("optionType")
    if right not in ("call", "put"):
        raise MarketMappingError(f"{symbol}: optionType must be 'call' or 'put', got {right!r}")
    strike = _decimal(symbol, "strike", market.get("strike"))
    return {
        "underlying": f"{market.get('base')}/{market.get('quote')}",
        "strike_raw": _raw(symbol, "strike", strike, price_digits),
        "expiry_day": _expiry_day(market, symbol),
        "right": right,
    }


def instrument_from_market(
    market: Mapping[str, Any],
    *,
    precision_mode: int,
    instrument_id: int,
    venue: str,
    price_digits: int | None = None,
    qty_digits: int | None = None,
    allow_inactive: bool = False,
) -> Instrument:
    """Map one ccxt unified market to an ``Instrument``.

    ``precision_mode`` is the exchange's ``precisionMode``. ``price_digits`` / ``qty_digits``
    fix the raw scales (e.g. to match stored bars); by default they are the fewest digits that
    hold the tick and the amount step exactly. ``symbol`` is ccxt's unified symbol.
    """
    symbol = market.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise MarketMappingError(f"market without a symbol: id {market.get('id')!r}")
    if market.get("active") is False and not allow_inactive:
        raise MarketMappingError(f"{symbol}: market is not active (pass allow_inactive=True to map it)")
    kind = _kind(market, symbol)
    currency = _currency(market, symbol, kind)
    p_digits, tick_raw = _step(
        symbol, "precision.price", _nested(market, "precision", "price"), precision_mode, price_digits
    )
    q_digits, lot_raw = _step(
        symbol, "precision.amount", _nested(market, "precision", "amount"), precision_mode, qty_digits
    )
    option = _option_fields(market, symbol, p_digits) if kind == "option" else {}
    try:
        return Instrument(
            instrument_id=instrument_id,
            symbol=symbol,
            venue=venue,
            asset_class=_ASSET_CLASS[kind],
            currency=currency,
            price_digits=p_digits,
            tick_raw=tick_raw,
            qty_digits=q_digits,
            lot_raw=lot_raw,
            multiplier=_multiplier(market, symbol, kind),
            min_notional_minor=_min_notional(market, symbol, currency),
            **option,
        )
    except MarketMappingError:
        raise
    except ValueError as error:
        raise MarketMappingError(f"{symbol}: {error}") from None


def instruments_from_exchange(
    exchange: Any, symbols: list[str], *, first_id: int = 1, venue: str | None = None
) -> list[Instrument]:
    """Instruments for ``symbols`` from a ccxt exchange whose markets are loaded (ids in order)."""
    markets = getattr(exchange, "markets", None) or {}
    name = venue if venue is not None else str(exchange.id)
    result = []
    for offset, symbol in enumerate(symbols):
        if symbol not in markets:
            raise MarketMappingError(f"{symbol}: not among {exchange.id}'s loaded markets")
        result.append(
            instrument_from_market(
                markets[symbol],
                precision_mode=int(exchange.precisionMode),
                instrument_id=first_id + offset,
                venue=name,
            )
        )
    return result
