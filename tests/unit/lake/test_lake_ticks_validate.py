"""Trade and quote validation: one canary per reason, and ``in = accepted + quarantined``
over arbitrary dirty trades (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lake.validate import MISSING_TS, QuoteInput, Reason, TradeInput, validate_quotes, validate_trades

MS = 1_000_000


def trades(prices: list[float], qtys: list[float], ts: list[int], ids: list[int] | None) -> TradeInput:
    count = len(prices)
    return TradeInput(
        source="t.csv",
        instrument_id=3,
        line=np.arange(count, dtype=np.int64) + 2,
        ts_ns=np.array(ts, dtype=np.int64),
        price=np.array(prices, dtype=np.float64),
        qty=np.array(qtys, dtype=np.float64),
        side=np.ones(count, dtype=np.int8),
        trade_id=None if ids is None else np.array(ids, dtype=np.int64),
    )


def by_line(result: object) -> dict[int, str]:
    table = result.quarantine  # type: ignore[attr-defined]
    return dict(zip(table.column("line").to_pylist(), table.column("reason").to_pylist(), strict=True))


def test_trade_reasons_each_row_once() -> None:
    nan = float("nan")
    result = validate_trades(
        trades(
            [10.01, nan, -1.0, 10.0, 10.001, 10.02, 10.03, 10.04],
            [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 2.0, 1.0],
            [1 * MS, 2 * MS, 3 * MS, 4 * MS, 5 * MS, 6 * MS, 6 * MS, 1],
            [1, 2, 3, 4, 5, 6, 6, 8],
        ),
        price_digits=2,
        qty_digits=0,
    )
    assert by_line(result) == {
        3: Reason.MISSING_VALUE,
        4: Reason.NON_POSITIVE_PRICE,
        5: Reason.NON_POSITIVE_SIZE,
        6: Reason.OFF_PRICE_GRID,
        8: Reason.DUPLICATE,  # same trade id 6 as line 7
        9: Reason.TIME_BACKWARDS,
    }
    assert result.accepted.column("price").to_pylist() == [1001, 1002]
    assert result.accepted.column("trade_id").to_pylist() == [1, 6]


def test_trades_without_ids_duplicate_only_identical_rows() -> None:
    result = validate_trades(
        trades([1.0, 1.0, 1.1], [2.0, 2.0, 2.0], [MS, MS, MS], None), price_digits=1, qty_digits=0
    )
    assert by_line(result) == {3: Reason.DUPLICATE}
    assert result.accepted.column("trade_id").null_count == 2


def test_quote_reasons() -> None:
    ts = np.array([1, 2, 3, 4, 4, 0], dtype=np.int64) * MS
    ts[-1] = MISSING_TS
    quotes = QuoteInput(
        source="q.csv",
        instrument_id=1,
        line=np.arange(6, dtype=np.int64) + 2,
        ts_ns=ts,
        bid_price=np.array([9.9, 10.1, 10.0, 9.8, 9.7, 9.0]),
        bid_qty=np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
        ask_price=np.array([10.0, 10.0, 10.0, 9.9, 9.9, 9.1]),
        ask_qty=np.array([1.0, 1.0, 1.0, 0.0 + 2, 1.0, 1.0]),
    )
    result = validate_quotes(quotes, price_digits=1, qty_digits=0)
    assert by_line(result) == {
        3: Reason.CROSSED_QUOTE,
        4: Reason.LOCKED_QUOTE,
        6: Reason.DUPLICATE,
        7: Reason.MISSING_VALUE,
    }
    assert result.accepted.column("bid_price").to_pylist() == [99, 98]


values = st.one_of(
    st.floats(min_value=-5, max_value=1e6, allow_nan=False),
    st.just(float("nan")),
    st.sampled_from([0.0, 1.0, 1.5, 1.25, 1e30, float("inf")]),
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            values,
            values,
            st.one_of(st.integers(0, 50), st.just(MISSING_TS)),
            st.integers(0, 8),
        ),
        max_size=40,
    ),
    with_ids=st.booleans(),
    digits=st.integers(0, 4),
)
def test_trades_in_equals_accepted_plus_quarantined(
    rows: list[tuple[float, float, int, int]], with_ids: bool, digits: int
) -> None:
    prices = [r[0] for r in rows]
    qtys = [r[1] for r in rows]
    ts = [r[2] if r[2] == MISSING_TS else r[2] * MS for r in rows]
    ids = [r[3] for r in rows] if with_ids else None
    result = validate_trades(trades(prices, qtys, ts, ids), price_digits=digits, qty_digits=digits)
    assert result.rows_accepted + result.rows_quarantined == len(rows)
    lines = sorted(result.accepted_line.tolist() + result.quarantine.column("line").to_pylist())
    assert lines == [i + 2 for i in range(len(rows))]  # every row exactly once
    stamps = result.accepted.column("ts_ns").to_numpy()
    assert bool(np.all(np.diff(stamps) >= 0))
    assert bool(np.all(result.accepted.column("price").to_numpy() > 0))
    if with_ids:
        assert len(set(result.accepted.column("trade_id").to_pylist())) == result.rows_accepted


def test_an_infinite_price_or_size_is_off_the_grid_not_non_positive() -> None:
    inf = float("inf")
    result = validate_trades(
        trades([10.0, inf, 10.0, -inf], [1.0, 1.0, inf, 1.0], [MS, 2 * MS, 3 * MS, 4 * MS], [1, 2, 3, 4]),
        price_digits=2,
        qty_digits=0,
    )
    off, non_positive = Reason.OFF_PRICE_GRID, Reason.NON_POSITIVE_PRICE
    assert by_line(result) == {3: off, 4: off, 5: non_positive}


def test_epoch_to_ns_is_exact_for_whole_units_and_refuses_what_int64_cannot_hold() -> None:
    from lake.sources import epoch_to_ns

    millis = np.array([1610064001076.0, 1610064001077.0, 1610064001078.0, 1610064001079.0])
    assert epoch_to_ns(millis, MS).tolist() == [
        int(m) * MS for m in millis
    ]  # rint(m * 1e6): 0, -64, 128, 64 off
    seconds = np.array([1.5, -60.0, np.nan, np.inf, 1e30])
    assert epoch_to_ns(seconds, 10**9).tolist() == [1_500_000_000, -60 * 10**9] + [MISSING_TS] * 3
