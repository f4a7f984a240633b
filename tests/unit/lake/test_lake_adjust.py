"""Adjustment factors from the ex-right reference price (synthetic bars)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from domain.instruments import Instrument
from lake.adjust import adjust, factors

INSTRUMENT = Instrument(
    instrument_id=1,
    symbol="600000.SH",
    venue="SSE",
    asset_class="equity",
    currency="CNY",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=100,
)


def bars(days: list[int], closes: list[int]) -> pa.Table:
    close = np.array(closes, dtype=np.int64)
    return pa.table(
        {"day": np.array(days, dtype=np.int32), "open": close, "high": close, "low": close, "close": close}
    )


def actions(rows: list[dict[str, int]]) -> pa.Table:
    base = {
        "instrument_id": 1,
        "bonus_per10_e4": 0,
        "capitalization_per10_e4": 0,
        "rights_per10_e4": 0,
        "rights_price": 0,
        "cash_per10_e4": 0,
        "total_shares": 100,
        "free_shares": 100,
    }
    return pa.Table.from_pylist([base | row for row in rows])


def test_bonus_and_cash_use_the_exchange_reference_price() -> None:
    # prev close 13.21, 10送3派1.6: (13.21 - 0.16) / 1.3 = 10.038 -> 10.04
    table = bars([20110601, 20110602, 20110603, 20110607], [1374, 1321, 1009, 1010])
    acts = actions(
        [{"ex_date": 20110603, "bonus_per10_e4": 30_000, "cash_per10_e4": 16_000, "total_shares": 130}]
    )
    result = factors(table, acts, INSTRUMENT)
    step = result.actions.to_pylist()[0]
    assert (step["prev_close"], step["reference"], step["status"]) == (1321, 1004, "applied")
    assert result.backward.tolist() == pytest.approx([1, 1, 1321 / 1004, 1321 / 1004])
    assert result.forward[-1] == 1.0 and result.forward[0] == pytest.approx(1004 / 1321)
    out = adjust(table, acts, INSTRUMENT).column("close_adj").to_numpy()
    assert out[2] / out[1] == pytest.approx(10.09 / 10.04)
    assert table.column("close").to_pylist() == [1374, 1321, 1009, 1010]  # raw untouched


def test_rights_issue_and_an_ex_date_inside_a_suspension() -> None:
    # 10配3 at 3.70 after a close of 5.00: (5.00 + 0.3 x 3.70) / 1.3 = 4.7 -> 4.70;
    # the ex-date 20110104 is not a bar: it takes effect at the next bar.
    table = bars([20110103, 20110110], [500, 470])
    acts = actions([{"ex_date": 20110104, "rights_per10_e4": 30_000, "rights_price": 370}])
    step = factors(table, acts, INSTRUMENT).actions.to_pylist()[0]
    assert (step["effective_day"], step["reference"]) == (20110110, 470)


def test_reform_transfer_is_skipped_unless_asked() -> None:
    table = bars([20060320, 20060512], [1086, 1021])
    acts = actions(
        [
            {"ex_date": 20050512, "cash_per10_e4": 12_000, "total_shares": 391_500},
            {"ex_date": 20060512, "bonus_per10_e4": 30_000, "total_shares": 391_500},
        ]
    )
    skipped = factors(table, acts, INSTRUMENT)
    assert skipped.actions.column("status").to_pylist() == ["before_data", "reform_transfer"]
    assert skipped.backward.tolist() == [1.0, 1.0]
    applied = factors(table, acts, INSTRUMENT, reform="apply")
    assert applied.actions.column("reference").to_pylist()[1] == 835  # 10.86 / 1.3
    with pytest.raises(ValueError, match="mode"):
        skipped.factor("sideways")


def test_lake_views_name_an_unknown_instrument_or_calendar(tmp_path: Path) -> None:
    """``adjusted_from_lake`` with an id the lake lacks was a bare ``StopIteration``;
    ``resample`` on an unknown calendar exchange_calendars' ``InvalidCalendarName``."""
    from lake.adjust import adjusted_from_lake
    from lake.partitioned import Lake, LakeError
    from lake.resample import ResampleError, resample
    from lake.schema import Kind
    from tests.factories import synth_lake

    lake = Lake(synth_lake(tmp_path / "lake", symbols=2, bars=20))
    assert adjusted_from_lake(lake, 2).num_rows == 20
    with pytest.raises(LakeError, match="no instrument with id 99"):
        adjusted_from_lake(lake, 99)
    bars = lake.read(Kind.BARS, "1d")
    assert resample(bars, "1d", calendar="XNYS").shape[0] == 40
    with pytest.raises(ResampleError, match="unknown calendar 'FOO'"):
        resample(bars, "1d", calendar="FOO")
