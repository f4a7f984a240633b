"""The shipped options example end to end: `tape option-chain` on AAPL's real daily closes
(model-priced option bars, not market data), `tape backtest cli/defaults/aapl_option_ladder.toml`,
`tape replay` (full and one session). Skipped with a reason without ../shared/data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli.main import main
from domain.events import DatasetReferenced, OrderFilled, RiskVerdict, RunStarted
from kernel.store import open_journal
from lake.store import load_panel

ROOT = Path(__file__).resolve().parents[2]
AAPL = ROOT.parent / "shared" / "data" / "us" / "abu_raw" / "usAAPL_20140609_20160726.csv"

pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not AAPL.is_file(), reason=f"real AAPL data not found at {AAPL}"),
]


def test_option_chain_backtest_replay(tmp_path: Path) -> None:
    data = tmp_path / "data" / "aapl_2015q4"
    chain = [
        "option-chain", str(AAPL), str(data), "--underlying", "AAPL", "--strikes", "100,110,120",
        "--expiries", "2015-10-16,2015-11-20", "--start", "2015-09-01", "--end", "2015-11-30",
        "--vol", "0.30", "--rate", "0.01",
    ]  # fmt: skip
    assert main(chain) == 0
    config = tmp_path / "aapl_option_ladder.toml"
    shutil.copy(ROOT / "cli" / "defaults" / "aapl_option_ladder.toml", config)
    assert main(["backtest", str(config)]) == 0
    journal = tmp_path / "journals" / "aapl_option_ladder"
    assert main(["replay", str(journal)]) == 0
    assert main(["replay", str(journal), "--day", "2015-10-16"]) == 0

    events = [event for _, event in open_journal(journal).events()]
    started, ref = events[0], events[1]
    assert isinstance(started, RunStarted) and isinstance(ref, DatasetReferenced)
    assert '"option_model":{' in started.config_json
    assert ref.instruments == 13  # AAPL + 3 strikes x 2 expiries x call/put
    greek = [e for e in events if isinstance(e, RiskVerdict) and e.rule.startswith("greek_")]
    assert any(v.rule == "greek_delta_underlying" and v.action == "clip" for v in greek)
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert fills and all(f.notional_minor == f.fill_qty_raw * f.fill_px_raw * 100 for f in fills)


def test_option_chain_json_names_the_data_set_and_its_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tape option-chain printed one line with the content hash cut to 16 digits; --json has
    the data set, its whole hash and the chain as read (strikes, expiries, vol, rate)."""
    chain = [
        "option-chain", str(AAPL), str(tmp_path / "chain"), "--underlying", "AAPL", "--strikes", "100,110.5",
        "--expiries", "2015-10-16", "--start", "2015-09-01", "--end", "2015-10-30", "--vol", "0.30",
    ]  # fmt: skip
    assert main([*chain, "--json"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    _, ref = load_panel(tmp_path / "chain")
    assert printed["content_hash"] == ref.content_hash and printed["dataset"] == str(tmp_path / "chain")
    assert printed["market_data"] is False and printed["underlying"] == "AAPL"
    assert printed["strikes"] == [100.0, 110.5] and printed["expiries"] == ["2015-10-16"]
    assert (printed["start"], printed["end"], printed["vol"], printed["rate"]) == (
        "2015-09-01", "2015-10-30", 0.3, 0.0,
    )  # fmt: skip
    assert "NOT market data" in captured.err  # the line went to stderr
    chain[2] = str(tmp_path / "again")
    assert main([*chain, "--json", str(tmp_path / "out" / "chain.json")]) == 0
    assert f"wrote {tmp_path / 'out' / 'chain.json'}" in capsys.readouterr().out
    again = json.loads((tmp_path / "out" / "chain.json").read_text())
    assert again == {**printed, "dataset": str(tmp_path / "again")}


def test_option_chain_bad_input_is_named(tmp_path: Path) -> None:
    args = [
        "option-chain", str(AAPL), str(tmp_path / "x"), "--underlying", "AAPL", "--strikes", "1o0",
        "--expiries", "2015-10-16", "--start", "2015-09-01", "--end", "2015-11-30", "--vol", "0.3",
    ]  # fmt: skip
    assert main(args) == 2
    args[args.index("1o0")] = "100"
    args[args.index("2015-10-16")] = "2015-10-17"  # a Saturday
    assert main(args) == 2


def test_option_chain_refuses_a_strike_or_expiry_given_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--strikes 100,100`` wrote two instruments named AAPL151016C00100000 (and two puts)."""
    args = [
        "option-chain", str(AAPL), str(tmp_path / "x"), "--underlying", "AAPL", "--strikes", "100,110,100",
        "--expiries", "2015-10-16", "--start", "2015-09-01", "--end", "2015-11-30", "--vol", "0.3",
    ]  # fmt: skip
    assert main(args) == 2
    assert "each strike once: 100 given twice" in capsys.readouterr().out
    args[args.index("100,110,100")] = "100"
    args[args.index("2015-10-16")] = "2015-10-16,2015-10-16"
    assert main(args) == 2
    assert "each expiry once: 20151016 given twice" in capsys.readouterr().out
    assert not (tmp_path / "x").exists()
