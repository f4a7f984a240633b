"""Corporate actions in integers: ex-rights reference price, splits, dividends, rights, tax."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.fixed import Rounding
from domain.ledger import Position, assert_balanced
from domain.markets import (
    CnCorporateAction,
    RuleNotDefined,
    apply_rights,
    apply_split,
    cn_dividend_tax_minor,
    cn_dividend_tax_rate_e8,
    dividend_ex_postings,
    dividend_minor,
    dividend_paid_postings,
    dividend_tax_postings,
    ex_right_reference_price,
    rights_entitlement,
    rights_subscription_postings,
    split_quantity,
)


def test_bonus_shares_6000_times_1_15_is_6900_not_6899() -> None:
    assert split_quantity(6_000, 115, 100, Rounding.HALF_UP) == 6_900
    assert split_quantity(6_000, 115, 100, Rounding.FLOOR) == 6_900
    action = CnCorporateAction.from_text(20200601, bonus="1.5")
    assert split_quantity(6_000, *action.share_ratio, Rounding.HALF_UP) == 6_900


def test_split_keeps_total_cost_and_aapl_7_for_1() -> None:
    position = Position(qty_raw=100, cost_minor=6_455_700)  # 100 AAPL at 645.57
    after = apply_split(position, 7, 1, Rounding.HALF_UP)
    assert after == Position(qty_raw=700, cost_minor=6_455_700)


def test_spdb_2011_10_song_3_pai_1_6_reference_price() -> None:
    action = CnCorporateAction.from_text(20110603, bonus="3.0000", cash="1.6000")
    # (13.21 - 0.16) / 1.3 = 10.0384... -> 10.04
    assert ex_right_reference_price(1321, action, 2, 1) == 1004


def test_reference_price_with_rights_and_capitalisation() -> None:
    # 武钢 2011 rights issue 10配3 at 3.70 on a 4.00 close: (40 + 3.7 x 3) / 13 = 3.9308 -> 3.93
    rights = CnCorporateAction.from_text(20110101, rights="3", rights_price="3.70")
    assert ex_right_reference_price(400, rights, 2, 1) == 393
    # 10转5派2 on a 15.00 close: (150 - 2) / 15 = 9.8667 -> 9.87
    action = CnCorporateAction.from_text(20020822, capitalization="5", cash="2")
    assert ex_right_reference_price(1500, action, 2, 1) == 987
    # A cash-only dividend: 10.00 - 0.15 = 9.85 exactly.
    assert ex_right_reference_price(1000, CnCorporateAction.from_text(20000706, cash="1.5"), 2, 1) == 985


def test_from_text_is_exact_and_rejects_excess_precision() -> None:
    assert CnCorporateAction.from_text(20110603, cash="1.6000").cash_per10_e4 == 16_000
    with pytest.raises(ValueError, match="decimals"):
        CnCorporateAction.from_text(20110603, cash="1.60001")
    assert not CnCorporateAction.from_text(20110603, rights_price="8.45").affects_price


def test_cash_dividend_amount_and_postings() -> None:
    action = CnCorporateAction.from_text(20110603, bonus="3", cash="1.6")
    # 1,000 shares x 0.16 CNY = 160.00 CNY
    amount = dividend_minor(1_000, 0, action.cash_per10_e4, 5, "CNY", Rounding.DOWN)
    assert amount == 16_000
    assert dividend_minor(333, 0, 47, 2, "USD", Rounding.HALF_UP) == 15_651  # 333 x $0.47
    ex = dividend_ex_postings(600000, amount, "CNY")
    paid = dividend_paid_postings(600000, amount, "CNY")
    assert_balanced(ex + paid)
    balances: dict[str, int] = {}
    for posting in ex + paid:
        balances[posting.account] = balances.get(posting.account, 0) + posting.amount_minor
    assert balances == {
        "assets:receivable:dividend:600000": 0,
        "income:dividend:CNY": -16_000,
        "assets:cash:CNY": 16_000,
    }
    tax = dividend_tax_postings(1_600, "CNY")
    assert [p.amount_minor for p in tax] == [1_600, -1_600]


def test_rights_entitlement_and_subscription() -> None:
    action = CnCorporateAction.from_text(20110101, rights="3", rights_price="3.70")
    assert rights_entitlement(1_050, action, Rounding.FLOOR) == 315
    assert rights_entitlement(1_055, action, Rounding.FLOOR) == 316  # 316.5 floored
    position = apply_rights(Position(1_050, 420_000), 315, 116_550)  # 315 x 3.70
    assert position == Position(1_365, 536_550)
    postings = rights_subscription_postings(600005, 116_550, "CNY")
    assert_balanced(postings)


@pytest.mark.parametrize(
    ("acquired", "sold", "rate"),
    [
        (20240115, 20240214, 20_000_000),  # held to 02-13: within one month
        (20240115, 20240216, 20_000_000),  # held to 02-15: exactly one month (inclusive)
        (20240115, 20240217, 10_000_000),  # held to 02-16: over one month
        (20240115, 20250116, 10_000_000),  # held to 2025-01-15: exactly one year (inclusive)
        (20240115, 20250117, 0),
    ],
)
def test_dividend_tax_by_holding_period(acquired: int, sold: int, rate: int) -> None:
    assert cn_dividend_tax_rate_e8(20240601, acquired, sold) == rate


def test_dividend_tax_amount_and_unknown_regime() -> None:
    assert cn_dividend_tax_minor(16_000, 20240601, 20240115, 20240214, Rounding.HALF_UP) == 3_200
    with pytest.raises(RuleNotDefined, match="dividend tax"):
        cn_dividend_tax_rate_e8(20150907, 20150101, 20150910)


@given(qty=st.integers(0, 10**9), new=st.integers(1, 100), old=st.integers(1, 100))
def test_split_quantity_is_exact_half_up(qty: int, new: int, old: int) -> None:
    result = split_quantity(qty, new, old, Rounding.HALF_UP)
    assert abs(result * old - qty * new) * 2 <= old
    if (qty * new) % old == 0:
        assert result * old == qty * new
