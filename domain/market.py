"""Market data as the kernel sees it: a panel of fixed-point bars over (step, instrument)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from domain.fx import FxRate
from domain.instruments import Instrument

if TYPE_CHECKING:
    from domain.markets.calendars import HolidayYears

__all__ = ["ACTION_FIELDS", "REFORM_FIELD", "RIGHTS_FIELDS", "MarginRow", "Panel", "PanelError"]

ACTION_FIELDS = (
    "action_instrument_id",
    "action_ex_day",
    "action_pay_day",
    "action_cash_e8",
    "action_split_to",
    "action_split_from",
)
RIGHTS_FIELDS = ("action_rights_to", "action_rights_from", "action_rights_price_e8")
"""Optional rights-issue columns of the actions: all empty (no rights in the data set) or one
value per action row (``rights_to`` 0 = none on that row)."""
REFORM_FIELD = "action_reform"
"""Optional share-structure-reform flag of the actions (1 = the row is a reform payment,
``CorporateAction.reform``): empty (no reform row in the data set) or one value per row."""

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class MarginRow:
    """One published futures margin requirement of a data set (``margins.parquet``), in force
    from session day ``since`` (YYYYMMDD): a share of notional (``initial_e8`` /
    ``maintenance_e8``, 1e-8) or money per contract (``initial_minor`` / ``maintenance_minor``,
    minor units of the future's currency); one pair, the other zero."""

    instrument_id: int
    since: int
    initial_e8: int = 0
    maintenance_e8: int = 0
    initial_minor: int = 0
    maintenance_minor: int = 0


class PanelError(ValueError):
    """A panel whose arrays are inconsistent."""


@dataclass(frozen=True, eq=False)
class Panel:
    """Bars of a universe, one row per step (distinct timestamp), one column per instrument.

    Prices are raw integers at each instrument's ``price_digits``; a missing bar has
    ``valid == False`` and zeros in its OHLCV. ``last_close`` is the close carried forward
    (0 before an instrument's first bar) for marking to market. ``day`` is the session
    date (YYYYMMDD) of each step; a day ends where the next step's ``day`` differs.
    """

    ts_ns: IntArray  # (T,)
    day: IntArray  # (T,)
    instruments: tuple[Instrument, ...]
    open: IntArray  # (T, N)
    high: IntArray
    low: IntArray
    close: IntArray
    volume: IntArray
    valid: BoolArray
    last_close: IntArray
    # Perpetual funding: one row per (funding time UTC ns, instrument id, rate 1e-8), sorted.
    funding_ts_ns: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    funding_instrument_id: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    funding_rate_e8: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # The mark price at each funding row's time (raw, the instrument's ``price_digits``), one per
    # row or empty: 0 (or an empty column, a data set without marks) books that row at the bar's
    # close as the mark, as before the data sets carried marks.
    funding_mark_px_raw: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # Corporate actions (``domain.markets.CorporateAction`` fields), one row per (instrument,
    # ex-date), sorted by (ex_day, instrument_id); pay_day 0 = cash on the ex-date.
    action_instrument_id: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    action_ex_day: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    action_pay_day: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    action_cash_e8: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    action_split_to: IntArray = field(default_factory=lambda: np.ones(0, dtype=np.int64))
    action_split_from: IntArray = field(default_factory=lambda: np.ones(0, dtype=np.int64))
    # Futures settlement prices from the data set: one row per (session day, instrument id),
    # sorted by (day, instrument_id); raw price at the instrument's ``price_digits``.
    settle_day: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    settle_instrument_id: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    settle_px_raw: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # Rights issues of the actions above (``RIGHTS_FIELDS``): empty when the data set has none.
    action_rights_to: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    action_rights_from: IntArray = field(default_factory=lambda: np.ones(0, dtype=np.int64))
    action_rights_price_e8: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    action_reform: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # Exchange rates into base currencies (``domain.fx``), sorted by (day, currency, base);
    # empty when the data set has no fx table.
    fx_rates: tuple[FxRate, ...] = ()
    # Futures margin requirements (``kernel.margin``), sorted by (instrument_id, since); empty
    # when the data set has no margins table.
    margin_rows: tuple[MarginRow, ...] = ()
    # Delisting dates: (instrument_id, last session day YYYYMMDD), sorted by instrument; empty
    # when the data set has no delistings table.
    delistings: tuple[tuple[int, int], ...] = ()
    # Exchange holidays the operator supplied for years past the calendar library's
    # (``holidays.parquet``); None when the data set has none.
    holidays: HolidayYears | None = None

    def __post_init__(self) -> None:
        steps, names = len(self.ts_ns), len(self.instruments)
        for name in ("open", "high", "low", "close", "volume", "valid", "last_close"):
            shape = getattr(self, name).shape
            if shape != (steps, names):
                raise PanelError(f"{name} has shape {shape}, expected {(steps, names)}")
        if self.day.shape != (steps,):
            raise PanelError(f"day has shape {self.day.shape}, expected {(steps,)}")
        if steps > 1 and not bool(np.all(np.diff(self.ts_ns) > 0)):
            raise PanelError("timestamps must be strictly increasing")
        funding = (self.funding_ts_ns, self.funding_instrument_id, self.funding_rate_e8)
        if len({array.shape for array in funding}) != 1:
            raise PanelError("funding columns must have one length")
        if self.funding_ts_ns.size > 1 and not bool(np.all(np.diff(self.funding_ts_ns) >= 0)):
            raise PanelError("funding times must be sorted")
        if self.funding_mark_px_raw.shape not in {(0,), self.funding_ts_ns.shape}:
            raise PanelError("the funding mark column must be empty or one value per funding row")
        if self.funding_mark_px_raw.size and int(self.funding_mark_px_raw.min()) < 0:
            raise PanelError("funding mark prices must not be negative (0: the bar's close)")
        self._check_actions()
        self._check_settlements()

    def _check_actions(self) -> None:
        actions = [getattr(self, name) for name in ACTION_FIELDS]
        if len({array.shape for array in actions}) != 1:
            raise PanelError("corporate-action columns must have one length")
        keys = self.action_ex_day * (1 << 32) + self.action_instrument_id
        if keys.size > 1 and not bool(np.all(np.diff(keys) > 0)):
            raise PanelError("corporate actions must be sorted by (ex_day, instrument_id), one row each")
        rights = {getattr(self, name).shape for name in RIGHTS_FIELDS}
        if rights != {(0,)} and rights != {self.action_ex_day.shape}:
            raise PanelError("rights columns must be empty or one value per corporate-action row")
        if self.action_reform.shape not in {(0,), self.action_ex_day.shape}:
            raise PanelError("the reform column must be empty or one value per corporate-action row")

    def _check_settlements(self) -> None:
        settles = (self.settle_day, self.settle_instrument_id, self.settle_px_raw)
        if len({array.shape for array in settles}) != 1:
            raise PanelError("settlement columns must have one length")
        keys = self.settle_day * (1 << 32) + self.settle_instrument_id
        if keys.size > 1 and not bool(np.all(np.diff(keys) > 0)):
            raise PanelError("settlement prices must be sorted by (day, instrument_id), one row each")

    @property
    def steps(self) -> int:
        return len(self.ts_ns)

    def head(self, steps: int) -> Panel:
        """The first ``steps`` rows, with the funding, corporate actions and settlement prices
        up to the last of them: the data set as it stood at that step's time."""
        if not 0 < steps <= self.steps:
            raise PanelError(f"cannot keep {steps} of {self.steps} steps")
        if steps == self.steps:
            return self
        last_ts, last_day = int(self.ts_ns[steps - 1]), int(self.day[steps - 1])
        per_step = ("ts_ns", "day", "open", "high", "low", "close", "volume", "valid", "last_close")
        rows = {name: getattr(self, name)[:steps] for name in per_step}
        funding = self.funding_ts_ns <= last_ts
        for name in ("funding_ts_ns", "funding_instrument_id", "funding_rate_e8"):
            rows[name] = getattr(self, name)[funding]
        if self.funding_mark_px_raw.size:
            rows["funding_mark_px_raw"] = self.funding_mark_px_raw[funding]
        actions = self.action_ex_day <= last_day
        for name in ACTION_FIELDS:
            rows[name] = getattr(self, name)[actions]
        if self.action_rights_to.size:
            for name in RIGHTS_FIELDS:
                rows[name] = getattr(self, name)[actions]
        if self.action_reform.size:
            rows[REFORM_FIELD] = self.action_reform[actions]
        settled = self.settle_day <= last_day
        for name in ("settle_day", "settle_instrument_id", "settle_px_raw"):
            rows[name] = getattr(self, name)[settled]
        fx_rates = tuple(rate for rate in self.fx_rates if rate.day <= last_day)
        return dataclasses.replace(self, fx_rates=fx_rates, **rows)

    def emptied(self, from_step: int) -> Panel:
        """A copy whose rows from ``from_step`` on hold no bars yet (zeros, ``valid`` False,
        ``last_close`` 0): the run's grid of steps and its funding, corporate actions and
        settlement prices stay, for a source that fills the rows as bars arrive."""
        if not 0 <= from_step <= self.steps:
            raise PanelError(f"cannot empty rows from {from_step} of {self.steps} steps")
        rows = {}
        for name in ("open", "high", "low", "close", "volume", "valid", "last_close"):
            array = getattr(self, name).copy()
            array[from_step:] = 0
            rows[name] = array
        return dataclasses.replace(self, **rows)

    def extended(self, ts_ns: IntArray, day: IntArray) -> Panel:
        """This panel with empty rows appended at the given steps (bar closes after its last,
        strictly increasing, with their session days): the grid a live run fills."""
        ts_ns = np.asarray(ts_ns, dtype=np.int64)
        day = np.asarray(day, dtype=np.int64)
        if ts_ns.shape != day.shape:
            raise PanelError("the appended steps need one session day each")
        if ts_ns.size and self.steps and int(ts_ns[0]) <= int(self.ts_ns[-1]):
            raise PanelError(f"appended steps must start after the last step ({int(self.ts_ns[-1])})")
        names = len(self.instruments)
        rows: dict[str, Any] = {
            "ts_ns": np.concatenate([self.ts_ns, ts_ns]),
            "day": np.concatenate([self.day, day]),
        }
        for name in ("open", "high", "low", "close", "volume", "valid", "last_close"):
            array = getattr(self, name)
            rows[name] = np.concatenate([array, np.zeros((ts_ns.size, names), dtype=array.dtype)])
        return dataclasses.replace(self, **rows)

    def day_end_mask(self) -> BoolArray:
        """True at the last step of each session day."""
        mask = np.ones(self.steps, dtype=np.bool_)
        mask[:-1] = self.day[1:] != self.day[:-1]
        return mask

    @staticmethod
    def carry_forward(close: IntArray, valid: BoolArray) -> IntArray:
        """Last valid close per instrument at each step (0 before the first bar)."""
        index = np.where(valid, np.arange(close.shape[0])[:, None], 0)
        np.maximum.accumulate(index, axis=0, out=index)
        carried = np.take_along_axis(close, index, axis=0)
        seen = np.maximum.accumulate(valid, axis=0)
        return np.where(seen, carried, 0).astype(np.int64)
