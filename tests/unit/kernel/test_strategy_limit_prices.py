"""Optional strategy limit prices: absent -> market orders; present -> raw integer prices only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kernel.strategy import MarketView, StrategyError, strategy_limit_prices
from lake.store import load_panel
from tests.factories import make_dataset


class _Priced:
    strategy_id = "priced"

    def __init__(self, prices: object) -> None:
        self._prices = prices

    def limit_prices(self, view: MarketView) -> object:
        return self._prices


def test_limit_prices_are_optional_and_must_be_raw_integers(tmp_path: Path) -> None:
    panel, _ = load_panel(make_dataset(tmp_path / "d", symbols=2, bars=5))
    view = MarketView(panel, 2)
    assert strategy_limit_prices(object(), view) == {}
    assert strategy_limit_prices(_Priced(None), view) == {}
    assert strategy_limit_prices(_Priced({1: 10_050}), view) == {1: 10_050}
    for bad in ({1: 100.5}, {1: True}, {"1": 100}, {1: np.float64(100.0)}):
        with pytest.raises(StrategyError, match=r"^priced at step 2: limit_prices must map .* prices"):
            strategy_limit_prices(_Priced(bad), view)


def test_numpy_integer_limit_prices_are_taken_and_other_returns_are_named(tmp_path: Path) -> None:
    """A price read from ``view.history`` is a NumPy integer: it was refused with a TypeError
    (shown as Tape's internal error) although it is a raw integer price. A list, or a bad price,
    is the strategy's error, naming it and the step."""
    panel, _ = load_panel(make_dataset(tmp_path / "d", symbols=2, bars=5))
    view = MarketView(panel, 2)
    close = view.history("last_close", 1)[0]
    prices = strategy_limit_prices(_Priced({np.int64(1): close[0] * 101 // 100}), view)
    assert prices == {1: int(close[0]) * 101 // 100}
    assert all(type(key) is int and type(value) is int for key, value in prices.items())
    with pytest.raises(StrategyError, match=r"^priced at step 2: limit_prices must return .* got list"):
        strategy_limit_prices(_Priced([(1, 100)]), view)
