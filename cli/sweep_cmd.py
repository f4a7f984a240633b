"""``tape sweep CONFIG.toml`` and ``tape runs``: many backtests of one configuration over a
parameter grid or a seeded random search, on every core, each recorded so it can be re-run to
the same chain head.

The configuration's ``[sweep]`` table names the parameters by their dotted path in the TOML
(``strategy.params.fast``, ``strategies.1.budget``, ``fill.slippage_e8``):

```toml
[sweep]
grid = { "strategy.params.fast" = [5, 10, 20], "strategy.params.slow" = [50, 100] }
# or a random search: samples drawn with `seed` from ranges or lists
# samples = 200
# seed = 7
# space = { "strategy.params.fast" = { low = 2, high = 30 }, "strategy.params.weight" = [0.5, 0.9] }
workers = 0            # 0: every core
keep_journals = false  # true keeps each run's journal under OUT/journals
rank_by = "sharpe"
out = "sweeps/sma"     # default: sweeps/RUN_ID beside the TOML
```

Each point is a full backtest (journal, risk, ledger postings); its run id is
``RUN_ID-NNNN``. The results — configuration, seed, data-set hash, engine and code version,
chain head, metrics — go to ``OUT/experiments.sqlite`` (``sim.experiments``) as each run ends;
``tape runs OUT`` lists them, ``--rerun RUN_ID`` runs one again and checks its chain head. A
stopped sweep is carried on with ``--resume``: the points ``OUT`` has not recorded run.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from importlib.metadata import PackageNotFoundError, version
from multiprocessing import get_context, resource_tracker
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from rich.markup import escape

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
from cli.wiring import (
    ConfigError,
    config_from_raw,
    make_strategies,
    new_run_strategies,
    read_raw_config,
    replay_builder,
    typed_path,
)
from domain.market import Panel
from kernel.replay import replay
from kernel.store import open_journal, remove_journal
from kernel.strategy import StrategyError
from lake.store import dataset_ref, load_panel
from models.plugins import installed_strategies
from sim.backtest import BacktestConfig, run_backtest
from sim.experiments import (
    METRICS,
    RANKABLE,
    Experiment,
    ExperimentStore,
    format_metric,
    metric_score,
    short_names,
)
from sim.metrics import RunFold

__all__ = [
    "WORKER_CACHE",
    "SweepSpec",
    "WorkerCache",
    "add_sweep_parsers",
    "cmd_runs",
    "cmd_sweep",
    "code_version",
    "params_text",
    "print_ranked",
    "ranked",
    "run_point",
    "run_tasks",
    "set_dotted",
    "sweep_points",
]

# Runs a pool worker does before it is replaced: memory stays bounded (a worker's resident size
# levels off after a few runs of a 50-name, 10-year data set: ~430 MB), and each replacement
# costs a fresh interpreter's imports (~2-3 CPU s).
RUNS_PER_WORKER = 256


class Range(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A random-search range: integers when both ends are (inclusive), else floats (``log``:
    log-uniform, integers too)."""

    low: int | float
    high: int | float
    log: bool = False


class SweepSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    grid: dict[str, list[Any]] = {}
    space: dict[str, Range | list[Any]] = {}
    samples: int = 0
    seed: int = 0
    workers: int = 0
    keep_journals: bool = False
    rank_by: str = "sharpe"
    out: str = ""

    def __post_init__(self) -> None:
        if bool(self.grid) == bool(self.space):
            raise ValueError("sweep: give a grid, or a space with samples for a random search (one of them)")
        if self.space and self.samples <= 0:
            raise ValueError("sweep.samples: a random search needs a positive number of samples")
        if self.grid and (self.samples or self.seed):  # they were ignored: the grid's points ran
            raise ValueError("sweep: samples and seed draw a random search's points from a space; a grid "
                             "runs every point it lists (give a grid, or a space with samples)")  # fmt: skip
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"sweep.grid.{key}: no values")
            texts = [repr(value) for value in values]  # values may be tables or lists: compared as written
            twice = [text for text in texts if texts.count(text) > 1]
            if twice:
                raise ValueError(f"sweep.grid.{key}: {twice[0]} is given more than once")
        for key, spec in self.space.items():
            _check_choice(key, spec)
        if self.rank_by not in RANKABLE:
            raise ValueError(f"sweep.rank_by must be one of {', '.join(RANKABLE)}; got {self.rank_by!r}")
        if self.workers < 0:
            raise ValueError(f"sweep.workers must not be negative, got {self.workers}")


def _check_choice(key: str, spec: Range | list[Any]) -> None:
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"sweep.space.{key}: no values")
    elif not spec.low <= spec.high:
        raise ValueError(f"sweep.space.{key}: low {spec.low} is above high {spec.high}")
    elif spec.log and spec.low <= 0:
        raise ValueError(f"sweep.space.{key}: a log range needs low > 0")


def sweep_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The parameter points: the grid's product in the order written, or ``samples`` draws."""
    if spec.grid:
        keys = list(spec.grid)
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*spec.grid.values())]
    rng = np.random.default_rng(spec.seed)
    points = []
    for _ in range(spec.samples):
        point: dict[str, Any] = {}
        for key, choice in spec.space.items():
            point[key] = _draw(rng, choice)
        points.append(point)
    return points


def _draw(rng: np.random.Generator, choice: Range | list[Any]) -> Any:
    """One value: a list's item; an integer range's integer (``log``: the floor of a
    log-uniform draw over ``[low, high + 1)``, so each integer's chance falls with its size);
    a float range's float. Each draw takes one number from ``rng``."""
    if isinstance(choice, list):
        return choice[int(rng.integers(len(choice)))]
    integers = isinstance(choice.low, int) and isinstance(choice.high, int)
    if integers and not choice.log:
        return int(rng.integers(choice.low, choice.high + 1))
    if integers:
        drawn = math.exp(rng.uniform(math.log(choice.low), math.log(choice.high + 1)))
        return min(math.floor(drawn), choice.high)  # the top edge, should rounding reach it
    if choice.log:
        return float(math.exp(rng.uniform(math.log(choice.low), math.log(choice.high))))
    return float(rng.uniform(choice.low, choice.high))


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.0.c`` in nested tables and lists (numbers index lists); tables are created."""
    parts = key.split(".")
    node: Any = raw
    for index, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[_index(node, part, key)]
        else:
            node = node.setdefault(part, {} if not parts[index + 1].isdigit() else [])
    last = parts[-1]
    if isinstance(node, list):
        node[_index(node, last, key)] = value
    else:
        node[last] = value


def _index(node: list[Any], part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"sweep key {key!r}: {part!r} is not an index of a list of {len(node)}")
    return int(part)


def run_point(task: tuple[str, bool]) -> dict[str, Any]:
    """One backtest of a sweep, in any process: its chain head, record count, metrics and
    daily NAVs ((day, minor units) at each close)."""
    config_json, keep = task
    config = BacktestConfig.from_json(config_json)
    fold = RunFold()  # the figures as the run journals its events: no pass over the journal after
    loaded = WORKER_CACHE.panel(Path(config.dataset))
    strategies = make_strategies(config, WORKER_CACHE.installed(config))
    result = run_backtest(config, strategies, on_append=fold.add, in_memory=not keep, loaded=loaded)
    report, navs = fold.report_and_navs()
    summary = report.to_json()
    metrics = {**summary["returns"], **summary["trades"]}  # type: ignore[dict-item]
    metrics.update({key: summary[key] for key in ("final_nav", "fees", "turnover", "exposure", "finished")})
    return {
        "chain_head": result.last_hash,
        "records": result.records,
        "metrics": metrics,
        "journal": str(result.journal) if keep else "",
        "navs": navs,
    }


class WorkerCache:
    """What every run of a sweep worker reads the same: the data set's panel (about 40 ms to
    read and pivot 50 names x 2,520 bars) and the installed strategies (about 10 ms to scan
    the entry points). The panel is kept under the content hash its manifest states, read
    again for every run: a data set rewritten during a sweep is read again, checked against
    its new manifest. Its arrays are made read-only, so no run can change what the next
    one reads (a backtest never writes them; a queued run works on a copy)."""

    def __init__(self) -> None:
        self._panel: tuple[str, str, Panel] | None = None
        self._installed: dict[str, str] | None = None

    def panel(self, path: Path) -> Panel:
        digest = dataset_ref(path).content_hash
        kept = self._panel
        if kept is not None and kept[:2] == (str(path.resolve()), digest):
            return kept[2]
        panel, _ = load_panel(path, expected_hash=digest)
        for item in dataclasses.fields(panel):
            value = getattr(panel, item.name)
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
        self._panel = (str(path.resolve()), digest, panel)
        return panel

    def installed(self, config: BacktestConfig) -> dict[str, str]:
        """The installed strategies, scanned again when one the run names is not among them
        (a package installed since)."""
        names = {strategy.name for strategy in config.strategy_configs() if strategy.name}
        if self._installed is None or not names <= self._installed.keys():
            self._installed = installed_strategies()
        return self._installed


WORKER_CACHE = WorkerCache()  # one per process: a pool worker, or the sweep's own process (1 worker)


def code_version() -> str:
    """The package version, and the git commit when Tape runs from a checkout ('+dirty' if the
    checkout has changes)."""
    try:
        text = f"tape {version('tape')}"
    except PackageNotFoundError:
        text = "tape (not installed)"
    root = Path(__file__).resolve().parents[1]
    git = ["git", "-C", str(root)]
    try:
        head = _output([*git, "rev-parse", "HEAD"])
        dirty = _output([*git, "status", "--porcelain", "--untracked-files=no"])
    except (OSError, subprocess.SubprocessError):
        return text
    return f"{text} git {head}{'+dirty' if dirty else ''}"


def _output(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, timeout=10, check=True).stdout.strip()


def run_tasks(
    tasks: list[tuple[str, bool]], workers: int, update: Callable[[int], None], ray: str | None = None
) -> Iterator[dict[str, Any]]:
    """Each task's result, in the tasks' order: in this process (``workers`` 1), in a pool of
    ``workers`` processes, or on a Ray cluster at ``ray`` ("local" starts one on this machine,
    bound to 127.0.0.1). A run's result does not depend on where it ran."""
    if ray:
        yield from _ray_tasks(tasks, ray, update)
        return
    if workers == 1:
        for done, task in enumerate(tasks, 1):
            yield run_point(task)
            update(done)
        return
    # spawn: a fresh interpreter per worker (no forked locks, e.g. the progress bar's thread);
    # workers are replaced after RUNS_PER_WORKER runs each so memory stays bounded on long
    # sweeps. This is multiprocessing's Pool: ProcessPoolExecutor(max_tasks_per_child=...) stops
    # replacing retired workers and hangs past that many runs x workers on CPython 3.11
    # (gh-115634).
    context = get_context("spawn")
    with _sigint_blocked():
        pool = context.Pool(processes=workers, maxtasksperchild=RUNS_PER_WORKER)
    with pool:
        for done, result in enumerate(pool.imap(run_point, tasks), 1):
            yield result
            update(done)


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread while a pool starts its workers. Ctrl-C in a terminal
    signals the whole process group, and only this process must act on it (stop in one line;
    leaving the ``with pool`` terminates the workers): each worker printed a KeyboardInterrupt
    traceback. A spawned process inherits the signal mask, and the pool's own thread, which
    replaces retired workers, inherits it from here; a Ctrl-C meanwhile waits for the unblock.
    multiprocessing's resource tracker is started first: starting it *unblocks* SIGINT in the
    thread that starts it (CPython 3.11), which would undo the mask before the workers start."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX
        yield
        return
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _ray_tasks(
    tasks: list[tuple[str, bool]], address: str, update: Callable[[int], None]
) -> Iterator[dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'tape[ray]'") from None
    if address == "local":
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token written under the home folder
        ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        remote = ray.remote(run_point)
        pending = [remote.remote(task) for task in tasks]
        for done, ref in enumerate(pending, 1):
            yield ray.get(ref)
            update(done)
    finally:
        ray.shutdown()


def cmd_sweep(args: argparse.Namespace) -> int:
    """Runs the sweep and prints its ranked table; ``--json`` / ``--csv``: every run, as ``tape
    runs`` writes them."""
    json_path, csv_path = getattr(args, "json", None), getattr(args, "csv", None)
    not_stdout(args.out, option="--out", holds="a folder (experiments.sqlite and the journals)")
    to_stdout = one_stdout(json=json_path, csv=csv_path)
    with results_on_stderr(to_stdout):  # stdout carries the data alone
        experiments = _sweep(args)
    for option, where, text in (("--json", json_path, _json_text), ("--csv", csv_path, _csv_text)):
        if where:
            write_output(where, text(experiments), option=option)
    with results_on_stderr(to_stdout):
        for where in dict.fromkeys(w for w in (json_path, csv_path) if w not in (None, "-")):
            console.print(f"wrote {plural(len(experiments), 'run')} to {where}", soft_wrap=True)
    return 0


def _sweep(args: argparse.Namespace) -> list[Experiment]:
    path = Path(args.config)
    raw = read_raw_config(path)
    table = raw.pop("sweep", None)
    raw.pop("walkforward", None)  # the table of `tape walkforward`, which reads [sweep] as little
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: no [sweep] table (docs/research.md)")
    try:
        spec = msgspec.convert(table, SweepSpec)
    except (msgspec.ValidationError, ValueError) as error:
        raise ConfigError(f"{path}: {error}") from None
    base_id = str(raw.get("run_id", path.stem))
    if args.out:  # typed: from the current directory; [sweep] out: from the TOML's folder
        out = Path(typed_path(args.out))
    else:
        out = (path.parent / (spec.out or f"sweeps/{base_id}")).resolve()
    resume = bool(getattr(args, "resume", False))
    db = experiments_table(out, resume, "sweep")
    points = sweep_points(spec)
    configs = _point_configs(raw, points, path, base_id, out)
    workers = args.workers if args.workers is not None else spec.workers
    hashes = {dataset: dataset_ref(Path(dataset)).content_hash for dataset in {c.dataset for c in configs}}
    code = code_version()
    with left_clean_on_error(out, resume), ExperimentStore(db, create=True) as store:
        expected = {config.run_id: config for config in configs}
        recorded = recorded_runs(store, base_id, expected, hashes, spec.keep_journals) if resume else {}
        todo = [index for index, config in enumerate(configs) if config.run_id not in recorded]
        if resume:
            note_other_code(recorded.values(), code)
            for index in todo:  # a run stopped midway left its journal cut short: it runs again
                remove_journal(Path(configs[index].journal))
        tasks = [(configs[index].canonical_json(), spec.keep_journals) for index in todo]
        workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
        experiments = list(recorded.values())
        where = f"Ray at {args.ray}" if args.ray else f"{workers} worker(s)"
        left = plural(len(tasks), "backtest")
        left = f"{len(tasks):,} of {len(configs):,} backtests left" if resume else left
        label = f"sweep {base_id}: {left} on {where}"
        if not tasks:
            console.print(f"sweep {base_id}: all {len(configs):,} runs are recorded; nothing left to run")
        again = resume_command("tape", "sweep", path, "--out", out, "--resume")
        store.plan(base_id, "sweep", len(configs), again)
        with (
            said_where(lambda: len(experiments), len(configs), again),
            progress_bar(label, len(tasks)) if tasks else nullcontext(lambda _: None) as update,
        ):
            results = run_tasks(tasks, workers, update, args.ray) if tasks else iter(())
            results = refusals_named(results, [run_label(configs[index], points[index]) for index in todo])
            for index, result in zip(todo, results, strict=True):
                config = configs[index]
                experiment = Experiment.of_run(
                    config,
                    result,
                    sweep_id=base_id,
                    point=index,
                    params=points[index],
                    dataset_hash=hashes[config.dataset],
                    code_version=code,
                )
                store.add(experiment)
                experiments.append(experiment)
    if not spec.keep_journals:
        shutil.rmtree(out / "journals", ignore_errors=True)
    experiments.sort(key=lambda e: e.point)
    print_ranked(experiments, spec.rank_by, args.top)
    console.print(f"{plural(len(experiments), 'run')} recorded in {db} (tape runs {out})", soft_wrap=True)
    return experiments


def _point_configs(
    raw: dict[str, Any], points: list[dict[str, Any]], path: Path, base_id: str, out: Path
) -> list[BacktestConfig]:
    """Each point's backtest configuration, every one checked (and its strategies built) before
    any runs."""
    configs = []
    for index, point in enumerate(points):
        point_raw = json.loads(json.dumps(raw))
        for key, value in point.items():
            set_dotted(point_raw, key, value)
        point_raw["run_id"] = f"{base_id}-{index:04d}"
        # The journal path is part of the journaled configuration, so it is fixed (a journal
        # not kept is deleted after its metrics are read, and `--rerun` writes it there again).
        point_raw["journal"] = str(out / "journals" / point_raw["run_id"])
        with sweep_point_named(point):
            config = config_from_raw(point_raw, path)
            new_run_strategies(config)  # checked as tape backtest checks a run
        configs.append(config)
    return configs


@contextmanager
def sweep_point_named(point: dict[str, Any]) -> Iterator[None]:
    """A configuration a sweep point cannot run is refused with the point's sweep keys named
    (``foo.bar`` reads as an unknown field ``foo`` otherwise, with no word of the sweep)."""
    try:
        yield
    except ConfigError as error:
        keys = ", ".join(f"{key} = {value!r}" for key, value in point.items())
        raise ConfigError(f"{error} (at the sweep point {keys}: a sweep key is the dotted path of a key "
                          "of the configuration)") from None  # fmt: skip


def refusals_named(results: Iterator[dict[str, Any]], runs: list[str]) -> Iterator[dict[str, Any]]:
    """``results`` of the runs ``runs`` names, in order (``run_label``); a strategy's refusal in
    one of them names that run: ``bad at step 30: ...`` alone did not say which of a sweep's or
    a walk-forward's runs it was."""
    done = 0
    try:
        for result in results:
            yield result
            done += 1
    except StrategyError as error:
        raise StrategyError(f"{runs[done]}: {error}") from error


def run_label(config: BacktestConfig, params: dict[str, Any]) -> str:
    """``sma-0003 (fast=20 slow=100)``: a run and its point, in an error line."""
    return f"{config.run_id} ({params_text(params, short_names(params))})"


def ranked(experiments: list[Experiment], metric: str) -> list[Experiment]:
    """Best first by ``metric`` (its better direction: ``sim.experiments.METRICS``); runs
    without the figure last; equal scores in point order."""
    return sorted(experiments, key=lambda e: (-metric_score(metric, e.metrics.get(metric)), e.point))


def params_text(params: dict[str, Any], names: dict[str, str]) -> str:
    """``name=value`` for each parameter, by its shortest unambiguous name (``names``)."""
    return " ".join(f"{names[key]}={_short(value)}" for key, value in params.items())


_SHOWN = ("sharpe", "total_return", "max_drawdown", "trades")


def print_ranked(experiments: list[Experiment], metric: str, top: int) -> None:
    """The ``top`` runs by ``metric``, with its figure; the table fits the terminal
    (``cli.research_tables``)."""
    from cli.research_tables import Column, print_fitted  # here: a sweep's workers never print

    best = ranked(experiments, metric)[:top]
    names = short_names(key for e in experiments for key in e.params)
    figures = (metric, *(name for name in _SHOWN if name != metric))
    columns = (
        Column("#", 8), Column("run", 11), Column("parameters", 10, wraps=True, min_width=12),
        *(Column(METRICS[name].header, 9 if index == 0 else 7 - index) for index, name in enumerate(figures)),
    )  # fmt: skip
    rows = [
        (str(rank), e.run_id, params_text(e.params, names),
         *(format_metric(name, e.metrics.get(name)) for name in figures))
        for rank, e in enumerate(best, 1)
    ]  # fmt: skip
    title = f"top {len(best)} of {len(experiments):,} by {metric}"
    print_fitted(title, columns, rows, left=2, elsewhere="tape runs --csv / --json have every figure")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def cmd_runs(args: argparse.Namespace) -> int:
    one_stdout(json=args.json, csv=args.csv)
    target = Path(args.where)
    db = target / "experiments.sqlite" if target.is_dir() else target
    with ExperimentStore(db) as store:
        experiments = store.all(args.sweep)
        jobs = [job for job in store.jobs() if args.sweep in (None, job.sweep_id)]
        if args.sweep is not None and not experiments and not jobs:  # an empty table read as "no runs"
            held = sorted({e.sweep_id for e in store.all()} | {job.sweep_id for job in store.jobs()})
            raise ConfigError(f"{db}: no sweep {args.sweep!r}; it holds {', '.join(held) or 'none'}")
        if args.rerun:
            try:
                experiment = store.get(args.rerun)
            except KeyError as error:
                raise ConfigError(str(error.args[0])) from None
            return _rerun(experiment)
    if args.json or args.csv:
        for option, path, text in (("--json", args.json, _json_text), ("--csv", args.csv, _csv_text)):
            if path:
                write_output(path, text(experiments), option=option)
        for path in {args.json, args.csv} - {None, "-"}:
            console.print(f"wrote {len(experiments):,} runs to {path}", soft_wrap=True)
        return 0
    print_ranked(experiments, args.rank_by, args.top)
    for job in jobs:
        if job.finished:
            console.print(f"{job.kind} {job.sweep_id}: finished, all {job.planned:,} runs recorded")
        else:
            console.print(
                f"{job.kind} {job.sweep_id}: [yellow]stopped[/], {job.recorded:,} of {job.planned:,} runs "
                f"recorded; `{escape(job.resume)}` runs the rest",
                soft_wrap=True,  # the command on one line, copied whole
            )
    return 0


def _rerun(experiment: Experiment) -> int:
    """Check a recorded run: a kept journal is replayed (re-derived from its inputs); otherwise
    the configuration runs again with its journal in memory (nothing written).
    Exit 1 unless the chain head is the recorded one."""
    config = BacktestConfig.from_json(experiment.config_json)
    current = dataset_ref(Path(config.dataset)).content_hash
    if current != experiment.dataset_hash:
        console.print(f"[red]the data set changed[/]: {config.dataset} hashes {current[:16]}..., "
                      f"the run read {experiment.dataset_hash[:16]}...")  # fmt: skip
        return 1
    journal_path = Path(config.journal)
    if journal_path.exists():
        with open_journal(journal_path) as journal:
            outcome = replay(journal, replay_builder)
            head = journal.last_hash.hex()
        if not outcome.ok:
            console.print(f"[red]not reproduced[/] {experiment.run_id}: {outcome.divergence}")
            return 1
        how = "replayed its journal"
    else:
        head = run_backtest(config, make_strategies(config), in_memory=True).last_hash
        how = "ran it again"
    if head == experiment.chain_head:
        console.print(
            f"[green]reproduced[/] {experiment.run_id} ({how}): chain head {head[:16]}...", soft_wrap=True
        )
        return 0
    console.print(
        f"[red]not reproduced[/] {experiment.run_id} ({how}): chain head {head[:16]}..., recorded "
        f"{experiment.chain_head[:16]}... (code then: {experiment.code_version})",
        soft_wrap=True,
    )
    return 1


def _json_text(experiments: list[Experiment]) -> str:
    return json.dumps([e.to_json() for e in experiments], indent=1, sort_keys=True) + "\n"


def _csv_text(experiments: list[Experiment]) -> str:
    params = sorted({key for e in experiments for key in e.params})
    metrics = sorted({key for e in experiments for key in e.metrics})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["run_id", "sweep_id", "point", *params, *metrics, "seed", "dataset_hash",
                     "engine_version", "code_version", "chain_head", "records", "journal"])  # fmt: skip
    for e in experiments:
        writer.writerow([e.run_id, e.sweep_id, e.point, *(e.params.get(k) for k in params),
                         *(e.metrics.get(k) for k in metrics), e.seed, e.dataset_hash, e.engine_version,
                         e.code_version, e.chain_head, e.records, e.journal])  # fmt: skip
    return buffer.getvalue()


def add_sweep_parsers(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sweep = verbs.add_parser("sweep", help="backtests over a parameter grid or a random search")
    sweep.add_argument("config", help="a backtest TOML with a [sweep] table")
    sweep.add_argument(
        "--workers", type=at_least(0), help="processes (default: [sweep] workers, 0 = every core)"
    )
    sweep.add_argument(
        "--out", type=output_folder, help="folder for experiments.sqlite (and journals); default [sweep] out"
    )
    sweep.add_argument("--top", type=at_least(1), default=20, help="rows of the ranked table (default 20)")
    sweep.add_argument("--ray", metavar="ADDRESS", help='run on a Ray cluster ("local": start one here)')
    sweep.add_argument("--resume", action="store_true", help="carry a stopped sweep on: run what --out lacks")
    sweep.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                       help="every run as JSON, as tape runs --json (alone or '-': stdout)")  # fmt: skip
    sweep.add_argument(
        "--csv", type=output_file, metavar="PATH", help="every run as CSV, as tape runs --csv ('-': stdout)"
    )
    runs = verbs.add_parser("runs", help="list a sweep's recorded runs, or re-run one")
    runs.add_argument("where", help="a sweep's folder or its experiments.sqlite")
    runs.add_argument("--sweep", help="only this sweep id")
    runs.add_argument("--rank-by", default="sharpe", choices=RANKABLE)
    runs.add_argument("--top", type=at_least(1), default=20, help="rows of the ranked table (default 20)")
    runs.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                      help="every run as JSON (to PATH; alone or '-': stdout)")  # fmt: skip
    runs.add_argument("--csv", type=output_file, metavar="PATH", help="every run as CSV ('-': stdout)")
    runs.add_argument("--rerun", metavar="RUN_ID", help="run it again; exit 1 unless the chain head matches")
