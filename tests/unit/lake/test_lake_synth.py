"""``tape synth`` refuses what it cannot make (exit 2, one line, nothing written) instead of
writing a wrong data set or stopping with an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from lake.store import DatasetError, load_panel
from lake.synth import bar_times, synth_dataset


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--symbols", "0"], "symbols must be at least 1, not 0"),  # wrote a set of 0 instruments
        (["--bars", "-5"], "bars must be at least 1, not -5"),  # wrote 3,246 sessions (sessions[:-5])
        (["--seed", "-1"], "seed must be at least 0, not -1"),  # numpy ValueError: internal error
        (["--calendar", "FOO"], "unknown calendar 'FOO'"),  # InvalidCalendarName: internal error
        (["--start", "notadate"], "start is not a date"),  # ValueError: internal error
        (["--bars", "100000"], "sessions after 2015-01-02; asked for 100,000"),
        # 2030 was refused while it was more than a year after today (the library's default span)
        (["--frequency", "1m", "--start", "2100-01-04"], "XNYS has only 0 sessions after 2100-01-04"),
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


def test_bar_times_depend_on_the_request_not_on_todays_date() -> None:
    """The calendar was built with exchange_calendars' default span, 20 years before today to a
    year after it: a start in 2000 was moved to December 2006 (the first session 20 years before
    the day the command ran) and a request reaching 2028 was refused. The span now comes from
    the start and the bars asked for."""
    _, day = bar_times("XNYS", "1d", "2000-01-03", 3)
    assert day.tolist() == [20000103, 20000104, 20000105]
    ts, day = bar_times("XNYS", "1d", "2027-12-28", 4)  # past a year from today (2026-12-07)
    assert day.tolist() == [20271228, 20271229, 20271230, 20271231]
    ts, day = bar_times("XNYS", "1m", "2000-01-03", 391)  # a session of 390 minutes, then one
    assert (day[0], day[-1], len(ts)) == (20000103, 20000104, 391)
    _, day = bar_times("XSHG", "1d", "2026-12-29", 3)  # to the calendar's last covered day
    assert day.tolist() == [20261229, 20261230, 20261231]
    with pytest.raises(DatasetError, match="XSHG has only 3 sessions after 2026-12-29; asked for 4"):
        bar_times("XSHG", "1d", "2026-12-29", 4)
