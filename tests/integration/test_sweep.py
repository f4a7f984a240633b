"""``tape sweep`` and ``tape runs``: every point a full, recorded backtest; results identical
on one worker and on several; any run re-run (or its kept journal replayed) to its chain head."""

from __future__ import annotations

import argparse
import csv
import io
import json
import shlex
import shutil
import sqlite3
from pathlib import Path

import msgspec
import pytest

from cli.main import main
from cli.progress import console
from cli.sweep_cmd import Range, SweepSpec, WorkerCache, cmd_sweep, ranked, set_dotted, sweep_points
from cli.wiring import ConfigError, load_config
from sim.experiments import ExperimentStore, short_names
from tests.factories import make_dataset, record_experiments, stop_research_runs_after

BASE = """
run_id = "sweep-test"
dataset = "data"
journal = "journals/base"

[strategy]
name = "sma_crossover"
params = {{ fast = 10, slow = 30, weight = 0.9 }}

[fill]
commission_e8 = 100_000

[sweep]
{sweep}
"""
GRID = 'grid = { "strategy.params.fast" = [5, 10], "strategy.params.slow" = [20, 40] }'


def _sweep_file(tmp_path: Path, sweep: str = GRID) -> Path:
    if not (tmp_path / "data").exists():
        make_dataset(tmp_path / "data", symbols=3, bars=200)
    path = tmp_path / "sweep.toml"
    path.write_text(BASE.format(sweep=sweep))
    return path


def _sweep(path: Path, out: Path, *, resume: bool = False) -> int:
    """``tape sweep`` without the CLI's error handler, so a refusal raises."""
    return cmd_sweep(
        argparse.Namespace(config=str(path), workers=1, out=str(out), top=20, ray=None, resume=resume)
    )


def _rows(db: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT run_id, params_json, chain_head, metrics_json FROM experiments ORDER BY point"
        ).fetchall()


def test_a_grid_gives_the_same_runs_on_one_worker_and_on_two(tmp_path: Path) -> None:
    path = _sweep_file(tmp_path)
    assert main(["sweep", str(path), "--workers", "1", "--out", str(tmp_path / "one")]) == 0
    assert main(["sweep", str(path), "--workers", "2", "--out", str(tmp_path / "two")]) == 0
    one, two = _rows(tmp_path / "one" / "experiments.sqlite"), _rows(tmp_path / "two" / "experiments.sqlite")
    assert len(one) == 4
    # The journal path is part of a run's configuration, so the two sweeps' chains differ by it;
    # the metrics are the same, run for run.
    assert [(r[0], r[1], r[3]) for r in one] == [(r[0], r[1], r[3]) for r in two]
    assert len({r[2] for r in one}) == 4
    assert not (tmp_path / "one" / "journals").exists()  # journals not kept by default


def test_the_same_sweep_twice_gives_the_same_chain_heads(tmp_path: Path) -> None:
    path = _sweep_file(tmp_path)
    assert main(["sweep", str(path), "--workers", "2", "--out", str(tmp_path / "s")]) == 0
    first = _rows(tmp_path / "s" / "experiments.sqlite")
    (tmp_path / "s" / "experiments.sqlite").rename(tmp_path / "first.sqlite")
    assert main(["sweep", str(path), "--workers", "1", "--out", str(tmp_path / "s")]) == 0
    assert _rows(tmp_path / "s" / "experiments.sqlite") == first


def test_a_recorded_run_reruns_to_its_chain_head_and_a_kept_journal_replays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _sweep_file(tmp_path)
    assert main(["sweep", str(path), "--workers", "1", "--out", str(tmp_path / "s")]) == 0
    assert main(["runs", str(tmp_path / "s"), "--rerun", "sweep-test-0002"]) == 0
    assert "reproduced sweep-test-0002 (ran it again)" in capsys.readouterr().out
    kept = _sweep_file(tmp_path, GRID + "\nkeep_journals = true")
    assert main(["sweep", str(kept), "--workers", "1", "--out", str(tmp_path / "k")]) == 0
    assert (tmp_path / "k" / "journals" / "sweep-test-0003").is_dir()
    assert main(["runs", str(tmp_path / "k"), "--rerun", "sweep-test-0003"]) == 0
    assert "reproduced sweep-test-0003 (replayed its journal)" in capsys.readouterr().out
    with sqlite3.connect(tmp_path / "s" / "experiments.sqlite") as connection:
        connection.execute("UPDATE experiments SET chain_head = 'x' WHERE run_id = 'sweep-test-0001'")
    assert main(["runs", str(tmp_path / "s"), "--rerun", "sweep-test-0001"]) == 1


def test_a_stopped_sweep_resumed_records_what_one_run_through_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stopped after two of four runs (a Ctrl-C in the sweep's process), with the third run's
    journal left cut short: ``--resume`` keeps the two recorded runs, runs the other two (the
    stale journal replaced), and the table ends as a sweep run through in one go: the same
    rows, chain heads included (same --out, so the same journal paths in the configurations)."""
    path = _sweep_file(tmp_path, GRID + "\nkeep_journals = true")
    out = tmp_path / "s"
    assert _sweep(path, out) == 0
    whole = _rows(out / "experiments.sqlite")
    shutil.rmtree(out)

    stop_research_runs_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        _sweep(path, out)
    said = capsys.readouterr().out
    assert "2 of 4 runs recorded" in said and "--resume` runs the rest" in " ".join(said.split())
    assert [r[0] for r in _rows(out / "experiments.sqlite")] == ["sweep-test-0000", "sweep-test-0001"]
    shutil.copytree(out / "journals" / "sweep-test-0000", out / "journals" / "sweep-test-0002")  # cut short
    monkeypatch.undo()
    assert main(["runs", str(out)]) == 0  # the table tells a stopped sweep from a finished one
    listed = "".join(capsys.readouterr().out.split())  # a long path is folded anywhere
    again = f"tape sweep {path} --out {out} --resume"
    said = f"sweep sweep-test: stopped, 2 of 4 runs recorded; `{again}` runs the rest"
    assert "".join(said.split()) in listed

    with pytest.raises(ConfigError, match="--resume runs what it has not recorded"):
        _sweep(path, out)
    assert _sweep(path, out, resume=True) == 0
    assert _rows(out / "experiments.sqlite") == whole
    assert main(["runs", str(out), "--rerun", "sweep-test-0002"]) == 0  # its new journal replays
    capsys.readouterr()
    assert main(["runs", str(out)]) == 0
    assert "sweep sweep-test: finished, all 4 runs recorded" in capsys.readouterr().out
    assert _sweep(path, out, resume=True) == 0
    assert "nothing left to run" in capsys.readouterr().out
    assert _rows(out / "experiments.sqlite") == whole


def test_resume_refuses_a_sweep_that_changed(tmp_path: Path) -> None:
    """What a stopped sweep recorded ranks with the rest only if it is the same sweep: another
    grid, data set or journal setting is refused with the reason, and nothing is run."""
    path = _sweep_file(tmp_path)
    out = tmp_path / "s"
    with pytest.raises(ConfigError, match="no sweep to resume"):
        _sweep(path, out, resume=True)
    assert _sweep(path, out) == 0
    recorded = _rows(out / "experiments.sqlite")
    other = tmp_path / "other.toml"
    other.write_text(path.read_text().replace("weight = 0.9", "weight = 0.8"))
    with pytest.raises(ConfigError, match="another configuration"):
        _sweep(other, out, resume=True)
    other.write_text(path.read_text().replace('run_id = "sweep-test"', 'run_id = "x"'))
    with pytest.raises(ConfigError, match="holds 'sweep-test', not 'x'"):
        _sweep(other, out, resume=True)
    kept = _sweep_file(tmp_path, GRID + "\nkeep_journals = true")
    with pytest.raises(ConfigError, match="keep_journals is true now"):
        _sweep(kept, out, resume=True)
    _sweep_file(tmp_path)  # the plain grid again
    shutil.rmtree(tmp_path / "data")
    make_dataset(tmp_path / "data", symbols=3, bars=210)
    with pytest.raises(ConfigError, match="changed since run sweep-test-0000 read it"):
        _sweep(path, out, resume=True)
    assert _rows(out / "experiments.sqlite") == recorded


def test_a_random_search_is_reproducible_from_its_seed(tmp_path: Path) -> None:
    spec = SweepSpec(samples=5, seed=11, space={"a": [1, 2, 3]})
    assert sweep_points(spec) == sweep_points(SweepSpec(samples=5, seed=11, space={"a": [1, 2, 3]}))
    floats = 'samples = 2\nspace = { "fill.slippage_e8" = { low = 0.5, high = 2.5 } }'
    with pytest.raises(ConfigError, match="slippage_e8"):  # a float where the config needs an int
        _sweep(_sweep_file(tmp_path, floats), tmp_path / "bad")
    space = (
        'samples = 5\nseed = 11\nspace = { "strategy.params.fast" = { low = 2, high = 9 }, '
        '"strategy.params.weight" = [0.5, 0.9] }'
    )
    path = _sweep_file(tmp_path, space)
    assert main(["sweep", str(path), "--workers", "1", "--out", str(tmp_path / "r")]) == 0
    with ExperimentStore(tmp_path / "r" / "experiments.sqlite") as store:
        runs = store.all()
    assert len(runs) == 5
    assert all(2 <= run.params["strategy.params.fast"] <= 9 for run in runs)
    assert all(run.metrics["finished"] for run in runs)
    assert all(run.dataset_hash and run.code_version.startswith("tape ") for run in runs)


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ('grid = { "a" = [1] }\nspace = { "b" = [1] }\nsamples = 1', "one of them"),
        ('space = { "b" = [1] }', "positive number of samples"),
        ('grid = { "strategy.params.fast" = [] }', "no values"),
        ('grid = { "strategy.params.fast" = [5] }\nrank_by = "luck"', "rank_by must be one of"),
        ('grid = { "strategy.params.fast" = [50] }', "need 0 < fast < slow"),
        ('grid = { "strategies.3.budget" = ["0.5"] }', "is not an index"),
        ('grid = { "strategy.params.fast" = [5, 10, 5] }', "strategy.params.fast: 5 is given more than once"),
        ('grid = { "foo.bar" = [1] }', "unknown field `foo` (at the sweep point foo.bar = 1: a sweep key is"),
        ('grid = { "strategy.params.fst" = [5] }', "no parameter 'fst'; it takes fast, slow, weight"),
        # samples and seed beside a grid were ignored: the grid ran, not the draws asked for
        ('grid = { "strategy.params.fast" = [5] }\nsamples = 3', "a grid runs every point it lists"),
        ('grid = { "strategy.params.fast" = [5] }\nseed = 7', "a grid runs every point it lists"),
    ],
)
def test_sweeps_that_cannot_run_say_why_before_running(tmp_path: Path, sweep: str, message: str) -> None:
    path = _sweep_file(tmp_path, sweep)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _sweep(path, tmp_path / "x")
    assert not (tmp_path / "x" / "experiments.sqlite").exists()


def test_dotted_keys_reach_into_tables_and_lists() -> None:
    raw: dict[str, object] = {"strategies": [{"params": {}}, {"params": {}}]}
    set_dotted(raw, "strategies.1.params.fast", 7)
    set_dotted(raw, "fill.slippage_e8", 3)
    assert raw == {"strategies": [{"params": {}}, {"params": {"fast": 7}}], "fill": {"slippage_e8": 3}}


@pytest.mark.ray
def test_a_sweep_on_a_local_ray_cluster_gives_the_same_chain_heads(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the Ray runner needs the ray extra: pip install 'tape[ray]'")
    path = _sweep_file(tmp_path)
    assert main(["sweep", str(path), "--workers", "1", "--out", str(tmp_path / "s")]) == 0
    local = _rows(tmp_path / "s" / "experiments.sqlite")
    (tmp_path / "s" / "experiments.sqlite").rename(tmp_path / "local.sqlite")
    assert main(["sweep", str(path), "--ray", "local", "--out", str(tmp_path / "s")]) == 0
    assert _rows(tmp_path / "s" / "experiments.sqlite") == local  # byte for byte: same chain heads


def test_a_worker_reads_the_data_set_once_and_again_when_its_manifest_changes(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", seed=3, symbols=3, bars=120)
    cache = WorkerCache()
    first = cache.panel(data)
    assert cache.panel(data) is first  # the same panel for the next run
    assert not first.close.flags.writeable and not first.last_close.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        first.close[0, 0] = 1  # no run can change what the next one reads
    # The data set rewritten during the sweep (a new manifest): read again, from the new bytes.
    other = make_dataset(tmp_path / "other", seed=4, symbols=3, bars=120)
    data.rename(tmp_path / "old")
    other.rename(data)
    second = cache.panel(data)
    assert second is not first
    assert (second.close != first.close).any()


def test_a_worker_scans_the_installed_strategies_again_for_a_name_it_does_not_know(tmp_path: Path) -> None:
    config = load_config(_sweep_file(tmp_path))
    cache = WorkerCache()
    installed = cache.installed(config)
    assert "sma_crossover" in installed
    assert cache.installed(config) is installed  # scanned once
    renamed = msgspec.structs.replace(
        config, strategy=msgspec.structs.replace(config.strategy, name="not_installed")
    )
    assert cache.installed(renamed) is not installed  # scanned again (and still without it)


def _recorded(tmp_path: Path) -> Path:
    """Four recorded runs of a grid whose parameters share their last part (two risk limits)
    and carry long numbers (participation caps in 1e-8), with volatilities to rank by."""
    rows = [
        ({"risk.name.limit_e8": name, "risk.sector.limit_e8": sector, "fill.participation_e8": part},
         {"sharpe": sharpe, "total_return": 0.1, "max_drawdown": drawdown, "trades": 89,
          "annual_volatility": vol, "fees": 22157.71})
        for name, sector, part, sharpe, drawdown, vol in [
            (20_000_000, 20_000_000, 4_046_008, 0.9, -0.21, 0.31),
            (20_000_000, 30_000_000, 1_148_749, 0.5, -0.07, 0.07),
            (30_000_000, 20_000_000, 3_428_080, 0.7, -0.12, 0.12),
            (30_000_000, 30_000_000, 9_999_999, 0.1, -0.30, 0.45),
        ]
    ]  # fmt: skip
    return record_experiments(tmp_path / "experiments.sqlite", "qa", rows)


@pytest.mark.parametrize("width", [80, 60, 120])
def test_the_ranked_table_fits_the_terminal_and_never_splits_a_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], width: int
) -> None:
    """Parameters wrap between parameters, each named by its shortest unambiguous name; figures
    that do not fit are dropped and named, never cut."""
    monkeypatch.setattr(console, "width", width)
    assert main(["runs", str(_recorded(tmp_path))]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= width for line in lines), out
    words = out.split()
    for part in (4_046_008, 1_148_749, 3_428_080, 9_999_999):
        assert f"participation_e8={part}" in words, out  # whole, on one line
    assert "name.limit_e8=20000000" in words and "sector.limit_e8=30000000" in words
    assert "limit_e8=20000000" not in words  # no two parameters read the same
    assert "…" not in out
    if width < 80:
        assert "not shown at this width:" in out


def test_ranking_follows_each_metrics_better_direction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Volatility and fees rank lowest first, drawdown (negative) nearest zero first, Sharpe
    highest first; the table shows the figure it ranks by, formatted by its kind."""
    monkeypatch.setattr(console, "width", 120)
    db = _recorded(tmp_path)
    order = {}
    for metric in ("annual_volatility", "max_drawdown", "sharpe"):
        assert main(["runs", str(db), "--rank-by", metric]) == 0
        out = capsys.readouterr().out
        order[metric] = [line.split()[1] for line in out.splitlines() if line[:1].isdigit()]
        if metric == "annual_volatility":
            assert "volatility" in out and "7.0%" in out and "0.07" not in out
    assert order["annual_volatility"] == ["qa-0001", "qa-0002", "qa-0000", "qa-0003"]
    assert order["max_drawdown"] == ["qa-0001", "qa-0002", "qa-0000", "qa-0003"]
    assert order["sharpe"] == ["qa-0000", "qa-0002", "qa-0001", "qa-0003"]
    with ExperimentStore(db) as store:
        assert ranked(store.all(), "fees")[0].run_id == "qa-0000"  # equal fees: point order
    assert short_names(["risk.name.limit_e8", "risk.sector.limit_e8", "strategy.params.fast"]) == {
        "risk.name.limit_e8": "name.limit_e8", "risk.sector.limit_e8": "sector.limit_e8",
        "strategy.params.fast": "fast",
    }  # fmt: skip


def test_a_log_range_with_integer_ends_draws_integers_and_float_ranges_draw_as_before() -> None:
    """``{ low = 2, high = 20, log = true }`` draws whole numbers in [2, 20], seeded; float
    ranges (log or not) keep their recorded draws (pinned: a sweep recorded before draws the
    same points)."""
    spec = SweepSpec(samples=400, seed=3, space={"fast": Range(2, 20, log=True)})
    values = [point["fast"] for point in sweep_points(spec)]
    assert all(type(v) is int and 2 <= v <= 20 for v in values)
    assert set(values) == set(range(2, 21))
    assert values.count(2) > values.count(19)  # log-uniform: small values more often
    assert values == [point["fast"] for point in sweep_points(spec)]
    floats = SweepSpec(samples=2, seed=7, space={"w": Range(0.5, 2.5, log=True), "x": Range(0.1, 0.9)})
    assert sweep_points(floats) == [
        {"w": 1.3673918445590996, "x": 0.8177710407756604},
        {"w": 1.742412726983397, "x": 0.2801657519924735},
    ]


def test_runs_refuses_a_top_that_is_not_positive_and_a_csv_it_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _recorded(tmp_path)
    for top in ("0", "-2"):
        with pytest.raises(SystemExit) as refused:
            main(["runs", str(db), "--top", top])
        assert refused.value.code == 2 and "--top: must be at least 1" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    with pytest.raises(SystemExit) as refused:  # a folder: not a file; refused as it is parsed
        main(["runs", str(db), "--csv", str(tmp_path / "taken")])
    said = " ".join(capsys.readouterr().err.split())
    assert (
        refused.value.code == 2 and "taken: cannot write it: it is a folder" in said and "Errno" not in said
    )
    assert main(["runs", str(db), "--top", "1"]) == 0
    assert "top 1 of 4 by sharpe" in capsys.readouterr().out


def test_runs_writes_its_json_and_csv_to_stdout_for_a_dash_and_both_where_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--csv -`` is the CSV on stdout, as ``tape compare``'s and ``tape models``' (it wrote a file
    called ``-`` in the current folder); ``--json PATH`` writes a file and ``--json`` alone
    prints; given both, both are written (``--csv`` was ignored beside ``--json``); a folder
    that does not exist yet is made."""
    db = _recorded(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["runs", str(db), "--csv", "-"]) == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["run_id"] for row in rows] == ["qa-0000", "qa-0001", "qa-0002", "qa-0003"]
    assert rows[0]["risk.name.limit_e8"] == "20000000" and rows[0]["sharpe"] == "0.9"
    assert not (tmp_path / "-").exists()
    assert main(["runs", str(db), "--json"]) == 0
    assert [run["run_id"] for run in json.loads(capsys.readouterr().out)] == [row["run_id"] for row in rows]
    both = ["--json", str(tmp_path / "out" / "runs.json"), "--csv", str(tmp_path / "out" / "runs.csv")]
    assert main(["runs", str(db), *both]) == 0
    assert len(json.loads((tmp_path / "out" / "runs.json").read_text())) == 4
    assert (tmp_path / "out" / "runs.csv").read_text().replace("\r\n", "\n") == out.replace("\r\n", "\n")
    said = " ".join(capsys.readouterr().out.split())
    assert f"wrote 4 runs to {tmp_path / 'out' / 'runs.json'}" in said and "runs.csv" in said


def test_sweep_writes_every_run_as_json_on_stdout_and_as_csv_as_tape_runs_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ranked table had no --json / --csv: only ``tape runs`` afterwards had them."""
    path = _sweep_file(tmp_path)
    out = tmp_path / "out"
    table = tmp_path / "runs.csv"
    assert main(["sweep", str(path), "--workers", "1", "--out", str(out), "--json", "--csv", str(table)]) == 0
    captured = capsys.readouterr()
    runs = json.loads(captured.out)  # stdout carries the JSON alone; the table went to stderr
    assert [run["run_id"] for run in runs] == [row[0] for row in _rows(out / "experiments.sqlite")]
    assert len(runs) == 4 and all(run["chain_head"] for run in runs)
    assert "top 4 of 4 by sharpe" in " ".join(captured.err.split())
    assert main(["runs", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == runs
    assert main(["runs", str(out), "--csv", "-"]) == 0
    assert table.read_text().replace("\r\n", "\n") == capsys.readouterr().out.replace("\r\n", "\n")
    assert main(["sweep", str(path), "--out", str(tmp_path / "two"), "--json", "-", "--csv", "-"]) == 2
    assert not (tmp_path / "two").exists()


@pytest.mark.parametrize("verb", ["sweep", "walkforward"])
def test_a_negative_worker_count_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: str
) -> None:
    """``--workers -1`` ran on one worker, silently ([sweep] workers = -1 was refused)."""
    path = _sweep_file(tmp_path)
    with pytest.raises(SystemExit) as refused:
        main([verb, str(path), "--workers", "-1", "--out", str(tmp_path / "out")])
    assert refused.value.code == 2
    assert "--workers: must be at least 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_command_a_stop_prints_runs_the_rest_when_pasted_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """At 80 columns the command was folded over lines (a newline inside it: pasted, the first
    line ran alone) and a path with a space was not quoted (pasted, the words split there). Now
    it is one line, quoted for the shell; stop, ``tape runs`` and the command itself agree."""
    monkeypatch.setattr(console, "width", 80)
    folder = tmp_path / "my sweeps"
    folder.mkdir()
    path = _sweep_file(folder)
    stop_research_runs_after(monkeypatch, 1)
    assert main(["sweep", str(path), "--workers", "1", "--out", str(folder / "out 1")]) == 130
    stopped = next(line for line in capsys.readouterr().out.splitlines() if "runs recorded;" in line)
    command = stopped.split("`")[1]
    words = shlex.split(command)
    assert words == ["tape", "sweep", str(path), "--out", str(folder / "out 1"), "--resume"]
    monkeypatch.undo()
    monkeypatch.setattr(console, "width", 80)
    assert main(["runs", str(folder / "out 1")]) == 0
    listed = next(line for line in capsys.readouterr().out.splitlines() if "stopped" in line)
    assert f"`{command}` runs the rest" in listed
    assert main([*words[1:], "--workers", "1"]) == 0
    assert len(_rows(folder / "out 1" / "experiments.sqlite")) == 4


def test_runs_of_a_sweep_the_table_does_not_hold_is_refused_naming_those_it_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--sweep nope`` printed an empty table, "top 0 of 0", exit 0: a typo read as no runs."""
    db = _recorded(tmp_path)
    assert main(["runs", str(db), "--sweep", "nope"]) == 2
    assert "no sweep 'nope'; it holds qa" in " ".join(capsys.readouterr().out.split())
    assert main(["runs", str(db), "--sweep", "qa", "--top", "1"]) == 0
    assert "top 1 of 4 by sharpe" in capsys.readouterr().out


def test_a_sweep_whose_runs_are_refused_as_they_start_leaves_nothing_behind(tmp_path: Path) -> None:
    """A run refused as it starts (a ``[window]`` holding no session of the data set, found when
    the run reads it; US regulatory fees for a US run before 2023 are another) ends a sweep with
    exit 2 and nothing recorded: the folder is left as it was, so the same command runs once the
    TOML is fixed. The experiments table holding only the sweep's plan stayed: the command was
    refused ("already holds a sweep"; its --resume would run it) and ``tape runs`` called the
    sweep stopped. A folder that was there before keeps what it held."""
    path = _sweep_file(tmp_path)
    good = path.read_text()
    path.write_text(good.replace("[sweep]", '[window]\nstart = "2030-01-01"\n\n[sweep]'))
    argv = ["sweep", str(path), "--workers", "1", "--out", str(tmp_path / "s")]
    assert main(argv) == 2
    assert not (tmp_path / "s").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("kept")
    assert main(["sweep", str(path), "--workers", "1", "--out", str(tmp_path / "mine")]) == 2
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    path.write_text(good)
    assert main(argv) == 0
    assert len(_rows(tmp_path / "s" / "experiments.sqlite")) == 4


def test_one_file_holds_a_sweep_and_a_walkforward_each_verb_reading_its_own_table(tmp_path: Path) -> None:
    """README: [sweep] and [walkforward] are ignored by `tape backtest`; each research verb
    ignores the other's table. A [walkforward] table was refused as an unknown field by
    `tape backtest` and `tape sweep` (exit 2), while `tape walkforward` ignored [sweep]."""
    path = _sweep_file(tmp_path)
    path.write_text(path.read_text() + "\n[walkforward]\ntrain_days = 100\ntest_days = 50\n" + GRID + "\n")
    assert load_config(path).run_id == "sweep-test"
    assert main(["backtest", str(path)]) == 0
    assert (tmp_path / "journals" / "base").is_dir()
    assert _sweep(path, tmp_path / "s") == 0
    assert len(_rows(tmp_path / "s" / "experiments.sqlite")) == 4
