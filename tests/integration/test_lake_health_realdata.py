"""Data health per data set and per file on the real files, through ``tape ingest``/``tape health``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cli.ingest import add_health_parser, add_ingest_parser, cmd_health, cmd_ingest
from lake.health import dataset_health
from lake.partitioned import Lake
from lake.schema import Kind

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}")
pytestmark = pytest.mark.needs_shared_data


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tape")
    verbs = parser.add_subparsers(dest="verb", required=True)
    add_ingest_parser(verbs)
    add_health_parser(verbs)
    args = parser.parse_args(argv)
    return cmd_ingest(args) if args.verb == "ingest" else cmd_health(args)


@needs_shared
def test_suspensions_missing_bars_and_quarantine_per_data_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    hikyuu, freqtrade = SHARED / "cn" / "hikyuu", SHARED / "crypto" / "freqtrade"
    days = [str(hikyuu / "600000.SH_day_raw_tdx.csv"), str(hikyuu / "h5_000005.SZ_day_raw.csv")]
    assert run(["ingest", "hikyuu-day", *days, "--out", str(lake)]) == 0
    out = capsys.readouterr().out
    assert "data health" in out and "bars/1d" in out
    assert run(["ingest", "freqtrade", str(freqtrade / "XRP_ETH-1m.feather"), "--out", str(lake)]) == 0
    report = json.loads((lake / "reports" / "ingest-000001.json").read_text())
    spdb, szse = report["files"]
    assert spdb["suspension_sessions"] > 100 and spdb["missing_bars"] == 0  # SPDB's 停牌 days
    assert 20060321 in spdb["suspension_days"] or spdb["suspension_sessions"] >= 10
    health = {h.dataset: h for h in dataset_health(Lake(lake))}
    daily, minute = health["bars/1d"], health["bars/1m"]
    # hikyuu's float32 truncations (16.149 for 16.15) are snapped and counted, no longer dropped
    assert daily.instruments == 2 and daily.quarantined == {}
    assert spdb["snapped"] == 0 and szse["snapped"] == 60  # in the 45 bars once quarantined
    assert daily.gaps.suspension_sessions == spdb["suspension_sessions"] + szse["suspension_sessions"]
    xrp = minute.per_instrument["binance:XRP/ETH"]
    assert xrp.suspension_sessions == 0 and xrp.missing_bars == xrp.bars_expected - 2469  # thin 1m trading
    assert 0.6 < minute.coverage < 0.75
    capsys.readouterr()
    assert run(["health", str(lake), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {item["dataset"] for item in printed} == {"bars/1d", "bars/1m"}
    assert run(["health", str(tmp_path / "nowhere")]) == 2


@needs_shared
def test_corporate_actions_and_funding_rates_count_what_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The health of the kinds that are not bars said 0 instruments and 0 rows whatever was
    stored (32,260 corporate actions of 3,366 codes; 91 funding rates)."""
    lake = tmp_path / "lake"
    actions = SHARED / "cn" / "hikyuu" / "stock_weight_corporate_actions.csv"
    funding = SHARED / "crypto" / "freqtrade" / "futures" / "XRP_USDT_USDT-8h-funding_rate.feather"
    assert run(["ingest", "hikyuu-actions", str(actions), "--out", str(lake)]) == 0
    assert run(["ingest", "freqtrade", str(funding), "--out", str(lake)]) == 0
    health = {h.dataset: h for h in dataset_health(Lake(lake))}
    stored = Lake(lake).read(Kind.CORPORATE_ACTIONS)
    assert (health["corporate_actions"].rows, health["corporate_actions"].instruments) == (
        stored.num_rows,
        len(set(stored.column("instrument_id").to_pylist())),
    )
    # in = accepted + quarantined: 32,261 rows in, one duplicate (ex-date) quarantined
    assert health["corporate_actions"].rows == 32_260 and health["corporate_actions"].quarantined == {
        "duplicate": 1
    }
    rates = health["funding_rates"]
    assert (rates.instruments, rates.rows, rates.quarantined) == (1, 91, {})
    assert (
        rates.first_ts_ns is not None
        and rates.last_ts_ns is not None
        and rates.first_ts_ns < rates.last_ts_ns
    )
    capsys.readouterr()
    assert run(["health", str(lake), "--csv", "-"]) == 0
    rows = {line.split(",")[0]: line.split(",") for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["funding_rates"][1:3] == ["1", "91"] and rows["corporate_actions"][2] == "32260"


@needs_shared
def test_ingest_json_gives_the_report_in_full(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """tape ingest had only its tables (file names folded, no machine form); --json prints the
    report stored as reports/ingest-VVVVVV.json, in = accepted + quarantined per file."""
    lake = tmp_path / "lake"
    files = [str(SHARED / "us" / "orcl-2014.txt"), str(SHARED / "us" / "orcl-2003-2005.txt")]
    assert run(["ingest", "yahoo", *files, "--out", str(lake), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first == json.loads((lake / "reports" / "ingest-000001.json").read_text())
    assert [(f["rows_in"], f["accepted"]) for f in first["files"]] == [(252, 252), (756, 756)]
    assert run(["ingest", "yahoo", files[0], "--out", str(lake), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    again = printed["files"][0]
    assert (again["rows_in"], again["accepted"], again["quarantined"], again["already_stored"]) == (
        252,
        0,
        0,
        252,
    )
    assert again["reasons"] == {} and printed["unchanged"] is True
    assert printed["content_hash"] == first["content_hash"]
    assert sorted(p.name for p in (lake / "reports").iterdir()) == ["ingest-000001.json"]  # nothing new
