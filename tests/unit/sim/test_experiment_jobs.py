"""The experiments table's jobs: what a job planned against what it recorded, so a stopped job
is told from a finished one; a table written before jobs were recorded still reads."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sim.experiments import Experiment, ExperimentStore, Job, format_metric


def _run(sweep_id: str, point: int) -> Experiment:
    return Experiment(
        run_id=f"{sweep_id}-{point:04d}", sweep_id=sweep_id, point=point, params={"fast": point},
        config_json="{}", seed=0, dataset_hash="d", engine_version="e", code_version="c",
        chain_head="h", records=1, metrics={"sharpe": 1.0}, journal="",
    )  # fmt: skip


def test_a_job_is_stopped_until_it_records_every_planned_run(tmp_path: Path) -> None:
    with ExperimentStore(tmp_path / "x.sqlite", create=True) as store:
        store.plan("s", "sweep", 3, "tape sweep s.toml --out x --resume")
        assert store.jobs() == [Job("s", "sweep", 3, "tape sweep s.toml --out x --resume", 0)]
        store.add(_run("s", 0))
        store.add(_run("s", 1))
        store.add(_run("other", 0))  # another job's run does not count
        (job,) = store.jobs()
        assert (job.recorded, job.finished) == (2, False)
        store.add(_run("s", 2))
        store.plan("s", "sweep", 3, "tape sweep s.toml --out y --resume")  # planned again on --resume
        (job,) = store.jobs()
    assert (job.recorded, job.finished, job.resume) == (3, True, "tape sweep s.toml --out y --resume")


def test_a_table_without_jobs_lists_its_runs_and_no_jobs(tmp_path: Path) -> None:
    with ExperimentStore(tmp_path / "x.sqlite", create=True) as store:
        store.add(_run("s", 0))
    with sqlite3.connect(tmp_path / "x.sqlite") as db:
        db.execute("DROP TABLE jobs")  # as an older Tape wrote it
    with ExperimentStore(tmp_path / "x.sqlite") as store:
        assert store.jobs() == []
        assert [e.run_id for e in store.all()] == ["s-0000"]


def test_a_figure_that_rounds_to_zero_prints_without_a_minus_sign() -> None:
    """An in-sample Sharpe of -1e-9 printed "-0.00" in the walk-forward table."""
    assert format_metric("sharpe", -1e-9) == "0.00"
    assert format_metric("total_return", -1e-6) == "+0.0%"
    assert format_metric("sharpe", -0.004) == "0.00" and format_metric("sharpe", -0.005) == "-0.01"
    assert format_metric("max_drawdown", -0.25) == "-25.0%"
    assert format_metric("sharpe", float("-inf")) == "-inf"
