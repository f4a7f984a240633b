"""``tape montecarlo``: the bootstrap and the fill perturbation are reproducible from the
journal and the seed, and every perturbed run is recorded."""

from __future__ import annotations

import json
from pathlib import Path

from cli.main import main
from sim.experiments import ExperimentStore
from sim.fill_models import FillModel
from tests.factories import make_config, make_dataset, run


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
