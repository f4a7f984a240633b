"""`make demo` (the README's first command) end to end: `tape demo` generates its data, runs
the three backtests, rebuilds each SQLite ledger, reports, verifies and replays, exit 0. No
test ran it before; a Namespace the demo built by hand lacked an option a verb had come to
read, and the README's first command ended in an internal error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli.main import main as tape


def test_the_demo_runs_verifies_and_replays_its_three_backtests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "demo"
    assert tape(["demo", "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    written = re.findall(r"journal \S+/journals/(\w+): ([\d,]+) records, chain head (\w+)", out)
    assert [name for name, _, _ in written] == ["sma_minute", "momentum_daily", "two_strategies_daily"]
    verified = re.findall(r"^OK ([\d,]+) records, chain head (\w+)", out, flags=re.M)
    assert verified == [(records, head) for _, records, head in written]  # verify: the same chain
    assert out.count("replay matched the hash chain") == 3
    for name, _, _ in written:
        assert (workdir / "journals" / f"{name}.ledger.sqlite").stat().st_size > 0
