"""``tape synth`` refuses what it cannot make (exit 2, one line, nothing written) instead of
writing a wrong data set or stopping with an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from lake.store import DatasetError, load_panel
from lake.synth import synth_dataset


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--symbols", "0"], "symbols must be at least 1, not 0"),  # wrote a set of 0 instruments
        (["--bars", "-5"], "bars must be at least 1, not -5"),  # wrote 3,246 sessions (sessions[:-5])
        (["--seed", "-1"], "seed must be at least 0, not -1"),  # numpy ValueError: internal error
        (["--calendar", "FOO"], "unknown calendar 'FOO'"),  # InvalidCalendarName: internal error
        (["--start", "notadate"], "start is not a date"),  # ValueError: internal error
        (["--bars", "100000"], "sessions after 2015-01-02; asked for 100,000"),
        (["--frequency", "1m", "--start", "2030-01-01"], "XNYS has only 0 minute bars after 2030-01-01"),
        # MemoryError (7.28 TiB): an internal error, exit 70; or a machine swapping below that
        (["--calendar", "24x7", "--bars", "1000000000000"], "is more than 50,000,000, the most"),
        (["--calendar", "24x7", "--symbols", "51", "--bars", "1000000"], "51,000,000 bars is more than"),
    ],
)
def test_synth_refuses_impossible_requests_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    out = tmp_path / "set"
    assert main(["synth", str(out), *options]) == 2
    assert message in " ".join(capsys.readouterr().out.split())
    assert not out.exists()


def test_synth_dataset_makes_exactly_the_bars_asked_for(tmp_path: Path) -> None:
    ref = synth_dataset(tmp_path / "ok", seed=3, symbols=2, bars=5)
    panel, _ = load_panel(tmp_path / "ok", expected_hash=ref.content_hash)
    assert panel.close.shape == (5, 2)
    with pytest.raises(DatasetError, match="bars must be at least 1"):
        synth_dataset(tmp_path / "none", seed=3, symbols=2, bars=0)
