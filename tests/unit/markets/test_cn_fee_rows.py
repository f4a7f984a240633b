"""User-supplied A-share fee rows: merged in front of the built-in tables, built-in rows win,
disagreeing overlaps refused, uncovered days still raise, configs without rows unchanged."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.wiring import ConfigError, load_config
from domain.fixed import Rounding, apply_rate
from domain.markets import (
    CN_FEE_TABLES,
    CnFeeRow,
    CnFeeRowConflict,
    CnFeeRows,
    RuleNotDefined,
    cn_exchange_fees,
    cn_fee_tables,
    date_to_day,
)
from sim.backtest import BacktestConfig, StrategyConfig


def _row(day: int, stamp_buy: int = 200_000, stamp_sell: int = 200_000, **rates: int) -> CnFeeRow:
    values = {"transfer_e8": 3_000, "handling_e8": 8_700, "regulatory_e8": 4_000} | rates
    return CnFeeRow(effective_from=day, stamp_duty_buy_e8=stamp_buy, stamp_duty_sell_e8=stamp_sell, **values)


def test_rows_go_in_front_of_each_builtin_table() -> None:
    tables = cn_fee_tables([_row(20010101), _row(20050124, 100_000, 100_000)])
    # 2002: every line from the first row (stamp both sides 0.2%)
    fees = cn_exchange_fees(1, 20020625, 10_000_000, tables=tables)
    assert (fees.stamp_duty_minor, fees.transfer_minor, fees.handling_minor, fees.regulatory_minor) == (
        20_000,
        300,
        870,
        400,
    )
    # 2010: stamp duty from the built-in table (seller only 0.1%), the others from the second row
    buy = cn_exchange_fees(1, 20100104, 10_000_000, tables=tables)
    sell = cn_exchange_fees(-1, 20100104, 10_000_000, tables=tables)
    assert (buy.stamp_duty_minor, sell.stamp_duty_minor) == (0, 10_000)
    assert (buy.transfer_minor, buy.handling_minor, buy.regulatory_minor) == (300, 870, 400)
    # 2013: the built-in CSRC fee (0.002%) from 2012-01-01; transfer still the user's until 2015-08-01
    assert cn_exchange_fees(1, 20130104, 10_000_000, tables=tables).regulatory_minor == 200
    assert cn_exchange_fees(1, 20150731, 10_000_000, tables=tables).transfer_minor == 300
    assert cn_exchange_fees(1, 20150803, 10_000_000, tables=tables) == cn_exchange_fees(
        1, 20150803, 10_000_000
    )


def test_a_day_before_every_row_still_raises_naming_the_table_and_day() -> None:
    tables = cn_fee_tables([_row(20010101)])
    with pytest.raises(
        RuleNotDefined, match=r"CN stamp duty \(config cn_fees rows from 20010101.*asked for 20001229"
    ):
        cn_exchange_fees(-1, 20001229, 1_000, tables=tables)
    with pytest.raises(
        RuleNotDefined, match=r"CN stamp duty: no rule before 20080424 \(asked for 20020625\)"
    ):
        cn_exchange_fees(-1, 20020625, 1_000)
    with pytest.raises(
        RuleNotDefined, match=r"CN transfer fee: no rule before 20150801 \(asked for 20100104\)"
    ):
        cn_exchange_fees(-1, 20100104, 1_000)


def test_overlap_that_agrees_is_dropped_and_one_that_disagrees_is_refused() -> None:
    agreeing = _row(20100104, 0, 100_000, regulatory_e8=4_000)  # stamp duty = built-in seller 0.1%
    assert cn_fee_tables([agreeing]).stamp_duty is CN_FEE_TABLES.stamp_duty
    with pytest.raises(
        CnFeeRowConflict, match=r"row 20100104: stamp_duty.*buy 100000, sell 100000.*buy 0, sell 100000"
    ):
        cn_fee_tables([_row(20100104, 100_000, 100_000)])
    with pytest.raises(CnFeeRowConflict, match=r"row 20160104: transfer_e8 .*CN transfer fee"):
        cn_fee_tables([_row(20160104, 0, 100_000, transfer_e8=3_000)])


def test_bad_rows_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        cn_fee_tables([_row(20050101), _row(20010101)])
    with pytest.raises(ValueError, match="stamp duty is one rate"):
        _row(20010101, 100_000, 200_000)
    with pytest.raises(ValueError, match="handling_e8 must be in"):
        _row(20010101, handling_e8=-1)
    with pytest.raises(ValueError, match="YYYYMMDD"):
        _row(20010231)
    with pytest.raises(msgspec.ValidationError, match="Object missing required field `regulatory_e8`"):
        msgspec.convert(
            {
                "effective_from": 20010101,
                "stamp_duty_buy_e8": 0,
                "stamp_duty_sell_e8": 0,
                "transfer_e8": 0,
                "handling_e8": 0,
            },
            CnFeeRow,
        )


@given(
    days=st.lists(
        st.dates(dt.date(1997, 1, 1), dt.date(2007, 12, 31)).map(date_to_day),
        min_size=1,
        max_size=5,
        unique=True,
    ),
    rate=st.integers(0, 500_000),
    notional=st.integers(0, 10**12),
    day=st.sampled_from([20080424, 20120104, 20150803, 20230828, 20260105]),
)
def test_builtin_days_price_as_before_and_user_days_at_the_user_rate(
    days: list[int], rate: int, notional: int, day: int
) -> None:
    rows = [_row(d, rate, rate, transfer_e8=rate, handling_e8=rate, regulatory_e8=rate) for d in sorted(days)]
    tables = cn_fee_tables(rows)
    if day >= 20150801:
        assert cn_exchange_fees(-1, day, notional, tables=tables) == cn_exchange_fees(-1, day, notional)
    before = cn_exchange_fees(1, max(days), notional, tables=tables)
    line = apply_rate(notional, rate, Rounding.HALF_UP)
    assert before.total_minor == 4 * line


def _config(**fields: object) -> BacktestConfig:
    return BacktestConfig(
        run_id="r",
        dataset="d",
        journal="j",
        strategy=StrategyConfig(name="momentum"),
        **fields,  # type: ignore[arg-type]
    )


def test_config_without_rows_journals_the_same_json_as_before() -> None:
    assert "cn_fees" not in _config().canonical_json()
    with_rows = _config(cn_fees=CnFeeRows(rows=[_row(20010101)], source="my broker's 2001 fee sheet"))
    assert BacktestConfig.from_json(with_rows.canonical_json()) == with_rows
    assert '"source":"my broker\'s 2001 fee sheet"' in with_rows.canonical_json()


def test_toml_with_a_conflicting_row_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'run_id = "r"\ndataset = "d"\njournal = "j"\n[strategy]\nname = "momentum"\n'
        "[[cn_fees.rows]]\neffective_from = 20230901\nstamp_duty_buy_e8 = 0\nstamp_duty_sell_e8 = 100000\n"
        "transfer_e8 = 1000\nhandling_e8 = 3410\nregulatory_e8 = 2000\n"
    )
    with pytest.raises(
        ConfigError, match=r"cn_fees row 20230901: stamp_duty.*built-in rates win from 20080424"
    ):
        load_config(path)
