"""``tape montecarlo``: the bootstrap and the fill perturbation are reproducible from the
journal and the seed, and every perturbed run is recorded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from cli.main import main
from sim.experiments import ExperimentStore, format_metric
from sim.fill_models import FillModel
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


def test_at_60_columns_every_figure_keeps_its_name_and_the_csv_holds_them_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 60 columns Rich squeezed the statistic column to nothing: four rows of percentiles
    with no name. The table is fitted now (a percentile that does not fit is named under it),
    and --csv (it had --json only) holds every percentile, the run's own figure and the share
    of losing paths."""
    import csv

    from cli.progress import console

    dataset = make_dataset(tmp_path / "d", symbols=3, bars=250)
    run(make_config(dataset, tmp_path / "j"))
    monkeypatch.setattr(console, "width", 60)
    capsys.readouterr()
    argv = ["montecarlo", str(tmp_path / "j"), "--samples", "200", "--json", str(tmp_path / "m.json")]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 60
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
    assert main([*argv, "--csv", str(tmp_path / "m.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert [(r["section"], r["statistic"]) for r in rows] == [
        ("bootstrap", name) for name in ("total_return", "annual_return", "sharpe", "max_drawdown")
    ]
    assert all(float(r[key]) == bootstrap[r["statistic"]][key] for r in rows for key in ("p5", "p50", "p95"))
    assert float(rows[0]["loss_probability"]) == bootstrap["probability"]["loss"]


def _rows(out: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(out / "experiments.sqlite") as db:
        query = "SELECT run_id, params_json, chain_head, metrics_json FROM experiments ORDER BY run_id"
        return db.execute(query).fetchall()
