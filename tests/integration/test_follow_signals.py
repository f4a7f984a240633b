"""``tape projections follow`` stops on Ctrl-C or SIGTERM (the normal ways to stop it) at a
checkpoint, says where, and exits 130 — no KeyboardInterrupt traceback; the ledger it leaves
audits clean."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.main import main
from tests.factories import make_config, make_dataset, run


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_follow_stops_at_a_checkpoint_on_a_signal(tmp_path: Path, stop: signal.Signals) -> None:
    dataset = make_dataset(tmp_path / "d", symbols=2, bars=120)
    run(make_config(dataset, tmp_path / "j"))
    ledger = tmp_path / "ledger.sqlite"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "projections", "follow", str(tmp_path / "j"), "--db", str(ledger),
         "--poll-s", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not ledger.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)  # caught up by now: it is polling
    process.send_signal(stop)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    assert "stopped at checkpoint seq" in output
    assert main(["audit", str(tmp_path / "j"), "--db", str(ledger)]) == 0
