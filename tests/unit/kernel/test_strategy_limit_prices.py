"""Optional strategy limit prices: absent -> market orders; present -> raw integer prices only."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.strategy import MarketView, strategy_limit_prices
from lake.store import load_panel
from tests.factories import make_dataset


class _Priced:
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
    for bad in ({1: 100.5}, {1: True}, {"1": 100}):
        with pytest.raises(TypeError, match="raw integer prices"):
            strategy_limit_prices(_Priced(bad), view)
