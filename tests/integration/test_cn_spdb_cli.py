"""The shipped SPDB example end to end: `tape ingest` the raw TDX file, `tape export` the
2001-07..2003-06 window, `tape backtest cli/defaults/spdb_limit_chase.toml`, `tape replay`.
Skipped with a reason without ../shared/data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cli.main import main
from domain.events import LedgerPosted, OrderFilled, OrderRejected, RunStarted
from kernel.store import open_journal

ROOT = Path(__file__).resolve().parents[2]
SPDB = ROOT.parent / "shared" / "data" / "cn" / "hikyuu" / "600000.SH_day_raw_tdx.csv"

pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not SPDB.is_file(), reason=f"real SPDB data not found at {SPDB}"),
]


def _events(path: Path) -> list[object]:
    return [event for _, event in open_journal(path).events()]


def test_spdb_example_ingest_export_backtest_replay(tmp_path: Path) -> None:
    lake, data = tmp_path / "lake", tmp_path / "data" / "spdb_2001_2003"
    assert main(["ingest", "hikyuu-day", str(SPDB), "--out", str(lake)]) == 0
    window = ["--start", "2001-07-01", "--end", "2003-06-30"]
    export = ["export", str(lake), str(data), "--calendar", "XSHG", "--symbols", "600000.SH", *window]
    assert main(export) == 0
    config = tmp_path / "spdb_limit_chase.toml"
    shutil.copy(ROOT / "cli" / "defaults" / "spdb_limit_chase.toml", config)
    assert main(["backtest", str(config)]) == 0
    journal = tmp_path / "journals" / "spdb_limit_chase"
    assert main(["replay", str(journal)]) == 0

    events = _events(journal)
    started = events[0]
    assert isinstance(started, RunStarted)
    assert '"effective_from":20011116' in started.config_json  # the user's rows are journaled
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(f.side, f.fill_px_raw) for f in fills] == [
        (1, 1680),  # 2001-10-24 open, after the 2001-10-23 limit-up close
        (-1, 1626),
        (1, 1680),  # 2002-06-25
        (-1, 1720),
        (1, 1025),  # 2003-01-15
        (-1, 996),
        (1, 1300),  # 2003-04-29
        (-1, 1295),
    ]
    stamp = [
        p.amount_minor
        for e in events
        if isinstance(e, LedgerPosted)
        for p in e.postings
        if p.account == "expenses:stamp_duty:CNY"
    ]
    rates = [400_000, 400_000] + [200_000] * 6  # the config's rows: 0.4% until 2001-11-15
    assert stamp == [
        (f.notional_minor * r + 50_000_000) // 100_000_000 for f, r in zip(fills, rates, strict=True)
    ]

    # the limit variant: every chase buy one tick above the next limit-up is refused
    limit = config.read_text().replace(
        "params = { weight = 0.5 }", "params = { weight = 0.5, limit_ticks = 1 }"
    )
    config.write_text(limit)
    assert main(["backtest", str(config), "--journal", str(tmp_path / "journals" / "limit")]) == 0
    assert main(["replay", str(tmp_path / "journals" / "limit")]) == 0
    reasons = [e.reason for e in _events(tmp_path / "journals" / "limit") if isinstance(e, OrderRejected)]
    assert reasons == [
        "CN_PRICE_LIMIT: limit_up=17.94, order_px=17.95",
        "CN_PRICE_LIMIT: limit_up=18.46, order_px=18.47",
        "CN_PRICE_LIMIT: limit_up=11.28, order_px=11.29",
        "CN_PRICE_LIMIT: limit_up=13.76, order_px=13.77",
    ]


def test_spdb_example_without_fee_rows_is_refused_before_its_journal_opens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake, data = tmp_path / "lake", tmp_path / "data" / "spdb_2001_2003"
    assert main(["ingest", "hikyuu-day", str(SPDB), "--out", str(lake)]) == 0
    export = [
        "export",
        str(lake),
        str(data),
        "--calendar",
        "XSHG",
        "--start",
        "2001-07-01",
        "--end",
        "2003-06-30",
    ]
    assert main(export) == 0
    text = (ROOT / "cli" / "defaults" / "spdb_limit_chase.toml").read_text()
    config = tmp_path / "no_rows.toml"
    config.write_text(text[: text.index("[cn_fees]")])
    capsys.readouterr()
    assert main(["backtest", str(config)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "600000.SH (CN stamp duty: no rule before 20080424 (asked for 20010702)" in out, out
    assert "add a [cn_fees] table with a row dated on or before 20010702" in out
    assert not (tmp_path / "journals").exists()  # refused before a journal is opened


def test_export_names_an_unknown_symbol(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", "hikyuu-day", str(SPDB), "--out", str(tmp_path / "lake")]) == 0
    capsys.readouterr()
    args = [
        "export",
        str(tmp_path / "lake"),
        str(tmp_path / "d"),
        "--calendar",
        "XSHG",
        "--symbols",
        "600001.SH",
    ]
    assert main(args) == 2
    assert "no instrument 600001.SH; known: 600000.SH" in " ".join(capsys.readouterr().out.split())
