"""A model-priced option chain on a real underlying series, as a data set (for backtests of
option strategies where no option market data is at hand).

**The option bars are not market data.** Each option's daily bar is its Black-Scholes-Merton
value (``domain.markets.black_scholes_greeks``) at the underlying's real daily close, one flat
volatility, one rate, no dividends, time to expiry ACT/365 from the session day to the expiry
day; open = high = low = close = that value, rounded half-even to the cent (at least one cent
while time value remains; intrinsic value, possibly 0, on the expiry day). Volume is a fixed
number of contracts. An option's bars run from the first session to its expiry day and end
there. The underlying's bars are its real OHLCV.

The data set name says "model-priced" so journals that reference it say so too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv

from domain.fixed import RATE_SCALE, Rounding, div_round
from domain.instruments import Instrument
from domain.markets import OPTION_MULTIPLIER_US_EQUITY, black_scholes_greeks, day_to_date
from lake.sessions import sessions_for
from lake.store import DatasetRef, write_dataset

__all__ = ["OptionChainSpec", "option_symbol", "write_option_chain"]

DAYS_PER_YEAR = 365  # ACT/365, as kernel.options prices the greeks


@dataclass(frozen=True)
class OptionChainSpec:
    """Strikes (raw cents) x expiry days x (call, put) on one underlying."""

    underlying: str
    strikes_raw: Sequence[int]
    expiry_days: Sequence[int]
    first_day: int
    last_day: int
    vol_e8: int
    rate_e8: int = 0
    volume: int = 10_000  # contracts per bar
    venue: str = "XNAS"


def option_symbol(underlying: str, expiry_day: int, right: str, strike_raw: int) -> str:
    """OCC-style symbol: root, YYMMDD, C/P, strike x 1000 in 8 digits (``AAPL151016C00110000``)."""
    return f"{underlying}{expiry_day % 1_000_000:06d}{right[0].upper()}{strike_raw * 10:08d}"


def _underlying_bars(csv: Path, first_day: int, last_day: int) -> pa.Table:
    """The abu-format daily CSV (``date`` YYYYMMDD, raw ``open/high/low/close/volume``)."""
    table = pacsv.read_csv(csv)
    for column in ("date", "open", "high", "low", "close", "volume"):
        if column not in table.column_names:
            raise ValueError(f"{csv}: no {column!r} column")
    days = np.asarray(table.column("date").to_numpy(), dtype=np.int64)
    keep = (days >= first_day) & (days <= last_day)
    if not keep.any():
        raise ValueError(f"{csv}: no rows from {first_day} to {last_day}")
    return table.filter(pa.array(keep))


def _cents(values: npt.NDArray[np.float64]) -> list[int]:
    return [div_round(round(float(v) * 1_000_000), 10_000, Rounding.HALF_EVEN) for v in values]


def write_option_chain(path: Path, underlying_csv: Path, spec: OptionChainSpec) -> DatasetRef:
    """Write the underlying (id 1) and its chain (ids 2..) as a daily XNYS data set."""
    strikes = [f"{raw / 100:g}" for raw in spec.strikes_raw]  # as given: dollars
    for what, values in (("strike", strikes), ("expiry", [str(day) for day in spec.expiry_days])):
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:  # two instruments with one symbol (AAPL151016C00100000 twice) were written
            raise ValueError(f"each {what} once: {', '.join(repeated)} given twice")
    bars = _underlying_bars(Path(underlying_csv), spec.first_day, spec.last_day)
    days = np.asarray(bars.column("date").to_numpy(), dtype=np.int64)
    sessions = sessions_for("XNYS", int(days[0]), int(days[-1]))
    ts_ns, found = sessions.close_of(days)
    if not found.all():
        raise ValueError(f"{underlying_csv}: {days[~found].tolist()[:3]} are not XNYS sessions")
    for expiry in spec.expiry_days:
        if expiry not in set(days.tolist()):
            raise ValueError(f"expiry {expiry}: not a session in the underlying's data")
    underlying = Instrument(
        instrument_id=1, symbol=spec.underlying, venue=spec.venue, asset_class="equity", currency="USD",
        price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1,
    )  # fmt: skip
    spot_cents = _cents(np.asarray(bars.column("close").to_numpy(), dtype=np.float64))
    columns: dict[str, list[int]] = {
        "ts_ns": ts_ns.tolist(),
        "day": days.tolist(),
        "instrument_id": [1] * len(days),
        "open": _cents(np.asarray(bars.column("open").to_numpy(), dtype=np.float64)),
        "high": _cents(np.asarray(bars.column("high").to_numpy(), dtype=np.float64)),
        "low": _cents(np.asarray(bars.column("low").to_numpy(), dtype=np.float64)),
        "close": list(spot_cents),
        "volume": [int(v) for v in bars.column("volume").to_pylist()],
    }
    instruments = [underlying]
    for expiry in sorted(spec.expiry_days):
        for strike in sorted(spec.strikes_raw):
            for right in ("call", "put"):
                inst = Instrument(
                    instrument_id=len(instruments) + 1,
                    symbol=option_symbol(spec.underlying, expiry, right, strike),
                    venue=spec.venue, asset_class="option", currency="USD", price_digits=2, tick_raw=1,
                    qty_digits=0, lot_raw=1, multiplier=OPTION_MULTIPLIER_US_EQUITY,
                    underlying=spec.underlying, strike_raw=strike, expiry_day=expiry, right=right,
                )  # fmt: skip
                instruments.append(inst)
                live = days <= expiry
                t_years = np.array(
                    [(day_to_date(expiry) - day_to_date(int(d))).days / DAYS_PER_YEAR for d in days[live]]
                )
                price = black_scholes_greeks(
                    np.array(spot_cents, dtype=np.float64)[live] / 100, strike / 100, t_years,
                    spec.vol_e8 / RATE_SCALE, spec.rate_e8 / RATE_SCALE, right == "call",
                ).price  # fmt: skip
                cents = _cents(price)
                cents = [max(c, 1) if t > 0 else c for c, t in zip(cents, t_years.tolist(), strict=True)]
                count = len(cents)
                columns["ts_ns"] += ts_ns[live].tolist()
                columns["day"] += days[live].tolist()
                columns["instrument_id"] += [inst.instrument_id] * count
                for name in ("open", "high", "low", "close"):
                    columns[name] += cents
                columns["volume"] += [spec.volume] * count
    name = f"{spec.underlying} daily + model-priced options (Black-Scholes, not market data)"
    return write_dataset(
        Path(path), name=name, frequency="1d", calendar="XNYS", instruments=instruments,
        bars=pa.table(columns),
    )  # fmt: skip
