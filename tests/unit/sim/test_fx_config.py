"""``[fx]``: a run without it journals the same configuration bytes as before it existed; bad
settings stop with one line naming the key; what a book of several currencies does not do yet
is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest

from domain.events import DayClosed, KillSwitchTripped, OrderSubmitted, RiskVerdict
from domain.fx import FxRate
from domain.instruments import Instrument
from domain.riskrules import KillSwitchConfig, policy_from_mapping
from kernel.account import AccountConfig
from kernel.loop import KernelError
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import DatasetError, fx_table, write_dataset
from sim.backtest import BacktestConfig, FxConfig, FxConversionConfig, StrategyConfig, run_backtest
from tests.factories import Scripted

USD = Instrument(instrument_id=1, symbol="AAA", venue="XNAS", asset_class="equity", currency="USD",
                 price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1)  # fmt: skip
CNY = Instrument(instrument_id=2, symbol="BBB", venue="TEST", asset_class="equity", currency="CNY",
                 price_digits=2, tick_raw=1, qty_digits=0, lot_raw=1)  # fmt: skip
DAYS = [20240102, 20240103, 20240104]


def _config(**fields: object) -> BacktestConfig:
    return BacktestConfig(run_id="r", dataset="d", journal="j", strategy=StrategyConfig(name="sma_crossover"),
                          **fields)  # type: ignore[arg-type]  # fmt: skip


def test_no_fx_table_leaves_the_journaled_config_as_before() -> None:
    assert "fx" not in json.loads(_config().canonical_json())
    with_fx = _config(fx=FxConfig(initial_cash={"CNY": "10"}))
    assert json.loads(with_fx.canonical_json())["fx"]["initial_cash"] == {"CNY": "10"}
    assert BacktestConfig.from_json(with_fx.canonical_json()) == with_fx
    assert BacktestConfig.from_json(_config().canonical_json()).fx is None


@pytest.mark.parametrize(
    ("fx", "message"),
    [
        (FxConfig(initial_cash={"USD": "1"}), r"fx.initial_cash.USD: USD is the base currency"),
        (FxConfig(initial_cash={"XYZ": "1"}), r"fx.initial_cash.XYZ: unknown currency 'XYZ'"),
        (FxConfig(initial_cash={"CNY": "1.001"}), r"fx.initial_cash.CNY: '1.001' has more digits"),
        (FxConfig(initial_cash={"CNY": "-5"}), r"fx.initial_cash: negative cash in \['CNY'\]"),
    ],
)
def test_bad_fx_settings_name_the_key(fx: FxConfig, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _config(fx=fx)


def test_bad_conversions_name_the_key() -> None:
    with pytest.raises(ValueError, match="source and target are both USD"):
        FxConversionConfig(at="2024-01-02T00:00:00Z", source="USD", target="USD", amount="1")
    with pytest.raises(ValueError, match="amount must be positive"):
        FxConversionConfig(at="2024-01-02T00:00:00Z", source="USD", target="CNY", amount="0")
    with pytest.raises(ValueError, match="needs a UTC offset"):
        FxConversionConfig(at="2024-01-02", source="USD", target="CNY", amount="1")


def _dataset(path: Path, rates: list[FxRate] | None) -> Path:
    rows = [
        {"ts_ns": (index + 1) * 86_400 * 10**9 + 1_704_153_600 * 10**9, "day": day, "instrument_id": iid,
         "open": 1000, "high": 1000, "low": 1000, "close": 1000, "volume": 10**6}
        for index, day in enumerate(DAYS) for iid in (1, 2)
    ]  # fmt: skip
    write_dataset(
        path, name="constructed", frequency="1d", calendar="24x7", instruments=[USD, CNY],
        bars=pa.Table.from_pylist(rows), fx=None if rates is None else fx_table(rates),
    )  # fmt: skip
    return path


def _run(tmp_path: Path, rates: list[FxRate] | None, strategy: object = None, **fields: object) -> None:
    config = BacktestConfig(
        run_id="r", dataset=str(_dataset(tmp_path / "d", rates)), journal=str(tmp_path / "j"),
        strategy=StrategyConfig(name="scripted"), us_regulatory_fees=False, **fields,  # type: ignore[arg-type]
    )  # fmt: skip
    run_backtest(config, strategy or Scripted({0: 0.5}))  # type: ignore[arg-type]


class _Both(Scripted):
    def decide(self, view: MarketView) -> npt.NDArray[np.float64] | None:
        return np.array([0.4, 0.4])


def test_an_instrument_currency_without_rates_stops_naming_currency_and_day(tmp_path: Path) -> None:
    with pytest.raises(KernelError, match=r"no CNY/USD rate in the data set \(needed on 20240102\)"):
        _run(tmp_path, None)
    assert not (tmp_path / "j").exists()  # refused before its first record: no empty journal left
    (tmp_path / "j").mkdir()  # a folder the user made is theirs: the same refusal keeps it
    with pytest.raises(KernelError, match="no CNY/USD rate"):
        _run(tmp_path, None)
    assert (tmp_path / "j").is_dir()


def test_a_cash_account_with_several_currencies_runs_and_the_rest_is_refused_by_name(tmp_path: Path) -> None:
    """A cash account keeps cash per currency (``tests/integration/test_account_per_market.py``);
    what a book of several currencies does not do yet is still refused by name."""
    rates = [FxRate(day=day, currency="CNY", base="USD", rate_e8=14_000_000) for day in DAYS]
    _run(tmp_path / "cash", rates, _Both({0: 0.4}), account=AccountConfig(type="cash"),
         fx=FxConfig(initial_cash={"CNY": "1000"}))  # fmt: skip

    class Other(Scripted):
        strategy_id = "other"

    config = BacktestConfig(
        run_id="r", dataset=str(_dataset(tmp_path / "d", rates)), journal=str(tmp_path / "j2"),
        strategies=[StrategyConfig(name="scripted"), StrategyConfig(name="other")], us_regulatory_fees=False,
        fx=FxConfig(initial_cash={"CNY": "1000"}),
    )  # fmt: skip
    with pytest.raises(
        KernelError, match=r"several currencies \(CNY, USD\) with several strategies \(sleeves\)"
    ):
        run_backtest(config, [Scripted({0: 0.5}), Other({0: 0.5})])


def test_an_order_notional_limit_is_in_the_base(tmp_path: Path) -> None:
    """CONSTRUCTED: USD base, 0.14 USD per CNY, both names at 10.00. A 10,000 USD limit per
    order cuts the USD name's buy to 1,000 shares (10,000.00 USD) and the CNY name's to 7,142
    shares: 71,420.00 CNY is 9,998.80 USD, one more share would be 10,000.20 USD."""
    rates = [FxRate(day=day, currency="CNY", base="USD", rate_e8=14_000_000) for day in DAYS]
    policy = policy_from_mapping(
        {"name": {"limit_e8": 100_000_000, "action": "clip"}, "order_notional": {"limit": 1_000_000}}
    )
    _run(tmp_path, rates, _Both({0: 0.4}), risk=policy, initial_cash="1000",
         fx=FxConfig(initial_cash={"CNY": "1000000"}))  # fmt: skip
    with open_journal(tmp_path / "j") as journal:
        events = [event for _, event in journal.events()]
    submitted = {e.instrument_id: e.qty_raw for e in events if isinstance(e, OrderSubmitted)}
    assert submitted == {1: 1_000, 2: 7_142}
    [verdict] = [e for e in events if isinstance(e, RiskVerdict) and e.rule == "order_notional"]
    assert (verdict.action, verdict.limit, verdict.observed_after) == ("clip", 1_000_000, 1_000_000)
    # the larger order before: 0.4 of the base NAV (1,000 + 140,000 USD) in CNY, in USD
    assert 0.4 * 14_100_000 * 0.99 < verdict.observed <= 0.4 * 14_100_000


def test_a_malformed_fx_table_is_refused_when_written(tmp_path: Path) -> None:
    bad = [FxRate(day=20240102, currency="CNY", base="USD", rate_e8=-1)]
    with pytest.raises(DatasetError, match="not positive"):
        _dataset(tmp_path / "d", bad)


@pytest.mark.parametrize("falls", [False, True])
def test_the_kill_switch_watches_the_nav_in_the_base(tmp_path: Path, falls: bool) -> None:
    """CONSTRUCTED: prices never move; only the CNY rate does (0.15 -> 0.14 USD on the last day).
    The book's USD NAV falls 6.25% (16,000 -> 15,000 USD) and a 2% drawdown limit trips the
    kill switch on that close, with the base amounts; with a flat rate it stays armed."""
    last = 14_000_000 if falls else 15_000_000
    series = [15_000_000, 15_000_000, last]
    rates = [FxRate(day=d, currency="CNY", base="USD", rate_e8=r) for d, r in zip(DAYS, series, strict=True)]
    _run(tmp_path, rates, Scripted({}), initial_cash="1000", fx=FxConfig(initial_cash={"CNY": "100000"}),
         kill_switch=KillSwitchConfig(drawdown_max_e8=2_000_000))  # fmt: skip
    with open_journal(tmp_path / "j") as journal:
        events = [event for _, event in journal.events()]
    navs = [e.nav_minor for e in events if isinstance(e, DayClosed)]
    assert navs == [1_600_000, 1_600_000, 1_400_000 + 100_000 if falls else 1_600_000]
    tripped = [e for e in events if isinstance(e, KillSwitchTripped)]
    if not falls:
        assert tripped == []
        return
    [trip] = tripped
    assert trip.trigger == "drawdown" and trip.observed == 6_250_000  # 1e-8 of the USD peak
    assert "of peak 1600000" in trip.reason


def test_a_conversion_after_the_data_names_both_times_in_utc(tmp_path: Path) -> None:
    """The line said ``at 1735689600000000000 is after the data's end``: nanoseconds to decode."""
    rates = [FxRate(day=day, currency="CNY", base="USD", rate_e8=14_000_000) for day in DAYS]
    late = FxConversionConfig(at="2025-01-01T00:00:00Z", source="USD", target="CNY", amount="1")
    expected = (
        r"^fx conversion USD->CNY at 2025-01-01T00:00:00Z \(1735689600000000000 ns\) is after the "
        r"data's end \(2024-01-05T00:00:00Z \(1704412800000000000 ns\)\)$"
    )
    with pytest.raises(KernelError, match=expected):
        _run(tmp_path, rates, fx=FxConfig(initial_cash={"CNY": "1000"}, conversions=[late]))
