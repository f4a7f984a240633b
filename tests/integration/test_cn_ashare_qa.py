"""A user's A-share backtest on the real hikyuu data (../shared/data/cn/hikyuu), end to end
through the CLI: `tape ingest`, `tape export`, `tape backtest`, then the journal read back.

* The SSE Composite index in a data set (a calendar for the suspension check, a benchmark) is
  not tradable: an installed strategy that targets every name (`sma_crossover`) had its index
  orders filled by the simulated venue (108 "units" of 000001.SH at 2,757.40 on 2011-06-29);
  now they are refused, `NOT_TRADABLE: 000001.SH is an index`, and counted as rejections.

Skipped with a reason without ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from domain.events import (
    CorporateActionApplied,
    InstrumentsDefined,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from kernel.store import open_journal

CN = Path(__file__).resolve().parents[3] / "shared" / "data" / "cn"
SPDB = CN / "hikyuu" / "600000.SH_day_raw_tdx.csv"
SSE = CN / "hikyuu" / "000001.SH_index_day_raw_tdx.csv"
EASTMONEY_QFQ = CN / "abu_qfq" / "sz300059_day_qfq.csv"
ACTIONS = CN / "hikyuu" / "stock_weight_corporate_actions.csv"

pytestmark = pytest.mark.needs_shared_data


def _needs(*files: Path) -> pytest.MarkDecorator:
    missing = [str(f) for f in files if not f.is_file()]
    return pytest.mark.skipif(bool(missing), reason=f"real A-share data not found: {', '.join(missing)}")


CONFIG = """\
run_id = "spdb-sse-sma"
seed = 0
dataset = "data/spdb_sse_2011"
journal = "journals/sma"
currency = "CNY"
initial_cash = "1000000"

[strategy]
name = "sma_crossover"
params = { fast = 5, slow = 20, weight = 0.6 }

[risk]
gross_leverage = { limit_e8 = 100_000_000, action = "scale" }
name = { limit_e8 = 100_000_000, action = "clip" }

[fill]
commission_e8 = 25_000
commission_min_minor = 500

[cn_fees]
source = "illustrative user rates for 2011 (the built-in tables start later)"
[[cn_fees.rows]]
effective_from = 20080101
stamp_duty_buy_e8 = 100_000
stamp_duty_sell_e8 = 100_000
transfer_e8 = 2_000
handling_e8 = 4_870
regulatory_e8 = 2_000
"""


@_needs(SPDB, SSE)
def test_orders_on_the_sse_composite_index_are_refused_not_filled(tmp_path: Path) -> None:
    lake, data = tmp_path / "lake", tmp_path / "data" / "spdb_sse_2011"
    assert main(["ingest", "hikyuu-day", str(SPDB), str(SSE), "--out", str(lake)]) == 0
    window = ["--start", "2011-03-01", "--end", "2011-11-30"]
    assert main(["export", str(lake), str(data), "--calendar", "XSHG", *window]) == 0
    config = tmp_path / "sma.toml"
    config.write_text(CONFIG)
    assert main(["backtest", str(config)]) == 0

    events = [event for _, event in open_journal(tmp_path / "journals" / "sma").events()]
    defined = next(e for e in events if isinstance(e, InstrumentsDefined))
    ids = {i.symbol: i.instrument_id for i in defined.instruments}
    index, spdb = ids["000001.SH"], ids["600000.SH"]
    assert next(i for i in defined.instruments if i.symbol == "000001.SH").asset_class == "index"
    on_index = {e.order_id for e in events if isinstance(e, OrderSubmitted) and e.instrument_id == index}
    assert on_index, "the strategy targets every name: some orders are for the index"
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [f for f in fills if f.instrument_id == index] == []
    assert {f.instrument_id for f in fills} == {spdb}  # SPDB still trades
    refused = {e.order_id: e.reason for e in events if isinstance(e, OrderRejected)}
    assert {oid: refused.get(oid) for oid in on_index} == dict.fromkeys(
        on_index, "NOT_TRADABLE: 000001.SH is an index"
    )


@_needs(EASTMONEY_QFQ)
def test_a_board_whose_lot_no_buy_can_meet_is_refused_by_tape_ingest_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """东方财富 (ChiNext) from the abu qfq CSV: `tape ingest csv` stores lot 1 (a CSV carries no
    lot). Naming its board alone made every buy of a backtest a whole-share quantity that the
    board's 100-share rule refused (`CN_LOT: min=100, step=100, order_qty=54945`, 9 of 9
    orders); now the metadata file is refused with the lot to give, the lake unchanged."""
    lake = tmp_path / "lake"
    columns = "ts=date,open=open,high=high,low=low,close=close,volume=volume"
    csv_args = ["--symbol", "300059.SZ", "--venue", "SZSE", "--calendar", "XSHG", "--currency", "CNY"]
    csv_args += ["--frequency", "1d", "--map", columns, "--ts-format", "%Y%m%d", "--tz", "Asia/Shanghai"]
    assert main(["ingest", "csv", str(EASTMONEY_QFQ), "--out", str(lake), *csv_args]) == 0
    before = (lake / "lake.json").read_bytes()
    board_only = tmp_path / "board.csv"
    board_only.write_text("symbol,venue,board\n300059.SZ,SZSE,chinext\n")
    capsys.readouterr()
    assert main(["ingest", "metadata", str(board_only), "--out", str(lake)]) == 2
    err = capsys.readouterr().out
    assert "line 2: 300059.SZ: board chinext buys in steps of 100 shares, the stored lot is 1" in err
    assert "give lot = 100" in err
    assert (lake / "lake.json").read_bytes() == before
    with_lot = tmp_path / "board_lot.csv"
    with_lot.write_text("symbol,venue,board,lot\n300059.SZ,SZSE,chinext,100\n")
    assert main(["ingest", "metadata", str(with_lot), "--out", str(lake)]) == 0
    wrong = tmp_path / "wrong_lot.csv"
    wrong.write_text("symbol,venue,lot\n300059.SZ,SZSE,50\n")
    assert main(["ingest", "metadata", str(wrong), "--out", str(lake)]) == 2
    assert "board chinext buys in steps of 100 shares, the lot is 50" in capsys.readouterr().out


@_needs(SPDB, ACTIONS)
def test_export_actions_says_when_the_lakes_corporate_actions_end_before_the_data_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The hikyuu 权息 table ends 2011-11-25; the TDX bars run to 2025. `tape export --actions`
    of SPDB 2022-2024 wrote no actions.parquet and said nothing, so a backtest held SPDB through
    its 2023-07-21 ex-date (7.42 -> 7.10: 0.32 CNY) as a price drop with no dividend. Now it says so."""
    lake = tmp_path / "lake"
    assert main(["ingest", "hikyuu-day", str(SPDB), "--out", str(lake)]) == 0
    assert main(["ingest", "hikyuu-actions", str(ACTIONS), "--out", str(lake)]) == 0
    capsys.readouterr()
    late = tmp_path / "late"
    window = ["--start", "2022-01-01", "--end", "2024-06-30", "--actions"]
    assert (
        main(["export", str(lake), str(late), "--calendar", "XSHG", "--symbols", "600000.SH", *window]) == 0
    )
    said = " ".join("".join(capsys.readouterr()).split())  # whatever the terminal width
    assert not (late / "actions.parquet").exists()
    assert "no corporate action of the exported instruments has its ex-date in 20220104..20240628" in said
    assert "the lake's corporate actions end on 20111125" in said
    assert "before the data set's last session 20240628" in said
    covered = tmp_path / "covered"
    window = ["--start", "2011-01-01", "--end", "2011-10-31", "--actions"]
    assert (
        main(["export", str(lake), str(covered), "--calendar", "XSHG", "--symbols", "600000.SH", *window])
        == 0
    )
    assert (covered / "actions.parquet").exists()  # 2011-06-03, 10送3派1.6
    assert "note:" not in "".join(capsys.readouterr())


@_needs(SPDB, ACTIONS)
def test_after_a_bonus_issue_leaves_odd_shares_a_top_up_buys_whole_lots(tmp_path: Path) -> None:
    """SPDB 2011-06-03, 10送3派1.6: 43,200 shares held become 56,160 (60 odd). The next top-up
    was sized to the rounded target, 1,940 shares, and refused (`CN_LOT: min=100, step=100,
    order_qty=1940`), as every buy would be until the whole position was sold. Now it buys
    1,900 (whole lots, rounded down), and the later exit sells the odd 60 with the lots."""
    lake, data = tmp_path / "lake", tmp_path / "data" / "spdb_sse_2011"
    assert main(["ingest", "hikyuu-day", str(SPDB), "--out", str(lake)]) == 0
    assert main(["ingest", "hikyuu-actions", str(ACTIONS), "--out", str(lake)]) == 0
    window = ["--start", "2011-03-01", "--end", "2011-11-30", "--actions"]
    assert (
        main(["export", str(lake), str(data), "--calendar", "XSHG", *window, "--symbols", "600000.SH"]) == 0
    )
    config = tmp_path / "sma.toml"
    config.write_text(CONFIG.replace("fast = 5, slow = 20", "fast = 2, slow = 4"))
    assert main(["backtest", str(config)]) == 0

    events = [event for _, event in open_journal(tmp_path / "journals" / "sma").events()]
    applied = [e for e in events if isinstance(e, CorporateActionApplied)]
    assert [(a.ex_day, a.qty_before_raw, a.qty_after_raw) for a in applied] == [(20110603, 43_200, 56_160)]
    assert [e.reason for e in events if isinstance(e, OrderRejected)] == []
    after = [e for e in events if isinstance(e, OrderFilled) and e.ts_ns > applied[0].ts_ns]
    assert [(f.side, f.fill_qty_raw) for f in after[:2]] == [(1, 1_900), (-1, 58_060)]
    assert all(f.fill_qty_raw % 100 == 0 for f in events if isinstance(f, OrderFilled) and f.side > 0)
