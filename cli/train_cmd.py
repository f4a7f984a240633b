"""``tape train CONFIG.toml``: train a LightGBM or PyTorch model walk-forward on named features
and labels from a lake, register the artifacts, print the windows, and (optionally) write the
backtest configuration that trades the final artifact.

```toml
[train]
lake = "lake"                    # paths relative to this file
registry = "models-registry"
journal = "registry-journal"     # optional: model.registered events (outside the registry folder)
frequency = "1d"
model = "lightgbm"               # or "torch_mlp"
task = "regression"              # or "classification" (needs label thresholds)
seed = 7
start = "2004-01-01"             # the final model's training window (inclusive dates, UTC)
end = "2009-12-31"
register_folds = true            # also register each walk-forward window's model
num_boost_round = 200            # lightgbm
params = { learning_rate = 0.05 }   # lightgbm settings over models.ml.train.DEFAULT_PARAMS
mlp = { hidden = [32, 16], epochs = 30 }   # torch_mlp: models.ml.mlp.MlpConfig
label = { horizon = 21, gap = 1 }           # thresholds = [0.0]: up/down; [-0.02, 0.02]: 3 classes
walk_forward = { train_bars = 504, test_bars = 126 }   # step_bars optional

[[train.features]]
name = "momentum"                # models.features.cross_section.TIME_SERIES
params = { lookback = 60, skip = 5 }
steps = [["rank", {}]]           # optional cross-sectional steps

[train.run]                      # optional: the backtest TOML that trades the final artifact
template = "model_run.toml"      # names ${artifact_dir} and ${artifact} (the final model) and/or
                                 # ${artifacts} (the windows' artifacts, a TOML list, in order)
out = "model_run.generated.toml"
```

The table has one row per walk-forward window (its training and test dates, training rows,
in-sample and out-of-sample rank IC, artifact hash) and one for the final model; ``--json`` /
``--csv`` (``-``: stdout, no table) give every field with the full hashes.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import string
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cli.arguments import output_file
from cli.progress import console, one_stdout, progress_bar, write_output
from cli.research_tables import Column, print_fitted
from cli.wiring import ConfigError, config_from_raw, read_raw_config
from kernel.store import open_journal
from lake.partitioned import Lake
from models.features.cross_section import TIME_SERIES, FeatureSpec
from models.ml.artifact import LEARNERS, TrainRun, train_walk_forward
from models.ml.labels import LabelSpec
from models.ml.train import TASKS, classes_of

__all__ = ["TrainSpec", "add_train_parser", "cmd_train", "read_train_spec", "run_train"]

STEPS = ("rank", "zscore", "winsorise", "neutralise")
_KEYS = {"lake", "registry", "journal", "frequency", "model", "task", "seed", "start", "end",
         "register_folds", "num_boost_round", "params", "mlp", "label", "walk_forward", "features",
         "run"}  # fmt: skip


class TrainSpec:
    """A checked ``[train]`` table, its paths resolved from the configuration's folder."""

    def __init__(self, raw: dict[str, Any], path: Path) -> None:
        where = f"{path}: [train]"
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {unknown}; known: {sorted(_KEYS)}")
        for key in ("lake", "registry", "start", "end", "features"):
            if key not in raw:
                raise ConfigError(f"{where}: {key} is required")
        base = path.parent
        self.lake = _path(raw, "lake", base, where)
        self.registry = _path(raw, "registry", base, where)
        self.journal = _path(raw, "journal", base, where) if "journal" in raw else None
        if self.journal is not None and self.journal.resolve().is_relative_to(self.registry.resolve()):
            raise ConfigError(
                f"{where}: journal must lie outside the registry folder (its folders are artifacts)"
            )
        self.frequency = str(raw.get("frequency", "1d"))
        self.model = str(raw.get("model", "lightgbm"))
        if self.model not in LEARNERS:
            raise ConfigError(f"{where}: model {self.model!r} is not one of {', '.join(LEARNERS)}")
        self.task = str(raw.get("task", "regression"))
        if self.task not in TASKS:
            raise ConfigError(f"{where}: task {self.task!r} is not one of {', '.join(TASKS)}")
        self.seed = _int(raw, "seed", 7, where)
        self.start_ts, self.start = _day_ns(raw["start"], "start", where)
        end_ts, self.end = _day_ns(raw["end"], "end", where)
        self.end_ts = end_ts + 86_400 * 10**9 - 1  # the end date is included: up to its last nanosecond
        if self.end_ts <= self.start_ts:
            raise ConfigError(f"{where}: end {self.end} is before start {self.start}")
        self.register_folds = _bool(raw, "register_folds", True, where)
        self._learner_settings(raw, where)
        self.label = _label(_table(raw, "label", where), where + ".label")
        try:
            classes_of(self.task, self.label)
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None
        self._walk_forward(_table(raw, "walk_forward", where), where + ".walk_forward")
        self.features = _features(raw["features"], where)
        self._run_files(_table(raw, "run", where), path, where)

    def _run_files(self, run: dict[str, Any], path: Path, where: str) -> None:
        """``[train.run]``: the template and the file the run's configuration is written to,
        which is neither this configuration nor the template (writing it there, after the
        training, replaced that file)."""
        if run and set(run) != {"template", "out"}:
            raise ConfigError(f"{where}.run: needs exactly template and out, got {sorted(run)}")
        self.run_template = _path(run, "template", path.parent, where + ".run") if run else None
        self.run_out = _path(run, "out", path.parent, where + ".run") if run else None
        for name, other in (("this configuration", path), ("the template", self.run_template)):
            if self.run_out is not None and other is not None and self.run_out.resolve() == other.resolve():
                raise ConfigError(f"{where}.run: out {self.run_out} is {name}: writing the run's "
                                  "configuration there would replace it; name another file")  # fmt: skip

    def _learner_settings(self, raw: dict[str, Any], where: str) -> None:
        self.num_boost_round = _int(raw, "num_boost_round", 200, where)
        self.params = _table(raw, "params", where)
        if self.model != "lightgbm" and (self.params or "num_boost_round" in raw):
            raise ConfigError(f"{where}: params, num_boost_round: LightGBM settings; model is {self.model}")
        if self.model == "lightgbm":  # refused now, not as LightGBM's error once training has begun
            from models.ml.train import check_params

            try:
                check_params(self.params, self.num_boost_round)
            except ValueError as error:
                raise ConfigError(f"{where}: {error}") from None
            except ModuleNotFoundError as error:
                raise ConfigError(f"{where}: model lightgbm needs the ml extra ({error})") from None
        self.mlp = _table(raw, "mlp", where)
        if self.mlp and self.model != "torch_mlp":
            raise ConfigError(f"{where}: mlp is the torch_mlp model's table; model is {self.model}")

    def _walk_forward(self, walk: dict[str, Any], where: str) -> None:
        extra = sorted(set(walk) - {"train_bars", "test_bars", "step_bars"})
        if extra:
            raise ConfigError(f"{where}: unknown setting(s) {extra}; known: train_bars, test_bars, step_bars")
        self.wf_train = _int(walk, "train_bars", 504, where)
        self.wf_test = _int(walk, "test_bars", 126, where)
        self.wf_step = _int(walk, "step_bars", 0, where) or None
        if self.wf_train < 1 or self.wf_test < 1 or (self.wf_step is not None and self.wf_step < 1):
            raise ConfigError(f"{where}: train_bars, test_bars and step_bars must be positive")

    def mlp_config(self) -> Any:
        if self.model != "torch_mlp":
            return None
        from models.ml.mlp import MlpConfig

        settings = dict(self.mlp)
        if "hidden" in settings:
            settings["hidden"] = tuple(int(w) for w in settings["hidden"])
        try:
            return MlpConfig(**settings)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"[train].mlp: {error}") from None


def _path(raw: dict[str, Any], key: str, base: Path, where: str) -> Path:
    value = raw[key]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a path (a string), got {value!r}")
    return Path(value) if Path(value).is_absolute() else (base / value).resolve()


def _int(raw: dict[str, Any], key: str, default: int, where: str) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
    return value


def _bool(raw: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):  # "no" was true
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def _table(raw: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a table, got {value!r}")
    return dict(value)


def _day_ns(value: object, key: str, where: str) -> tuple[int, str]:
    try:
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{where}: {key} must be a date YYYY-MM-DD, got {value!r}") from None
    stamp = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return int(stamp.timestamp()) * 10**9, day.isoformat()


def _label(label: dict[str, Any], where: str) -> LabelSpec:
    extra = sorted(set(label) - {"horizon", "gap", "thresholds"})
    if extra:
        raise ConfigError(f"{where}: unknown setting(s) {extra}; known: horizon, gap, thresholds")
    thresholds = label.get("thresholds", [])
    if not isinstance(thresholds, list):
        raise ConfigError(f"{where}: thresholds must be a list of numbers")
    horizon, gap = _int(label, "horizon", 21, where), _int(label, "gap", 1, where)  # named once, not twice
    try:
        return LabelSpec(horizon, gap, tuple(float(x) for x in thresholds))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {error}") from None


def _features(raw: object, where: str) -> list[FeatureSpec]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: features must be a non-empty list of [[train.features]] tables")
    specs = []
    for number, item in enumerate(raw, 1):
        at = f"{where}.features #{number}"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConfigError(f"{at}: needs a name")
        extra = sorted(set(item) - {"name", "params", "steps"})
        if extra:
            raise ConfigError(f"{at}: unknown setting(s) {extra}; known: name, params, steps")
        if item["name"] not in TIME_SERIES:
            raise ConfigError(f"{at}: unknown feature {item['name']!r}; known: {', '.join(TIME_SERIES)}")
        steps = []
        for step in item.get("steps", []):
            if isinstance(step, str):
                step = [step, {}]
            if not (
                isinstance(step, list) and len(step) == 2 and step[0] in STEPS and isinstance(step[1], dict)
            ):
                raise ConfigError(
                    f"{at}: a step is [operator, {{params}}] with operator one of {', '.join(STEPS)}"
                )
            steps.append((str(step[0]), dict(step[1])))
        params = item.get("params", {})
        if not isinstance(params, dict):
            raise ConfigError(f"{at}: params must be a table")
        specs.append(_spec(at, item["name"], dict(params), tuple(steps)))
    return specs


def _spec(at: str, name: str, params: dict[str, Any], steps: tuple[Any, ...]) -> FeatureSpec:
    try:
        return FeatureSpec(name, params, steps)
    except ValueError as error:  # a parameter or a step's parameter the feature does not take
        raise ConfigError(f"{at}: {error}") from None


def read_train_spec(path: Path) -> TrainSpec:
    raw = read_raw_config(path)
    if not isinstance(raw.get("train"), dict):
        raise ConfigError(f"{path}: no [train] table")
    return TrainSpec(raw["train"], path)


def run_train(spec: TrainSpec, *, progress: Any = None) -> TrainRun:
    """Train and register as ``spec`` says; the registrations journaled when it names a journal."""
    lake = Lake(spec.lake)
    if not lake.content_hash:
        raise ConfigError(f"no lake at {spec.lake} (no manifest)")
    problems = lake.verify()
    if problems:
        raise ConfigError(f"{spec.lake}: refusing to train on a lake that differs from its manifest: "
                          f"{'; '.join(problems[:5])}")  # fmt: skip
    kwargs: dict[str, Any] = {
        "frequency": spec.frequency, "seed": spec.seed, "learner": spec.model, "task": spec.task,
        "params": spec.params or None,
        "num_boost_round": spec.num_boost_round, "mlp": spec.mlp_config(), "wf_train": spec.wf_train,
        "wf_test": spec.wf_test, "wf_step": spec.wf_step, "register_folds": spec.register_folds,
        "progress": progress, "require_folds": True,
    }  # fmt: skip
    try:
        args = (lake, spec.registry, spec.features, spec.label, spec.start_ts, spec.end_ts)
        if spec.journal is None:
            return train_walk_forward(*args, **kwargs)
        with open_journal(spec.journal, writable=True) as journal:
            run = train_walk_forward(*args, sink=journal, **kwargs)
            journal.commit()
            return run
    except ValueError as error:  # a window with no rows, a feature that reads ahead, a bad setting
        raise ConfigError(str(error)) from None


PLACEHOLDERS = ("artifact", "artifact_dir", "artifacts")


def read_run_template(spec: TrainSpec) -> string.Template | None:
    """The ``[train.run]`` template, checked before anything is trained: it must name
    ``${artifact_dir}`` and ``${artifact}`` (the final model, for ``ModelRanker``) or
    ``${artifacts}`` (the windows' artifacts, for ``WalkForwardRanker``; needs
    ``register_folds``), and nothing else."""
    if spec.run_template is None:
        return None
    try:
        template = string.Template(spec.run_template.read_text())
    except OSError as error:
        raise ConfigError(f"[train.run] template: {error}") from None
    names = set(template.get_identifiers())
    if "artifact_dir" not in names or not names & {"artifact", "artifacts"} or not template.is_valid():
        raise ConfigError(
            f"{spec.run_template}: a run template names ${{artifact_dir}} and ${{artifact}} or ${{artifacts}}"
        )
    if names - set(PLACEHOLDERS):
        raise ConfigError(f"{spec.run_template}: unknown placeholder(s) {sorted(names - set(PLACEHOLDERS))}")
    if "artifacts" in names and not spec.register_folds:
        raise ConfigError(
            f"{spec.run_template}: ${{artifacts}} names the windows' artifacts: set register_folds = true"
        )
    return template


def write_run_config(
    spec: TrainSpec,
    template: string.Template,
    artifact: str,
    windows: list[str] | None = None,
    *,
    check_only: bool = False,
) -> Path:
    """The template with ``artifact`` (and ``windows``, the window artifacts in order, as a TOML
    list) substituted, checked as a backtest configuration (relative paths resolve from
    ``out``'s folder), written to ``out`` (unless ``check_only``)."""
    assert spec.run_out is not None
    listed = "[" + ", ".join(json.dumps(digest) for digest in windows or []) + "]"
    filled = template.substitute(
        {"artifact": artifact, "artifact_dir": str(spec.registry), "artifacts": listed}
    )
    try:
        config_from_raw(tomllib.loads(filled), spec.run_out)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{spec.run_template}: {error}") from None
    if not check_only:
        spec.run_out.parent.mkdir(parents=True, exist_ok=True)
        spec.run_out.write_text(filled)
    return spec.run_out


def _span(start_ts_ns: int, end_ts_ns: int) -> dict[str, Any]:
    def day(ts: int) -> str:
        return datetime.fromtimestamp(ts // 1_000_000_000, UTC).date().isoformat()

    return {
        "start": day(start_ts_ns),
        "end": day(end_ts_ns),
        "start_ts_ns": start_ts_ns,
        "end_ts_ns": end_ts_ns,
    }


def _windows(run: TrainRun) -> list[dict[str, Any]]:
    """One entry per walk-forward window, then the final model's: its ``window`` (``index``,
    ``final``, the ``train`` and ``test`` spans' first and last days and bar stamps; the final
    model's ``test`` is null), rows, rank ICs and artifact."""
    out = []
    for fold in run.folds:
        result = fold.result
        out.append({
            "window": {"index": result.fold.index, "final": False, "train": _span(*result.fold.train),
                       "test": _span(*result.fold.test)},
            "train_rows": fold.model.rows, "test_rows": result.test_rows,
            "train_ic": fold.model.metrics.get("train_ic"), "test_ic": result.test_ic,
            "artifact": fold.artifact,
        })  # fmt: skip
    window = run.meta["train_window"]
    out.append({
        "window": {"index": None, "final": True, "train": _span(window["start_ts_ns"], window["end_ts_ns"]),
                   "test": None},
        "train_rows": run.model.rows, "test_rows": None, "train_ic": run.model.metrics.get("train_ic"),
        "test_ic": run.meta["metrics"]["wf_mean_test_ic"], "artifact": run.artifact,
    })  # fmt: skip
    return out


_FIGURES = ("train_rows", "test_rows", "train_ic", "test_ic", "artifact")
_COLUMNS = ("window", "train_start", "train_end", "test_start", "test_end", *_FIGURES)


def _flat(entry: dict[str, Any]) -> dict[str, Any]:
    """A window's entry as one CSV row (``_COLUMNS``): ``window`` its index or ``final``."""
    window, test = entry["window"], entry["window"]["test"] or {}
    return {"window": "final" if window["final"] else str(window["index"]),
            "train_start": window["train"]["start"], "train_end": window["train"]["end"],
            "test_start": test.get("start"), "test_end": test.get("end"),
            **{key: entry[key] for key in _FIGURES}}  # fmt: skip


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_COLUMNS)
    for row in map(_flat, rows):
        writer.writerow(["" if row[c] is None else row[c] for c in _COLUMNS])
    return buffer.getvalue()


def _ic(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


# Fitted to the terminal: the training window wraps after its '..' (start over end) before a
# figure is dropped; the hash's first 12 characters and the out-of-sample IC go last.
_TABLE = (
    Column("#", 10),
    Column("train window", 8, wraps=True, breaks="."),
    Column("test to", 5),
    Column("rows", 4),
    Column("IC in", 3),
    Column("IC out", 7),
    Column("artifact", 9),
)


def _print(spec: TrainSpec, run: TrainRun, rows: list[dict[str, Any]], run_config: Path | None) -> None:
    task = f" ({len(spec.label.thresholds) + 1}-class)" if spec.task == "classification" else ""
    title = (f"{spec.model}{task} {spec.start}..{spec.end}, horizon {spec.label.horizon} "
             f"gap {spec.label.gap}, seed {spec.seed}: {len(run.folds)} windows")  # fmt: skip
    cells = [
        (row["window"], f"{row['train_start']}..{row['train_end']}", row["test_end"] or "-",
         f"{row['train_rows']:,}", _ic(row["train_ic"]), _ic(row["test_ic"]),
         row["artifact"][:12] if row["artifact"] else "-")
        for row in map(_flat, rows)
    ]  # fmt: skip
    print_fitted(title, _TABLE, cells, elsewhere="--json / --csv have every figure")
    console.print("rank IC; final IC out: the windows' mean; full hashes: --json/--csv", highlight=False)
    console.print(f"final artifact {run.artifact} in {spec.registry}", soft_wrap=True, highlight=False)
    if run_config is not None:
        console.print(f"run config {run_config}: tape backtest {run_config}", soft_wrap=True, highlight=False)
    else:
        console.print(
            f'trade it: [strategy] entry = "models.ml.strategy:ModelRanker", params = {{ artifact_dir = '
            f'"{spec.registry}", artifact = "{run.artifact}" }}',
            soft_wrap=True,
            highlight=False,
            markup=False,
        )


def cmd_train(args: argparse.Namespace) -> int:
    quiet = one_stdout(json=args.json, csv=args.csv)
    spec = read_train_spec(Path(args.config))
    template = read_run_template(spec)
    if template is not None:  # a template that cannot make a run configuration is refused before training
        write_run_config(spec, template, "0" * 32, ["0" * 32], check_only=True)
    if quiet:
        run = run_train(spec)
    else:
        with progress_bar(f"train {spec.model}", len(spec.features) + 2) as update:  # features, a fit, final
            run = run_train(spec, progress=update)
    windows = [fold.artifact for fold in run.folds if fold.artifact is not None]
    run_config = write_run_config(spec, template, run.artifact, windows) if template is not None else None
    rows = _windows(run)
    if args.json:
        report = {"model": spec.model, "task": spec.task, "registry": str(spec.registry),
                  "artifact": run.artifact, "seed": spec.seed, "label": spec.label.to_json(), "windows": rows,
                  "run_config": str(run_config) if run_config else None}  # fmt: skip
        write_output(args.json, json.dumps(report, indent=1) + "\n", option="--json")
    if args.csv:
        write_output(args.csv, _csv_text(rows), option="--csv")
    if not quiet:
        _print(spec, run, rows, run_config)
    return 0


def add_train_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "train", help="train a LightGBM or PyTorch model walk-forward from a lake and register its artifacts"
    )
    parser.add_argument("config", help="TOML with a [train] table (docs/models.md)")
    parser.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                        help="write the windows as JSON (alone or '-': stdout, no table)")  # fmt: skip
    parser.add_argument(
        "--csv",
        type=output_file,
        metavar="PATH",
        help="write one row per window as CSV ('-': stdout, no table)",
    )
