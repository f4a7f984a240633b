"""Windows and walk-forward: a run with a ``[window]`` never sees a bar past the window's end and
trades only inside it (and replays); ``tape walkforward`` picks each fold's parameters on its
training window, trades them on the test window, and records every run."""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt
import pytest

from cli.main import main
from cli.progress import console
from cli.walkforward_cmd import Fold, _best_per_fold, _print_folds, cmd_walkforward, folds
from cli.wiring import ConfigError
from domain.events import DayClosed, OrderSubmitted
from domain.market import Panel
from kernel.replay import replay
from kernel.store import open_journal
from kernel.strategy import MarketView
from lake.store import load_panel
from sim.backtest import Window, build_setup, run_backtest
from tests.factories import make_config, make_dataset, stop_research_runs_after


class Peeker:
    """Trades like a simple trend rule and remembers the latest bar it was ever shown."""

    strategy_id = "peeker"

    def __init__(self) -> None:
        self.latest_seen = 0

    def schedule(self, panel: Panel) -> npt.NDArray[np.int64]:
        self.latest_seen = max(self.latest_seen, int(panel.ts_ns[-1]))
        return np.arange(5, panel.steps, 5, dtype=np.int64)

    def decide(self, view: MarketView) -> npt.NDArray[np.float64]:
        self.latest_seen = max(self.latest_seen, int(view.panel.ts_ns[-1]))  # a planted look-ahead
        close = view.history("close", 5).astype(np.float64)
        return np.where(close[-1] > close[0], 0.2, 0.0)


def test_a_window_cuts_the_data_at_its_end_and_trades_only_inside_it(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "d", symbols=3, bars=200)
    window = Window(start="2020-03-01", end="2020-05-31")
    config = make_config(dataset, tmp_path / "j", window=window)
    peeker = Peeker()
    steps: list[tuple[int, int]] = []
    run_backtest(config, peeker, progress=lambda done, total: steps.append((done, total)))
    setup = build_setup(config, Peeker())
    end_ts = int(setup.panel.ts_ns[-1])
    assert setup.panel.day[-1] == 20200531 and setup.panel.day[setup.start_step] == 20200301
    assert peeker.latest_seen == end_ts  # the planted look-ahead saw no further than the window
    with open_journal(tmp_path / "j") as journal:
        events = [event for _, event in journal.events()]
        days = [e.day for e in events if isinstance(e, DayClosed)]
        assert days[0] == 20200301 and days[-1] == 20200531 and len(days) == 92
        assert steps[-1] == (92, 92) and {total for _, total in steps} == {92}  # progress: the window's steps
        orders = [e for e in events if isinstance(e, OrderSubmitted)]
        assert orders and all(e.ts_ns >= int(setup.panel.ts_ns[setup.start_step]) for e in orders)
        for day in (None, 20200301, 20200415):
            outcome = replay(journal, _builder(config), day=day)
            assert outcome.ok, outcome.divergence
    # The check above can fail: without the window the same strategy sees the whole data set.
    unwindowed = Peeker()
    run_backtest(make_config(dataset, tmp_path / "j2"), unwindowed)
    assert unwindowed.latest_seen > end_ts


def _builder(config):  # type: ignore[no-untyped-def]
    return lambda run, ref: build_setup(config, Peeker(), expected_hash=ref.content_hash)


def test_windows_that_hold_no_session_are_refused(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "d", symbols=2, bars=50)
    with pytest.raises(Exception, match="holds no session"):
        build_setup(make_config(dataset, tmp_path / "j", window=Window(start="2030-01-01")), Peeker())
    with pytest.raises(ValueError, match="is after end"):
        Window(start="2020-02-01", end="2020-01-01")
    with pytest.raises(ValueError, match="must be a date"):
        Window(start="March")


def test_rolling_and_anchored_folds() -> None:
    days = list(range(20200101, 20200111))  # ten sessions
    assert folds(days, 4, 2, 2, anchored=False) == [
        Fold(0, (20200101, 20200104), (20200105, 20200106)),
        Fold(1, (20200103, 20200106), (20200107, 20200108)),
        Fold(2, (20200105, 20200108), (20200109, 20200110)),
    ]
    assert [f.train for f in folds(days, 4, 2, 2, anchored=True)] == [
        (20200101, 20200104),
        (20200101, 20200106),
        (20200101, 20200108),
    ]
    with pytest.raises(ConfigError, match="hold no fold"):
        folds(days, 9, 2, 2, anchored=False)


def test_tape_walkforward_chooses_in_sample_and_trades_out_of_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _walkforward_file(tmp_path)
    assert main(["walkforward", str(path), "--workers", "1", "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "walkforward.json").read_text())
    # The stitched drawdown prints negative, as walkforward.json and every research table hold it
    # (it printed 6.14% beside tables' -4.6%).
    drawdown = report["stitched"]["stats"]["max_drawdown"]
    assert drawdown < 0
    said = " ".join(capsys.readouterr().out.split())
    assert f"max drawdown {drawdown:.2%}" in said, said
    assert len(report["folds"]) == 3  # (400 - 150) // 80
    assert len(report["stitched"]["returns"]) == 3 * 80
    with sqlite3.connect(tmp_path / "out" / "experiments.sqlite") as db:
        rows = db.execute("SELECT run_id, params_json, metrics_json, config_json FROM experiments").fetchall()
    assert len(rows) == 3 * 4 + 3
    by_id = {run_id: (json.loads(p), json.loads(m), json.loads(c)) for run_id, p, m, c in rows}
    for fold in report["folds"]:
        number = fold["fold"]
        in_sample = {k: v for k, v in by_id.items() if k.startswith(f"wf-f{number:02d}-is-")}
        best = max(in_sample.values(), key=lambda v: v[1]["sharpe"])
        assert fold["params"] == best[0]  # the best in-sample Sharpe was traded
        oos_params, _, oos_config = by_id[f"wf-f{number:02d}-oos"]
        assert oos_params == fold["params"]
        assert oos_config["window"] == {"start": fold["test"][0], "end": fold["test"][1]}
        assert all(v[2]["window"]["end"] == fold["train"][1] for v in in_sample.values())
    assert main(["runs", str(tmp_path / "out"), "--rerun", "wf-f01-oos"]) == 0


def test_the_fold_table_as_csv_and_json_in_files_and_on_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--csv PATH|-`` / ``--json [PATH|-]``, as ``tape runs`` has them (there were none): the
    CSV is the fold table (a row per fold, every figure) and the stitched line under it; the
    JSON is walkforward.json's; ``-`` puts the data alone on stdout, the tables on stderr."""
    import csv

    monkeypatch.chdir(tmp_path)
    path = _walkforward_file(tmp_path)
    out = tmp_path / "out"
    command = ["walkforward", str(path), "--workers", "1", "--out", str(out)]
    assert main([*command, "--csv", str(tmp_path / "folds.csv"), "--json", str(tmp_path / "wf.json")]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert f"wrote 3 folds to {tmp_path / 'folds.csv'}" in said
    report = json.loads((out / "walkforward.json").read_text())
    assert (tmp_path / "wf.json").read_text() == (out / "walkforward.json").read_text()
    with (tmp_path / "folds.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["fold"] for row in rows] == ["0", "1", "2", "stitched"]
    for row, fold in zip(rows, report["folds"], strict=False):
        assert [row["test_start"], row["test_end"]] == fold["test"]
        assert [row["train_start"], row["train_end"]] == fold["train"]
        assert {key: int(row[key]) for key in fold["params"]} == fold["params"]
        assert float(row["in_sample.sharpe"]) == fold["in_sample"]["sharpe"]
        for figure in ("total_return", "sharpe", "max_drawdown"):
            assert float(row[f"out_of_sample.{figure}"]) == fold["out_of_sample"][figure]
        assert row["chain_head"] == fold["chain_head"]
    stats = report["stitched"]["stats"]
    assert float(rows[-1]["out_of_sample.max_drawdown"]) == stats["max_drawdown"] < 0
    assert float(rows[-1]["out_of_sample.total_return"]) == stats["total_return"]
    # On stdout, alone: the runs are recorded, so --resume runs none of them again.
    for option, expected in (("--json", out / "walkforward.json"), ("--csv", tmp_path / "folds.csv")):
        assert main([*command, "--resume", option, "-"]) == 0
        captured = capsys.readouterr()
        assert captured.out == expected.read_text()
        assert "walk-forward folds" in captured.err and "stitched out-of-sample" in captured.err
    assert main([*command, "--resume", "--json"]) == 0  # alone: stdout, as tape runs --json
    assert json.loads(capsys.readouterr().out) == report
    assert not (tmp_path / "-").exists()


def test_a_stopped_walk_forward_resumed_ends_as_one_run_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs are recorded as they end: stopped after five of twelve in-sample runs, ``--resume``
    keeps them, runs the other seven (a journal left cut short replaced) and the out-of-sample
    runs, and ends with the rows and the report of a walk-forward run through in one go; so
    does one stopped after the first out-of-sample run, whose row and NAVs are kept."""
    path = _walkforward_file(tmp_path, "keep_journals = true\n")
    out = tmp_path / "out"
    command = ["walkforward", str(path), "--workers", "1", "--out", str(out)]
    assert main(command) == 0
    whole = _experiment_rows(out)
    report = (out / "walkforward.json").read_text()
    shutil.rmtree(out)

    stop_research_runs_after(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        cmd_walkforward(_namespace(path, out, resume=False))
    said = " ".join(capsys.readouterr().out.split())
    assert "5 of 15 runs recorded" in said and "--resume` runs the rest" in said
    assert len(_experiment_rows(out)) == 5
    shutil.copytree(out / "journals" / "wf-f00-is-0000", out / "journals" / "wf-f01-is-0001")  # cut short
    monkeypatch.undo()

    assert main(command) != 0  # the folder holds a walk-forward: refused without --resume
    assert "--resume runs what it has not recorded" in " ".join(capsys.readouterr().out.split())
    assert main(["runs", str(out)]) == 0  # 12 in-sample runs and 3 out-of-sample runs planned
    assert "walk-forward wf-wf: stopped, 5 of 15 runs recorded" in " ".join(capsys.readouterr().out.split())
    assert main([*command, "--resume"]) == 0
    assert _experiment_rows(out) == whole
    capsys.readouterr()
    assert main(["runs", str(out)]) == 0
    assert "walk-forward wf-wf: finished, all 15 runs recorded" in capsys.readouterr().out
    assert (out / "walkforward.json").read_text() == report
    shutil.rmtree(out)
    stop_research_runs_after(monkeypatch, 13)  # the 12 in-sample runs and the first out-of-sample run
    with pytest.raises(KeyboardInterrupt):
        cmd_walkforward(_namespace(path, out, resume=False))
    assert "13 of 15 runs recorded" in " ".join(capsys.readouterr().out.split())
    monkeypatch.undo()
    stop_research_runs_after(monkeypatch, 2)  # the resumed job runs only the last two
    assert main([*command, "--resume"]) == 0
    monkeypatch.undo()
    said = capsys.readouterr()  # the progress bar's label: on stderr
    assert "3 out-of-sample runs (2 left)" in " ".join((said.out + said.err).split())
    assert _experiment_rows(out) == whole
    assert (out / "walkforward.json").read_text() == report
    other = tmp_path / "other.toml"
    other.write_text(path.read_text().replace("weight = 0.9", "weight = 0.8"))
    with pytest.raises(ConfigError, match="another configuration"):
        cmd_walkforward(_namespace(other, out, resume=True))


def test_out_of_sample_rows_without_their_navs_run_again_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finished walk-forward resumed runs nothing; one whose out-of-sample rows lack their
    daily NAVs (as an older Tape recorded them) runs those three again, to the same rows and
    report."""
    monkeypatch.chdir(tmp_path)
    path = _walkforward_file(tmp_path)
    out = tmp_path / "out"
    command = ["walkforward", str(path), "--workers", "1", "--out", str(out)]
    assert main(command) == 0
    whole, report = _experiment_rows(out), (out / "walkforward.json").read_text()
    stop_research_runs_after(monkeypatch, 0)  # any run at all would stop it
    assert main([*command, "--resume"]) == 0
    assert (out / "walkforward.json").read_text() == report
    monkeypatch.undo()
    with sqlite3.connect(out / "experiments.sqlite") as db:
        db.execute("DELETE FROM navs")
    stop_research_runs_after(monkeypatch, 3)
    capsys.readouterr()
    assert main([*command, "--resume"]) == 0
    said = capsys.readouterr()  # the progress bar's label: on stderr
    assert "3 out-of-sample runs (3 left)" in " ".join((said.out + said.err).split())
    assert _experiment_rows(out) == whole
    assert (out / "walkforward.json").read_text() == report


def test_a_window_in_the_walk_forward_toml_bounds_the_folds(tmp_path: Path) -> None:
    """A ``[window]`` in the base TOML was ignored: the folds covered the whole data set."""
    path = _walkforward_file(tmp_path)
    days = sorted(set(load_panel(tmp_path / "data")[0].day.tolist()))
    start, end = days[40], days[339]  # 300 sessions: one fold of 150 + 80, whole
    text = path.read_text().replace(
        "[strategy]", f'[window]\nstart = "{_dash(start)}"\nend = "{_dash(end)}"\n[strategy]', 1
    )
    path.write_text(text)
    assert main(["walkforward", str(path), "--workers", "1", "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "walkforward.json").read_text())
    assert [(f["train"], f["test"]) for f in report["folds"]] == [
        ([_dash(days[40]), _dash(days[189])], [_dash(days[190]), _dash(days[269])])
    ]
    path.write_text(text.replace(f'end = "{_dash(end)}"', 'end = "1990-01-01"').replace(
        f'start = "{_dash(start)}"', 'start = "1989-01-01"'))  # fmt: skip
    assert main(["walkforward", str(path), "--workers", "1", "--out", str(tmp_path / "out2")]) == 2


def _dash(day: int) -> str:
    return f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"


def _walkforward_file(tmp_path: Path, extra: str = "") -> Path:
    """3 names x 400 sessions; 3 folds (train 150, test 80) of a 2 x 2 grid."""
    make_dataset(tmp_path / "data", symbols=3, bars=400)
    path = tmp_path / "wf.toml"
    path.write_text(
        'run_id = "wf"\ndataset = "data"\njournal = "journals/base"\n'
        '[strategy]\nname = "sma_crossover"\nparams = { fast = 10, slow = 30, weight = 0.9 }\n'
        f"[walkforward]\ntrain_days = 150\ntest_days = 80\n{extra}"
        'grid = { "strategy.params.fast" = [5, 15], "strategy.params.slow" = [30, 60] }\n'
    )
    return path


def _namespace(path: Path, out: Path, *, resume: bool) -> argparse.Namespace:
    return argparse.Namespace(
        config=str(path), workers=1, out=str(out), ray=None, resume=resume, json=None, csv=None
    )


def _experiment_rows(out: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(out / "experiments.sqlite") as db:
        return db.execute(
            "SELECT run_id, chain_head, metrics_json, config_json FROM experiments ORDER BY run_id"
        ).fetchall()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('anchored = "false"', "walkforward.anchored must be true or false, got 'false'"),
        ("anchored = 1", "walkforward.anchored must be true or false, got 1"),
        ("step_days = 80.5", "walkforward.step_days must be a whole number of sessions, got 80.5"),
        ('step_days = "80"', "walkforward.step_days must be a whole number of sessions, got '80'"),
        ("step_days = true", "walkforward.step_days must be a whole number of sessions, got True"),
    ],
)
def test_a_fold_shape_of_the_wrong_type_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    """Not read as something else (``bool("false")`` is true, ``int(80.5)`` is 80): exit 2, one
    line naming the key, before anything runs."""
    path = _walkforward_file(tmp_path, line + "\n")
    assert main(["walkforward", str(path), "--workers", "1", "--out", str(tmp_path / "out")]) == 2
    said = capsys.readouterr()
    assert message in " ".join((said.out + said.err).split())
    assert not (tmp_path / "out").exists()
    path.write_text(path.read_text().replace(line, "").replace("train_days = 150", "train_days = 150.5"))
    assert main(["walkforward", str(path), "--workers", "1", "--out", str(tmp_path / "out")]) == 2
    said = capsys.readouterr()
    assert "walkforward.train_days must be a whole number of sessions, got 150.5" in said.out + said.err


def test_a_fold_chooses_by_the_metrics_better_direction_and_prints_it_by_its_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ranked by volatility, the lowest in-sample volatility is traded (a run without the figure
    never wins), and the IS column reads it as a percentage, as every research table does."""
    dataset = make_dataset(tmp_path / "d", symbols=2, bars=50)
    fold = Fold(0, (20200101, 20200104), (20200105, 20200106))
    in_sample = [(fold, index, make_config(dataset, tmp_path / f"j{index}")) for index in range(3)]
    vols = [0.31, 0.07, None]
    metrics = {f"r{i}": {"annual_volatility": vol} for i, vol in enumerate(vols)}
    in_sample = [(fold, i, msgspec.structs.replace(config, run_id=f"r{i}")) for fold, i, config in in_sample]
    best = _best_per_fold(in_sample, metrics, "annual_volatility")
    assert best[0][0] == 1
    monkeypatch.setattr(console, "width", 80)
    oos = [{"metrics": {"total_return": 0.1, "sharpe": 1.25}}]
    _print_folds([fold], [{"strategy.params.fast": 5}], [best[0][1]], oos, "annual_volatility")
    out = capsys.readouterr().out
    assert "7.0%" in out and "0.07" not in out and "fast=5" in out and "1.25" in out
    lines = out.splitlines()  # every column kept at 80: the header "IS volatility" wraps by word
    under = next(i for i, line in enumerate(lines) if line.startswith("fold"))
    end = lines[under].index("volatility") + len("volatility")
    assert lines[under - 1][:end].rstrip().endswith("IS"), out


def test_at_60_columns_the_test_window_wraps_before_a_figure_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """At 60 columns the fold table kept its test window on one line and dropped the
    out-of-sample Sharpe; the window now wraps after its '..' (two whole dates) and every figure
    stays."""
    dataset = make_dataset(tmp_path / "d", symbols=2, bars=50)
    fold = Fold(0, (20200101, 20200104), (20200105, 20200106))
    config = msgspec.structs.replace(make_config(dataset, tmp_path / "j"), run_id="r0")
    best = _best_per_fold([(fold, 0, config)], {"r0": {"sharpe": 0.91}}, "sharpe")
    monkeypatch.setattr(console, "width", 60)
    oos = [{"metrics": {"total_return": 0.1, "sharpe": 1.25}}]
    _print_folds(
        [fold], [{"strategy.params.fast": 5, "strategy.params.slow": 30}], [best[0][1]], oos, "sharpe"
    )
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 60 and not any("not shown" in line for line in lines)
    row = next(i for i, line in enumerate(lines) if line.startswith("0 "))
    assert lines[row].split() == ["0", "2020-01-05..", "fast=5", "0.91", "+10.0%", "1.25"]
    assert lines[row + 1].split() == ["2020-01-06", "slow=30"]


def test_a_walk_forward_failing_before_a_run_is_recorded_leaves_nothing_one_after_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error (not a stop) before the first run is recorded leaves no experiments table
    behind: the same command runs afresh once the cause is gone (it was refused, "already holds
    a walk-forward"). After some runs are recorded the table keeps them for ``--resume``."""
    from cli import sweep_cmd

    path = _walkforward_file(tmp_path)
    out = tmp_path / "out"
    run_point, started = sweep_cmd.run_point, []

    def failing_after(runs: int):  # type: ignore[no-untyped-def]
        def point(task: tuple[str, bool]) -> dict[str, object]:
            started.append(task)
            if len(started) > runs:
                raise ConfigError("refused as it starts")
            return run_point(task)

        return point

    command = ["walkforward", str(path), "--workers", "1", "--out", str(out)]
    monkeypatch.setattr(sweep_cmd, "run_point", failing_after(0))
    assert main(command) == 2
    assert not out.exists()
    started.clear()
    monkeypatch.setattr(sweep_cmd, "run_point", failing_after(2))
    assert main(command) == 2
    assert len(_experiment_rows(out)) == 2
    monkeypatch.undo()
    assert main([*command, "--resume"]) == 0
    assert len(_experiment_rows(out)) == 15
