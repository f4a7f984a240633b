"""The report counts the risk verdicts that acted (clip, scale, reject) by rule: a strategy the
default policy clips to 10% a name on every decision was told nothing by ``tape report``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from cli.wiring import make_strategies
from domain.events import RiskVerdict
from kernel.store import open_journal
from sim.backtest import run_backtest
from sim.metrics import RunFold, report_from_journal
from tests.factories import make_config, make_dataset


def test_the_verdicts_that_acted_are_counted_by_rule_in_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = make_dataset(tmp_path / "data", symbols=3, bars=200)
    config = make_config(dataset, tmp_path / "j")  # 0.95 / 3 a name: above the default 10% a name
    fold = RunFold()
    result = run_backtest(config, make_strategies(config), on_append=fold.add)
    acted: dict[str, dict[str, int]] = {}
    passed = 0
    with open_journal(result.journal) as journal:
        for record in journal.records(0):
            event = record.event()
            if isinstance(event, RiskVerdict):
                if event.action == "pass":
                    passed += 1
                else:
                    by = acted.setdefault(event.rule, {})
                    by[event.action] = by.get(event.action, 0) + 1
        report = report_from_journal(journal)
    assert acted.get("name", {}).get("clip", 0) > 0 and passed > 0  # the run is one that clips
    assert report.risk_actions == acted
    assert fold.report_and_navs()[0].risk_actions == acted  # the sweep's fold: the same counts
    rows = dict(report.rows())
    clips = sum(by.get("clip", 0) for by in acted.values())
    assert rows["risk clip/scale/reject"] == f"{clips:,} / 0 / 0"
    assert rows["  name"] == f"{acted['name']['clip']:,} / 0 / 0"
    assert main(["report", str(result.journal), "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["risk_actions"] == acted
