"""The optional ``actions.parquet`` of a data set: contract checks, the Panel arrays, the content
hash, and the A-share per-10 conversion."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from domain.instruments import Instrument
from domain.markets import CnCorporateAction, CorporateAction
from lake.store import DatasetError, content_hash, load_panel, write_dataset

INST = Instrument(
    instrument_id=3,
    symbol="ABC",
    venue="SYNTH",
    asset_class="equity",
    currency="USD",
    price_digits=2,
    tick_raw=1,
    qty_digits=0,
    lot_raw=1,
)
BARS = pa.table(
    {
        "ts_ns": [1, 2, 3],
        "day": [20240102, 20240103, 20240104],
        "instrument_id": [3, 3, 3],
        "open": [100, 100, 100],
        "high": [100, 100, 100],
        "low": [100, 100, 100],
        "close": [100, 100, 100],
        "volume": [1, 1, 1],
    }
)


def _actions(**changes: list[int]) -> pa.Table:
    columns: dict[str, list[int]] = {
        "instrument_id": [3, 3],
        "ex_date": [20240104, 20240103],
        "pay_date": [20240110, 0],
        "cash_e8": [47_000_000, 0],
        "split_to": [1, 7],
        "split_from": [1, 1],
    }
    columns.update(changes)
    return pa.table(columns)


def _write(path: Path, actions: pa.Table | None) -> None:
    write_dataset(
        path, name="t", frequency="1d", calendar="24x7", instruments=[INST], bars=BARS, actions=actions
    )


def test_actions_reach_the_panel_sorted_and_hashed(tmp_path: Path) -> None:
    _write(tmp_path / "a", _actions())
    panel, ref = load_panel(tmp_path / "a")
    assert panel.action_ex_day.tolist() == [20240103, 20240104]  # sorted by ex-date
    assert panel.action_split_to.tolist() == [7, 1]
    assert panel.action_cash_e8.tolist() == [0, 47_000_000]
    assert panel.action_pay_day.tolist() == [0, 20240110]
    _write(tmp_path / "b", None)
    panel_b, ref_b = load_panel(tmp_path / "b")
    assert panel_b.action_ex_day.size == 0 and ref_b.content_hash != ref.content_hash
    (tmp_path / "a" / "actions.parquet").unlink()
    with pytest.raises(DatasetError, match="content hash"):
        load_panel(tmp_path / "a")
    assert content_hash(tmp_path / "a") == ref_b.content_hash  # the hash covers the optional file


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"instrument_id": [3, 9]}, "instrument_id 9 is not in the instrument master"),
        ({"ex_date": [20240103, 20240103]}, "two rows for instrument 3 on 20240103"),
        ({"pay_date": [20240101, 0]}, "pay day 20240101 before ex-date 20240104"),
        ({"split_from": [1, 0]}, "split ratio must be positive"),
        ({"cash_e8": [0, 0]}, "the action changes nothing"),
        ({"ex_date": [20240104, 20240230]}, "YYYYMMDD"),
    ],
)
def test_bad_action_rows_are_refused(tmp_path: Path, changes: dict[str, list[int]], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        _write(tmp_path / "x", _actions(**changes))


def test_missing_columns_are_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"missing columns \['pay_date'\]"):
        _write(tmp_path / "x", _actions().drop_columns(["pay_date"]))


def test_a_share_per10_conversion_is_exact() -> None:
    cn = CnCorporateAction.from_text(20110603, bonus="3", cash="1.6")  # 10送3派1.6
    action = CorporateAction.from_cn(1, cn)
    assert (action.split_to, action.split_from, action.cash_e8) == (13, 10, 16_000_000)
    assert action.to_cn() == cn
    both = CnCorporateAction.from_text(20020822, capitalization="5", cash="2")  # 10转5派2
    assert CorporateAction.from_cn(1, both).to_cn() == CnCorporateAction(
        ex_day=20020822, bonus_per10_e4=50_000, cash_per10_e4=20_000
    )  # 送 and 转 are one share ratio here
    with pytest.raises(ValueError, match="not an A-share per-10 action"):
        CorporateAction(instrument_id=1, ex_day=20240103, split_to=4, split_from=3).to_cn()
    rights = CnCorporateAction.from_text(20110407, rights="3", rights_price="3.7")  # 10配3 at 3.70
    action = CorporateAction.from_cn(1, rights)
    assert (action.rights_to, action.rights_from, action.rights_price_e8) == (3, 10, 370_000_000)
    assert (action.split_to, action.split_from, action.cash_e8) == (1, 1, 0)
    assert action.to_cn() == rights
    odd = CnCorporateAction.from_text(19970714, rights="2.37", rights_price="4.5")  # 万科 10配2.37
    assert (CorporateAction.from_cn(1, odd).rights_to, CorporateAction.from_cn(1, odd).rights_from) == (
        237,
        1000,
    )
    assert CorporateAction.from_cn(1, odd).to_cn() == odd
    with pytest.raises(ValueError, match="not an A-share per-10 action"):
        CorporateAction(
            instrument_id=1, ex_day=20240103, rights_to=1, rights_from=3, rights_price_e8=1
        ).to_cn()
