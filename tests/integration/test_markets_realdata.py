"""Market rules against real data in ../shared/data (skipped with a reason when it is absent).

SPDB 600000 (SSE main board) raw daily bars and its 权息 records: ex-rights reference prices,
price limits that no bar ever breaks, limit-close counts; XSHG sessions vs the bars; AAPL 7:1.
"""

from __future__ import annotations

import bisect
import csv
import itertools
from pathlib import Path

import pytest

from domain.fixed import Rounding, from_decimal_text
from domain.ledger import Position
from domain.markets import (
    Board,
    CnCorporateAction,
    apply_split,
    cn_price_limits,
    ex_right_reference_price,
    is_session,
    sessions,
)

SHARED = Path(__file__).resolve().parents[3] / "shared"
HIKYUU = SHARED / "data" / "cn" / "hikyuu"
ABU = SHARED / "data" / "us" / "abu_raw"

pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not HIKYUU.is_dir(), reason=f"shared data not found at {HIKYUU}"),
]

SPDB_REFORM_DAY = 20060512  # 股权分置改革 payment to tradable holders only: no ex-right formula
LAST_RECORDED_ACTION_DAY = 20111130  # stock_weight_corporate_actions.csv ends 2011-11


def _price(text: str) -> int:
    return from_decimal_text(text, 2, Rounding.HALF_EVEN)


def _spdb_bars() -> list[tuple[int, int, int, int, int]]:
    """(day, open, high, low, close) raw fen."""
    with (HIKYUU / "600000.SH_day_raw_tdx.csv").open() as handle:
        return [
            (int(row["date"].replace("-", "")), *(_price(row[k]) for k in ("open", "high", "low", "close")))
            for row in csv.DictReader(handle)
        ]


def _spdb_actions() -> list[CnCorporateAction]:
    actions = []
    with (HIKYUU / "stock_weight_corporate_actions.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["market"] != "SH" or row["code"] != "600000":
                continue
            action = CnCorporateAction.from_text(
                int(row["date"]),
                bonus=row["bonus_shares_per10"],
                capitalization=row["capitalization_shares_per10"],
                rights=row["rights_shares_per10"],
                rights_price=row["rights_price"],
                cash=row["cash_dividend_per10"],
            )
            if action.affects_price and action.ex_day != SPDB_REFORM_DAY:
                actions.append(action)
    return actions


@pytest.fixture(scope="module")
def bars() -> list[tuple[int, int, int, int, int]]:
    return _spdb_bars()


@pytest.fixture(scope="module")
def actions() -> dict[int, CnCorporateAction]:
    return {action.ex_day: action for action in _spdb_actions()}


def test_spdb_2011_06_03_reference_price_explains_the_gap(bars: list[tuple[int, int, int, int, int]]) -> None:
    by_day = {bar[0]: bar for bar in bars}
    action = CnCorporateAction.from_text(20110603, bonus="3.0000", cash="1.6000")  # 10送3派1.6
    prev_close = by_day[20110602][4]
    assert prev_close == 1321
    ref = ex_right_reference_price(prev_close, action, 2, 1)
    assert ref == 1004
    _, open_px, high, low, _ = by_day[20110603]
    naive = cn_price_limits(Board.MAIN, False, 20110603, prev_close, 1)
    assert naive is not None
    assert high < naive.down_raw  # against the unadjusted close the bar sits below limit-down
    limits = cn_price_limits(Board.MAIN, False, 20110603, ref, 1)
    assert limits is not None
    assert limits.down_raw <= low <= high <= limits.up_raw
    assert abs(open_px - ref) <= 5  # opened 10.02 against a 10.04 reference


def _ex_bar_actions(
    bars: list[tuple[int, int, int, int, int]], actions: dict[int, CnCorporateAction]
) -> dict[int, CnCorporateAction]:
    """Bar index of each ex-date's first bar (the first bar on or after the record's ex-date)."""
    days = [bar[0] for bar in bars]
    return {bisect.bisect_left(days, ex_day): action for ex_day, action in actions.items()}


def test_every_spdb_ex_date_bar_lies_within_limits_from_its_reference_price(
    bars: list[tuple[int, int, int, int, int]], actions: dict[int, CnCorporateAction]
) -> None:
    checked = 0
    for index, action in sorted(_ex_bar_actions(bars, actions).items()):
        assert index > 0, "an ex-date on the first bar has no previous close"
        prev_close = bars[index - 1][4]
        day, _, high, low, _ = bars[index]
        ref = ex_right_reference_price(prev_close, action, 2, 1)
        assert ref < prev_close, (day, action)
        limits = cn_price_limits(Board.MAIN, False, day, ref, 1)
        assert limits is not None
        assert limits.down_raw <= low <= high <= limits.up_raw, (day, ref, low, high)
        checked += 1
    assert checked == len(actions) == 11  # price-affecting SPDB records 2000-2011, reform excluded


def test_no_spdb_bar_breaks_its_limits_through_2011(
    bars: list[tuple[int, int, int, int, int]], actions: dict[int, CnCorporateAction]
) -> None:
    ex_bars = _ex_bar_actions(bars, actions)
    checked = 0
    for index in range(1, len(bars)):
        prev_day, _, _, _, prev_close = bars[index - 1]
        day, _, high, low, _ = bars[index]
        if day > LAST_RECORDED_ACTION_DAY:
            break  # the action table stops in 2011-11; later ex-dates are unknown here
        if prev_day < SPDB_REFORM_DAY <= day:
            continue  # reform resumption day: no limit that day
        action = ex_bars.get(index)
        ref = prev_close if action is None else ex_right_reference_price(prev_close, action, 2, 1)
        limits = cn_price_limits(Board.MAIN, False, day, ref, 1)
        assert limits is not None
        assert limits.down_raw <= low <= high <= limits.up_raw, (day, ref, low, high)
        checked += 1
    assert checked > 2_700


def test_spdb_limit_close_counts_match_the_data_notes(bars: list[tuple[int, int, int, int, int]]) -> None:
    """shared/data/README.md counts 18 closes at +10% and 8 at -10% from the previous close."""
    at_up = at_down = 0
    for (_, _, _, _, prev_close), (day, _, _, _, close) in itertools.pairwise(bars):
        limits = cn_price_limits(Board.MAIN, False, day, prev_close, 1)
        assert limits is not None
        at_up += close == limits.up_raw
        at_down += close == limits.down_raw
    assert (at_up, at_down) == (18, 8)


def test_spdb_bars_fall_on_xshg_sessions(bars: list[tuple[int, int, int, int, int]]) -> None:
    days = [bar[0] for bar in bars if bar[0] >= 20070101]
    calendar_days = set(sessions("XSHG", days[0], days[-1]))
    assert set(days) <= calendar_days  # missing sessions are suspensions, never extra bars
    assert len(calendar_days - set(days)) < 0.05 * len(calendar_days)


def test_vendored_2021_2022_holidays_are_not_xshg_sessions() -> None:
    with (HIKYUU / "holidays_2021_2022.csv").open() as handle:
        holidays = [int(row["date"]) for row in csv.DictReader(handle)]
    assert holidays
    assert not any(is_session("XSHG", day) for day in holidays)


@pytest.mark.skipif(not ABU.is_dir(), reason=f"shared data not found at {ABU}")
def test_aapl_7_for_1_split_keeps_cost_and_value() -> None:
    with (ABU / "usAAPL_20140609_20160726.csv").open() as handle:
        first = next(csv.DictReader(handle))
    assert first["date"] == "20140609"
    pre_close = from_decimal_text(first["pre_close"], 2, Rounding.HALF_EVEN)
    close = from_decimal_text(first["close"], 2, Rounding.HALF_EVEN)
    position = Position(qty_raw=100, cost_minor=100 * pre_close)  # bought 100 at 645.57
    after = apply_split(position, 7, 1, Rounding.HALF_UP)
    assert after == Position(qty_raw=700, cost_minor=6_455_700)
    value_before, value_after = 100 * pre_close, after.qty_raw * close
    # The 7:1 split explains the -85.49% raw gap: value changes by +1.6%, the day's real move.
    assert value_after - value_before == 103_300
