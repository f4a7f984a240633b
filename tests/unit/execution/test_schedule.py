"""Parents from deltas; TWAP / VWAP / POV slices in whole lots honouring the minimum notional."""

import numpy as np
import pytest

from domain.execution import (
    SliceRules,
    allocate_lots,
    parents_from_deltas,
    pov_child_qty,
    pov_schedule,
    twap_schedule,
    vwap_schedule,
)

RULES = SliceRules(lot_raw=100, lot_notional_minor=1_000_00, min_notional_minor=0)


def test_parents_from_deltas_sells_first_with_derived_ids() -> None:
    parents, counter = parents_from_deltas("s1", 20240102, 7, [3, 1, 2], [500, -200, 0], [10, 11, 12], "twap")
    assert [(p.parent_id, p.instrument_id, p.side, p.qty_raw) for p in parents] == [
        ("s1-20240102-P7", 1, -1, 200),
        ("s1-20240102-P8", 3, 1, 500),
    ]
    assert counter == 9


def test_twap_even_slices_sum_to_parent() -> None:
    slices = twap_schedule(1_000, RULES, start_ns=0, end_ns=400, slices=4)
    assert [(s.ts_ns, s.qty_raw) for s in slices] == [(0, 200), (100, 300), (200, 200), (300, 300)]
    assert sum(s.qty_raw for s in slices) == 1_000


def test_twap_merges_slices_below_min_notional() -> None:
    rules = SliceRules(lot_raw=100, lot_notional_minor=1_000_00, min_notional_minor=2_500_00)  # 3 lots min
    slices = twap_schedule(1_000, rules, start_ns=0, end_ns=1_000, slices=10)
    assert all(s.qty_raw >= 300 for s in slices)
    assert sum(s.qty_raw for s in slices) == 1_000
    assert all(s.qty_raw % 100 == 0 for s in slices)


def test_parent_below_min_notional_has_no_slices() -> None:
    rules = SliceRules(lot_raw=100, lot_notional_minor=10, min_notional_minor=1_000)
    assert twap_schedule(200, rules, 0, 10, 2) == []


def test_odd_lot_parent_is_refused() -> None:
    with pytest.raises(ValueError, match="whole number of lots"):
        twap_schedule(150, RULES, 0, 10, 2)


def test_vwap_follows_profile() -> None:
    profile = np.array([50, 10, 10, 30])
    slices = vwap_schedule(10_000, RULES, [1, 2, 3, 4], profile)
    assert [s.qty_raw for s in slices] == [5_000, 1_000, 1_000, 3_000]


def test_vwap_zero_bins_are_skipped_and_sum_exact() -> None:
    slices = vwap_schedule(700, RULES, [1, 2, 3], np.array([1, 0, 2]))
    assert [(s.ts_ns, s.qty_raw) for s in slices] == [(1, 200), (3, 500)]


def test_allocate_lots_exact_for_awkward_weights() -> None:
    lots = allocate_lots(7, np.array([1, 1, 1]), 1)
    assert lots.tolist() == [2, 2, 3]
    assert allocate_lots(7, np.array([0, 0]), 1).sum() == 7
    with pytest.raises(ValueError, match=">= 0"):
        allocate_lots(1, np.array([-1, 2]), 1)


def test_pov_participation_never_exceeded() -> None:
    volumes = np.array([1_000, 5_000, 200, 10_000, 3_000])
    slices, left = pov_schedule(2_000, RULES, [1, 2, 3, 4, 5], volumes, participation_e8=10_000_000)
    cumulative_volume = np.cumsum(volumes)
    done = 0
    for s in slices:
        done += s.qty_raw
        bin_index = [1, 2, 3, 4, 5].index(s.ts_ns)
        assert done * 10 <= cumulative_volume[bin_index]
    assert done + left == 2_000
    assert left == 100  # 10% of 19,200 is 1,920 -> 1,900 in lots


def test_pov_child_respects_remaining_and_minimum() -> None:
    rules = SliceRules(lot_raw=100, lot_notional_minor=100, min_notional_minor=300)
    assert pov_child_qty(1_000, 2_000, 10_000_000, rules) == 0  # 200 < 3 lots
    assert pov_child_qty(1_000, 5_000, 10_000_000, rules) == 500
    assert pov_child_qty(200, 5_000, 10_000_000, rules) == 200  # the last remainder goes
    with pytest.raises(ValueError, match="participation"):
        pov_child_qty(1, 1, 0, rules)
