"""The `reconciliation` alert rule's configuration and its reading of a reconcile report."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from cli.main import build_parser
from cli.scheduler import load_scheduler_config
from projections.alerts import AlertConfigError, ReconciliationRule, rules_from_config

ROOT = Path(__file__).resolve().parents[3]


def line(item: str, key: str, journal: str, ledger: str | None, ok: bool) -> dict[str, object]:
    return {"item": item, "key": key, "unit": "qty", "journal": journal, "ledger": ledger,
            "statement": None, "ok": ok, "note": ""}  # fmt: skip


def test_the_report_path_is_relative_to_the_rules_file(tmp_path: Path) -> None:
    (rule,) = rules_from_config([{"kind": "reconciliation", "report": "r/x.json"}], tmp_path)
    assert isinstance(rule, ReconciliationRule)
    assert rule.report == tmp_path / "r" / "x.json"
    assert rule.severity == "critical"


@pytest.mark.parametrize("table", [{"kind": "reconciliation"}, {"kind": "reconciliation", "report": 3},
                                   {"kind": "reconciliation", "report": " "},
                                   {"kind": "reconciliation", "report": "a", "limit_bps": 1}])  # fmt: skip
def test_a_rule_without_a_usable_report_is_refused(table: dict[str, object]) -> None:
    with pytest.raises(AlertConfigError, match="rule reconciliation"):
        rules_from_config([table])


def test_more_differences_than_the_message_holds_are_counted(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    lines = [line("position", f"S{i}", "10", "11", False) for i in range(7)] + [
        line("cash", "USD", "1", "1", True)
    ]
    report.write_text(json.dumps({"journal": "j", "day": "2020-01-02", "cut_seq": 9, "lines": lines}))
    (observation,) = ReconciliationRule("reconciliation", "critical", report).observe_now(0, [])
    assert observation.breached
    assert observation.message.startswith("reconciliation of j at 2020-01-02 (seq 9): 7 of 8 lines differ: ")
    assert observation.message.endswith("position S4 journal 10, ledger 11; and 2 more")


def test_the_shipped_examples_wire_the_job_and_the_rule() -> None:
    alerts = tomllib.loads((ROOT / "cli/defaults/alerts.toml").read_text())
    jobs = tomllib.loads((ROOT / "cli/defaults/jobs.toml").read_text())
    (rule,) = [r for r in alerts["rules"] if r["kind"] == "reconciliation"]
    (job,) = [j for j in jobs["jobs"] if j["name"] == "reconcile"]
    assert job["tape"][0] == "reconcile"
    assert job["tape"][job["tape"].index("--json") + 1] == rule["report"]
    rules_from_config(alerts["rules"], ROOT / "cli/defaults")
    config = load_scheduler_config(ROOT / "cli/defaults/jobs.toml")
    assert config.jobs["reconcile"].name == "reconcile"
    args = build_parser().parse_args(job["tape"])
    assert (args.verb, args.statement, args.json) == ("reconcile", ["statements/latest.csv"], rule["report"])
