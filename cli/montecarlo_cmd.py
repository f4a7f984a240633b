"""``tape montecarlo JOURNAL``: how much of a run's result is luck.

Two seeded experiments, both reproducible from the journal, the seed and the options:

- the block bootstrap (always): the run's daily returns resampled into ``--samples`` paths of
  blocks of ``--block`` sessions (``sim.montecarlo``); percentiles of total and annual return,
  Sharpe and maximum drawdown, and the share of losing paths;
- fill perturbation (``--perturb N``): the run's configuration backtested N more times, each
  with its slippage drawn uniformly from ``--slippage-bp LO,HI`` basis points and its fill
  participation cap from ``--participation LO,HI`` (percent of a bar's volume; 0 = no cap), on
  every core; each run is recorded in ``OUT/experiments.sqlite`` (``tape runs OUT``).
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import shlex
import shutil
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from rich.text import Text

from cli.arguments import at_least, output_file, output_folder
from cli.exits import unfinished_status
from cli.progress import (
    console,
    not_stdout,
    one_stdout,
    plural,
    progress_bar,
    results_on_stderr,
    write_output,
)
from cli.research_tables import Column, print_fitted, wrap_text
from cli.resumable import (
    experiments_table,
    left_clean_on_error,
    note_other_code,
    recorded_runs,
    resume_command,
    said_where,
)
from cli.sweep_cmd import code_version, run_tasks
from cli.wiring import ConfigError, new_run_strategies
from domain.events import DatasetReferenced, DayClosed, RunStarted
from kernel.run_status import run_status
from kernel.store import open_journal
from sim.backtest import BacktestConfig
from sim.experiments import Experiment, ExperimentStore, format_metric
from sim.montecarlo import block_bootstrap, path_stats, summarise

__all__ = ["add_montecarlo_parser", "cmd_montecarlo"]


def _range(text: str, name: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--{name} takes LOW,HIGH (two numbers), got {text!r}") from None
    if not 0 <= low <= high:
        raise ConfigError(f"--{name}: need 0 <= LOW <= HIGH, got {text!r}")
    return low, high


def cmd_montecarlo(args: argparse.Namespace) -> int:
    not_stdout(args.out, option="--out", holds="a folder (the perturbed runs' experiments.sqlite)")
    with results_on_stderr(one_stdout(json=args.json, csv=args.csv)):  # stdout carries the data alone
        result, status = _montecarlo(args)
    if args.json:
        write_output(args.json, json.dumps(result, indent=1, sort_keys=True) + "\n", option="--json")
    if args.csv:
        write_output(args.csv, _csv_text(result), option="--csv")
    for path in {args.json, args.csv} - {None, "-"}:
        console.print(f"wrote {path}", soft_wrap=True)
    return status


def _csv_text(result: dict[str, Any]) -> str:
    """The tables as CSV: a row per experiment and figure, its percentiles as ``--json`` holds
    them, the run's own figure (the bootstrap's) and the experiment's share of losing paths."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = [key for _, key in _PERCENTILES]
    writer.writerow(["experiment", "statistic", *keys, "run", "losing_share"])
    for experiment in ("bootstrap", "perturbation"):
        figures = result.get(experiment)
        for name in _STATISTICS if figures else ():
            cells, run = figures[name], figures.get("run", {})
            writer.writerow([experiment, name, *(cells.get(key, "") for key in keys), run.get(name, ""),
                             figures["probability"]["loss"]])  # fmt: skip
    return buffer.getvalue()


def _montecarlo(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """The bootstrap's (and the perturbation's) figures, printed; with the exit status."""
    path = Path(args.journal)
    with open_journal(path) as journal:
        run = journal.record(0).event()
        ref = journal.record(1).event()
        if not isinstance(run, RunStarted) or not isinstance(ref, DatasetReferenced):
            raise ConfigError(f"{path}: does not start with run.started and dataset.referenced")
        navs = [r.event() for r in journal.records(0) if r.kind == "day.closed.v1"]
        unfinished = not run_status(journal).finished
    config = BacktestConfig.from_json(run.config_json)
    initial = float(config.initial_cash_minor())
    series = np.array([initial, *(float(e.nav_minor) for e in navs if isinstance(e, DayClosed))])
    returns = np.diff(series) / series[:-1]
    factor = 365 if ref.calendar == "24x7" else 252
    try:
        paths = block_bootstrap(returns, args.samples, args.block, args.seed)
    except ValueError as error:
        raise ConfigError(f"{path}: {error}") from None
    # Everything that can refuse the perturbation (--out, --resume) is checked before a figure prints.
    perturbation = _plan_perturbation(args, config, ref.content_hash) if args.perturb else None
    if unfinished:  # said before the figures, which end at the last day the journal closed
        console.print("[yellow]the figures below are those of an unfinished run[/]", soft_wrap=True)
    summary = summarise(path_stats(paths, factor))
    actual_stats = path_stats(returns[None, :], factor)
    actual = {name: float(getattr(actual_stats, name)[0]) for name in _STATISTICS}
    _print_summary(
        f"block bootstrap: {args.samples:,} paths of {returns.size:,} sessions, blocks of {args.block}, "
        f"seed {args.seed}",
        summary,
        actual,
    )
    result: dict[str, Any] = {
        "journal": str(path),
        "bootstrap": {
            "samples": args.samples,
            "block": args.block,
            "seed": args.seed,
            **summary,
            "run": actual,
        },
    }
    if perturbation is not None:
        result["perturbation"] = _perturb(perturbation)
    if unfinished:
        with open_journal(path) as journal:
            return result, unfinished_status(journal)
    return result, 0


# The options that make a perturbation's runs (and their percentiles): a resumed one must give
# the same. --samples and --block shape only the bootstrap, but the printed command keeps them
# so that following it prints the same figures.
_RUN_OPTIONS = ("--seed", "--perturb", "--slippage-bp", "--participation")


@dataclass(frozen=True)
class _Perturbation:
    """A fill perturbation planned and checked, nothing run yet."""

    args: argparse.Namespace
    out: Path
    slippage: tuple[float, float]
    participation: tuple[float, float]
    configs: list[BacktestConfig]
    draws: list[dict[str, int]]
    recorded: dict[str, Experiment]
    again: str
    sweep_id: str
    dataset_hash: str


def _plan_perturbation(args: argparse.Namespace, config: BacktestConfig, dataset_hash: str) -> _Perturbation:
    """The perturbed runs' configurations; on ``--resume`` the recorded job's options and runs
    are checked to be this one's (refused naming what differs)."""
    slippage = _range(args.slippage_bp, "slippage-bp")
    participation = _range(args.participation, "participation")
    out = Path(args.out or f"{args.journal}.montecarlo").resolve()
    resume = bool(getattr(args, "resume", False))
    experiments_table(out, resume, "Monte Carlo")
    rng = np.random.default_rng(args.seed)
    configs, draws = [], []
    for index in range(args.perturb):
        slip_e8 = round(rng.uniform(*slippage) * 10_000)  # bp -> 1e-8
        part_e8 = round(rng.uniform(*participation) * 1_000_000)  # percent -> 1e-8
        run_id = f"{config.run_id}-mc-{index:04d}"
        fill = msgspec.structs.replace(config.fill, slippage_e8=slip_e8, participation_e8=part_e8)
        perturbed = msgspec.structs.replace(config, run_id=run_id, fill=fill,
                                            journal=str(out / "journals" / run_id))  # fmt: skip
        new_run_strategies(perturbed)  # checked as tape backtest checks a run
        configs.append(perturbed)
        draws.append({"fill.slippage_e8": slip_e8, "fill.participation_e8": part_e8})
    again = resume_command(
        "tape", "montecarlo", args.journal, "--samples", args.samples, "--block", args.block, "--seed",
        args.seed, "--perturb", args.perturb, "--slippage-bp", _text(slippage), "--participation",
        _text(participation), "--out", out, "--resume",
    )  # fmt: skip
    sweep_id = f"{config.run_id}-mc"
    recorded: dict[str, Experiment] = {}
    if resume:
        with ExperimentStore(out / "experiments.sqlite") as store:
            _check_options(out, store, sweep_id, again)
            expected = {c.run_id: c for c in configs}
            changed = "--seed, --perturb, --slippage-bp, --participation or the run's configuration changed"
            recorded = recorded_runs(store, sweep_id, expected, {config.dataset: dataset_hash}, False,
                                     changed=changed)  # fmt: skip
    return _Perturbation(args, out, slippage, participation, configs, draws, recorded, again, sweep_id,
                         dataset_hash)  # fmt: skip


def _text(bounds: tuple[float, float]) -> str:
    return f"{bounds[0]:g},{bounds[1]:g}"


def _options(command: str) -> dict[str, object]:
    """The run-making options of a recorded ``tape montecarlo`` command, ranges as numbers."""
    words = shlex.split(command)
    found: dict[str, object] = {}
    for option, value in itertools.pairwise(words):
        if option in _RUN_OPTIONS:
            found[option] = tuple(float(part) for part in value.split(",")) if "," in value else value
    return found


def _check_options(out: Path, store: ExperimentStore, sweep_id: str, again: str) -> None:
    """Refuse a resume whose run-making options are not the recorded job's, naming each one."""
    job = next((job for job in store.jobs() if job.sweep_id == sweep_id), None)
    if job is None:  # a table written before jobs were recorded: its runs are checked one by one
        return
    then, now = _options(job.resume), _options(again)
    differ = [f"{key} {_shown(then[key])} then, {_shown(now[key])} now" for key in now
              if key in then and then[key] != now[key]]  # fmt: skip
    if differ:
        raise ConfigError(
            f"{out} holds a fill perturbation with other options ({'; '.join(differ)}): `{job.resume}` "
            "carries it on, or a new --out starts another"
        )


def _shown(value: object) -> str:
    return _text(value) if isinstance(value, tuple) else str(value)  # type: ignore[arg-type]


def _perturb(plan: _Perturbation) -> dict[str, Any]:
    args, out, configs, recorded = plan.args, plan.out, plan.configs, plan.recorded
    code = code_version()
    resume = bool(getattr(args, "resume", False))
    with left_clean_on_error(out, resume), ExperimentStore(out / "experiments.sqlite", create=True) as store:
        if resume:
            note_other_code(recorded.values(), code)
        metrics = {i: recorded[c.run_id].metrics for i, c in enumerate(configs) if c.run_id in recorded}
        todo = [index for index, c in enumerate(configs) if c.run_id not in recorded]
        tasks = [(configs[index].canonical_json(), False) for index in todo]
        workers = max(1, min(args.workers or os.cpu_count() or 1, len(tasks)))
        left = plural(len(tasks), "backtest")
        left = f"{len(tasks):,} of {len(configs):,} backtests left" if resume else left
        if not tasks:
            console.print(f"fill perturbation: all {len(configs):,} runs are recorded; nothing left to run")
        store.plan(plan.sweep_id, "fill perturbation", len(configs), plan.again)
        with (
            said_where(lambda: len(metrics), len(configs), plan.again),
            progress_bar(f"fill perturbation: {left} on {workers} worker(s)", len(tasks))
            if tasks
            else nullcontext(lambda _: None) as update,
        ):
            results = run_tasks(tasks, workers, update, args.ray) if tasks else ()
            for index, outcome in zip(todo, results, strict=True):
                store.add(Experiment.of_run(
                    configs[index], outcome, sweep_id=plan.sweep_id, point=index, params=plan.draws[index],
                    dataset_hash=plan.dataset_hash, code_version=code,
                ))  # fmt: skip
                metrics[index] = outcome["metrics"]
    shutil.rmtree(out / "journals", ignore_errors=True)  # the runs' journals are not kept
    return _perturbed_summary(plan, [metrics[i] for i in range(len(configs))])


def _perturbed_summary(plan: _Perturbation, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """The perturbed runs' percentiles, printed and returned (``--json``)."""
    summary: dict[str, Any] = {}
    for name in _STATISTICS:
        values = np.array([m[name] for m in metrics if m.get(name) is not None], dtype=np.float64)
        values = values[np.isfinite(values)]
        # No run has the figure (a Sharpe of runs that never trade): no percentiles, "-" in the
        # table, as the bootstrap's (np.percentile of nothing raised IndexError: exit 70).
        summary[name] = (
            {f"p{p}": float(np.percentile(values, p)) for p in (5, 25, 50, 75, 95)} if values.size else {}
        )
    summary["probability"] = {"loss": float(np.mean([m["total_return"] < 0 for m in metrics]))}
    args = plan.args
    _print_summary(
        f"fill perturbation: {plural(len(metrics), 'backtest')}, slippage {_text(plan.slippage)} bp, "
        f"participation {_text(plan.participation)}%, seed {args.seed}",
        summary,
        None,
    )
    console.print(f"runs recorded in {plan.out / 'experiments.sqlite'} (tape runs {plan.out})")
    return {"runs": len(metrics), "slippage_bp": plan.slippage, "participation_pct": plan.participation,
            "out": str(plan.out), **summary}  # fmt: skip


_STATISTICS = ("total_return", "annual_return", "sharpe", "max_drawdown")
_PERCENTILES = (("p5", "p5"), ("p25", "p25"), ("median", "p50"), ("p75", "p75"), ("p95", "p95"))


# Fitted to the terminal (print_fitted): the figure's name, the median and the run's own figure
# go last; a percentile that does not fit is named under the table.
_COLUMNS = (
    Column("statistic", 10),
    Column("p5", 7),
    Column("p25", 5),
    Column("median", 9),
    Column("p75", 4),
    Column("p95", 6),
    Column("the run", 8),
)


def _print_summary(title: str, summary: dict[str, Any], actual: dict[str, float] | None) -> None:
    """Percentiles of each figure across the paths (or runs), lowest value first, as ``--json``
    holds them: a drawdown is negative, so its p5 is the deepest (docs/research.md)."""
    rows = []
    for name in _STATISTICS:
        cells = summary.get(name, {})
        row = [format_metric(name, cells[key]) if key in cells else "-" for _, key in _PERCENTILES]
        rows.append((_LABELS[name], *row, *([format_metric(name, actual[name])] if actual else [])))
    columns = _COLUMNS if actual else _COLUMNS[:-1]
    # The title is as wide as its figures make it: centred over the table (as wide as the table)
    # it wrapped and left its end on a line of its own even at 120 columns. It is a heading,
    # left-aligned and wrapped between words at the terminal's width, as the notes under it.
    width = max(20, console.width)
    console.print(Text(wrap_text(title, width), style="table.title"))
    print_fitted("", columns, rows, left=1, elsewhere="--json / --csv have every figure")
    notes = (
        "percentiles, lowest first (drawdowns are negative: p5 is the deepest)",
        f"share of losing {'paths' if actual else 'runs'}: {summary['probability']['loss']:.1%}",
    )
    for note in notes:
        console.print(Text(wrap_text(note, width)))


_LABELS = {"total_return": "total return", "annual_return": "annual return", "sharpe": "Sharpe",
           "max_drawdown": "max drawdown"}  # fmt: skip


def add_montecarlo_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mc = verbs.add_parser("montecarlo", help="block bootstrap of a run's returns; fill perturbation")
    mc.add_argument("journal")
    mc.add_argument("--samples", type=at_least(1), default=1000, help="bootstrap paths (default 1000)")
    mc.add_argument("--block", type=at_least(1), default=20, help="sessions per bootstrap block (default 20)")
    mc.add_argument("--seed", type=at_least(0), default=0)
    mc.add_argument(
        "--perturb", type=at_least(0), default=0, metavar="N", help="also re-run the config N times"
    )
    mc.add_argument("--slippage-bp", default="0,10", help="slippage range for --perturb (default 0,10)")
    mc.add_argument("--participation", default="0,0", help="volume cap range in %% (default 0,0: none)")
    mc.add_argument("--workers", type=at_least(0), default=0, help="processes for --perturb (0: every core)")
    mc.add_argument(
        "--out", type=output_folder, help="folder for the perturbed runs (default JOURNAL.montecarlo)"
    )
    mc.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                    help="write every figure as JSON (alone or '-': stdout)")  # fmt: skip
    mc.add_argument("--csv", type=output_file, metavar="PATH", help="write the tables as CSV ('-': stdout)")
    mc.add_argument("--ray", metavar="ADDRESS", help='--perturb on a Ray cluster ("local": start one here)')
    mc.add_argument("--resume", action="store_true", help="carry a stopped --perturb on: the rest runs")
