"""``tape paper`` / ``tape live`` / ``tape command`` options as a first-time user types them (QA):
what only says how ``--local-exchange`` plays is refused without it (it was ignored, and the
session went to the configured venue); a ``--local-exchange`` that is not a data set, or that
holds no bar in the session's span, is refused before a journal is opened (it was an internal
error, or a session that stopped at once and sent the user to ``--resume``); ``--speed nan`` is
refused (the player stalled on it); a live session is not resumed on a new local exchange (its
account holds none of the session's trades: the resume always found differences and halted);
``tape command`` names its operator where no ``$USER`` is set (a container, a systemd unit) and
says which option a strategy command lacks."""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.main import main
from cli.paper_cmd import bar_updates
from domain.events import BarsReceived
from kernel.operator_inbox import SessionClaim, inbox_path
from lake.store import load_panel
from tests.factories import count_events, market_and_history, paper_config

HISTORY = 60
DAY_NS = 86_400 * 10**9


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return market_and_history(tmp_path_factory.mktemp("options"), seed=5, bars=90, history=HISTORY)


def _closed_port() -> int:
    with socket.socket() as probe:  # a port on 127.0.0.1 nothing listens on
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(market: tuple[Path, Path], root: Path, *, shift_days: int = 0, live: bool = False) -> Path:
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    shift = shift_days * DAY_NS
    config = paper_config(root / "s.toml", history, root / "journal", start + shift, end + shift, 5 * 86_400)
    if live:
        config.write_text(
            config.read_text()
            + '\n[venue]\nkind = "live"\n\n[account]\ntype = "cash"\n\n[live]\nkeys_env = "TAPE_TEST"\n'
        )
    return config


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--disconnect-every", "3"], "--disconnect-every: only with --local-exchange MARKET"),
        (["--local-fee", "0.001"], "--local-fee: only with --local-exchange MARKET"),
        (["--speed", "5", "--local-fee-in", "quote"], "--speed and --local-fee-in: only with"),
    ],
)
def test_local_exchange_options_are_refused_without_it(
    market: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    said: str,
) -> None:
    """Before, these were ignored: the session opened its journal and traded the venue on
    ``--venue-port`` (or the configured exchange) as if they had not been given."""
    config = _config(market, tmp_path)
    argv = ["paper", str(config), "--venue-port", str(_closed_port()), *options]
    assert main(argv) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert said in out and "python -m venues.local_exchange" in out, out
    assert not (tmp_path / "journal").exists()


def test_a_local_exchange_market_is_checked_before_the_journal_opens(
    market: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full, _ = market
    config = _config(market, tmp_path)
    (tmp_path / "empty").mkdir()
    assert main(["paper", str(config), "--local-exchange", str(tmp_path / "empty")]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "--local-exchange:" in out and "not a data set" in out and "internal error" not in out, out
    assert not (tmp_path / "journal").exists()
    late = _config(market, tmp_path, shift_days=400)  # the session's span after the market's last bar
    assert main(["paper", str(late), "--local-exchange", str(full)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "no bar closes between paper.start" in out and "nothing to play" in out, out
    assert not (tmp_path / "journal").exists()


def test_speed_nan_is_refused(
    market: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``nan <= 0`` is false: the player slept ``1 / nan`` s a bar, and the session stalled."""
    full, _ = market
    config = _config(market, tmp_path)
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "nan"]) == 2
    assert "--speed must be positive, got nan" in capsys.readouterr().out
    assert not (tmp_path / "journal").exists()


def test_a_live_session_is_not_resumed_on_a_new_local_exchange(
    market: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The new exchange's account holds the configured cash and nothing of the session's: the
    resume's reconciliation always found every position and the cash different, and halted."""
    monkeypatch.setenv("TAPE_TEST_API_KEY", "k")
    monkeypatch.setenv("TAPE_TEST_SECRET", "s")
    full, _ = market
    config = _config(market, tmp_path, live=True)
    assert main(["live", str(config), "--local-exchange", str(full), "--resume"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "a live session resumes against the venue it traded" in out and "--venue-port" in out, out


def test_tape_command_names_the_operator_without_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The docs' ``tape command JOURNAL halt``: with no ``$USER`` (a container, a systemd unit)
    it was refused ("name the operator"); the login name comes from the user id now."""
    journal = tmp_path / "journal"
    journal.mkdir()
    claim = SessionClaim(journal)  # a running session's mark, as the session leaves it
    claim.mark(os.getpid(), ["sma"])
    try:
        for name in ("USER", "LOGNAME", "LNAME", "USERNAME"):
            monkeypatch.delenv(name, raising=False)
        assert main(["command", str(journal), "halt"]) == 0
        (line,) = inbox_path(journal).read_text().splitlines()
        assert json.loads(line)["operator"] == getpass.getuser() != ""
        capsys.readouterr()
        assert main(["command", str(journal), "pause", "--operator", "ana"]) == 2
        out = " ".join(capsys.readouterr().out.split())
        assert "name it with --strategy ID (the session's book trades sma)" in out, out
        assert main(["command", str(journal), "halt", "--strategy", "sma", "--operator", "ana"]) == 2
        assert "leave out --strategy" in capsys.readouterr().out
        assert main(["command", str(journal), "halt", "--operator", " "]) == 2
        assert "--operator NAME" in capsys.readouterr().out
        assert len(inbox_path(journal).read_text().splitlines()) == 1  # nothing refused was written
    finally:
        claim.release()


def test_a_resume_with_another_configuration_names_what_changed(
    market: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--resume`` with a configuration file edited since the session started is refused; the
    refusal said only "written with another configuration", leaving the user to diff them."""
    full, history = market
    panel, _ = load_panel(full)
    start = int(panel.ts_ns[HISTORY])
    config = paper_config(
        tmp_path / "p.toml", history, tmp_path / "journal", start, start + 3 * DAY_NS, 432_000
    )
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "200"]) == 0
    text = config.read_text().replace("grace_s = 432000", "grace_s = 5").replace("fast = 3", "fast = 4")
    config.write_text(text)
    capsys.readouterr()
    assert main(["paper", str(config), "--local-exchange", str(full), "--resume"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "not resumed" in out and "paper.grace_s: 432000.0 -> 5.0" in out, out
    assert "strategy.params.fast: 3 -> 4" in out, out


def test_the_bar_updates_line_names_only_what_happened() -> None:
    assert bar_updates(182, 0, 0) == "182 updates"
    assert bar_updates(23, 0, 1) == "23 updates (1 waiting for a step that did not run)"
    assert bar_updates(1_230, 24, 0) == "1,230 updates (24 superseded by a later update of the same bar)"


def test_a_second_signal_does_not_rename_the_stop(market: tuple[Path, Path], tmp_path: Path) -> None:
    """Ctrl-C, then (impatient) SIGTERM while the session winds down: it said ``stopped
    (SIGTERM)``, the last signal's name, not the one that stopped it."""
    full, history = market
    panel, _ = load_panel(full)
    journal = tmp_path / "journal"
    config = paper_config(
        tmp_path / "p.toml", history, journal, int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1]), 432_000
    )
    argv = [
        sys.executable,
        "-m",
        "cli.main",
        "paper",
        str(config),
        "--local-exchange",
        str(full),
        "--speed",
        "4",
    ]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 90
        while count_events(journal, BarsReceived) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert "stopped (SIGINT)" in output and "stopped (SIGTERM)" not in output, output


def test_a_market_that_ends_before_paper_end_is_not_sent_to_resume(
    market: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The local exchange played its last bar before ``paper.end``: the session stops (exit 130,
    what arrived replays), but it told the user to ``--resume``, which starts a new exchange with
    no bar left to play and stops again."""
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1]) + 5 * DAY_NS
    config = paper_config(tmp_path / "p.toml", history, tmp_path / "journal", start, end, 432_000)
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "200"]) == 130
    out = " ".join(capsys.readouterr().out.split())
    assert "stopped (the local exchange played all its bars)" in out, out
    assert "has no bar after it, so the session cannot go on with it" in out and "--resume" not in out, out
