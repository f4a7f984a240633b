"""``tape walkforward CONFIG.toml``: choose parameters on a training window, trade them on the
following test window, roll forward, and stitch the out-of-sample results.

```toml
[walkforward]
train_days = 504        # sessions in each training window
test_days = 126         # sessions in each test window
step_days = 126         # how far each fold moves (default: test_days)
anchored = false        # true: every training window starts at the first session (expanding)
grid = { "strategy.params.fast" = [5, 10, 20], "strategy.params.slow" = [50, 100] }
rank_by = "sharpe"      # the in-sample figure that picks a fold's parameters
workers = 0
out = "walkforward/sma"
```

(``space`` / ``samples`` / ``seed`` give a random search instead of ``grid``, as in
``[sweep]``.) Every in-sample and out-of-sample run is a full backtest whose configuration has a
``[window]``: the data set is cut at the window's last session (nothing in the run can read a
later bar) and trading starts at its first (earlier bars are history for the strategies'
warm-up). Each test run starts from the configuration's initial capital; the stitched curve
chains the test windows' daily returns. A ``[window]`` in the TOML itself bounds the sessions the
folds are cut from (the bars before it stay history). All runs are recorded in ``OUT/experiments.sqlite``
(``tape runs OUT``; each as it ends, out-of-sample runs with their daily NAVs, so ``--resume``
carries a stopped walk-forward on), the folds and the stitched daily returns in ``OUT/walkforward.json``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from cli.arguments import at_least, output_file, output_folder
from cli.progress import (
    console,
    not_stdout,
    one_stdout,
    plural,
    progress_bar,
    results_on_stderr,
    write_output,
)
from cli.resumable import (
    experiments_table,
    left_clean_on_error,
    note_other_code,
    recorded_runs,
    resume_command,
    said_where,
)
from cli.sweep_cmd import (
    SweepSpec,
    code_version,
    params_text,
    refusals_named,
    run_label,
    run_tasks,
    set_dotted,
    sweep_point_named,
    sweep_points,
)
from cli.wiring import ConfigError, config_from_raw, new_run_strategies, read_raw_config, typed_path
from kernel.store import remove_journal
from lake.store import load_panel
from sim.backtest import BacktestConfig
from sim.experiments import METRICS, Experiment, ExperimentStore, format_metric, metric_score, short_names
from sim.performance import return_stats

__all__ = ["Fold", "add_walkforward_parser", "cmd_walkforward", "folds"]


@dataclass(frozen=True)
class Fold:
    index: int
    train: tuple[int, int]  # first and last session day, YYYYMMDD
    test: tuple[int, int]


def folds(days: list[int], train: int, test: int, step: int, anchored: bool) -> list[Fold]:
    """Train/test windows over the session ``days``: each test window follows its training
    window directly; a test window is always whole (a shorter tail is not traded)."""
    if train < 1 or test < 1 or step < 1:
        raise ConfigError("walkforward: train_days, test_days and step_days must be positive")
    out = []
    start = 0
    while True:
        train_first = 0 if anchored else start
        train_last = start + train - 1
        test_last = train_last + test
        if test_last >= len(days):
            break
        train_days = (days[train_first], days[train_last])
        out.append(Fold(len(out), train_days, (days[train_last + 1], days[test_last])))
        start += step
    if not out:
        raise ConfigError(
            f"walkforward: {len(days)} sessions hold no fold of {train} training and {test} test sessions"
        )
    return out


def _sessions(base: BacktestConfig, day: npt.NDArray[np.int64]) -> list[int]:
    """The session days the folds are cut from: the data set's, within the base TOML's
    ``[window]`` when it has one (its bars before the window stay history for warm-up)."""
    days = sorted(set(day.tolist()))
    if base.window is None:
        return days
    first, last = base.window.days()
    inside = [d for d in days if (not first or d >= first) and (not last or d <= last)]
    if not inside:
        raise ConfigError(
            f"walkforward: the [window] {base.window.start or '...'} to {base.window.end or '...'} holds no "
            f"session of the data set ({_iso(days[0])} to {_iso(days[-1])})"
        )
    return inside


def _iso(day: int) -> str:
    return date(day // 10000, day // 100 % 100, day % 100).isoformat()


@dataclass(frozen=True)
class _Plan:
    raw: dict[str, Any]
    spec: SweepSpec
    train: int
    test: int
    step: int
    anchored: bool


# [walkforward]'s fold shape: each a whole number of sessions, anchored a true boolean (no
# "500", 500.5 or "false" read as something else: exit 2 naming the key).
_SHAPE_KEYS = {"train_days": int, "test_days": int, "step_days": int, "anchored": bool}


def _read(path: Path) -> _Plan:
    raw = read_raw_config(path)
    raw.pop("sweep", None)
    table = raw.pop("walkforward", None)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: no [walkforward] table (docs/research.md)")
    shape = {key: table.pop(key) for key in _SHAPE_KEYS if key in table}
    if "train_days" not in shape or "test_days" not in shape:
        raise ConfigError(f"{path}: [walkforward] needs train_days and test_days")
    for key, value in shape.items():
        if type(value) is not _SHAPE_KEYS[key]:  # bool is an int to Python: checked by type
            kind = "true or false" if key == "anchored" else "a whole number of sessions"
            raise ConfigError(f"{path}: walkforward.{key} must be {kind}, got {value!r}")
    try:
        spec = msgspec.convert(table, SweepSpec)
    except (msgspec.ValidationError, ValueError) as error:
        raise ConfigError(f"{path}: walkforward: {error}") from None
    train, test = shape["train_days"], shape["test_days"]
    return _Plan(raw, spec, train, test, shape.get("step_days", test), shape.get("anchored", False))


def cmd_walkforward(args: argparse.Namespace) -> int:
    not_stdout(args.out, option="--out", holds="a folder (experiments.sqlite and walkforward.json)")
    to_stdout = one_stdout(json=args.json, csv=args.csv)
    with results_on_stderr(to_stdout):  # stdout carries the data alone
        report = _walkforward(args)
    for option, path, text in (("--json", args.json, _json_text), ("--csv", args.csv, _csv_text)):
        if path:
            write_output(path, text(report), option=option)
    with results_on_stderr(to_stdout):
        for path in dict.fromkeys(path for path in (args.json, args.csv) if path not in (None, "-")):
            console.print(f"wrote {plural(len(report['folds']), 'fold')} to {path}", soft_wrap=True)
    return 0


def _walkforward(args: argparse.Namespace) -> dict[str, Any]:
    """Runs the walk-forward, prints its tables and writes ``OUT/walkforward.json``; returns
    what that file holds."""
    path = Path(args.config)
    plan_ = _read(path)
    raw, spec = plan_.raw, plan_.spec
    base = config_from_raw(raw, path)
    panel, ref = load_panel(Path(base.dataset))
    plan = folds(_sessions(base, panel.day), plan_.train, plan_.test, plan_.step, plan_.anchored)
    base_id = base.run_id
    if args.out:  # typed: from the current directory; [walkforward] out: from the TOML's folder
        out = Path(typed_path(args.out))
    else:
        out = (path.parent / (spec.out or f"walkforward/{base_id}")).resolve()
    resume = bool(getattr(args, "resume", False))
    experiments_table(out, resume, "walk-forward")
    points = sweep_points(spec)

    def config_for(run_id: str, point: dict[str, Any], window: tuple[int, int]) -> BacktestConfig:
        point_raw = json.loads(json.dumps(raw))
        for key, value in point.items():
            set_dotted(point_raw, key, value)
        point_raw["run_id"] = run_id
        point_raw["journal"] = str(out / "journals" / run_id)
        point_raw["window"] = {"start": _iso(window[0]), "end": _iso(window[1])}
        with sweep_point_named(point):
            config = config_from_raw(point_raw, path)
            new_run_strategies(config)  # checked as tape backtest checks a run
        return config

    in_sample = [
        (fold, index, config_for(f"{base_id}-f{fold.index:02d}-is-{index:04d}", point, fold.train))
        for fold in plan
        for index, point in enumerate(points)
    ]
    workers = args.workers if args.workers is not None else spec.workers
    workers = max(1, min(workers or os.cpu_count() or 1, len(in_sample)))
    code = code_version()
    with left_clean_on_error(out, resume), _Recorder(out, f"{base_id}-wf", ref.content_hash, code) as record:
        # Every run is recorded as it ends (an out-of-sample run with its daily NAVs, which the
        # stitched curve needs); a stopped walk-forward keeps them all (--resume).
        metrics: dict[str, dict[str, Any]] = {}
        oos_done: dict[str, dict[str, Any]] = {}
        if resume:
            metrics = _recorded_in_sample(record, in_sample, base.dataset, spec)
        todo = [(fold, index, config) for fold, index, config in in_sample if config.run_id not in metrics]
        label = f"walk-forward {base_id}: {len(plan)} folds x {len(points)} in-sample runs"
        if resume:
            label += f" ({len(todo):,} left)"
        again = resume_command("tape", "walkforward", path, "--out", out, "--resume")
        record.store.plan(record.sweep_id, "walk-forward", len(in_sample) + len(plan), again)
        for _, _, config in todo if resume else ():  # a run stopped midway left its journal cut short
            remove_journal(Path(config.journal))
        with said_where(lambda: len(metrics) + len(oos_done), len(in_sample) + len(plan), again):
            metrics.update(_run_in_sample(record, points, todo, spec.keep_journals, workers, args.ray, label))
            best = _best_per_fold(in_sample, metrics, spec.rank_by)
            chosen = [points[best[fold.index][0]] for fold in plan]
            oos = [config_for(f"{base_id}-f{f.index:02d}-oos", chosen[f.index], f.test) for f in plan]
            if resume:
                oos_done.update(_recorded_out_of_sample(record, oos, base.dataset, spec))
            label = f"walk-forward {base_id}: {len(plan)} out-of-sample runs"
            todo_oos = [(fold, config, chosen[fold.index]) for fold, config in zip(plan, oos, strict=True)]
            oos_done.update(_run_out_of_sample(record, todo_oos, oos_done, spec.keep_journals, workers,
                                               args.ray, label, resume))  # fmt: skip
        oos_results = [oos_done[config.run_id] for config in oos]
    if not spec.keep_journals:
        shutil.rmtree(out / "journals", ignore_errors=True)
    stitched = _stitch(base, oos_results)
    summary = return_stats(np.array([r for _, r in stitched]), 365 if ref.calendar == "24x7" else 252)
    _print_folds(plan, chosen, [best[f.index][1] for f in plan], oos_results, spec.rank_by)
    console.print(
        f"stitched out-of-sample: {len(stitched):,} sessions, return {summary.total_return:+.2%}, "
        f"Sharpe {summary.sharpe:.2f}, max drawdown {summary.max_drawdown:.2%}"  # negative, as every table's
    )
    folds_json = [
        {
            "fold": fold.index,
            "train": [_iso(fold.train[0]), _iso(fold.train[1])],
            "test": [_iso(fold.test[0]), _iso(fold.test[1])],
            "params": chosen[fold.index],
            "in_sample": dict(sorted(best[fold.index][1].items())),  # as recorded: the same after --resume
            "out_of_sample": dict(sorted(result["metrics"].items())),
            "chain_head": result["chain_head"],
        }
        for fold, result in zip(plan, oos_results, strict=True)
    ]
    stats = {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in summary.__dict__.items()
    }
    stitched_json = {"days": [d for d, _ in stitched], "returns": [r for _, r in stitched], "stats": stats}
    report = {"run_id": base_id, "rank_by": spec.rank_by, "folds": folds_json, "stitched": stitched_json}
    (out / "walkforward.json").write_text(_json_text(report))
    console.print(
        f"{len(in_sample) + len(oos):,} runs recorded in {out / 'experiments.sqlite'}; "
        f"folds and the stitched returns in {out / 'walkforward.json'}"
    )
    return report


def _json_text(report: dict[str, Any]) -> str:
    """``walkforward.json``, and ``--json``: the folds, the stitched daily returns and stats."""
    return json.dumps(report, indent=1) + "\n"


def _csv_text(report: dict[str, Any]) -> str:
    """``--csv``: the printed tables, a row per fold (its windows, the parameters chosen, every
    in-sample figure of the chosen run and every out-of-sample figure, the chain head), then a
    ``stitched`` row: the stitched curve's sessions and its figures in the out-of-sample
    columns (as the line under the table)."""
    folds_ = report["folds"]
    params = list(dict.fromkeys(key for fold in folds_ for key in fold["params"]))
    in_sample = sorted({key for fold in folds_ for key in fold["in_sample"]})
    oos = sorted({key for fold in folds_ for key in fold["out_of_sample"]})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["fold", "train_start", "train_end", "test_start", "test_end", *params,
                     *(f"in_sample.{key}" for key in in_sample),
                     *(f"out_of_sample.{key}" for key in oos), "chain_head"])  # fmt: skip
    for fold in folds_:
        chosen = [fold["params"].get(key) for key in params]
        figures = [
            *(fold["in_sample"].get(k) for k in in_sample),
            *(fold["out_of_sample"].get(k) for k in oos),
        ]
        writer.writerow([fold["fold"], *fold["train"], *fold["test"], *chosen, *figures, fold["chain_head"]])
    stitched = report["stitched"]
    days = [_iso(stitched["days"][0]), _iso(stitched["days"][-1])] if stitched["days"] else ["", ""]
    stats = stitched["stats"]
    writer.writerow(["stitched", "", "", *days, *([""] * (len(params) + len(in_sample))),
                     *(stats.get(key, "") for key in oos), ""])  # fmt: skip
    return buffer.getvalue()


def _stitch(base: BacktestConfig, results: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """The test windows' daily returns, in order; each window starts from the initial capital."""
    stitched: list[tuple[int, float]] = []
    for result in results:
        navs = [float(base.initial_cash_minor()), *(float(nav) for _, nav in result["navs"])]
        days_traded = [day for day, _ in result["navs"]]
        stitched.extend(zip(days_traded, (np.diff(navs) / np.array(navs[:-1])).tolist(), strict=True))
    return stitched


def _run_in_sample(
    record: _Recorder,
    points: list[dict[str, Any]],
    todo: list[tuple[Fold, int, BacktestConfig]],
    keep: bool,
    workers: int,
    ray: str | None,
    label: str,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Runs the in-sample runs ``todo``, each recorded as it ends; yields (run id, metrics)."""
    tasks = [(config.canonical_json(), keep) for _, _, config in todo]
    if not tasks:
        return
    with progress_bar(label, len(tasks)) as update:
        results = run_tasks(tasks, max(1, min(workers, len(tasks))), update, ray)
        results = refusals_named(results, [run_label(config, points[index]) for _, index, config in todo])
        for (_, index, config), result in zip(todo, results, strict=True):
            record(config, index, points[index], result)
            yield config.run_id, result["metrics"]


def _best_per_fold(
    in_sample: list[tuple[Fold, int, BacktestConfig]], metrics: dict[str, dict[str, Any]], rank_by: str
) -> dict[int, tuple[int, dict[str, Any]]]:
    """Each fold's best point by ``rank_by`` (its better direction: ``sim.experiments.METRICS``;
    grid order: the first of equal scores wins)."""
    best: dict[int, tuple[int, dict[str, Any]]] = {}
    for fold, index, config in in_sample:
        score = metric_score(rank_by, metrics[config.run_id].get(rank_by))
        if fold.index not in best or score > metric_score(rank_by, best[fold.index][1].get(rank_by)):
            best[fold.index] = (index, metrics[config.run_id])
    return best


def _recorded_in_sample(
    record: _Recorder, in_sample: list[tuple[Fold, int, BacktestConfig]], dataset: str, spec: SweepSpec
) -> dict[str, dict[str, Any]]:
    """A stopped walk-forward's recorded in-sample runs (``cli.resumable``): run id -> metrics.
    Its out-of-sample rows are checked once the folds' parameters are chosen
    (``_recorded_out_of_sample``)."""
    expected = {config.run_id: config for _, _, config in in_sample}
    kept = recorded_runs(record.store, record.sweep_id, expected, {dataset: record.dataset_hash},
                         spec.keep_journals, ignore=lambda e: e.point < 0)  # fmt: skip
    note_other_code(kept.values(), record.code)
    return {run_id: e.metrics for run_id, e in kept.items()}


def _run_out_of_sample(
    record: _Recorder,
    folds: list[tuple[Fold, BacktestConfig, dict[str, Any]]],
    done: dict[str, dict[str, Any]],
    keep: bool,
    workers: int,
    ray: str | None,
    label: str,
    resume: bool,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Runs each fold's out-of-sample run (its configuration and chosen parameters in
    ``folds``) that ``done`` lacks, each recorded with its daily NAVs as it ends; yields (run
    id, result). On ``resume`` a journal one of them left cut short is removed first."""
    todo = [(fold, config, params) for fold, config, params in folds if config.run_id not in done]
    for _, config, _ in todo if resume else ():
        remove_journal(Path(config.journal))
    if not todo:
        return
    tasks = [(config.canonical_json(), keep) for _, config, _ in todo]
    label += f" ({len(tasks):,} left)" if resume else ""
    with progress_bar(label, len(tasks)) as update:
        results = run_tasks(tasks, max(1, min(workers, len(tasks))), update, ray)
        results = refusals_named(results, [run_label(config, params) for _, config, params in todo])
        for (fold, config, params), result in zip(todo, results, strict=True):
            record(config, -1 - fold.index, params, result)
            yield config.run_id, result


def _recorded_out_of_sample(
    record: _Recorder, oos: list[BacktestConfig], dataset: str, spec: SweepSpec
) -> dict[str, dict[str, Any]]:
    """A stopped walk-forward's recorded out-of-sample runs, each checked to be the run its fold
    trades now (the parameters chosen from the same in-sample runs give the same
    configuration): run id -> the run's result, daily NAVs included. A row without its NAVs
    (recorded by an older Tape) runs again."""
    expected = {config.run_id: config for config in oos}
    kept = recorded_runs(record.store, record.sweep_id, expected, {dataset: record.dataset_hash},
                         spec.keep_journals, ignore=lambda e: e.point >= 0)  # fmt: skip
    results = {}
    for run_id, e in kept.items():
        navs = record.store.navs(run_id)
        if navs is not None:
            results[run_id] = {"chain_head": e.chain_head, "records": e.records, "metrics": e.metrics,
                               "journal": e.journal, "navs": navs}  # fmt: skip
    return results


class _Recorder:
    """Writes each run of the walk-forward to the experiments table."""

    def __init__(self, out: Path, sweep_id: str, dataset_hash: str, code: str) -> None:
        self.store = ExperimentStore(out / "experiments.sqlite", create=True)
        self.sweep_id, self.dataset_hash, self.code = sweep_id, dataset_hash, code

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, *_: object) -> None:
        self.store.close()

    def __call__(
        self, config: BacktestConfig, point: int, params: dict[str, Any], result: dict[str, Any]
    ) -> None:
        """One run's row; an out-of-sample run's (``point`` < 0) with its daily NAVs."""
        experiment = Experiment.of_run(
            config, result, sweep_id=self.sweep_id, point=point, params=params,
            dataset_hash=self.dataset_hash, code_version=self.code,
        )  # fmt: skip
        self.store.add(experiment, result["navs"] if point < 0 else None)


def _print_folds(
    plan: list[Fold], chosen: list[dict[str, Any]], in_sample: list[dict[str, Any]],
    results: list[dict[str, Any]], rank_by: str,
) -> None:  # fmt: skip
    from cli.research_tables import Column, print_fitted

    names = short_names(key for params in chosen for key in params)
    columns = (
        Column("fold", 8), Column("test sessions", 9, wraps=True, breaks="."),  # first..last
        Column("parameters", 10, wraps=True, min_width=12),
        Column(f"IS {METRICS[rank_by].header}", 7), Column("OOS return", 6), Column("OOS Sharpe", 5),
    )  # fmt: skip
    rows = [
        (
            str(fold.index),
            f"{_iso(fold.test[0])}..{_iso(fold.test[1])}",
            params_text(chosen[fold.index], names),
            format_metric(rank_by, in_sample[fold.index].get(rank_by)),
            format_metric("total_return", results[fold.index]["metrics"].get("total_return")),
            format_metric("sharpe", results[fold.index]["metrics"].get("sharpe")),
        )
        for fold in plan
    ]
    title = f"walk-forward folds (parameters chosen by in-sample (IS) {rank_by})"
    print_fitted(title, columns, rows, left=2, elsewhere="OUT/walkforward.json has every figure")


def add_walkforward_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    walk = verbs.add_parser("walkforward", help="choose parameters in-sample, trade them out-of-sample, roll")
    walk.add_argument("config", help="a backtest TOML with a [walkforward] table")
    walk.add_argument(
        "--workers", type=at_least(0), help="processes (default: [walkforward] workers; 0: all cores)"
    )
    walk.add_argument("--out", type=output_folder, help="folder for experiments.sqlite and walkforward.json")
    walk.add_argument("--ray", metavar="ADDRESS", help='run on a Ray cluster ("local": start one here)')
    walk.add_argument("--resume", action="store_true", help="carry a stopped walk-forward on: the rest runs")
    walk.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                      help="the folds and the stitched returns as JSON, walkforward.json's (to PATH; "
                           "alone or '-': stdout)")  # fmt: skip
    walk.add_argument(
        "--csv",
        type=output_file,
        metavar="PATH",
        help="the fold table and the stitched row as CSV ('-': stdout)",
    )
