"""``tape replay J --day D`` for a day the run did not trade says which days it did."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from kernel.replay import not_a_session_day
from lake.store import load_panel
from tests.factories import make_config, make_dataset, run


def test_a_day_off_the_data_set_names_the_sessions_there_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: the demo's `--day 2015-03-03` (a day of the synth default start, not of the demo's
    data) said only `20150303 is not a session day`, in another format than the one typed and
    with no hint of the data set's days; it names them in YYYY-MM-DD, and the sessions on either
    side of a day inside the range (a weekend)."""
    data = make_dataset(tmp_path / "d", symbols=2, bars=40)
    run(make_config(data, tmp_path / "j"))
    days = [
        f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d}" for d in np.unique(load_panel(data)[0].day)
    ]
    assert main(["replay", str(tmp_path / "j"), "--day", "1999-01-01"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert (
        f"1999-01-01 is not a session day of this run's data set (its sessions run {days[0]} .. {days[-1]})"
        in out
    )
    # inside the range (a weekend of an exchange calendar): the sessions on either side
    weekdays = np.array([20240104, 20240105, 20240108, 20240109], dtype=np.int64)
    said = not_a_session_day(weekdays, 20240106)
    assert said == (
        "2024-01-06 is not a session day of this run's data set (its sessions run 2024-01-04 .. "
        "2024-01-09; nearest 2024-01-05 and 2024-01-08)"
    )
