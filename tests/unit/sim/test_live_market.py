"""``[live] market``: spot (a cash account, as before the key) or usdm (perpetuals on margin);
left out of the journaled configuration while it says spot, so spot sessions journal as before;
and the session's account type taken from (or checked against) the data set's instruments."""

from __future__ import annotations

import pytest

from cli.paper_cmd import market_type
from cli.wiring import ConfigError
from domain.instruments import Instrument
from sim.backtest import AccountConfig, BacktestConfig, LiveConfig, PaperConfig, StrategyConfig, VenueConfig


def _config(**fields: object) -> BacktestConfig:
    paper = PaperConfig(exchange="binanceusdm", start="2021-11-18T00:05:00Z", end="2021-11-18T17:00:00Z")
    base: dict[str, object] = {
        "run_id": "r",
        "dataset": "d",
        "journal": "j",
        "strategy": StrategyConfig(name="sma_crossover"),
        "paper": paper,
        "venue": VenueConfig(kind="live"),
    }
    base.update(fields)
    return BacktestConfig(**base)  # type: ignore[arg-type]


def test_usdm_trades_on_margin_and_spot_needs_a_cash_account() -> None:
    usdm = _config(live=LiveConfig(market="usdm"))
    assert '"market":"usdm"' in usdm.canonical_json()
    with pytest.raises(ValueError, match='type = "cash"'):
        _config(live=LiveConfig(market="spot"))
    with pytest.raises(ValueError, match="trades perpetuals on margin"):
        _config(live=LiveConfig(market="usdm"), account=AccountConfig(type="cash"))
    with pytest.raises(ValueError, match=r"live\.market must be one of"):
        LiveConfig(market="coinm")


def test_a_spot_session_journals_the_same_configuration_as_before_the_key() -> None:
    spot = _config(live=LiveConfig(), account=AccountConfig(type="cash"))
    assert "market" not in spot.canonical_json()
    assert BacktestConfig.from_json(spot.canonical_json()) == spot


def _inst(iid: int, asset_class: str) -> Instrument:
    return Instrument(
        instrument_id=iid, symbol=f"S{iid}/USDT", venue="BINANCE", asset_class=asset_class,
        currency="USDT", price_digits=2, tick_raw=1, qty_digits=3, lot_raw=1,
    )  # fmt: skip


def test_the_account_type_comes_from_the_instruments() -> None:
    assert market_type([_inst(1, "crypto_spot")]) == "spot"
    assert market_type([_inst(1, "crypto_perp"), _inst(2, "crypto_perp")]) == "usdm"
    with pytest.raises(ConfigError, match="one account type"):
        market_type([_inst(1, "crypto_perp"), _inst(2, "crypto_spot")])
