"""``python -m venues.local_exchange`` (docs/local_exchange.md, "On its own") as a user types it:
a mistyped option or a market that is not a data set is argparse's one line and exit 2, checked
before anything listens (they were tracebacks: ``ValueError``, ``decimal.InvalidOperation``,
``ZeroDivisionError``, and a missing ``--port-file`` folder only once the server was up)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import make_dataset
from venues.local_exchange.__main__ import main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("lx") / "ds", symbols=1, bars=8, frequency="1m")


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--start", "yesterday"], "argument --start: not an ISO time: 'yesterday'"),
        (["--fee", "abc"], "argument --fee: not a number: 'abc'"),
        (["--fee", "1.5"], "argument --fee: must be in [0, 1), got 1.5"),
        (["--cash", "-5"], "argument --cash: must be at least 0, got -5"),
        (["--speed", "0"], "argument --speed: must be positive, got 0"),
        (["--speed", "nan"], "argument --speed: must be positive, got nan"),
        (["--start", "2099-01-01T00:00:00Z"], "no bar opens at or after --start"),
    ],
)
def test_a_mistyped_option_is_one_line_and_exit_2(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], said: str
) -> None:
    port = tmp_path / "port"
    with pytest.raises(SystemExit) as stop:
        main([str(dataset), "--port-file", str(port), *options])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err, err
    assert not port.exists()  # refused before it listened


def test_a_market_or_folder_that_is_not_there_is_refused(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "nothing"), "--port-file", str(tmp_path / "port")])
    assert stop.value.code == 2
    assert "not a data set (no manifest.json)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main([str(dataset), "--port-file", str(tmp_path / "p"), "--state-file", str(tmp_path / "no" / "s")])
    assert stop.value.code == 2
    assert f"no folder {tmp_path / 'no'}" in capsys.readouterr().err
