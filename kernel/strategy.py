"""The strategy port: strategies see cross-sections and return target weights.

A strategy names the steps at which it wants to decide (``schedule``) and, at each of
them, sees only data up to and including that step through a ``MarketView``. Weights are
floats (strategy math); the kernel turns them into integers (1e-8) at this edge with
half-even rounding and journals them.

``schedule`` may scan the whole panel with vectorised, causal features (a rolling mean at
step t uses bars <= t). The kernel cannot enforce causality of a schedule, so every
strategy has a prefix test: deciding on a truncated panel gives the same decisions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Protocol

import numpy as np
import numpy.typing as npt

from domain.market import Panel

__all__ = [
    "Decision",
    "LimitPricing",
    "LoadedModel",
    "MarketView",
    "ModelBacked",
    "Notional",
    "Shares",
    "Strategy",
    "StrategyError",
    "strategy_decision",
    "strategy_limit_prices",
    "strategy_models",
]


class StrategyError(ValueError):
    """What a strategy handed the kernel that it cannot use, naming the strategy and the step
    (a user's error, not Tape's: the command says so in one line)."""


@dataclass(frozen=True, eq=False)
class MarketView:
    """Read-only view of the panel up to and including ``step``."""

    panel: Panel
    step: int

    @property
    def ts_ns(self) -> int:
        return int(self.panel.ts_ns[self.step])

    def history(self, field: str, lookback: int) -> npt.NDArray[np.int64]:
        """The last ``lookback`` rows (<= step) of a raw integer field, shape (rows, N)."""
        if field not in ("open", "high", "low", "close", "volume", "last_close"):
            raise ValueError(f"unknown bar field {field!r}")
        array: npt.NDArray[np.int64] = getattr(self.panel, field)
        start = max(0, self.step + 1 - lookback)
        view = array[start : self.step + 1]
        view.flags.writeable = False
        return view

    def valid(self) -> npt.NDArray[np.bool_]:
        """Which instruments have a bar at this step."""
        row: npt.NDArray[np.bool_] = self.panel.valid[self.step]
        return row


@dataclass(frozen=True, eq=False)
class Shares:
    """Targets as positions: units of each instrument (shares, contracts, coins), signed, one per
    name of the universe; NaN = no target for that name. Sized to whole lots toward zero."""

    qty: npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Notional:
    """Targets as position values in the run's currency (major units, e.g. dollars), signed,
    one per name; NaN = no target. Sized to whole lots toward zero at the decision price."""

    value: npt.NDArray[np.float64]


Decision = npt.NDArray[np.float64] | Shares | Notional
"""What ``decide`` returns: weights (fractions of the strategy's capital: the book's NAV, or its
budget's share of it), ``Shares`` or ``Notional``; None holds."""


class Strategy(Protocol):
    strategy_id: str

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        """Sorted, unique step indices at which ``decide`` is called."""
        ...

    def decide(self, view: MarketView) -> Decision | None:
        """Targets over the universe (length N): weights (fractions of NAV), ``Shares`` or
        ``Notional``; or None to hold."""
        ...


class IncrementalSchedule(Protocol):
    """Optional strategy method for a queue source (rows arriving one at a time).

    ``schedule_rows(panel, start, end)`` returns the steps in ``start .. end-1`` at which
    ``decide`` is called, reading rows before ``end`` only; it is called for consecutive
    windows from step 0 as rows arrive, so it may carry state from one call to the next. It
    must give the same steps (and leave ``decide`` the same answers) as ``schedule`` over the
    whole panel. Without it, a queue source calls ``schedule`` over the panel again each time
    rows arrive (correct for a causal schedule, but it costs a pass over the panel per row).
    Either way the steps are checked as a backtest checks ``schedule``'s
    (``kernel.schedules.strategy_schedule``), and must lie in ``start .. end-1``.
    """

    def schedule_rows(self, panel: Panel, start: int, end: int) -> npt.NDArray[np.int64]: ...


class LimitPricing(Protocol):
    """Optional strategy method: limit prices for the orders of this decision.

    ``limit_prices(view)`` is called right after ``decide`` at the same step and returns
    ``{instrument_id: limit_px_raw}`` (raw integer price at the instrument's digits): the
    order that moves that instrument toward its target is a limit order at that price; names
    not in the mapping get market orders. A strategy without the method sends market orders.
    """

    def limit_prices(self, view: MarketView) -> dict[int, int] | None: ...


def _where(strategy: object, view: MarketView) -> str:
    return f"{getattr(strategy, 'strategy_id', type(strategy).__name__)} at step {view.step}"


def _raised(strategy: object, view: MarketView, method: str, error: Exception) -> StrategyError:
    """An exception out of the strategy's own code, as its error in one line (the original
    chained, for a traceback), not as Tape's internal error."""
    return StrategyError(f"{_where(strategy, view)}: {method} raised {type(error).__name__}: {error}")


def strategy_decision(strategy: Strategy, view: MarketView) -> Decision | None:
    """``strategy.decide(view)``; an exception it raises is a ``StrategyError`` naming the
    strategy and the step (the run stops there, as on any refused decision)."""
    try:
        return strategy.decide(view)
    except StrategyError:
        raise
    except Exception as error:
        raise _raised(strategy, view, "decide", error) from error


def strategy_limit_prices(strategy: object, view: MarketView) -> dict[int, int]:
    """The strategy's limit prices for this decision ({} when it has none): ids and prices as
    Python ints (a NumPy integer, as ``view.history`` gives, is one); anything else is a
    ``StrategyError`` naming the strategy, the step and the entry."""
    method = getattr(strategy, "limit_prices", None)
    if method is None:
        return {}
    try:
        prices = method(view)
    except StrategyError:
        raise
    except Exception as error:
        raise _raised(strategy, view, "limit_prices", error) from error
    if prices is None or (isinstance(prices, Mapping) and not prices):
        return {}
    where = _where(strategy, view)
    if not isinstance(prices, Mapping):
        raise StrategyError(
            f"{where}: limit_prices must return {{instrument_id: raw integer price}}, "
            f"got {type(prices).__name__}"
        )
    result = {}
    for iid, px in prices.items():
        if not _whole(iid) or not _whole(px):
            raise StrategyError(
                f"{where}: limit_prices must map instrument ids to raw integer prices, got {iid!r}: {px!r}"
            )
        result[int(iid)] = int(px)
    return result


def _whole(value: object) -> bool:
    """An integer (Python's or NumPy's), not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool | np.bool_)


@dataclass(frozen=True)
class LoadedModel:
    """A frozen model a strategy loaded and scored the panel with: its artifact's content hash,
    its kind, and the blake2b-128 of its predictions (``predictions`` cells of them)."""

    artifact: str
    model_kind: str
    predictions_hash: str
    predictions: int


class ModelBacked(Protocol):
    """Optional strategy method: the model artifacts it loaded, reported after ``schedule``.

    The kernel journals one ``ModelLoaded`` per artifact when a run begins, so a journal names
    the exact bytes it traded, and a replay (which rebuilds the strategy from the journaled
    parameters) re-derives the event and diverges on other predictions.
    """

    def loaded_models(self) -> Sequence[LoadedModel]: ...


def strategy_models(strategy: object) -> list[LoadedModel]:
    """The strategy's loaded models ([] when it has none)."""
    method = getattr(strategy, "loaded_models", None)
    if method is None:
        return []
    models = list(method())
    for model in models:
        if not isinstance(model, LoadedModel):
            raise TypeError(f"loaded_models must return LoadedModel values, got {model!r}")
    return models
