"""What IB sends, as Tape values: its numbers (floats on the wire) as exact fixed-point integers,
its error codes ("Message Codes") as Tape rule codes. Shared by the adapter (``venues.ib_venue``)
its quote streams (``venues.ib_quotes``) and its bars (``venues.ib_bars``); no I/O, no ib_async."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from venues.ccxt_venue import VenueDataError, VenueError

__all__ = ["exact", "map_ib_error", "ms_since_epoch", "number"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)

# Order and request errors as Tape rule codes (IB "Message Codes"); retriable ones are retried.
_IB_CODES: dict[int, tuple[str, bool]] = {
    100: ("RATE_LIMIT", True),
    162: ("RATE_LIMIT", True),
    103: ("DUPLICATE_ORDER", False),
    104: ("ORDER_NOT_FOUND", False),  # cannot modify a filled order
    110: ("TICK_SIZE", False),
    135: ("ORDER_NOT_FOUND", False),
    10147: ("ORDER_NOT_FOUND", False),
    161: ("NOT_CANCELLABLE", False),
    10148: ("NOT_CANCELLABLE", False),
    200: ("UNKNOWN_INSTRUMENT", False),
    201: ("VENUE_REJECT", False),
    202: ("VENUE_REJECT", False),  # cancelled by IB before it was acknowledged
    203: ("NOT_PERMITTED", False),
    355: ("LOT_SIZE", False),
    382: ("BAD_REQUEST", False),
    387: ("BAD_REQUEST", False),
    502: ("VENUE_UNAVAILABLE", True),
    504: ("VENUE_UNAVAILABLE", True),
    1100: ("VENUE_UNAVAILABLE", True),
    # market data (``reqMktData``): no live data for the contract on this account, or delayed
    # data only (the paper broker fills at live quotes, never at 15-minute-old ones)
    354: ("NOT_PERMITTED", False),  # requested market data is not subscribed
    10167: ("DELAYED_DATA", False),  # not subscribed: displaying delayed market data
    10168: ("NOT_PERMITTED", False),  # not subscribed, delayed market data not enabled
    10197: ("VENUE_UNAVAILABLE", True),  # no market data during a competing live session
}
_FUNDS = ("insufficient", "margin", "available funds", "buying power", "equity with loan")


def map_ib_error(code: int, message: str) -> VenueError:
    """An IB error code and its text as a ``VenueError`` (201's text tells a funds reject)."""
    rule, retriable = _IB_CODES.get(code, ("VENUE_ERROR", False))
    if code == 162 and "pacing" not in message.lower():  # no data, or a query TWS cancelled
        rule, retriable = "NO_DATA", False
    if code == 201 and any(token in message.lower() for token in _FUNDS):
        rule = "INSUFFICIENT_BALANCE"
    return VenueError(rule, f"IB {code} {message}".strip(), retriable=retriable, venue_code=code)


def number(value: object) -> Decimal:
    """IB's number (an int, a float as ib_async parsed it, or text) as a finite ``Decimal``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise VenueDataError(f"not a number: {value!r}")
    try:
        parsed = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        raise VenueDataError(f"not a decimal number: {value!r}") from None
    if not parsed.is_finite():
        raise VenueDataError(f"not finite: {value!r}")
    return parsed


def exact(value: object, digits: int, what: str) -> int:
    """IB's number (a float on the wire) as a raw integer at ``digits``; off those digits: error."""
    scaled = number(value).scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise VenueDataError(f"{what} {value!r} is not a whole number of 1e-{digits}")
    return int(scaled)


def ms_since_epoch(stamp: dt.datetime) -> int:
    """An aware time IB stated (an execution's, a bar's start, TWS's clock) as Unix milliseconds."""
    return (stamp - _EPOCH) // _MS
