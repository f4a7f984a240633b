"""A paper / live session as an operator runs it (QA): one session per journal (a second
``tape paper`` on the journal of a running one, fresh or ``--resume``, is refused before it opens
the journal); a ``pause`` naming a strategy the book does not hold is refused by ``tape command`` (the
session's mark names the book's strategies) and, written to the inbox anyway, by the session as a
bad command, said on its output; a stopped session's progress bar stops where it did, its last line
names the verb that carries it on, and the resumed session's summary counts the refusals
journaled before the stop (``received = accepted + quarantined`` over the whole session)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.main import main
from domain.events import BarsReceived, InputQuarantined
from kernel.operator_inbox import (
    SessionClaim,
    SessionRunning,
    inbox_path,
    running_session,
    session_path,
    session_strategies,
)
from kernel.store import open_journal
from lake.store import load_panel
from tests.factories import count_events, market_and_history, paper_config

HISTORY = 60
KEY = "CANARY-KEY-guard"
SECRET = "CANARY-SECRET-guard"


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return market_and_history(tmp_path_factory.mktemp("guard"), seed=5, bars=150, history=HISTORY)


def _start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )  # fmt: skip


def _wait(journal: Path, bars: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while (running_session(journal) != process.pid or count_events(journal, BarsReceived) < bars) and (
        time.monotonic() < deadline and process.poll() is None
    ):
        time.sleep(0.1)
    assert running_session(journal) == process.pid


def _bar(output: str, verb: str) -> tuple[int, int]:
    """The session's progress bar as it was left: (done, total)."""
    (line,) = [line for line in output.splitlines() if line.startswith(verb) and "━" in line]
    done, total = re.search(r"(\d+)/(\d+)", line).groups()  # type: ignore[union-attr]
    return int(done), int(total)


def test_one_session_per_journal_and_a_bad_pause(
    market: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full, history = market
    panel, _ = load_panel(full)
    journal = tmp_path / "journal"
    config = paper_config(
        tmp_path / "paper.toml", history, journal, int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1]), 5 * 86_400
    )
    process = _start(["paper", str(config), "--local-exchange", str(full), "--speed", "6"])
    try:
        _wait(journal, 5, process)
        for again in (["--resume"], []):  # a second writer: refused before the journal is opened
            assert main(["paper", str(config), "--local-exchange", str(full), *again]) == 2
            out = capsys.readouterr().out
            assert f"a session (pid {process.pid}) is writing this journal already" in out, out
        assert running_session(journal) == process.pid  # the running session's mark is kept
        # tape command knows the running book's strategies (its mark names them): refused there
        assert session_strategies(journal) == ("sma",)
        argv = ["command", str(journal), "pause", "--strategy", "nobody", "--operator", "ana"]
        assert main(argv) == 2
        out = " ".join(capsys.readouterr().out.split())
        assert "'nobody' is no strategy of the running session's book: it trades sma" in out, out
        assert not inbox_path(journal).exists()  # nothing sent
        with inbox_path(journal).open("a") as inbox:  # tape command's line, naming no strategy of the book
            inbox.write(json.dumps({"command": "pause", "operator": "ana", "strategy": "nobody"}) + "\n")
        deadline = time.monotonic() + 30
        while count_events(journal, InputQuarantined) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert "operator ana: pause refused (BAD_COMMAND)" in output and "'nobody'" in output
    assert "carry the session on with tape paper --resume" in output
    done, total = _bar(output, "paper")
    assert 0 < done < total, output  # the bar says where it stopped, not that it finished
    assert not session_path(journal).exists() and running_session(journal) is None
    with open_journal(journal) as store:
        (refused,) = [e for _, e in store.events() if isinstance(e, InputQuarantined)]
    assert refused.reason == "BAD_COMMAND"
    # The same command without --resume is refused, naming the way on (not "choose a new path" only).
    assert main(["paper", str(config), "--local-exchange", str(full)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "of a session that did not finish: carry it on with tape paper --resume" in out, out
    # Carried on: the summary counts the refusal journaled before the stop.
    assert main(["paper", str(config), "--local-exchange", str(full), "--speed", "200", "--resume"]) == 0
    out = capsys.readouterr().out
    summary = re.search(r"(\d+) received = (\d+) accepted \+ (\d+) quarantined \(([^)]*)\)", out)
    assert summary is not None, out
    received, accepted, quarantined = (int(x) for x in summary.groups()[:3])
    assert (quarantined, summary.group(4)) == (1, "BAD_COMMAND 1"), out
    assert received == accepted + quarantined and accepted == int(panel.valid[HISTORY:].sum())
    # A finished session is not carried on: the refusal does not send the user to --resume.
    assert main(["paper", str(config), "--local-exchange", str(full)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "already holds a finished session" in out and "--resume" not in out, out


def test_a_killed_sessions_mark_does_not_hold_the_next(tmp_path: Path) -> None:
    """The claim is a lock the process holds, not the file: a mark left by a session that was
    killed (its process id possibly another process's now) does not refuse the next one."""
    journal = tmp_path / "journal"
    session_path(journal).write_text(f"{os.getpid()}\n")  # a live process id, as a reused one
    claim = SessionClaim(journal)
    assert running_session(journal) is None  # the stale id is not taken for a session
    with pytest.raises(SessionRunning):
        SessionClaim(journal)  # this process's own second claim, from another descriptor
    claim.mark(4242)
    assert session_path(journal).read_text() == "4242\n"
    claim.release()
    assert not session_path(journal).exists()
    SessionClaim(journal).release()


def test_a_stopped_live_session_on_the_local_exchange_is_not_sent_to_resume(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    full, history = market
    panel, _ = load_panel(full)
    journal = tmp_path / "journal"
    config = paper_config(
        tmp_path / "live.toml", history, journal, int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1]), 5 * 86_400
    )
    config.write_text(
        config.read_text().replace('run_id = "paper-local"', 'run_id = "live-local"')
        + '\n[venue]\nkind = "live"\n\n[account]\ntype = "cash"\n\n[live]\nkeys_env = "TAPE_TEST"\n'
    )
    keys = {"TAPE_TEST_API_KEY": KEY, "TAPE_TEST_SECRET": SECRET}
    process = _start(["live", str(config), "--local-exchange", str(full), "--speed", "6"], keys)
    try:
        _wait(journal, 3, process)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    # Its local exchange (and the account there) ended with it: not resumed, which
    # tape live --resume --local-exchange refuses; --venue-port trades one that outlives it.
    said = " ".join(output.split())
    assert "a live session on --local-exchange is not resumed" in said and "--venue-port" in said, output
    assert "tape paper --resume" not in output
