"""``[option_model]`` in a backtest TOML: parsed, range-checked with the key named, journaled in
the canonical config only when present, and read back by replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.wiring import ConfigError, load_config
from kernel.options import OptionModel
from sim.backtest import BacktestConfig

BASE = """
run_id = "opt"
dataset = "data"
journal = "journal"
us_regulatory_fees = false
[strategy]
name = "sma_crossover"
"""


def _load(tmp_path: Path, extra: str) -> BacktestConfig:
    path = tmp_path / "run.toml"
    path.write_text(BASE + extra)
    return load_config(path)


def test_option_model_table_round_trips_through_the_journaled_config(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """
[risk.greeks.delta_total]
limit = 50_000_000
action = "clip"
[option_model]
rate_e8 = 1_000_000
default_vol_e8 = 25_000_000
vols_e8 = { AAPL = 30_000_000 }
dividend_yields_e8 = { AAPL = 500_000 }
""",
    )
    model = config.option_model
    assert model == OptionModel(
        rate_e8=1_000_000, default_vol_e8=25_000_000, vols_e8={"AAPL": 30_000_000},
        dividend_yields_e8={"AAPL": 500_000},
    )  # fmt: skip
    assert model.vol_e8("AAPL") == 30_000_000 and model.vol_e8("MSFT") == 25_000_000
    assert model.settle_expiries
    text = config.canonical_json()
    assert '"option_model":{"default_vol_e8":25000000,' in text
    assert BacktestConfig.from_json(text) == config
    assert '"option_model":' not in _load(tmp_path, "").canonical_json()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("default_vol_e8 = -1", "option_model.vols_e8 default_vol_e8: volatility -1e-8"),
        ("vols_e8 = { AAPL = 2_000_000_000 }", "option_model.vols_e8 AAPL: volatility 2000000000e-8"),
        ("rate_e8 = 200_000_000", "option_model.rate_e8: 200000000e-8 is outside"),
        ("dividend_yields_e8 = { X = -200_000_000 }", "option_model.dividend_yields_e8 X"),
        ("vol_e8 = 1", "unknown field `vol_e8`"),
    ],
)
def test_bad_option_model_values_are_named(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, f"[option_model]\n{table}\n")
