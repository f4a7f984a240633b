"""Validation that quarantines, never drops.

Input is one instrument's rows in file order with float prices as parsed (NaN = missing).
Every row ends either accepted (converted to raw integers) or in the quarantine table with
exactly one reason, the first check it fails, in this order:

``missing_value`` → ``non_positive_price`` → ``negative_volume`` → ``off_price_grid`` →
``ohlc_inconsistent`` → ``outside_session`` → ``duplicate`` → ``time_backwards`` → ``outlier``.

Trades (``validate_trades``) and quotes (``validate_quotes``) use ``missing_value`` →
``non_positive_price`` → ``non_positive_size`` → ``off_price_grid`` → ``crossed_quote`` /
``locked_quote`` (quotes) → ``duplicate`` → ``time_backwards``.

``in = accepted + quarantined`` holds by construction and is asserted on the way out.
"""

from __future__ import annotations

import bisect
import enum
import json
import math
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from lake.schema import FUNDING_RATES, QUARANTINE, QUOTES, TRADES, Kind, conform
from lake.sessions import Sessions

__all__ = [
    "BarInput",
    "FundingInput",
    "QuoteInput",
    "TradeInput",
    "Reason",
    "Validated",
    "to_raw",
    "too_large",
    "validate_bars",
    "validate_funding",
    "validate_quotes",
    "validate_trades",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
MISSING_TS = np.iinfo(np.int64).min
OUTLIER_MAD_K = 12.0
"""A close is a spike when it jumps in and back out by more than this many robust sigmas."""
OUTLIER_MOVE_MIN = 0.05
"""...and by at least 5% (log), so flat series with a tiny MAD do not flag ordinary ticks."""


_FIELDS = ("open", "high", "low", "close", "volume")


class Reason(enum.StrEnum):
    MISSING_VALUE = "missing_value"
    NON_POSITIVE_PRICE = "non_positive_price"
    NEGATIVE_VOLUME = "negative_volume"
    OFF_PRICE_GRID = "off_price_grid"
    OHLC_INCONSISTENT = "ohlc_inconsistent"
    OUTSIDE_SESSION = "outside_session"
    DUPLICATE = "duplicate"
    TIME_BACKWARDS = "time_backwards"
    OUTLIER = "outlier"
    NON_POSITIVE_SIZE = "non_positive_size"
    CROSSED_QUOTE = "crossed_quote"
    LOCKED_QUOTE = "locked_quote"


@dataclass(frozen=True, eq=False)
class BarInput:
    """Parsed bars of one instrument in file order. ``ts_ns`` is the bar close in UTC ns
    (``MISSING_TS`` if absent); for daily bars ``daily=True`` and ``day`` gives the session
    date instead, the timestamp being taken from the calendar."""

    source: str
    instrument_id: int
    line: IntArray
    ts_ns: IntArray
    day: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    turnover: FloatArray | None = None
    daily: bool = False

    def __len__(self) -> int:
        return len(self.line)


@dataclass(frozen=True, eq=False)
class Validated:
    accepted: pa.Table
    accepted_line: IntArray
    quarantine: pa.Table
    rows_in: int
    snapped: int = 0  # prices moved onto the grid (``snap_grid``), in rows that were accepted
    # Rows the lake already holds as they are (``lake.ingest``): an identical stored row, or
    # the same rejection already in its quarantine (counted in ``already_quarantined`` too).
    # They are neither stored again nor quarantined: in = accepted + quarantined + these.
    already_stored: int = 0
    already_quarantined: int = 0

    @property
    def rows_accepted(self) -> int:
        return int(self.accepted.num_rows)

    @property
    def rows_quarantined(self) -> int:
        return int(self.quarantine.num_rows)

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for reason in self.quarantine.column("reason").to_pylist():
            counts[reason] = counts.get(reason, 0) + 1
        return dict(sorted(counts.items()))


def to_raw(values: FloatArray, digits: int) -> tuple[IntArray, BoolArray]:
    """Floats -> raw integers at ``digits``, and a mask of values that are not on that grid
    (beyond float noise: more than 1e-9 relative, or 1e-9 raw units for values below one).
    A value with no int64 at ``digits`` (``too_large``) comes out as 0: callers quarantine it."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.asarray(values, dtype=np.float64) * float(10**digits)
    finite = np.isfinite(scaled)
    safe = np.where(finite, scaled, 0.0)
    raw = np.rint(safe)
    tolerance = np.maximum(1.0, np.abs(safe)) * 1e-9
    off = finite & (np.abs(safe - raw) > tolerance)
    return np.where(np.abs(raw) < _INT64_SAFE, raw, 0.0).astype(np.int64), off


_REASONS = list(Reason)


@dataclass
class _Verdict:
    """The first reason per row (a code into ``_REASONS``, 0 = still good) and a detail string
    per flagged row. Integer codes keep the per-check masks cheap on million-row files."""

    size: int
    code: npt.NDArray[np.int8] = field(init=False)
    detail: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.code = np.zeros(self.size, dtype=np.int8)

    def flag(self, mask: BoolArray, reason: Reason, detail: str = "") -> None:
        if not mask.any():
            return
        fresh = mask & (self.code == 0)
        self.code[fresh] = _REASONS.index(reason) + 1
        if detail:
            for index in np.flatnonzero(fresh):
                self.detail[int(index)] = detail

    @property
    def ok(self) -> BoolArray:
        return np.asarray(self.code == 0, dtype=np.bool_)

    def reasons(self, rows: IntArray) -> list[str]:
        return [_REASONS[code - 1].value for code in self.code[rows].tolist()]


def snap_grid(values: FloatArray, digits: int, within: float) -> tuple[FloatArray, BoolArray]:
    """Values within ``within`` raw units (a fraction of one 1e-``digits`` step) of the grid,
    moved onto it, and a mask of the ones that moved. For files that store prices as float32
    and print them truncated (16.149 for 16.15): ``within`` 0.15 snaps those and leaves a
    genuinely off-grid price (16.145) to be quarantined."""
    scaled = np.asarray(values, dtype=np.float64) * float(10**digits)
    finite = np.isfinite(scaled)
    nearest = np.rint(np.where(finite, scaled, 0.0))
    gap = np.abs(scaled - nearest)
    moved = finite & (gap <= within + 1e-9) & (gap > np.maximum(1.0, np.abs(nearest)) * 1e-9)
    return np.where(moved, nearest / float(10**digits), values), moved


def validate_bars(
    bars: BarInput,
    *,
    price_digits: int,
    qty_digits: int,
    sessions: Sessions | None = None,
    outlier_k: float = OUTLIER_MAD_K,
    snap_within: float = 0.0,
) -> Validated:
    """``snap_within`` > 0: prices that close to the grid are snapped onto it and counted
    (``Validated.snapped``) instead of quarantined as off the grid (``snap_grid``)."""
    verdict = _Verdict(len(bars))
    prices = np.stack([bars.open, bars.high, bars.low, bars.close])
    snapped = np.zeros(len(bars), dtype=np.int64)
    if snap_within > 0:
        for index in range(4):
            prices[index], moved = snap_grid(prices[index], price_digits, snap_within)
            snapped += moved
    no_time = (bars.ts_ns == MISSING_TS) if not bars.daily else bars.day <= 0
    missing = np.isnan(prices).any(axis=0) | np.isnan(bars.volume) | no_time
    # The detail says which value: the record cannot show a timestamp that did not parse.
    if bars.daily:
        unread = "no date: empty, unreadable or not a real date (2014-02-30)"
    else:
        unread = ("no timestamp: empty, unreadable or not a real timestamp (2014-02-30; a wall-clock "
                  "time a DST change skips or repeats)")  # fmt: skip
    verdict.flag(no_time, Reason.MISSING_VALUE, unread)
    for name, column in zip(_FIELDS, [*prices, bars.volume], strict=True):
        verdict.flag(np.isnan(column), Reason.MISSING_VALUE, f"no {name}")
    # An infinite price or volume, or one beyond int64 at its digits, has no raw integer: it is
    # quarantined as off the grid (never stored as 0 or as a wrapped-around integer).
    huge = [too_large(column, price_digits) for column in prices]
    raw = [to_raw(np.where(big, 1.0, column), price_digits) for column, big in zip(prices, huge, strict=True)]
    # A positive float so small that it is 0 at the price grid (1e-226) is not a price either.
    non_positive = (prices <= 0).any(axis=0) | np.any([column <= 0 for column, _ in raw], axis=0)
    verdict.flag(non_positive & ~missing, Reason.NON_POSITIVE_PRICE)
    verdict.flag(bars.volume < 0, Reason.NEGATIVE_VOLUME)
    turnover_huge = np.zeros(len(bars), dtype=np.bool_)
    if bars.turnover is not None:
        verdict.flag(bars.turnover < 0, Reason.NEGATIVE_VOLUME, "negative turnover")
        turnover_huge = too_large(bars.turnover, price_digits)
    volume_huge = too_large(bars.volume, qty_digits)
    volume_raw, volume_off = to_raw(np.where(volume_huge, 0.0, bars.volume), qty_digits)
    for mask, what, digits in (
        (np.any(huge, axis=0), "price", price_digits),
        (volume_huge, "volume", qty_digits),
        (turnover_huge, "turnover", price_digits),
    ):
        verdict.flag(mask, Reason.OFF_PRICE_GRID, f"{what} infinite or too large for int64 at 1e-{digits}")
    off_grid = np.any([off for _, off in raw], axis=0)
    verdict.flag(off_grid, Reason.OFF_PRICE_GRID, f"not a multiple of 1e-{price_digits}")
    verdict.flag(volume_off, Reason.OFF_PRICE_GRID, f"volume not a multiple of 1e-{qty_digits}")
    open_, high, low, close = (column for column, _ in raw)
    inconsistent = (high < np.maximum(open_, close)) | (low > np.minimum(open_, close)) | (low > high)
    verdict.flag(inconsistent, Reason.OHLC_INCONSISTENT)
    ts, day = _place(bars, sessions, verdict)
    _order_checks(ts, verdict)
    _outlier_check(close, verdict, outlier_k)
    turnover = None
    if bars.turnover is not None:  # rounded to the price digits (a quote amount, not a price)
        absent = np.isnan(bars.turnover)
        scaled = np.where(turnover_huge | absent, 0.0, bars.turnover) * float(10**price_digits)
        turnover = pa.array(np.rint(scaled).astype(np.int64), mask=absent)
    validated = _split(bars, verdict, ts, day, [open_, high, low, close, volume_raw], turnover)
    return replace(validated, snapped=int(snapped[verdict.code == 0].sum()))


def _place(bars: BarInput, sessions: Sessions | None, verdict: _Verdict) -> tuple[IntArray, IntArray]:
    """Bar-close timestamps and session days; rows outside the calendar are flagged."""
    if bars.daily:
        if sessions is None:
            raise ValueError("daily bars need a calendar to place their session close")
        ts, found = sessions.close_of(bars.day)
        verdict.flag(~found, Reason.OUTSIDE_SESSION, f"not a {sessions.name} session (wrong date or zone?)")
        return ts, bars.day
    if sessions is None:
        return bars.ts_ns, bars.day
    day, inside = sessions.locate(bars.ts_ns)
    verdict.flag(
        ~inside, Reason.OUTSIDE_SESSION, f"outside {sessions.name} trading hours (a timezone mistake?)"
    )
    return bars.ts_ns, np.where(inside, day, bars.day)


def _order_checks(ts: IntArray, verdict: _Verdict) -> None:
    candidates = np.flatnonzero(verdict.ok)
    if len(candidates) == 0:
        return
    cand_ts = ts[candidates]
    _, first = np.unique(cand_ts, return_index=True)
    is_first = np.zeros(len(candidates), dtype=np.bool_)
    is_first[first] = True
    duplicate = np.zeros(len(ts), dtype=np.bool_)
    duplicate[candidates[~is_first]] = True
    verdict.flag(duplicate, Reason.DUPLICATE, "same timestamp as an earlier row (first kept)")
    kept = candidates[is_first]
    kept_ts = ts[kept]
    if len(kept) > 1 and bool(np.any(np.diff(kept_ts) < 0)):
        in_order = _longest_increasing(kept_ts)
        backwards = np.zeros(len(ts), dtype=np.bool_)
        backwards[kept[~in_order]] = True
        verdict.flag(backwards, Reason.TIME_BACKWARDS, "earlier than a preceding row")


def _longest_increasing(values: IntArray, *, strict: bool = True) -> BoolArray:
    """Mask of one longest strictly (or, with ``strict=False``, non-strictly) increasing
    subsequence (patience sort, O(n log n))."""
    tails: list[int] = []
    tail_index: list[int] = []
    parent = np.full(len(values), -1, dtype=np.int64)
    search = bisect.bisect_left if strict else bisect.bisect_right
    for index, value in enumerate(values.tolist()):
        slot = search(tails, value)
        if slot > 0:
            parent[index] = tail_index[slot - 1]
        if slot == len(tails):
            tails.append(value)
            tail_index.append(index)
        else:
            tails[slot] = value
            tail_index[slot] = index
    keep = np.zeros(len(values), dtype=np.bool_)
    cursor = tail_index[-1]
    while cursor >= 0:
        keep[cursor] = True
        cursor = int(parent[cursor])
    return keep


def _outlier_check(close: IntArray, verdict: _Verdict, k: float) -> None:
    """Isolated spikes: a close that jumps away from both neighbours, which agree with each
    other. A split or ex-right gap is a level shift, not a spike, and is kept."""
    rows = np.flatnonzero(verdict.ok)
    if len(rows) < 5:
        return
    log_close = np.log(np.maximum(close[rows], 1).astype(np.float64))
    returns = np.diff(log_close)
    mad = float(np.median(np.abs(returns - np.median(returns))))
    threshold = max(k * 1.4826 * mad, OUTLIER_MOVE_MIN)
    jump_in, jump_out = returns[:-1], returns[1:]
    around = np.abs(log_close[2:] - log_close[:-2])
    spike = (np.abs(jump_in) > threshold) & (np.abs(jump_out) > threshold)
    spike &= (np.sign(jump_in) != np.sign(jump_out)) & (around < threshold / 2)
    flagged = np.zeros(len(close), dtype=np.bool_)
    flagged[rows[1:-1][spike]] = True
    verdict.flag(flagged, Reason.OUTLIER, f"isolated spike beyond {threshold:.4f} log (k={k:g} x MAD)")


def _split(
    bars: BarInput,
    verdict: _Verdict,
    ts: IntArray,
    day: IntArray,
    fields: list[IntArray],
    turnover: pa.Array | None,
) -> Validated:
    ok = verdict.ok
    if bool(ok.all()) and (len(ts) < 2 or bool(np.all(ts[1:] > ts[:-1]))):
        order = slice(None)  # the common case: every row accepted, already in time order
        count = len(ts)
        turnover_kept = turnover
        lines = bars.line
    else:
        keep = np.flatnonzero(ok)
        order = keep[np.argsort(ts[keep], kind="stable")]  # type: ignore[assignment]
        count = len(order)  # type: ignore[arg-type]
        turnover_kept = turnover.take(pa.array(order)) if turnover is not None else None
        lines = bars.line[order]
    columns = {
        "ts_ns": ts[order],
        "day": day[order].astype(np.int32),
        "instrument_id": np.full(count, bars.instrument_id, dtype=np.int32),
        **{name: values[order] for name, values in zip(_FIELDS, fields, strict=True)},
        "turnover": turnover_kept if turnover_kept is not None else pa.nulls(count, pa.int64()),
    }
    accepted = conform(pa.table(columns), Kind.BARS)
    quarantine = _quarantine_table(bars, verdict, ts)
    assert accepted.num_rows + quarantine.num_rows == len(bars), "in != accepted + quarantined"
    return Validated(accepted, lines, quarantine, len(bars))


def _quarantine_table(bars: BarInput, verdict: _Verdict, ts: IntArray) -> pa.Table:
    bad = np.flatnonzero(~verdict.ok)
    names: tuple[str, ...] = ("day", "open", "high", "low", "close", "volume")
    names += ("turnover",) if bars.turnover is not None else ()
    records = [
        json.dumps(
            {"ts_ns": _int_or_none(bars.ts_ns[i])}
            | {name: _json_number(getattr(bars, name)[i]) for name in names}
            # an intraday row's day comes from its timestamp: none when that did not parse
            | ({"day": None} if not bars.daily and bars.ts_ns[i] == MISSING_TS else {})
        )
        for i in bad.tolist()
    ]
    return pa.table(
        {
            "source": [bars.source] * len(bad),
            "line": bars.line[bad],
            "instrument_id": np.full(len(bad), bars.instrument_id, dtype=np.int32),
            "ts_ns": pa.array([_int_or_none(ts[i]) for i in bad.tolist()], pa.int64()),
            "reason": verdict.reasons(bad),
            "detail": [verdict.detail.get(i, "") for i in bad.tolist()],
            "record": records,
        },
        schema=QUARANTINE,
    )


def _int_or_none(value: np.int64) -> int | None:
    return None if int(value) in (MISSING_TS, 0) else int(value)


def _json_number(value: object) -> float | int | str | None:
    """A record's value as JSON: NaN as null, an infinity as the text ``"inf"`` / ``"-inf"``
    (JSON has no infinity: ``json.dumps`` would write ``Infinity``, which parsers refuse)."""
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number):
        return None
    if math.isinf(number):
        return str(number)
    return int(number) if number.is_integer() else number


@dataclass(frozen=True, eq=False)
class FundingInput:
    source: str
    instrument_id: int
    line: IntArray
    ts_ns: IntArray
    rate: FloatArray


def validate_funding(funding: FundingInput) -> Validated:
    """Funding rates: missing values, duplicates and time order (rates may be negative)."""
    verdict = _Verdict(len(funding.line))
    verdict.flag(np.isnan(funding.rate) | (funding.ts_ns == MISSING_TS), Reason.MISSING_VALUE)
    huge = too_large(funding.rate, 8)
    rate_e8, off = to_raw(np.where(huge, 0.0, funding.rate), 8)
    verdict.flag(huge, Reason.OFF_PRICE_GRID, "rate infinite or too large for int64 at 1e-8")
    verdict.flag(off, Reason.OFF_PRICE_GRID, "rate finer than 1e-8")
    _order_checks(funding.ts_ns, verdict)
    keep = np.flatnonzero(verdict.ok)
    order = keep[np.argsort(funding.ts_ns[keep], kind="stable")]
    accepted = conform(
        pa.table(
            {
                "ts_ns": funding.ts_ns[order],
                "instrument_id": np.full(len(order), funding.instrument_id, dtype=np.int32),
                "rate_e8": rate_e8[order],
            }
        ),
        Kind.FUNDING_RATES,
    )
    assert accepted.schema.equals(FUNDING_RATES)
    bad = np.flatnonzero(~verdict.ok)
    quarantine = pa.table(
        {
            "source": [funding.source] * len(bad),
            "line": funding.line[bad],
            "instrument_id": np.full(len(bad), funding.instrument_id, dtype=np.int32),
            "ts_ns": pa.array([_int_or_none(funding.ts_ns[i]) for i in bad.tolist()], pa.int64()),
            "reason": verdict.reasons(bad),
            "detail": [verdict.detail.get(i, "") for i in bad.tolist()],
            "record": [json.dumps({"rate": _json_number(funding.rate[i])}) for i in bad.tolist()],
        },
        schema=QUARANTINE,
    )
    assert accepted.num_rows + quarantine.num_rows == len(funding.line), "in != accepted + quarantined"
    return Validated(accepted, funding.line[order], quarantine, len(funding.line))


# ---- trades and quotes -------------------------------------------------------------------------

_INT64_SAFE = float(2**62)


@dataclass(frozen=True, eq=False)
class TradeInput:
    """Parsed trades of one instrument in file order. ``trade_id`` is ``None`` for a source
    without ids (Kraken CSV); for a source with ids, ``MISSING_TS`` marks a row that lacks one.
    ``side`` is +1 buyer-initiated, -1 seller-initiated, 0 unknown."""

    source: str
    instrument_id: int
    line: IntArray
    ts_ns: IntArray
    price: FloatArray
    qty: FloatArray
    side: npt.NDArray[np.int8]
    trade_id: IntArray | None = None

    def __len__(self) -> int:
        return len(self.line)


@dataclass(frozen=True, eq=False)
class QuoteInput:
    """Parsed best bid/ask quotes of one instrument in file order."""

    source: str
    instrument_id: int
    line: IntArray
    ts_ns: IntArray
    bid_price: FloatArray
    bid_qty: FloatArray
    ask_price: FloatArray
    ask_qty: FloatArray

    def __len__(self) -> int:
        return len(self.line)


def too_large(values: FloatArray, digits: int) -> BoolArray:
    """Values with no int64 at ``digits``: infinite, or beyond 2**62 raw units (NaN is not:
    it is a missing value)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(~np.isnan(values) & ~(np.abs(values) * float(10**digits) < _INT64_SAFE))


def _raw_checked(values: FloatArray, digits: int) -> tuple[IntArray, BoolArray]:
    """``to_raw`` that also calls a value infinite or too large for int64 at ``digits`` off
    the grid."""
    values = np.asarray(values, dtype=np.float64)
    huge = too_large(values, digits)
    raw, off = to_raw(np.where(huge, 0.0, values), digits)
    return raw, off | huge


def _first_of(keys: npt.NDArray[np.int64], verdict: _Verdict, detail: str) -> None:
    """Flag as ``duplicate`` every still-good row whose key (a row of ``keys``) an earlier
    still-good row has; the first is kept."""
    candidates = np.flatnonzero(verdict.ok)
    if len(candidates) < 2:
        return
    _, first = np.unique(keys[candidates], axis=0, return_index=True)
    is_first = np.zeros(len(candidates), dtype=np.bool_)
    is_first[first] = True
    duplicate = np.zeros(verdict.size, dtype=np.bool_)
    duplicate[candidates[~is_first]] = True
    verdict.flag(duplicate, Reason.DUPLICATE, detail)


def _not_backwards(ts: IntArray, verdict: _Verdict) -> None:
    """Rows outside one longest non-decreasing run of timestamps are ``time_backwards``
    (ticks may share a timestamp)."""
    kept = np.flatnonzero(verdict.ok)
    kept_ts = ts[kept]
    if len(kept) > 1 and bool(np.any(np.diff(kept_ts) < 0)):
        in_order = _longest_increasing(kept_ts, strict=False)
        backwards = np.zeros(len(ts), dtype=np.bool_)
        backwards[kept[~in_order]] = True
        verdict.flag(backwards, Reason.TIME_BACKWARDS, "earlier than a preceding row")


def _tick_quarantine(
    source: str,
    instrument_id: int,
    line: IntArray,
    ts: IntArray,
    verdict: _Verdict,
    record: dict[str, npt.NDArray],  # type: ignore[type-arg]
) -> pa.Table:
    bad = np.flatnonzero(~verdict.ok)
    records = [
        json.dumps({name: _json_value(values[i]) for name, values in record.items()}) for i in bad.tolist()
    ]
    return pa.table(
        {
            "source": [source] * len(bad),
            "line": line[bad],
            "instrument_id": np.full(len(bad), instrument_id, dtype=np.int32),
            "ts_ns": pa.array([_int_or_none(ts[i]) for i in bad.tolist()], pa.int64()),
            "reason": verdict.reasons(bad),
            "detail": [verdict.detail.get(i, "") for i in bad.tolist()],
            "record": records,
        },
        schema=QUARANTINE,
    )


def _json_value(value: object) -> float | int | str | None:
    if isinstance(value, np.integer):
        return None if int(value) == MISSING_TS else int(value)
    return _json_number(value)


def _time_order(ts: IntArray, ok: BoolArray) -> IntArray:
    keep = np.flatnonzero(ok)
    return keep[np.argsort(ts[keep], kind="stable")]


def validate_trades(trades: TradeInput, *, price_digits: int, qty_digits: int) -> Validated:
    """Trades: missing values, non-positive price or size, off-grid values, duplicates (the
    same trade id, or for a source without ids an identical row), time going backwards."""
    verdict = _Verdict(len(trades))
    ts = np.asarray(trades.ts_ns, dtype=np.int64)
    missing = np.isnan(trades.price) | np.isnan(trades.qty) | (ts == MISSING_TS)
    if trades.trade_id is not None:
        missing |= trades.trade_id == MISSING_TS
    verdict.flag(missing, Reason.MISSING_VALUE)
    price, price_off = _raw_checked(trades.price, price_digits)
    qty, qty_off = _raw_checked(trades.qty, qty_digits)
    verdict.flag((trades.price <= 0) | (~price_off & (price <= 0)), Reason.NON_POSITIVE_PRICE)
    verdict.flag((trades.qty <= 0) | (~qty_off & (qty <= 0)), Reason.NON_POSITIVE_SIZE)
    verdict.flag(price_off, Reason.OFF_PRICE_GRID, f"price not a multiple of 1e-{price_digits}")
    verdict.flag(qty_off, Reason.OFF_PRICE_GRID, f"size not a multiple of 1e-{qty_digits}")
    side = np.asarray(trades.side, dtype=np.int8)
    if trades.trade_id is not None:
        _first_of(trades.trade_id.reshape(-1, 1), verdict, "same trade id as an earlier row (first kept)")
    else:
        keys = np.stack([ts, price, qty, side.astype(np.int64)], axis=1)
        _first_of(keys, verdict, "identical to an earlier row (first kept)")
    _not_backwards(ts, verdict)
    order = _time_order(ts, verdict.ok)
    ids = (
        pa.array(trades.trade_id[order], pa.int64())
        if trades.trade_id is not None
        else pa.nulls(len(order), pa.int64())
    )
    accepted = conform(
        pa.table(
            {
                "ts_ns": ts[order],
                "instrument_id": np.full(len(order), trades.instrument_id, dtype=np.int32),
                "trade_id": ids,
                "price": price[order],
                "qty": qty[order],
                "side": side[order],
            }
        ),
        Kind.TRADES,
    )
    assert accepted.schema.equals(TRADES)
    record: dict[str, npt.NDArray] = {"ts_ns": ts, "price": trades.price, "qty": trades.qty, "side": side}  # type: ignore[type-arg]
    if trades.trade_id is not None:
        record["trade_id"] = trades.trade_id
    quarantine = _tick_quarantine(trades.source, trades.instrument_id, trades.line, ts, verdict, record)
    assert accepted.num_rows + quarantine.num_rows == len(trades), "in != accepted + quarantined"
    return Validated(accepted, trades.line[order], quarantine, len(trades))


def validate_quotes(quotes: QuoteInput, *, price_digits: int, qty_digits: int) -> Validated:
    """Best bid/ask: missing values, non-positive prices or sizes, off-grid values, crossed
    (bid > ask) and locked (bid == ask) books, duplicates (a timestamp already seen: the lake
    keys quotes by (instrument, ts)) and time going backwards."""
    verdict = _Verdict(len(quotes))
    ts = np.asarray(quotes.ts_ns, dtype=np.int64)
    prices = np.stack([quotes.bid_price, quotes.ask_price])
    sizes = np.stack([quotes.bid_qty, quotes.ask_qty])
    verdict.flag(
        np.isnan(prices).any(axis=0) | np.isnan(sizes).any(axis=0) | (ts == MISSING_TS), Reason.MISSING_VALUE
    )
    bid, bid_off = _raw_checked(quotes.bid_price, price_digits)
    ask, ask_off = _raw_checked(quotes.ask_price, price_digits)
    bid_qty, bid_qty_off = _raw_checked(quotes.bid_qty, qty_digits)
    ask_qty, ask_qty_off = _raw_checked(quotes.ask_qty, qty_digits)
    non_positive = (prices <= 0).any(axis=0) | (~bid_off & (bid <= 0)) | (~ask_off & (ask <= 0))
    verdict.flag(non_positive, Reason.NON_POSITIVE_PRICE)
    empty = (sizes <= 0).any(axis=0) | (~bid_qty_off & (bid_qty <= 0)) | (~ask_qty_off & (ask_qty <= 0))
    verdict.flag(empty, Reason.NON_POSITIVE_SIZE)
    verdict.flag(bid_off | ask_off, Reason.OFF_PRICE_GRID, f"price not a multiple of 1e-{price_digits}")
    verdict.flag(bid_qty_off | ask_qty_off, Reason.OFF_PRICE_GRID, f"size not a multiple of 1e-{qty_digits}")
    verdict.flag(bid > ask, Reason.CROSSED_QUOTE, "bid above ask")
    verdict.flag(bid == ask, Reason.LOCKED_QUOTE, "bid equals ask")
    _first_of(ts.reshape(-1, 1), verdict, "same timestamp as an earlier quote (first kept)")
    _not_backwards(ts, verdict)
    order = _time_order(ts, verdict.ok)
    accepted = conform(
        pa.table(
            {
                "ts_ns": ts[order],
                "instrument_id": np.full(len(order), quotes.instrument_id, dtype=np.int32),
                "bid_price": bid[order],
                "bid_qty": bid_qty[order],
                "ask_price": ask[order],
                "ask_qty": ask_qty[order],
            }
        ),
        Kind.QUOTES,
    )
    assert accepted.schema.equals(QUOTES)
    record = {
        "ts_ns": ts,
        "bid_price": quotes.bid_price,
        "bid_qty": quotes.bid_qty,
        "ask_price": quotes.ask_price,
        "ask_qty": quotes.ask_qty,
    }
    quarantine = _tick_quarantine(quotes.source, quotes.instrument_id, quotes.line, ts, verdict, record)
    assert accepted.num_rows + quarantine.num_rows == len(quotes), "in != accepted + quarantined"
    return Validated(accepted, quotes.line[order], quarantine, len(quotes))
