"""The experiments table: one row per research run (a sweep's point), enough to reproduce it.

Each row records the run's full configuration (the JSON its journal starts with), its seed, the
data set's content hash, the engine and package versions, the journal's chain head and record
count, and its metrics. Re-running the configuration on the same data set and code gives the
same chain head (``tape runs DB --rerun RUN_ID`` checks it). The table lives in a SQLite file of
its own (``experiments.sqlite`` in a sweep's folder by default).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.backtest import ENGINE_VERSION, BacktestConfig

__all__ = [
    "METRICS",
    "RANKABLE",
    "Experiment",
    "ExperimentStore",
    "Job",
    "Metric",
    "format_metric",
    "metric_score",
    "short_names",
]


@dataclass(frozen=True)
class Metric:
    """How a recorded figure reads: its table header, its format, and which way is better
    (``better`` +1: higher, -1: lower, 0: neither, not rankable)."""

    header: str
    pattern: str
    better: int


# The one place that says which way each figure is better and how it prints: the sweep's and
# ``tape runs``' ranking, the walk-forward's choice of parameters and the tearsheet's heatmaps
# all read it. Drawdowns are negative fractions (empyrical's convention): the one nearest zero
# is the best.
METRICS: dict[str, Metric] = {
    "sharpe": Metric("Sharpe", "{:.2f}", 1),
    "sortino": Metric("Sortino", "{:.2f}", 1),
    "calmar": Metric("Calmar", "{:.2f}", 1),
    "total_return": Metric("return", "{:+.1%}", 1),
    "annual_return": Metric("annual", "{:+.1%}", 1),
    "max_drawdown": Metric("max DD", "{:.1%}", 1),
    "annual_volatility": Metric("volatility", "{:.1%}", -1),
    "max_drawdown_periods": Metric("DD days", "{:,}", -1),
    "profit_factor": Metric("profit f.", "{:.2f}", 1),
    "hit_rate": Metric("hit rate", "{:.1%}", 1),
    "expectancy": Metric("expectancy", "{:,.2f}", 1),
    "sqn": Metric("SQN", "{:.2f}", 1),
    "final_nav": Metric("final NAV", "{:,.0f}", 1),
    "fees": Metric("fees", "{:,.0f}", -1),
    "turnover": Metric("turnover", "{:.2f}x", -1),
    "trades": Metric("trades", "{:,}", 0),
    "exposure": Metric("exposure", "{:.1%}", 0),
}
RANKABLE = tuple(name for name, metric in METRICS.items() if metric.better)


def metric_score(metric: str, value: object) -> float:
    """``value`` of ``metric`` as a score where higher is better (``-inf``: missing or NaN)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        return -math.inf
    return float(value) * METRICS[metric].better


def format_metric(metric: str, value: object) -> str:
    """``value`` as ``metric`` prints in every research table ("-": missing or NaN)."""
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    pattern = spec.pattern if (spec := METRICS.get(metric)) else "{:.4g}"
    text = pattern.format(value)
    if text.startswith("-") and not any(c in "123456789" for c in text):
        return pattern.format(0.0)  # a tiny negative figure rounded to zero prints as zero, not "-0.00"
    return text


def short_names(keys: Iterable[str]) -> dict[str, str]:
    """Each dotted parameter key by its fewest trailing parts that no other key ends with
    (``risk.name.limit_e8`` and ``risk.sector.limit_e8``: ``name.limit_e8``,
    ``sector.limit_e8``; ``strategy.params.fast``: ``fast``)."""
    keys = list(dict.fromkeys(keys))
    split = {key: key.split(".") for key in keys}
    out = {}
    for key, parts in split.items():
        for count in range(1, len(parts) + 1):
            tail = parts[-count:]
            if not any(other != key and split[other][-count:] == tail for other in keys):
                break
        out[key] = ".".join(tail)
    return out


_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    run_id TEXT PRIMARY KEY,
    sweep_id TEXT NOT NULL,
    point INTEGER NOT NULL,
    params_json TEXT NOT NULL,
    config_json TEXT NOT NULL,
    seed INTEGER NOT NULL,
    dataset_hash TEXT NOT NULL,
    engine_version TEXT NOT NULL,
    code_version TEXT NOT NULL,
    chain_head TEXT NOT NULL,
    records INTEGER NOT NULL,
    metrics_json TEXT NOT NULL,
    journal TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS navs (
    run_id TEXT PRIMARY KEY,
    navs_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    sweep_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    planned INTEGER NOT NULL,
    resume TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Job:
    """A research job as planned when it started (a sweep, a walk-forward, a perturbation) and
    how many of its runs the table holds: fewer than ``planned`` means it stopped before its
    end, and ``resume`` is the command that runs the rest."""

    sweep_id: str
    kind: str
    planned: int
    resume: str
    recorded: int

    @property
    def finished(self) -> bool:
        return self.recorded >= self.planned


@dataclass(frozen=True)
class Experiment:
    run_id: str
    sweep_id: str
    point: int
    params: dict[str, Any]
    config_json: str
    seed: int
    dataset_hash: str
    engine_version: str
    code_version: str
    chain_head: str
    records: int
    metrics: dict[str, Any]
    journal: str  # "" when the journal was not kept

    @classmethod
    def of_run(
        cls,
        config: BacktestConfig,
        result: dict[str, Any],
        *,
        sweep_id: str,
        point: int,
        params: dict[str, Any],
        dataset_hash: str,
        code_version: str,
    ) -> Experiment:
        """The row for one finished run: ``config`` is what it ran, ``result`` what the run
        returned (``chain_head``, ``records``, ``metrics`` and, when its journal was kept,
        ``journal``); the engine version is this one."""
        return cls(
            run_id=config.run_id, sweep_id=sweep_id, point=point, params=params,
            config_json=config.canonical_json(), seed=config.seed, dataset_hash=dataset_hash,
            engine_version=ENGINE_VERSION, code_version=code_version, chain_head=result["chain_head"],
            records=result["records"], metrics=result["metrics"], journal=result.get("journal", ""),
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["config"] = json.loads(data.pop("config_json"))
        return data


class ExperimentStore:
    """The experiments table in a SQLite file; created on first write, never on read."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no experiments table here (run `tape sweep` first)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        if create:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ExperimentStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def add(self, experiment: Experiment, navs: list[tuple[int, int]] | None = None) -> None:
        """Record one run (a run id already present is replaced: the sweep was run again), with
        its daily NAVs ((day, minor units) at each close) where a job needs them back."""
        e = experiment
        if navs is not None:
            self._db.execute("INSERT OR REPLACE INTO navs VALUES (?, ?)", (e.run_id, json.dumps(navs)))
        self._db.execute(
            "INSERT OR REPLACE INTO experiments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (e.run_id, e.sweep_id, e.point, json.dumps(e.params, sort_keys=True), e.config_json, e.seed,
             e.dataset_hash, e.engine_version, e.code_version, e.chain_head, e.records,
             json.dumps(e.metrics, sort_keys=True), e.journal),
        )  # fmt: skip
        self._db.commit()

    def navs(self, run_id: str) -> list[tuple[int, int]] | None:
        """The daily NAVs recorded with a run (None: not recorded, or a table without them)."""
        try:
            row = self._db.execute("SELECT navs_json FROM navs WHERE run_id = ?", (run_id,)).fetchone()
        except sqlite3.OperationalError:  # no navs table: written by an older Tape
            return None
        return None if row is None else [(day, nav) for day, nav in json.loads(row[0])]

    def plan(self, sweep_id: str, kind: str, planned: int, resume: str) -> None:
        """Record the job's size as it starts (again on each ``--resume``: its command may have
        moved), so a stopped job can be told from a finished one."""
        self._db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?)", (sweep_id, kind, planned, resume))
        self._db.commit()

    def jobs(self) -> list[Job]:
        """The jobs this table planned, each with the count of its runs recorded (none for a
        table written before jobs were recorded)."""
        try:
            rows = self._db.execute(
                "SELECT j.sweep_id, j.kind, j.planned, j.resume, COUNT(e.run_id) FROM jobs j "
                "LEFT JOIN experiments e ON e.sweep_id = j.sweep_id GROUP BY j.sweep_id ORDER BY j.sweep_id"
            ).fetchall()
        except sqlite3.OperationalError:  # no jobs table: written by an older Tape
            return []
        return [Job(*row) for row in rows]

    def all(self, sweep_id: str | None = None) -> list[Experiment]:
        query = "SELECT * FROM experiments"
        args: tuple[str, ...] = ()
        if sweep_id is not None:
            query += " WHERE sweep_id = ?"
            args = (sweep_id,)
        try:
            rows = self._db.execute(query + " ORDER BY sweep_id, point", args).fetchall()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as error:
            raise FileNotFoundError(f"{self.path}: not an experiments table ({error})") from None
        return [_experiment(row) for row in rows]

    def get(self, run_id: str) -> Experiment:
        row = self._db.execute("SELECT * FROM experiments WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"{self.path}: no run {run_id!r}")
        return _experiment(row)


def _experiment(row: tuple[Any, ...]) -> Experiment:
    (run_id, sweep_id, point, params, config, seed, dataset_hash, engine, code, head, records, metrics,
     journal) = row  # fmt: skip
    return Experiment(
        run_id, sweep_id, point, json.loads(params), config, seed, dataset_hash, engine, code, head,
        records, json.loads(metrics), journal,
    )  # fmt: skip
