"""The `tape` verbs, through their entry point."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli.main import main as tape
from domain.events import (
    DayClosed,
    OrderFilled,
    OrderSubmitted,
    RiskVerdict,
    VenueMessage,
    VenueMessageRefused,
)
from kernel.store import open_journal
from lake.store import load_panel
from sim.recorded_venue import write_recording
from tests.factories import make_dataset

CONFIG = """
run_id = "cli-test"
seed = 11
dataset = "data"
journal = "journal"
initial_cash = "250000.00"

[strategy]
name = "sma_crossover"
params = {{ fast = 4, slow = 12, weight = 0.9 }}

[fill]
commission_e8 = 100_000
{extra}
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    make_dataset(tmp_path / "data", symbols=3, bars=200)
    (tmp_path / "run.toml").write_text(CONFIG.format(extra=""))
    return tmp_path


def test_backtest_report_rebuild_verify_replay(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tape(["backtest", str(workdir / "run.toml")]) == 0
    out = capsys.readouterr().out
    for metric in (
        "final NAV",
        "total return",
        "annualised volatility",
        "Sharpe",
        "max drawdown",
        "turnover",
        "fees",
    ):
        assert metric in out
    journal = str(workdir / "journal")
    assert tape(["rebuild", journal]) == 0
    out = capsys.readouterr().out
    assert "postings" in out
    assert "sha256" in out
    assert (workdir / "journal.ledger.sqlite").exists()
    assert tape(["verify", journal]) == 0
    assert tape(["replay", journal]) == 0
    assert "replay matched" in capsys.readouterr().out
    assert tape(["replay", journal, "--day", "2020-03-02"]) == 0
    assert "replay matched" in capsys.readouterr().out
    assert tape(["report", journal]) == 0


def test_rebuild_checksums_are_whole_at_80_columns_and_as_json(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rebuild table cut every table's sha256 at 80 columns ('rows=1 sha256=3701d4f9…')
    and neither rebuild verb had --json: the checksums a user compares between SQLite and
    PostgreSQL could not be read in full."""
    from projections import open_ledger

    monkeypatch.setenv("COLUMNS", "80")
    assert tape(["backtest", str(workdir / "run.toml")]) == 0
    journal = str(workdir / "journal")
    capsys.readouterr()
    assert tape(["rebuild", journal]) == 0
    table = re.sub(r"[^0-9a-f]", "", capsys.readouterr().out.replace("\n", ""))
    with open_ledger(workdir / "journal.ledger.sqlite") as ledger:
        expected = ledger.table_checksums()
    for checksum in expected.values():
        digest = checksum.split("sha256=")[1]
        assert digest in table  # every hex digit printed (the column wraps, never cuts)
    for verb in (["rebuild"], ["projections", "rebuild"]):
        assert tape([*verb, journal, "--db", str(workdir / "again.sqlite"), "--json"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed["tables"] == {
            name: {"rows": int(c.split()[0].split("=")[1]), "sha256": c.split("sha256=")[1]}
            for name, c in expected.items()
        }
        assert printed["checkpoint_seq"] + 1 == printed["records"]


def test_rebuild_checksums_as_csv(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Both rebuild verbs had --json only: --csv PATH|- now gives table,rows,sha256 rows (the
    same as the JSON's tables); --json with --csv - is refused before anything is rebuilt."""
    assert tape(["backtest", str(workdir / "run.toml")]) == 0
    journal = str(workdir / "journal")
    capsys.readouterr()
    assert tape(["rebuild", journal, "--json"]) == 0
    tables = json.loads(capsys.readouterr().out)["tables"]
    expected = ["table,rows,sha256", *(f"{name},{t['rows']},{t['sha256']}" for name, t in tables.items())]
    assert tape(["rebuild", journal, "--csv", "-"]) == 0
    assert capsys.readouterr().out.splitlines() == expected
    out = workdir / "out" / "checksums.csv"
    assert (
        tape(["projections", "rebuild", journal, "--db", str(workdir / "b.sqlite"), "--csv", str(out)]) == 0
    )
    assert out.read_text().splitlines() == expected
    for verb in (["rebuild"], ["projections", "rebuild"]):
        assert tape([*verb, journal, "--json", "--csv", "-"]) == 2
        assert "--json - and --csv - both write to stdout" in capsys.readouterr().err


def test_backtest_json_and_csv_carry_the_runs_journal_head_and_figures(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tape backtest had neither --json nor --csv: a script read the journal's chain head cut to
    16 digits, and the final NAV, from the printed lines. --json - puts one object on stdout
    (the lines and the report on stderr); --json/--csv PATH write files beside the text."""
    import csv

    assert tape(["backtest", str(workdir / "run.toml"), "--json", "-", "--csv", "-"]) == 2
    assert "--json - and --csv - both write to stdout" in capsys.readouterr().err  # data was asked on stdout
    assert not (workdir / "journal").exists()  # refused before the run
    assert tape(["backtest", str(workdir / "run.toml"), "--json"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    with open_journal(workdir / "journal") as journal:
        verified = journal.verify()
    assert printed["journal"] == str(workdir / "journal") and printed["run_id"] == "cli-test"
    assert printed["records"] == verified.records and printed["chain_head"] == verified.last_hash.hex()
    assert printed["final_nav"] == printed["summary"]["final_nav"] > 0
    assert printed["summary"]["fills"] > 0 and printed["currency"] == "USD"
    assert f"{printed['final_nav']:,.2f} USD" in captured.err  # the report went to stderr
    assert f"chain head {verified.last_hash.hex()[:16]}" in captured.err
    out = workdir / "out"
    args = ["--journal", str(workdir / "j2"), "--json", str(out / "run.json"), "--csv", str(out / "run.csv")]
    assert tape(["backtest", str(workdir / "run.toml"), *args]) == 0
    text = capsys.readouterr().out
    assert "final NAV" in text and f"wrote {out / 'run.json'}" in text and f"wrote {out / 'run.csv'}" in text
    again = json.loads((out / "run.json").read_text())
    assert again["chain_head"] != printed["chain_head"]  # the config's journal path is in the chain
    assert again["summary"] == printed["summary"]  # the same run's figures
    rows = list(csv.DictReader((out / "run.csv").open()))
    assert len(rows) == 1
    row = rows[0]
    assert row["chain_head"] == again["chain_head"] and int(row["records"]) == again["records"]
    assert float(row["final_nav"]) == again["final_nav"]
    assert float(row["summary.returns.sharpe"]) == again["summary"]["returns"]["sharpe"]


def test_replay_json_and_csv_give_the_verdict(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """tape replay had neither --json nor --csv (a scheduled check scraped 'replay matched'):
    --json - is one object on stdout, the same exit status; --csv a header and one row."""
    import csv

    assert tape(["backtest", str(workdir / "run.toml")]) == 0
    journal = str(workdir / "journal")
    capsys.readouterr()
    assert tape(["replay", journal, "--json", "-", "--csv", "-"]) == 2
    assert "--json - and --csv - both write to stdout" in capsys.readouterr().err  # data was asked on stdout
    assert tape(["replay", journal, "--json"]) == 0
    captured = capsys.readouterr()
    whole = json.loads(captured.out)
    assert "replay matched" in captured.err
    with open_journal(journal) as opened:
        length = len(opened)
    assert whole["ok"] is True and whole["unfinished"] is False and whole["divergence"] is None
    assert whole["first_seq"] == 2 and whole["last_seq"] == length - 1 and whole["day"] is None
    assert whole["records_compared"] == length - 2  # all but the two inputs
    assert tape(["replay", journal, "--day", "2020-03-02", "--csv", "-"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert len(rows) == 1 and rows[0]["day"] == "2020-03-02" and rows[0]["ok"] == "True"
    assert 2 <= int(rows[0]["records_compared"]) < whole["records_compared"]
    assert rows[0]["divergence_seq"] == "" and rows[0]["journal"] == journal
    assert tape(["replay", journal, "--json", str(workdir / "out" / "replay.json")]) == 0
    assert "replay matched" in capsys.readouterr().out
    assert json.loads((workdir / "out" / "replay.json").read_text()) == whole


def test_synth_json_names_the_data_set_and_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tape synth printed the content hash cut to 16 digits only; --json has it whole."""
    assert tape(["synth", str(tmp_path / "d"), "--symbols", "2", "--bars", "30", "--json"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    _, ref = load_panel(tmp_path / "d")
    assert printed["content_hash"] == ref.content_hash and printed["dataset"] == str(tmp_path / "d")
    assert (printed["symbols"], printed["bars"], printed["frequency"]) == (2, 30, "1d")
    assert f"content hash {ref.content_hash[:16]}" in captured.err


def test_bad_inputs_get_clear_errors(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "bad.toml").write_text(CONFIG.format(extra="bogus_field = 1"))
    assert tape(["backtest", str(workdir / "bad.toml")]) == 2
    assert "bogus_field" in capsys.readouterr().out
    (workdir / "bad2.toml").write_text(CONFIG.format(extra="").replace("sma_crossover", "nope"))
    assert tape(["backtest", str(workdir / "bad2.toml")]) == 2
    assert "unknown strategy 'nope'" in capsys.readouterr().out
    assert tape(["verify", str(workdir / "missing")]) == 2
    assert tape(["backtest", str(workdir / "run.toml")]) == 0
    assert tape(["replay", str(workdir / "journal"), "--day", "1999-01-01"]) == 2
    assert "not a session day" in capsys.readouterr().out
    # QA: 'yesterday' was an internal error (exit 70), 2021-13-01 "not a session day".
    for day, says in (("yesterday", "must be YYYY-MM-DD"), ("2021-13-01", "not a date: '2021-13-01'")):
        with pytest.raises(SystemExit) as refused:
            tape(["replay", str(workdir / "journal"), "--day", day])
        assert refused.value.code == 2
        err = capsys.readouterr().err
        assert says in err and "argument --day" in err and "internal error" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["audit"],
        ["audit", "--db", "x.ledger.sqlite"],
        ["command", "halt"],
        ["command", "pause", "--strategy", "s"],
    ],
    ids=["audit", "audit-db", "command-halt", "command-pause"],
)
def test_audit_and_command_of_a_missing_journal_say_the_journal_is_not_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """QA: audit said 'no SQLite ledger at ... build it first', command 'no session is running'."""
    journal = tmp_path / "journals" / "typo"
    verb, *rest = [a if a != "x.ledger.sqlite" else str(tmp_path / a) for a in argv]
    assert tape([verb, str(journal), *rest]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith(f"error: no journal at {journal}"), out
    assert "ledger" not in out and "session is running" not in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing created (no inbox, no ledger)


def test_a_config_the_data_cannot_run_is_exit_2_with_the_reason(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = '[[operator_commands]]\nat = "2099-01-01T00:00:00Z"\ncommand = "halt"\n'
    (workdir / "late.toml").write_text(CONFIG.format(extra=extra).replace('"journal"', '"late"'))
    assert tape(["backtest", str(workdir / "late.toml")]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "error:" in out and "after the data's end" in out and "Traceback" not in out
    # in UTC, not bare nanoseconds (4070908800000000000 alone said nothing to a reader)
    assert "operator command 'halt' at 2099-01-01T00:00:00Z (4070908800000000000 ns) is after" in out, out


def test_a_risk_policy_file_and_a_bad_policy_key(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "policy.toml").write_text('[risk.name]\nlimit_e8 = 20_000_000\naction = "clip"\n')
    (workdir / "p.toml").write_text(
        'risk_policy = "policy.toml"\n' + CONFIG.format(extra="").replace('"journal"', '"p"')
    )
    assert tape(["backtest", str(workdir / "p.toml")]) == 0
    capsys.readouterr()
    verdicts = [e for _, e in open_journal(workdir / "p").events() if isinstance(e, RiskVerdict)]
    assert {v.limit for v in verdicts if v.rule == "name"} == {20_000_000}  # from the policy file
    (workdir / "policy.toml").unlink()  # the journal holds the policy: replay needs no file
    assert tape(["replay", str(workdir / "p")]) == 0
    (workdir / "bad.toml").write_text(CONFIG.format(extra='[risk.name]\nlimit_e8 = 0\naction = "clip"\n'))
    assert tape(["backtest", str(workdir / "bad.toml")]) == 2
    assert "risk.name.limit_e8: 0 is outside" in capsys.readouterr().out


def test_a_rule_or_key_left_out_of_the_policy_takes_its_default(workdir: Path) -> None:
    """docs/risk_policies/policy.md: a rule given only its limit is the default rule with that
    limit (action clip for sector), the same configuration as the rule written whole; a
    [[strategies]] entry's own policy too."""
    from cli.wiring import load_config

    def risk(table: str, name: str) -> object:
        (workdir / name).write_text(CONFIG.format(extra=table))
        return load_config(workdir / name).risk

    partial = risk("[risk]\nsector = { limit_e8 = 20_000_000 }\n", "partial.toml")
    whole = risk('[risk]\nsector = { limit_e8 = 20_000_000, action = "clip" }\n', "whole.toml")
    assert partial == whole and partial.sector.limit_e8 == 20_000_000  # type: ignore[attr-defined]
    assert tape(["backtest", str(workdir / "partial.toml"), "--journal", str(workdir / "j")]) == 0
    sleeves = (
        CONFIG.format(extra="").split("[strategy]")[0]
        + '[[strategies]]\nname = "sma_crossover"\nbudget = "1"\n'
        + "params = { fast = 4, slow = 12, weight = 0.9 }\nrisk = { name = { limit_e8 = 5_000_000 } }\n"
    )
    (workdir / "sleeves.toml").write_text(sleeves)
    sleeve = load_config(workdir / "sleeves.toml").strategies[0].risk
    assert sleeve is not None and sleeve.name.limit_e8 == 5_000_000


def test_a_recorded_venue_session_runs_and_replays_without_its_file(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`[venue] kind = "recorded"`: acks and fills come from a recorded session (a duplicate
    included); the received messages are journaled, so the replay needs no recording."""
    venue = '[venue]\nkind = "recorded"\nrecording = "{}"\n'
    write_recording(workdir / "empty.jsonl", [])
    dry = CONFIG.format(extra=venue.format("empty.jsonl")).replace('"journal"', '"dry"')
    (workdir / "dry.toml").write_text(dry)
    assert tape(["backtest", str(workdir / "dry.toml")]) == 0
    dry_events = [e for _, e in open_journal(workdir / "dry").events()]
    first = next(e for e in dry_events if isinstance(e, OrderSubmitted))
    later = first.ts_ns + 3 * 86_400 * 10**9  # three daily bars later
    ack = VenueMessage(venue_seq=1, ts_ns=later, order_id=first.order_id, kind="ack")
    fill = VenueMessage(
        venue_seq=2,
        ts_ns=later,
        order_id=first.order_id,
        kind="fill",
        qty_raw=first.qty_raw,
        px_raw=first.decision_px_raw,
    )
    write_recording(workdir / "session.jsonl", [ack, ack, fill])
    (workdir / "rec.toml").write_text(
        CONFIG.format(extra=venue.format("session.jsonl")).replace('"journal"', '"rec"')
    )
    assert tape(["backtest", str(workdir / "rec.toml")]) == 0
    events = [e for _, e in open_journal(workdir / "rec").events()]
    refused = [e for e in events if isinstance(e, VenueMessageRefused)]
    assert [(e.venue_seq, e.outcome) for e in refused] == [(1, "duplicate")]
    (filled,) = [e for e in events if isinstance(e, OrderFilled)]
    assert (filled.order_id, filled.fill_qty_raw) == (first.order_id, first.qty_raw)
    (workdir / "session.jsonl").unlink()
    capsys.readouterr()
    assert tape(["replay", str(workdir / "rec")]) == 0
    assert "replay matched" in capsys.readouterr().out


def test_replay_of_one_day_counts_the_days_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: ``tape replay --day D``'s bar (stderr) counted every step of the data set; it
    counts the day's steps (a day of minute bars on the 24x7 calendar), the whole replay all."""
    make_dataset(tmp_path / "data", symbols=2, bars=1440 * 4, frequency="1m")
    (tmp_path / "run.toml").write_text(CONFIG.format(extra=""))
    assert tape(["backtest", str(tmp_path / "run.toml")]) == 0
    closes = [e for _, e in open_journal(tmp_path / "journal").events() if isinstance(e, DayClosed)]
    before, close = closes[1], closes[2]
    day = f"{close.day // 10000}-{close.day // 100 % 100:02d}-{close.day % 100:02d}"
    capsys.readouterr()
    assert tape(["replay", str(tmp_path / "journal"), "--day", day]) == 0
    said = capsys.readouterr()
    assert "replay matched" in said.out
    bar = [line for line in said.err.splitlines() if f"day {close.day}" in line]
    assert bar, said.err
    found = re.search(r"(\d+)/(\d+)", bar[-1])
    assert found is not None and found.groups() == (str(close.step - before.step),) * 2 == ("1440", "1440")
    assert tape(["replay", str(tmp_path / "journal")]) == 0
    assert f"{1440 * 4}/{1440 * 4}" in capsys.readouterr().err


def test_a_window_wider_than_the_data_is_said_on_stderr(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: a ``[window]`` reaching past the data set was clipped silently. ``tape backtest`` says
    so in one line on stderr (the window asked for, the data's sessions, those it trades); a
    window within the data says nothing; one holding no session of the data is refused."""
    panel, _ = load_panel(workdir / "data")
    first, last = (f"{d // 10000}-{d // 100 % 100:02d}-{d % 100:02d}" for d in map(int, panel.day[[0, -1]]))
    assert (first, last) == ("2020-02-10", "2020-07-18")  # make_dataset's daily bars on 24x7
    cases = {  # [window] lines, the window as said, the sessions traded (None: nothing said)
        "wide": (
            'start = "2019-06-01"\nend = "2020-03-31"',
            "2019-06-01 to 2020-03-31",
            f"{first} to 2020-03-31",
        ),
        "late": ('end = "2021-12-31"', "... to 2021-12-31", f"{first} to {last}"),
        "inside": ('start = "2020-03-01"\nend = "2020-03-31"', "", None),
    }
    for name, (window, asked, trades) in cases.items():
        toml = CONFIG.format(extra=f"[window]\n{window}\n").replace('"journal"', f'"{name}"')
        (workdir / f"{name}.toml").write_text(toml)
        capsys.readouterr()
        assert tape(["backtest", str(workdir / f"{name}.toml")]) == 0
        said = capsys.readouterr()
        lines = [line for line in said.err.splitlines() if "notice" in line]
        assert "notice" not in said.out
        expected = f"notice: cli-test: the window {asked} is wider than the data set ({first} to {last}): "
        assert lines == ([] if trades is None else [f"{expected}the run trades {trades}"]), said.err
    (workdir / "none.toml").write_text(
        CONFIG.format(extra='[window]\nstart = "2022-01-01"\n').replace('"journal"', '"none"')
    )
    assert tape(["backtest", str(workdir / "none.toml")]) == 2
    out = capsys.readouterr().out
    assert f"the window 2022-01-01 to ... holds no session of the data set ({first} to {last})" in out


def test_strategies_at_60_columns_break_entries_at_dots_and_have_a_csv(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 60 columns an entry was folded inside a name ('models.strategies.momentum:Momentu' /
    'mRotation') and the table had --json only. Now an entry breaks after a '.' or its ':', and
    --csv - gives name,entry rows."""
    from cli.progress import console

    assert tape(["strategies", "--json"]) == 0
    installed = json.loads(capsys.readouterr().out)
    monkeypatch.setattr(console, "width", 60)
    assert tape(["strategies"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in table) <= 60
    body = table[next(i for i, line in enumerate(table) if set(line) == {"─"}) + 1 :]
    shown: dict[str, list[str]] = {}
    name = ""
    for line in body:
        if line.startswith(" "):  # the entry's next piece, under its first
            shown[name].append(line.split()[0])
        else:
            name, first = line.split()
            shown[name] = [first]
    assert {name: "".join(pieces) for name, pieces in shown.items()} == installed
    assert all(piece[-1] in ".:" for pieces in shown.values() for piece in pieces[:-1])  # never mid-name
    assert tape(["strategies", "--csv", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["name,entry", *(f"{key},{entry}" for key, entry in installed.items())]
