"""``tape tearsheet WHAT``: PNG files and one self-contained HTML page for a run (a journal),
a sweep (a folder with experiments.sqlite) or a walk-forward (a folder with walkforward.json)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from cli.arguments import output_folder
from cli.exits import unfinished_status
from cli.progress import console, not_stdout, plural
from cli.wiring import ConfigError
from kernel.store import open_journal
from sim.experiments import RANKABLE, ExperimentStore, format_metric, metric_score
from sim.metrics import NoRunStarted, report_from_journal
from sim.tearsheet import (
    Figure,
    TearsheetError,
    daily_series,
    run_figures,
    sweep_figures,
    walkforward_figures,
    write_tearsheet,
)

__all__ = ["add_tearsheet_parser", "cmd_tearsheet"]


Sheet = tuple[str, list[Figure], list[tuple[str, str]]]  # title, figures, summary rows


def cmd_tearsheet(args: argparse.Namespace) -> int:
    not_stdout(args.out, option="--out", holds="a folder (tearsheet.html and its PNG files)")
    target = Path(args.what)
    sweep = not (target / "walkforward.json").is_file() and (target / "experiments.sqlite").is_file()
    if args.metric is not None and not sweep:  # it was ignored, the page drawn as without it
        raise ConfigError(f"--metric picks a sweep's heatmap figure; {target} is not a sweep's folder")
    try:
        if (target / "walkforward.json").is_file():
            title, figures, rows = _walkforward(target)
        elif sweep:
            title, figures, rows = _sweep(target, args.metric or "sharpe")
        else:
            title, figures, rows = _run(target)
    except (TearsheetError, NoRunStarted) as error:
        raise ConfigError(f"{target}: {error}") from None
    out = Path(args.out) if args.out else _default_out(target)
    try:
        page = write_tearsheet(out, title, figures, rows)
    except OSError as error:  # named as every output option's is, not an Errno line
        raise ConfigError(
            f"--out {out}: cannot write the tearsheet there ({error.strerror or error})"
        ) from None
    names = ", ".join(f.name for f in figures)
    console.print(f"wrote {page} and {plural(len(figures), 'PNG file')} ({names}) to {out}")
    if not (target / "walkforward.json").is_file() and not (target / "experiments.sqlite").is_file():
        with open_journal(target) as journal:  # a run's journal
            return unfinished_status(journal)  # a run that never finished: said, exit 3
    return 0


def _run(journal_path: Path) -> Sheet:
    with open_journal(journal_path) as journal:
        run = report_from_journal(journal)
        series = daily_series(journal)
    return f"run {run.run_id}", run_figures(series, run, run.periods_per_year), list(run.rows())


def _sweep(folder: Path, metric: str) -> Sheet:
    with ExperimentStore(folder / "experiments.sqlite") as store:
        experiments = store.all()
    if not experiments:
        raise TearsheetError("the experiments table is empty")
    best = max(experiments, key=lambda e: metric_score(metric, e.metrics.get(metric)))
    rows = [
        ("runs", f"{len(experiments):,}"),
        (f"best {metric}", format_metric(metric, best.metrics.get(metric))),
        ("best run", best.run_id),
        ("its parameters", json.dumps(best.params)),
    ]
    return f"sweep {experiments[0].sweep_id}", sweep_figures(experiments, metric), rows


def _walkforward(folder: Path) -> Sheet:
    report = json.loads((folder / "walkforward.json").read_text())
    stats = report["stitched"]["stats"]
    # The stitched curve's drawdown, as a run's page shows its own: walkforward.json's stats are
    # sim.performance.return_stats of the stitched returns, the function tape report's rows use.
    deepest = stats["max_drawdown"]  # negative, as every research table's; None where not finite
    rows = [
        ("folds", str(len(report["folds"]))),
        ("out-of-sample sessions", f"{stats['periods']:,}"),
        ("stitched return", f"{stats['total_return']:+.2%}"),
        ("stitched Sharpe", _num(stats["sharpe"])),
        ("stitched max drawdown", "-" if deepest is None or math.isnan(deepest) else f"{deepest:.2%}"),
        ("stitched longest drawdown", f"{stats['max_drawdown_periods']:,} days"),
    ]
    return f"walk-forward {report['run_id']}", walkforward_figures(report), rows


def _default_out(target: Path) -> Path:
    if target.is_dir() and not (target / "data.mdb").exists():
        return target / "tearsheet"  # a sweep's or walk-forward's folder
    return target.with_name(target.name + ".tearsheet")  # beside a journal


def _num(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"


def add_tearsheet_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sheet = verbs.add_parser("tearsheet", help="PNG charts and an HTML page: a run, sweep or walk-forward")
    sheet.add_argument("what", help="a journal, a sweep's folder or a walk-forward's folder")
    sheet.add_argument(
        "--out", type=output_folder, help="folder for tearsheet.html and the PNGs (default: beside WHAT)"
    )
    sheet.add_argument(
        "--metric", choices=RANKABLE, metavar="METRIC",
        help=f"a sweep's heatmaps' figure: {', '.join(RANKABLE)} (default sharpe)",
    )  # fmt: skip
