"""``tape paper``, ``tape paper --resume`` and ``tape command`` over hostile inputs: bad
``[paper]`` tables, journals that are not a paper session's or are damaged, a command with no
session to take it. Each is refused with one error line naming what is wrong and a documented
exit status, no traceback, and nothing is left behind (no journal for a refused start)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.exits import EXIT_DAMAGED, EXIT_REFUSED
from tests.contracts.test_cli_hostile_inputs import check_contract, digests, tape
from tests.factories import make_dataset

PAPER = """run_id = "contract-paper"
dataset = "data"
journal = "{journal}"
initial_cash = "100000"

[strategy]
name = "sma_crossover"
params = {{ fast = 3, slow = 9, weight = 0.9 }}

[paper]
exchange = "binance"
start = "2020-05-01T00:00:00Z"
end = "2020-06-01T00:00:00Z"
clock = "venue"
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile-paper")
    make_dataset(root / "data", symbols=2, bars=200)
    backtest = root / "backtest.toml"
    backtest.write_text(PAPER.split("[paper]")[0].format(journal="backtest-journal"))
    assert tape("backtest", str(backtest), cwd=root).returncode == 0
    return root


EDITS = [
    ("no-paper-table", lambda text: text.split("[paper]")[0]),
    ("end-before-start", lambda text: text.replace('end = "2020-06-01', 'end = "2020-04-01')),
    ("start-not-a-time", lambda text: text.replace('start = "2020-05-01T00:00:00Z"', 'start = "May Day"')),
    ("start-no-zone", lambda text: text.replace("2020-05-01T00:00:00Z", "2020-05-01T00:00:00")),
    ("clock", lambda text: text.replace('clock = "venue"', 'clock = "sundial"')),
    ("exchange", lambda text: text.replace('exchange = "binance"', 'exchange = "no-such-venue"')),
    ("grace", lambda text: text.replace('clock = "venue"', 'clock = "venue"\ngrace_s = -1')),
    ("no-history", lambda text: text.replace("2020-05-01T00:00:00Z", "2019-01-01T00:00:00Z")),
    ("latency-negative", lambda text: text + 'latency_ms = -5\n\n[venue]\nkind = "paper"\n'),
    ("latency-not-a-number", lambda text: text + 'latency_ms = "fast"\n\n[venue]\nkind = "paper"\n'),
    ("latency-without-broker", lambda text: text + "latency_jitter_ms = 5\n"),
    ("quotes-without-broker", lambda text: text + "quotes = true\n"),
    ("heartbeat-negative", lambda text: text + "heartbeat_s = -1\n"),
    (
        "broker-per-share",
        lambda text: text + '\n[venue]\nkind = "paper"\n\n[fill]\ncommission_per_share_e8 = 5\n',
    ),
    ("broker-no-paper", lambda text: text.split("[paper]")[0] + '\n[venue]\nkind = "paper"\n'),
]


@pytest.mark.parametrize(("name", "edit"), EDITS, ids=[name for name, _ in EDITS])
def test_paper_over_hostile_configs(corpus: Path, name: str, edit: object) -> None:
    config = corpus / f"{name}.toml"
    config.write_text(edit(PAPER.format(journal=name)))  # type: ignore[operator]
    result = tape("paper", str(config), "--local-exchange", str(corpus / "data"), cwd=corpus)
    check_contract(result, config, EXIT_REFUSED, f"tape paper {name}")
    assert not (corpus / name).exists(), "a refused paper session left a journal behind"


def test_resume_refuses_what_is_not_a_paper_session(corpus: Path) -> None:
    journal = corpus / "backtest-journal"
    config = corpus / "resume-backtest.toml"
    config.write_text(PAPER.format(journal="backtest-journal"))
    before = digests(journal)
    result = tape("paper", str(config), "--resume", "--local-exchange", str(corpus / "data"), cwd=corpus)
    check_contract(result, journal, EXIT_REFUSED, "tape paper --resume over a backtest's journal")
    assert digests(journal) == before


def test_resume_refuses_a_damaged_journal(corpus: Path) -> None:
    journal = corpus / "damaged-journal"
    (corpus / "damaged-journal").mkdir()
    data = (corpus / "backtest-journal" / "data.mdb").read_bytes()
    (journal / "data.mdb").write_bytes(data[: len(data) // 2])
    config = corpus / "resume-damaged.toml"
    config.write_text(PAPER.format(journal="damaged-journal"))
    result = tape("paper", str(config), "--resume", "--local-exchange", str(corpus / "data"), cwd=corpus)
    assert result.returncode in (EXIT_DAMAGED, EXIT_REFUSED), result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_command_with_no_session_is_refused(corpus: Path) -> None:
    journal = corpus / "backtest-journal"
    result = tape("command", str(journal), "halt", "--operator", "ana", cwd=corpus)
    check_contract(result, journal, EXIT_REFUSED, "tape command with no session")
    assert "no session is running" in result.stdout
    assert not Path(str(journal) + ".commands.jsonl").exists()
