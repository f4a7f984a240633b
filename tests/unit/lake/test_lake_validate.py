"""Validation quarantines with a reason, never drops: one canary per reason, and the
``in = accepted + quarantined`` property over arbitrary dirty input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lake.sessions import sessions_for
from lake.validate import MISSING_TS, BarInput, FundingInput, Reason, to_raw, validate_bars, validate_funding

MIN = 60_000_000_000


def bars(closes: list[float], ts: list[int] | None = None, **overrides: object) -> BarInput:
    count = len(closes)
    close = np.array(closes, dtype=np.float64)
    fields: dict[str, object] = {
        "source": "test.csv",
        "instrument_id": 7,
        "line": np.arange(count, dtype=np.int64) + 2,
        "ts_ns": np.array(ts if ts is not None else [(i + 1) * MIN for i in range(count)], dtype=np.int64),
        "day": np.full(count, 19700101, dtype=np.int64),
        "open": close.copy(),
        "high": close + 0.01,
        "low": close - 0.01,
        "close": close,
        "volume": np.full(count, 10.0),
    }
    fields.update(overrides)
    return BarInput(**fields)  # type: ignore[arg-type]


def reasons_by_line(result: object) -> dict[int, str]:
    table = result.quarantine  # type: ignore[attr-defined]
    return dict(zip(table.column("line").to_pylist(), table.column("reason").to_pylist(), strict=True))


def test_clean_bars_are_all_accepted_as_raw_integers() -> None:
    result = validate_bars(bars([10.0, 10.5, 10.25, 10.75]), price_digits=4, qty_digits=0)
    assert result.rows_quarantined == 0
    assert result.accepted.column("close").to_pylist() == [100_000, 105_000, 102_500, 107_500]
    assert result.accepted.column("instrument_id").to_pylist() == [7] * 4


def test_every_reason_is_caught() -> None:
    closes = [10.0] * 12
    data = bars(closes)
    data.open[1] = np.nan  # missing
    data.low[2] = -1.0  # non-positive
    data.volume[3] = -5  # negative volume
    data.close[4] = 10.00005  # off the 1e-4 grid
    data.high[5] = 9.0  # high below open/close
    data.ts_ns[7] = data.ts_ns[6]  # duplicate
    data.ts_ns[9] = data.ts_ns[8] - 30 * MIN  # backwards
    result = validate_bars(data, price_digits=4, qty_digits=0)
    assert reasons_by_line(result) == {
        3: Reason.MISSING_VALUE,
        4: Reason.NON_POSITIVE_PRICE,
        5: Reason.NEGATIVE_VOLUME,
        6: Reason.OFF_PRICE_GRID,
        7: Reason.OHLC_INCONSISTENT,
        9: Reason.DUPLICATE,
        11: Reason.TIME_BACKWARDS,
    }
    assert result.rows_accepted + result.rows_quarantined == 12
    record = json.loads(result.quarantine.column("record")[0].as_py())
    assert record["open"] is None  # the input values are kept, NaN as null


def test_a_spike_is_an_outlier_but_a_level_shift_is_not() -> None:
    rng = np.random.default_rng(5)
    walk = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, 200)))
    walk[100:] *= 0.5  # a 2:1 split: level shift, kept
    walk[50] *= 1.4  # a bad print: spike, quarantined
    prices = np.round(walk, 4)
    result = validate_bars(bars(list(prices)), price_digits=4, qty_digits=0)
    assert reasons_by_line(result) == {52: Reason.OUTLIER}


def test_one_forward_jump_costs_one_row_not_the_rest() -> None:
    ts = [(i + 1) * MIN for i in range(10)]
    ts[3] = 10_000 * MIN  # a single mis-stamped row far in the future
    result = validate_bars(bars([10.0] * 10, ts=ts), price_digits=2, qty_digits=0)
    assert reasons_by_line(result) == {5: Reason.TIME_BACKWARDS}


def test_intraday_bars_outside_the_session_are_timezone_suspects() -> None:
    sessions = sessions_for("XSHG", 20181203, 20181203)
    open_ns = int(sessions.open_ns[0])
    lunch_ns = int(sessions.break_start_ns[0])
    ts = [open_ns + MIN, lunch_ns, lunch_ns + 30 * MIN, open_ns - 8 * 3600 * 1_000_000_000]
    result = validate_bars(bars([10.0] * 4, ts=ts), price_digits=2, qty_digits=0, sessions=sessions)
    assert reasons_by_line(result) == {4: Reason.OUTSIDE_SESSION, 5: Reason.OUTSIDE_SESSION}
    assert result.accepted.column("day").to_pylist() == [20181203, 20181203]


def test_daily_bars_take_the_session_close_and_refuse_non_sessions() -> None:
    days = np.array([20190102, 20190105, 20190103], dtype=np.int64)  # 5th is a Saturday
    sessions = sessions_for("XNYS", 20190102, 20190105)
    data = bars([10.0, 10.0, 10.0], ts=[0, 0, 0], day=days, daily=True)
    result = validate_bars(data, price_digits=2, qty_digits=0, sessions=sessions)
    assert reasons_by_line(result) == {3: Reason.OUTSIDE_SESSION}
    close_utc_ns = np.datetime64("2019-01-02T21:00", "ns").astype(np.int64)  # 16:00 New York
    assert result.accepted.column("ts_ns")[0].as_py() == close_utc_ns


def test_to_raw_flags_values_off_the_grid_only() -> None:
    raw, off = to_raw(np.array([0.09946999000000001, 2.179012, 0.00001, np.nan]), 8)
    assert raw[:3].tolist() == [9_946_999, 217_901_200, 1_000]
    assert not off.any()
    assert to_raw(np.array([0.0000234]), 0)[1].tolist() == [True]


def test_funding_rates_may_be_negative_but_not_duplicated() -> None:
    funding = FundingInput(
        "f.feather",
        3,
        np.arange(1, 5),
        np.array([8, 16, 16, 24]) * 3600 * 10**9,
        np.array([1e-4, -2e-4, 1e-4, np.nan]),
    )
    result = validate_funding(funding)
    assert result.accepted.column("rate_e8").to_pylist() == [10_000, -20_000]
    assert reasons_by_line(result) == {3: Reason.DUPLICATE, 4: Reason.MISSING_VALUE}


finite = st.one_of(
    st.floats(min_value=-5.0, max_value=200.0),
    st.sampled_from([np.nan, 10.0, 10.01, 9.99, np.inf, -np.inf, 1e30]),
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(finite, finite, finite, finite, finite, st.integers(-3, 40)), min_size=0, max_size=60
    ),
)
def test_property_in_equals_accepted_plus_quarantined(rows: list[tuple[float, ...]]) -> None:
    count = len(rows)
    columns = np.array(rows, dtype=np.float64).reshape(count, 6)
    ts = columns[:, 5].astype(np.int64) * MIN
    ts[columns[:, 5] == 0] = MISSING_TS
    data = BarInput(
        source="p",
        instrument_id=1,
        line=np.arange(count, dtype=np.int64) + 2,
        ts_ns=ts,
        day=np.full(count, 19700101, dtype=np.int64),
        open=columns[:, 0],
        high=columns[:, 1],
        low=columns[:, 2],
        close=columns[:, 3],
        volume=columns[:, 4],
    )
    result = validate_bars(data, price_digits=2, qty_digits=0)
    accepted_lines = result.accepted_line.tolist()
    quarantined_lines = result.quarantine.column("line").to_pylist()
    assert sorted(accepted_lines + quarantined_lines) == data.line.tolist()
    stamps = result.accepted.column("ts_ns").to_numpy()
    assert bool(np.all(np.diff(stamps) > 0))
    high, low = result.accepted.column("high").to_numpy(), result.accepted.column("low").to_numpy()
    assert bool(np.all(high >= low))
    assert bool(np.all(result.accepted.column("low").to_numpy() > 0))
    assert bool(np.all(result.accepted.column("volume").to_numpy() >= 0))
    assert all(reason in set(Reason) for reason in result.quarantine.column("reason").to_pylist())


def test_daily_bars_need_a_calendar() -> None:
    with pytest.raises(ValueError, match="calendar"):
        validate_bars(bars([1.0], ts=[0], daily=True), price_digits=2, qty_digits=0)


def test_a_positive_price_that_is_zero_at_the_grid_is_non_positive() -> None:
    data = bars([1.0, 1.0], low=np.array([0.99, 4.1e-226]))  # hypothesis found the second
    result = validate_bars(data, price_digits=2, qty_digits=0)
    assert reasons_by_line(result) == {3: "non_positive_price"}


def test_an_infinite_or_int64_sized_value_is_quarantined_never_stored_as_0_or_wrapped() -> None:
    """An ``inf`` volume used to be stored as volume 0 and ``1e30`` as -9223372036854775808
    (the float -> int64 cast); an ``inf`` or ``1e20`` price was called non_positive_price."""
    inf = float("inf")
    data = bars(
        [10.0] * 8,
        volume=np.array([10.0, inf, 1e30, 10.0, 10.0, 10.0, 10.0, 10.0]),
        turnover=np.array([100.0, 100.0, 100.0, 100.0, 100.0, -5.0, inf, 1e30]),
    )
    data.open[3] = 1e20  # 1e24 raw units at 4 digits: no int64
    data.close[4], data.high[4] = inf, inf
    result = validate_bars(data, price_digits=4, qty_digits=0)
    assert reasons_by_line(result) == {
        3: Reason.OFF_PRICE_GRID,
        4: Reason.OFF_PRICE_GRID,
        5: Reason.OFF_PRICE_GRID,
        6: Reason.OFF_PRICE_GRID,
        7: Reason.NEGATIVE_VOLUME,
        8: Reason.OFF_PRICE_GRID,
        9: Reason.OFF_PRICE_GRID,
    }
    details = result.quarantine.column("detail").to_pylist()
    assert details[0] == "volume infinite or too large for int64 at 1e-0"
    assert details[2] == "price infinite or too large for int64 at 1e-4"
    assert details[4] == "negative turnover"
    assert details[5] == "turnover infinite or too large for int64 at 1e-4"
    assert result.accepted.column("volume").to_pylist() == [10]
    assert result.accepted.column("turnover").to_pylist() == [1_000_000]
    records = [json.loads(text) for text in result.quarantine.column("record").to_pylist()]
    assert records[0]["volume"] == "inf" and records[5]["turnover"] == "inf"  # valid JSON, value kept


def test_an_infinite_funding_rate_is_quarantined_not_stored_as_0() -> None:
    funding = FundingInput("f.feather", 3, np.arange(1, 4), np.array([8, 16, 24]) * 3600 * 10**9,
                           np.array([1e-4, np.inf, 1e12]))  # fmt: skip
    result = validate_funding(funding)
    assert result.accepted.column("rate_e8").to_pylist() == [10_000]
    assert reasons_by_line(result) == {2: Reason.OFF_PRICE_GRID, 3: Reason.OFF_PRICE_GRID}


def test_a_missing_value_says_which_and_an_unread_timestamp_has_no_day() -> None:
    """The detail was empty, and the record of a row whose timestamp did not parse (a wall-clock
    time a DST change skips) showed a day computed from the missing-timestamp sentinel
    (22620411), so the quarantine did not say what was wrong with the row."""
    data = bars([10.0, 10.0, 10.0, 10.0], day=np.array([19700101, 22620411, 19700101, 19700101]))
    data.ts_ns[1] = MISSING_TS
    data.open[2] = np.nan
    data.volume[3] = np.nan
    result = validate_bars(data, price_digits=2, qty_digits=0)
    assert result.quarantine.column("detail").to_pylist() == [
        "no timestamp: empty, unreadable or not a real timestamp (2014-02-30; a wall-clock time a DST "
        "change skips or repeats)",
        "no open",
        "no volume",
    ]
    assert json.loads(result.quarantine.column("record")[0].as_py())["day"] is None
