"""Settings of derivatives and of a book in several currencies that cannot work are refused by
`tape backtest` like any bad configuration: exit 2, one `error:` line naming the key, no record
journaled. Before, a `[perp_margin]` mistake (a fee or a maintenance rate out of range, a tier
out of order, a `by_symbol` key that is no perpetual) left the kernel as a bare ValueError and a
money amount too large for the journal's integers (`"1e400"` in `[fx] initial_cash`, a
conversion, a futures margin row or a tier) failed when its first event was encoded: exit 70,
"internal error", after the journal had been opened and written to. Constructed data
(`tests.factories.make_perp_dataset`)."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from cli.main import main
from kernel.margin import FuturesMarginRow, MarginError, futures_schedules
from kernel.store import open_journal
from sim.backtest import BacktestConfig, FxConfig, FxConversionConfig, StrategyConfig
from tests.factories import XRP_PERP, make_perp_dataset

TIERS = """
[[perp_margin.tiers]]
notional_max = "50000"
mmr_e8 = 1_000_000
[[perp_margin.tiers]]
mmr_e8 = 2_000_000
maintenance_amount = "500"
"""


def _backtest(tmp_path: Path, tail: str, cash: str = "10000") -> tuple[int, Path]:
    data = tmp_path / "data"
    if not data.exists():
        make_perp_dataset(data)
    config = tmp_path / "perp.toml"
    config.write_text(
        'run_id = "perp"\ndataset = "data"\njournal = "journal"\ncurrency = "USDT"\n'
        f'initial_cash = "{cash}"\n[strategy]\nname = "sma_crossover"\n'
        "params = { fast = 3, slow = 12, weight = 1.0 }\n" + tail
    )
    return main(["backtest", str(config)]), tmp_path / "journal"


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (
            "[perp_margin]\nliquidation_fee_e8 = -1\n" + TIERS,
            r"perp: perp_margin.liquidation_fee_e8: -1 is outside \[0, 100000000\)",
        ),
        (
            "[perp_margin]\n[[perp_margin.tiers]]\nmmr_e8 = 200_000_000\n",
            r"perp_margin\[XRP/USDT:USDT\]\[0\].mmr_e8: 200000000 is outside \(0, 100000000\)",
        ),
        (
            '[perp_margin]\n[[perp_margin.tiers]]\nnotional_max = "100"\nmmr_e8 = 1\n'
            '[[perp_margin.tiers]]\nnotional_max = "50"\nmmr_e8 = 2\n[[perp_margin.tiers]]\nmmr_e8 = 3\n',
            r"perp_margin\[XRP/USDT:USDT\]\[1\].notional_max: tiers must increase",
        ),
        (
            '[perp_margin]\n[perp_margin.by_symbol]\n"NOPE" = [ { mmr_e8 = 1_000_000 } ]\n' + TIERS,
            r"perp_margin.by_symbol: \['NOPE'\] are not perpetuals of this run",
        ),
        (
            '[perp_margin]\n[[perp_margin.tiers]]\nmmr_e8 = 1_000_000\nmaintenance_amount = "1e400"\n',
            r"maintenance_amount: '1e400' is too large: at most 1,000,000,000 USDT",
        ),
        (
            '[fx]\ninitial_cash = { USD = "1e400" }\n',
            r"fx.initial_cash.USD: '1e400' is too large: at most 10,000,000,000,000 USD",
        ),
    ],
)
def test_a_bad_derivative_or_currency_setting_is_refused_before_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tail: str, message: str
) -> None:
    status, journal = _backtest(tmp_path, tail)
    out = capsys.readouterr()
    lines = (out.out + out.err).strip().splitlines()
    assert status == 2, lines
    assert len([line for line in lines if line.startswith("error:")]) == 1
    assert "internal error" not in out.out + out.err
    assert re.search(message, out.out + out.err), lines
    if journal.exists():  # opened at most: nothing journaled, so the same command runs once fixed
        with open_journal(journal) as opened:
            assert len(opened) == 0
    status, _ = _backtest(tmp_path, "[perp_margin]\n" + TIERS)
    assert status == 0  # the journal path is free for the corrected run


@pytest.mark.parametrize(
    ("cash", "tail", "message"),
    [
        # 10^13 USDT is 10^19 minor units at its 6 digits: the first event overflowed (exit 70)
        ("10000000000000", "", r"initial_cash: '10000000000000' is too large: at most 1,000,000,000 USDT"),
        ("1e999999999", "", r"initial_cash: '1e999999999' is too large: at most 1,000,000,000 USDT"),
        ("0.0000001", "", r"initial_cash '0.0000001' must be a positive amount \(it rounds to 0"),
        (
            "10000",
            "[fill]\ncommission_min_minor = 9223372036854775807\n",
            r"fill.commission_min_minor: 9223372036854775807 is too large: at most "
            r"1,000,000,000,000,000 minor units \(1,000,000,000 USDT\)",
        ),
    ],
)
def test_base_cash_and_a_minimum_commission_are_bounded_in_minor_units(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cash: str, tail: str, message: str
) -> None:
    status, journal = _backtest(tmp_path, tail, cash)
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if line.startswith("error:")]
    assert status == 2, out
    assert len(lines) == 1 and re.search(message, lines[0]), lines
    assert not journal.exists()  # refused as configuration, before the journal opens
    assert _backtest(tmp_path, "", "1000000000")[0] == 0  # the largest amount allowed runs


def test_amounts_too_large_for_the_journal_name_the_key() -> None:
    with pytest.raises(
        ValueError, match=r"fx.conversions.amount: '1e30' is too large: at most 10,000,000,000,000 USD"
    ):
        FxConversionConfig(at="2024-01-02T00:00:00Z", source="USD", target="CNY", amount="1e30")
    with pytest.raises(ValueError, match=r"fx.initial_cash.CNY: '1e14' is too large"):
        BacktestConfig(
            run_id="r", dataset="d", journal="j", strategy=StrategyConfig(name="sma_crossover"),
            fx=FxConfig(initial_cash={"CNY": "1e14"}),
        )  # fmt: skip
    # the largest amount allowed is taken
    FxConversionConfig(at="2024-01-02T00:00:00Z", source="USD", target="CNY", amount="10000000000000")
    row = FuturesMarginRow(symbol="*", since="2015-07-01", initial="1e400", maintenance="1")
    future = msgspec.structs.replace(XRP_PERP, asset_class="future", symbol="F1")
    with pytest.raises(MarginError, match=r"F1.initial: '1e400' is too large: at most 1,000,000,000 USDT"):
        futures_schedules([row], {future.instrument_id: future})


def test_an_fx_conversion_time_error_names_fx_conversions() -> None:
    with pytest.raises(ValueError, match=r"^fx.conversions: 'at' needs a UTC offset"):
        FxConversionConfig(at="2024-01-02", source="USD", target="CNY", amount="1")
    with pytest.raises(ValueError, match=r"^fx.conversions: 'at' is not an ISO 8601 time"):
        FxConversionConfig(at="soon", source="USD", target="CNY", amount="1")
