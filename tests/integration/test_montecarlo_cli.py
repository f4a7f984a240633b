"""``tape montecarlo``: the bootstrap and the fill perturbation are reproducible from the
journal and the seed, and every perturbed run is recorded."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from pathlib import Path

import pytest

from cli.main import main
from sim import montecarlo
from sim.experiments import ExperimentStore, format_metric
from sim.fill_models import FillModel
from sim.montecarlo import CELLS_MAX
from tests.factories import make_config, make_dataset, run, stop_research_runs_after


def test_montecarlo_is_reproducible_and_records_the_perturbed_runs(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "d", symbols=3, bars=250)
    config = make_config(dataset, tmp_path / "j", fill=FillModel(slippage_e8=20_000, commission_e8=100_000))
    run(config)
    argv = ["montecarlo", str(tmp_path / "j"), "--samples", "300", "--block", "10", "--seed", "5"]
    argv += ["--perturb", "3", "--slippage-bp", "0,30", "--participation", "0,50", "--workers", "1"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--json", str(tmp_path / "a.json")]) == 0
    assert main([*argv, "--out", str(tmp_path / "b"), "--json", str(tmp_path / "b.json")]) == 0
    first = json.loads((tmp_path / "a.json").read_text())
    second = json.loads((tmp_path / "b.json").read_text())
    assert first["bootstrap"] == second["bootstrap"]
    for key in ("total_return", "sharpe", "max_drawdown"):
        assert first["perturbation"][key] == second["perturbation"][key]
    boot = first["bootstrap"]["sharpe"]
    assert boot["p5"] < boot["p50"] < boot["p95"]
    with ExperimentStore(tmp_path / "a" / "experiments.sqlite") as store:
        runs = store.all()
    assert len(runs) == 3
    assert all(0 <= r.params["fill.slippage_e8"] <= 300_000 for r in runs)
    assert len({r.params["fill.slippage_e8"] for r in runs}) == 3  # three different draws
    assert not (tmp_path / "a" / "journals").exists()
    assert main(["montecarlo", str(tmp_path / "j"), "--block", "100000"]) == 2


def test_a_stopped_perturbation_resumed_ends_as_one_run_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stopped after two of four perturbed runs, ``--resume`` runs the other two and ends with
    the rows and the figures of a perturbation run through in one go; other draws (another
    seed) are refused."""
    dataset = make_dataset(tmp_path / "d", symbols=3, bars=250)
    run(make_config(dataset, tmp_path / "j", fill=FillModel(slippage_e8=20_000, commission_e8=100_000)))
    argv = ["montecarlo", str(tmp_path / "j"), "--samples", "200", "--seed", "5", "--perturb", "4",
            "--slippage-bp", "0,30", "--workers", "1", "--out", str(tmp_path / "a")]  # fmt: skip
    assert main([*argv, "--json", str(tmp_path / "whole.json")]) == 0
    whole = _rows(tmp_path / "a")
    (tmp_path / "a" / "experiments.sqlite").unlink()
    stop_research_runs_after(monkeypatch, 2)
    assert main(argv) == 130
    said = " ".join(capsys.readouterr().out.split())
    assert "2 of 4 runs recorded" in said and "--resume` runs the rest" in said
    again = said.split("`")[1]  # the command it says runs the rest: every option that shapes a figure
    assert "--samples 200" in again and "--block 20" in again and "--seed 5" in again
    monkeypatch.undo()
    assert main(["runs", str(tmp_path / "a")]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "-mc: stopped, 2 of 4 runs recorded" in said and said.count("fill perturbation") == 1, said
    assert main(argv) == 2  # the folder holds a Monte Carlo: refused without --resume
    other_seed = [*again.split()[1:], "--seed", "6"]
    capsys.readouterr()
    assert main(other_seed) == 2  # refused before any figure is printed, naming what differs
    said = capsys.readouterr().out
    assert "block bootstrap" not in said
    assert "with other options (--seed 5 then, 6 now)" in " ".join(said.split())
    assert main([*again.split()[1:], "--workers", "1", "--json", str(tmp_path / "resumed.json")]) == 0
    assert _rows(tmp_path / "a") == whole
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    assert resumed == json.loads((tmp_path / "whole.json").read_text())  # the bootstrap's too
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    assert "nothing left to run" in capsys.readouterr().out
    with sqlite3.connect(tmp_path / "a" / "experiments.sqlite") as db:
        db.execute("DELETE FROM jobs")  # as a table written before jobs were recorded
    assert main([*argv[:5], "6", *argv[6:], "--resume"]) == 2  # its runs' configurations differ
    assert "(--seed, --perturb" in " ".join(capsys.readouterr().out.split())


def test_the_table_and_the_json_read_percentiles_the_same_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each row is p5 to p95 of the figure, lowest first, as ``--json`` holds them: a drawdown is
    negative, so its p5 column is the deepest path's, the same number as the JSON's p5."""
    dataset = make_dataset(tmp_path / "d", symbols=3, bars=250)
    run(make_config(dataset, tmp_path / "j"))
    capsys.readouterr()
    argv = ["montecarlo", str(tmp_path / "j"), "--samples", "200", "--json", str(tmp_path / "m.json")]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    drawdown = json.loads((tmp_path / "m.json").read_text())["bootstrap"]["max_drawdown"]
    row = next(line for line in lines if line.strip().startswith("max drawdown")).split()[2:]
    keys = ("p5", "p25", "p50", "p75", "p95")
    assert row[:5] == [format_metric("max_drawdown", drawdown[key]) for key in keys]
    assert drawdown["p5"] < drawdown["p95"] <= 0 and row[0].startswith("-")
    header = next(line for line in lines if "median" in line).split()
    assert header[1:6] == ["p5", "p25", "median", "p75", "p95"]


def test_at_60_columns_every_figure_keeps_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 60 columns Rich squeezed the statistic column to nothing: four rows of percentiles
    with no name. The table is fitted now (a percentile that does not fit is named under it).
    The CSV is checked by test_csv_holds_the_tables_figures_as_the_json_does."""
    from cli.progress import console

    dataset = make_dataset(tmp_path / "d", symbols=3, bars=250)
    run(make_config(dataset, tmp_path / "j"))
    monkeypatch.setattr(console, "width", 60)
    capsys.readouterr()
    argv = ["montecarlo", str(tmp_path / "j"), "--samples", "200", "--json", str(tmp_path / "m.json")]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    # the "wrote PATH" line is never wrapped (a path to paste), every other line fits
    assert max(len(line) for line in lines if not line.startswith("wrote ")) <= 60
    bootstrap = json.loads((tmp_path / "m.json").read_text())["bootstrap"]
    for name, label in (
        ("total_return", "total return"),
        ("sharpe", "Sharpe"),
        ("max_drawdown", "max drawdown"),
    ):
        row = next(line for line in lines if line.startswith(label))
        assert row.split()[len(label.split()) :][:3] == [
            format_metric(name, bootstrap[name][key]) for key in ("p5", "p25", "p50")
        ]
    assert next(line for line in lines if "median" in line).split()[0] == "statistic"


def _rows(out: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(out / "experiments.sqlite") as db:
        query = "SELECT run_id, params_json, chain_head, metrics_json FROM experiments ORDER BY run_id"
        return db.execute(query).fetchall()


def test_json_to_a_dash_is_the_json_alone_on_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--json -`` (as ``tape compare``'s): the figures as JSON on stdout, the table on stderr,
    and no file called ``-`` (one was written in the current folder)."""
    dataset = make_dataset(tmp_path / "d", symbols=3, bars=250)
    run(make_config(dataset, tmp_path / "j"))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["montecarlo", str(tmp_path / "j"), "--samples", "100", "--json", "-"]) == 0
    captured = capsys.readouterr()
    figures = json.loads(captured.out)
    assert figures["bootstrap"]["samples"] == 100 and "p5" in figures["bootstrap"]["sharpe"]
    assert "block bootstrap" in captured.err
    assert not (tmp_path / "-").exists()
    assert main(["montecarlo", str(tmp_path / "j"), "--samples", "100", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out) == figures  # the same seed: the same figures


SILLY = [
    (["--perturb", "-3"], "--perturb: must be at least 0, got -3"),  # an internal error (IndexError)
    (["--perturb", "2", "--workers", "-1"], "--workers: must be at least 0, got -1"),  # ran on 1
    (["--samples", "0"], "--samples: must be at least 1, got 0"),
    (["--block", "x"], "--block: not a whole number: 'x'"),
    (["--seed", "-1"], "--seed: must be at least 0, got -1"),  # "expected non-negative integer"
]


@pytest.mark.parametrize(("flags", "said"), SILLY, ids=[" ".join(flags) for flags, _ in SILLY])
def test_silly_counts_are_refused_naming_the_option_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], said: str
) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["montecarlo", str(tmp_path / "j"), *flags, "--out", str(tmp_path / "out")])
    assert refused.value.code == 2
    assert said in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_more_paths_than_a_bootstrap_holds_are_refused_not_a_memory_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A billion paths asked for 469 GiB and ended in an internal error (exit 70); now exit 2,
    saying how many paths this run allows, and that many are drawn."""
    dataset = make_dataset(tmp_path / "d", symbols=3, bars=250)
    run(make_config(dataset, tmp_path / "j"))
    capsys.readouterr()
    assert main(["montecarlo", str(tmp_path / "j"), "--samples", "1000000000"]) == 2
    said = " ".join(capsys.readouterr().out.split())
    assert "error:" in said and "internal error" not in said and "MemoryError" not in said
    assert f"at most {CELLS_MAX // 250:,} paths for this run" in said, said
    monkeypatch.setattr(montecarlo, "CELLS_MAX", 10 * 250)  # the bound, at a size a test can run
    assert main(["montecarlo", str(tmp_path / "j"), "--samples", "11"]) == 2
    assert "at most 10 paths for this run" in " ".join(capsys.readouterr().out.split())
    assert main(["montecarlo", str(tmp_path / "j"), "--samples", "10"]) == 0


def test_csv_holds_the_tables_figures_as_the_json_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--csv`` (it had ``--json`` only): a row per experiment and figure with the JSON's
    percentiles, the run's own figure and the share of losing paths; ``-`` is stdout."""
    dataset = make_dataset(tmp_path / "d", symbols=3, bars=250)
    run(make_config(dataset, tmp_path / "j"))
    argv = ["montecarlo", str(tmp_path / "j"), "--samples", "100", "--perturb", "2", "--workers", "1"]
    argv += [
        "--out",
        str(tmp_path / "p"),
        "--json",
        str(tmp_path / "m.json"),
        "--csv",
        str(tmp_path / "m.csv"),
    ]
    assert main(argv) == 0
    figures = json.loads((tmp_path / "m.json").read_text())
    rows = list(csv.DictReader(io.StringIO((tmp_path / "m.csv").read_text())))
    assert [(row["experiment"], row["statistic"]) for row in rows] == [
        (experiment, name)
        for experiment in ("bootstrap", "perturbation")
        for name in ("total_return", "annual_return", "sharpe", "max_drawdown")
    ]
    for row in rows:
        cells = figures[row["experiment"]][row["statistic"]]
        assert [float(row[key]) for key in ("p5", "p25", "p50", "p75", "p95")] == [
            cells[key] for key in ("p5", "p25", "p50", "p75", "p95")
        ]
        assert float(row["losing_share"]) == figures[row["experiment"]]["probability"]["loss"]
    assert float(rows[2]["run"]) == figures["bootstrap"]["run"]["sharpe"]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["montecarlo", str(tmp_path / "j"), "--samples", "100", "--csv", "-"]) == 0
    captured = capsys.readouterr()
    assert captured.out == (tmp_path / "m.csv").read_text().split("perturbation")[0].rsplit("\n", 1)[0] + "\n"
    assert "block bootstrap" in captured.err and not (tmp_path / "-").exists()


def test_a_perturbation_of_runs_without_a_sharpe_prints_no_percentiles_for_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run that never trades has no Sharpe (a flat NAV), nor have its perturbed re-runs: the
    perturbation's Sharpe row has no percentiles, as the bootstrap's ("-" in the table, none in
    the JSON and the CSV), and the rest prints (it was an IndexError, exit 70)."""
    dataset = make_dataset(tmp_path / "d", symbols=2, bars=60)
    run(make_config(dataset, tmp_path / "j", params={"fast": 5, "slow": 500, "weight": 0.9}))
    argv = ["montecarlo", str(tmp_path / "j"), "--samples", "50", "--perturb", "2", "--workers", "1"]
    capsys.readouterr()
    assert main([*argv, "--json", str(tmp_path / "mc.json"), "--csv", str(tmp_path / "mc.csv")]) == 0
    figures = json.loads((tmp_path / "mc.json").read_text())
    assert figures["bootstrap"]["sharpe"] == {} and figures["perturbation"]["sharpe"] == {}
    assert figures["perturbation"]["total_return"]["p50"] == 0.0
    rows = {
        (r["experiment"], r["statistic"]): r
        for r in csv.DictReader(io.StringIO((tmp_path / "mc.csv").read_text()))
    }
    assert rows[("perturbation", "sharpe")]["p50"] == ""
    assert rows[("perturbation", "total_return")]["p50"] == "0.0"
    perturbed = capsys.readouterr().out.split("fill perturbation:")[-1]
    assert re.search(r"Sharpe( +-){5}\n", perturbed)


def test_a_perturbation_failing_before_a_run_is_recorded_leaves_no_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error (not a stop) before the first perturbed run is recorded leaves no experiments
    table: the same command runs afresh once the cause is gone (it was refused, "already holds a
    Monte Carlo")."""
    from cli import sweep_cmd
    from cli.wiring import ConfigError

    def refused(task: tuple[str, bool]) -> dict[str, object]:
        raise ConfigError("refused as it starts")

    dataset = make_dataset(tmp_path / "d", symbols=2, bars=80)
    run(make_config(dataset, tmp_path / "j"))
    argv = ["montecarlo", str(tmp_path / "j"), "--samples", "20", "--perturb", "2", "--workers", "1"]
    argv += ["--out", str(tmp_path / "mc")]
    monkeypatch.setattr(sweep_cmd, "run_point", refused)
    assert main(argv) == 2
    assert not (tmp_path / "mc").exists()
    monkeypatch.undo()
    assert main(argv) == 0
    with ExperimentStore(tmp_path / "mc" / "experiments.sqlite") as store:
        assert len(store.all()) == 2


@pytest.mark.parametrize("width", [80, 120])
def test_the_titles_and_notes_fit_the_terminal_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], width: int
) -> None:
    """The title was centred over the (65-column) table and wrapped with it, leaving ``seed 0``
    on a line of its own at 80 and at 120 columns; the note under it broke before
    ``deepest)`` at 80. Each is now a heading or note of its own, one line where it fits."""
    from cli.progress import console

    dataset = make_dataset(tmp_path / "d", symbols=3, bars=250)
    run(make_config(dataset, tmp_path / "j"))
    monkeypatch.setattr(console, "width", width)
    capsys.readouterr()
    argv = [
        "montecarlo",
        str(tmp_path / "j"),
        "--perturb",
        "2",
        "--workers",
        "1",
        "--out",
        str(tmp_path / "p"),
    ]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= width
    for start in ("block bootstrap: 1,000 paths of", "fill perturbation: 2 backtests,"):
        (title,) = [line for line in lines if line.startswith(start)]
        assert title.rstrip().endswith("seed 0"), title
    assert sum(line.rstrip().endswith("p5 is the deepest)") for line in lines) == 2
    assert sum(line.startswith("statistic ") for line in lines) == 2
