"""Machine-readable results of the operations verbs that printed only a summary line (QA):
``alerts check`` (the alerts and the delivery counts), ``alerts silence / unsilence / ack`` (the
id acted on), ``alerts follow`` and ``scheduler`` (at the stop), ``jobs run`` (outcome, attempts,
duration), ``audit --csv``, ``paper`` / ``live`` (the session's end) and ``command``. Each
``--json -`` carries the data alone on stdout (the lines go to stderr); two outputs on stdout are
refused before anything is done."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from domain.events import KillSwitchRearmed, KillSwitchTripped
from kernel.operator_inbox import SessionClaim, inbox_path
from kernel.store import open_journal
from lake.store import load_panel
from projections import rebuild_ledger
from tests.factories import make_config, make_dataset, market_and_history, paper_config, run

ROOT = Path(__file__).resolve().parents[2]


def _trip() -> KillSwitchTripped:
    return KillSwitchTripped(
        ts_ns=time.time_ns(), trigger="drawdown", flatten=True, limit=1000, observed=1200, reason="dd 12%"
    )


def _setup_alerts(tmp_path: Path) -> tuple[Path, Path]:
    journal = tmp_path / "j.sqlite"
    with open_journal(journal, writable=True) as writer:
        writer.append(_trip())
    rules = tmp_path / "alerts.toml"
    rules.write_text('[[rules]]\nkind = "kill_switch"\n')
    return journal, rules


def _stdout_json(capsys: pytest.CaptureFixture[str]) -> Any:
    value = json.loads(capsys.readouterr().out)  # the data alone on stdout
    assert isinstance(value, dict)
    return value


def test_alerts_check_silence_unsilence_and_ack_write_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal, rules = _setup_alerts(tmp_path)
    assert main(["alerts", "check", str(journal), "--rules", str(rules), "--json", "-"]) == 1  # same exit
    checked = _stdout_json(capsys)
    assert checked["records"] == 1 and checked["evaluated_here"] is True
    assert [(a["id"], a["rule"], a["status"]) for a in checked["fired"]] == [(1, "kill_switch", "firing")]
    assert [a["id"] for a in checked["firing"]] == [1]
    delivery = checked["delivery"]
    assert isinstance(delivery, dict)
    assert delivery["sent"] == 0 and delivery["failed"] == 0 and delivery["routes"] == []

    assert main(["alerts", "silence", "kill_switch", "--for", "1h", "--by", "ana", "--reason", "drill",
                 "--rules", str(rules), "--json"]) == 0  # fmt: skip
    silenced = _stdout_json(capsys)
    assert silenced["silence_id"] == 1 and silenced["rule"] == "kill_switch" and silenced["by"] == "ana"
    assert silenced["reason"] == "drill" and str(silenced["until"]).endswith("Z")
    assert main(["alerts", "unsilence", "1", "--by", "bo", "--rules", str(rules), "--json", "-"]) == 0
    assert _stdout_json(capsys) == {"silence_id": 1, "ended": True, "by": "bo"}
    out_file = tmp_path / "out" / "ack.json"
    assert main(["alerts", "ack", "1", "--by", "me", "--rules", str(rules), "--json", str(out_file)]) == 0
    assert "acknowledged by me" in capsys.readouterr().out  # the line stays when the JSON goes to a file
    acked = json.loads(out_file.read_text())
    assert acked["alert_id"] == 1 and acked["alert"]["acked_by"] == "me"

    with open_journal(journal, writable=True) as writer:
        writer.append(KillSwitchRearmed(ts_ns=time.time_ns(), operator="me"))
    csv_file = tmp_path / "check.csv"
    argv = ["alerts", "check", str(journal), "--rules", str(rules), "--csv", str(csv_file), "--json", "-"]
    assert main(argv) == 0
    resolved = _stdout_json(capsys)
    assert [a["id"] for a in resolved["resolved"]] == [1] and resolved["firing"] == []
    rows = list(csv.DictReader(io.StringIO(csv_file.read_text())))
    assert [(row["alert"], row["id"], row["rule"]) for row in rows] == [("resolved", "1", "kill_switch")]


def test_two_outputs_on_stdout_are_refused_before_anything_is_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal, rules = _setup_alerts(tmp_path)
    assert main(["alerts", "check", str(journal), "--rules", str(rules), "--json", "-", "--csv", "-"]) == 2
    assert "--json - and --csv - both write to stdout" in capsys.readouterr().err  # data was asked on stdout
    assert not (tmp_path / "alerts.state.sqlite").exists()  # nothing evaluated
    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=60), tmp_path / "j"))
    assert main(["audit", str(tmp_path / "j"), "--json", "--csv", "-"]) == 2
    assert "--json - and --csv - both write to stdout" in capsys.readouterr().err  # data was asked on stdout


def test_audit_csv_has_the_verdict_and_each_differing_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=120), tmp_path / "j"))
    ledger = tmp_path / "ledger.sqlite"
    built = rebuild_ledger(tmp_path / "j", ledger)
    capsys.readouterr()
    assert main(["audit", str(tmp_path / "j"), "--db", str(ledger), "--csv", "-"]) == 0
    (clean,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert clean == {"ledger": str(ledger), "ok": "True", "checkpoint_seq": str(built.checkpoint_seq),
                     "tables": str(len(built.checksums)), "table": "", "live": "", "rebuilt": "",
                     "first_difference": ""}  # fmt: skip
    with sqlite3.connect(ledger) as connection:
        connection.execute(
            "UPDATE fills SET fill_qty_raw = fill_qty_raw + 1 WHERE seq = (SELECT min(seq) FROM fills)"
        )
    connection.close()
    assert main(["audit", str(tmp_path / "j"), "--db", str(ledger), "--csv", str(tmp_path / "a.csv")]) == 1
    assert "audit FAILED" in capsys.readouterr().out  # the lines stay when the CSV goes to a file
    (row,) = list(csv.DictReader(io.StringIO((tmp_path / "a.csv").read_text())))
    assert row["ok"] == "False" and row["table"] == "fills" and "fill_qty_raw" in row["first_difference"]


def test_jobs_run_json_has_outcome_attempts_and_duration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "jobs.toml"
    config.write_text(
        '[scheduler]\ncalendar = "XNYS"\njob_log = "jobs.sqlite"\n\n'
        '[[jobs]]\nname = "fails"\nshell = "echo no; exit 3"\ncron = "0 8 * * 1-5"\nretries = 1\n'
        "backoff_s = 0\n"
    )
    assert main(["jobs", "run", "fails", "--config", str(config), "--json"]) == 1  # the same exit status
    done = _stdout_json(capsys)
    assert done["job"] == "fails" and done["outcome"] == "failed" and done["exit_status"] == 3
    assert done["attempts"] == 2 and done["final"] is True and "no" in str(done["detail"])
    assert isinstance(done["duration_s"], float) and done["job_log"] == str(tmp_path / "jobs.sqlite")


def _stop(process: subprocess.Popen[bytes], when: Path) -> None:
    deadline = time.monotonic() + 30
    while not when.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 143


def test_follow_and_scheduler_write_their_summary_when_stopped(tmp_path: Path) -> None:
    journal, rules = _setup_alerts(tmp_path)
    out = tmp_path / "follow.json"
    argv = [sys.executable, "-m", "cli.main", "alerts", "follow", str(journal), "--rules", str(rules),
            "--poll-s", "0.05", "--json", str(out)]  # fmt: skip
    follower = subprocess.Popen(argv, cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
    _stop(follower, tmp_path / "alerts.state.sqlite")
    followed = json.loads(out.read_text())
    assert followed["records"] == 1 and followed["cycles"] >= 1
    assert [a["rule"] for a in followed["firing"]] == ["kill_switch"]
    assert followed["delivery"]["sent"] == 0

    config = tmp_path / "jobs.toml"
    config.write_text('[scheduler]\ncalendar = "XNYS"\njob_log = "jobs.sqlite"\n\n'
                      '[[jobs]]\nname = "eod"\nshell = "true"\ncron = "30 17 * * *"\n')  # fmt: skip
    argv = [sys.executable, "-m", "cli.main", "scheduler", "--config", str(config), "--json", "-"]
    scheduler = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    _stop(scheduler, tmp_path / "jobs.sqlite")
    assert scheduler.stdout is not None
    stopped = json.loads(scheduler.stdout.read())
    assert stopped == {"config": str(config), "job_log": str(tmp_path / "jobs.sqlite"), "runs": 0,
                       "outcomes": {}, "final_attempts": []}  # fmt: skip


def test_paper_json_is_the_sessions_end_and_command_json_what_was_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full, history = market_and_history(tmp_path, seed=5, bars=70, history=60)
    panel, _ = load_panel(full)
    start = int(panel.ts_ns[60])
    journal = tmp_path / "journal"
    config = paper_config(tmp_path / "paper.toml", history, journal, start, start + 12 * 3_600 * 10**9)
    argv = ["paper", str(config), "--local-exchange", str(full), "--speed", "200", "--json", "-"]
    assert main(argv) == 0
    ended = _stdout_json(capsys)
    with open_journal(journal) as store:
        assert ended["records"] == len(store) and ended["chain_head"] == store.last_hash.hex()
    assert ended["done"] is True and ended["stopped"] == "" and ended["exit_status"] == 0
    assert ended["step"] == ended["steps"] == 61 and ended["resumed"] is False
    kernel = ended["kernel"]
    assert isinstance(kernel, dict) and kernel["received"] == kernel["accepted"] > 0

    claim = SessionClaim(journal)  # a running session's mark, as the session leaves it
    claim.mark(os.getpid(), ["sma"])
    try:
        assert main(["command", str(journal), "halt", "--operator", "ana", "--note", "drill", "--json"]) == 0
        sent = _stdout_json(capsys)
    finally:
        claim.release()
    assert sent == {"journal": str(journal), "inbox": str(inbox_path(journal)), "command": "halt",
                    "operator": "ana", "note": "drill", "strategy": ""}  # fmt: skip


def test_verbs_that_send_nothing_need_no_route_secret_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped alerts.toml names TAPE_SMTP_PASSWORD, TAPE_TELEGRAM_TOKEN: `check --no-send`,
    `list`, `silence` and `ack` refused it (exit 2, "is not set") though none of them sends."""
    journal, rules = _setup_alerts(tmp_path)
    rules.write_text(
        rules.read_text()
        + '[[routes]]\nkind = "smtp"\nhost = "127.0.0.1"\nsender = "t@x.org"\nto = ["me@x.org"]\n'
        'password_env = "TAPE_TEST_UNSET_PASSWORD"\n'
        '[[routes]]\nkind = "telegram"\nchat_id = "1"\ntoken_env = "TAPE_TEST_UNSET_TOKEN"\n'
        '[[routes]]\nkind = "webhook"\nurl_env = "TAPE_TEST_UNSET_URL"\n'
    )
    for name in ("TAPE_TEST_UNSET_PASSWORD", "TAPE_TEST_UNSET_TOKEN", "TAPE_TEST_UNSET_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["alerts", "check", str(journal), "--rules", str(rules), "--no-send", "--json", "-"]) == 1
    assert [a["rule"] for a in _stdout_json(capsys)["firing"]] == ["kill_switch"]
    assert main(["alerts", "list", "--rules", str(rules), "--json", "-"]) == 0
    assert [a["rule"] for a in _stdout_json(capsys)["alerts"]] == ["kill_switch"]
    assert main(["alerts", "silence", "kill_switch", "--for", "1h", "--rules", str(rules)]) == 0
    assert main(["alerts", "ack", "1", "--by", "me", "--rules", str(rules)]) == 0
    assert "acknowledged by me" in capsys.readouterr().out
    # a verb that sends still needs them, named, before anything is evaluated
    assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 2
    assert "environment variable TAPE_TEST_UNSET_PASSWORD is not set" in capsys.readouterr().out
    # and a route's shape is still checked where nothing is sent
    rules.write_text(rules.read_text().replace('kind = "webhook"\n', 'kind = "webhook"\nurl = "x"\n'))
    assert main(["alerts", "list", "--rules", str(rules)]) == 2
    assert "give url, or url_env or url_file, not two of them" in capsys.readouterr().out
