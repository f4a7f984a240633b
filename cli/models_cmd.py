"""``tape models [DIR]``: the frozen model artifacts in a registry folder (``models.ml.registry``),
each verified against its content hash; ``--json [PATH]`` writes every artifact's metadata,
``--csv PATH`` one row per artifact (``-``: stdout, the table on stderr)."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

from cli.arguments import output_file
from cli.progress import console, one_stdout, results_on_stderr, write_output
from cli.research_tables import Column, print_fitted
from cli.wiring import ConfigError
from models.ml.registry import Artifact, ArtifactError, list_artifacts

__all__ = ["add_models_parser", "cmd_models"]


def add_models_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser("models", help="list the model artifacts in a registry folder")
    parser.add_argument(
        "dir", nargs="?", default="models-registry", help="registry folder (default: %(default)s)"
    )
    parser.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                        help="write every artifact's metadata as JSON (alone or '-': stdout)")  # fmt: skip
    parser.add_argument(
        "--csv", type=output_file, metavar="PATH", help="one row per artifact as CSV ('-': stdout)"
    )


def _ic_out(metrics: dict[str, float]) -> float | None:
    """The out-of-sample rank IC: a final model's mean over its walk-forward windows, a window's
    model (``tape train``'s ``register_folds``) its own test window's."""
    return metrics.get("wf_mean_test_ic", metrics.get("test_ic"))


CSV_COLUMNS = ("hash", "train_start", "train_end", "horizon", "gap", "classes", "rows", "ic_out")


def _csv_row(artifact: Artifact) -> dict[str, Any]:
    meta, label = artifact.meta, artifact.meta.get("label", {})
    window = meta.get("train_window", {})
    values = (artifact.hash, window.get("start"), window.get("end"), label.get("horizon"), label.get("gap"),
              meta.get("classes"), meta.get("rows"), _ic_out(meta.get("metrics", {})))  # fmt: skip
    return {column: "" if value is None else value for column, value in zip(CSV_COLUMNS, values, strict=True)}


def _csv_text(artifacts: list[Artifact]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_csv_row(a) for a in artifacts)
    return buffer.getvalue()


COLUMNS = (
    Column("hash", 5),
    Column("train window", 4, wraps=True, breaks="."),  # "start.." over "end" where short
    Column("h/gap", 2),
    Column("rows", 1),
    Column("IC out", 3),
)


def _table_row(artifact: Artifact) -> tuple[str, ...]:
    row = _csv_row(artifact)
    ic, rows = row["ic_out"], row["rows"]
    return (
        artifact.hash,
        f"{row['train_start'] or '?'}..{row['train_end'] or '?'}",
        f"{row['horizon'] if row['horizon'] != '' else '?'}/{row['gap'] if row['gap'] != '' else '?'}"
        + (f" {row['classes']}c" if row["classes"] else ""),
        f"{rows:,}" if isinstance(rows, int) else "?",
        f"{ic:+.3f}" if isinstance(ic, float) else "-",
    )


def cmd_models(args: argparse.Namespace) -> int:
    to_stdout = one_stdout(json=args.json, csv=args.csv)
    try:
        artifacts = list_artifacts(Path(args.dir))
    except ArtifactError as error:
        raise ConfigError(str(error)) from None
    if args.csv:
        write_output(args.csv, _csv_text(artifacts), option="--csv")
    if args.json:
        metadata = [{"hash": a.hash, **a.meta} for a in artifacts]
        write_output(args.json, json.dumps(metadata, indent=1, sort_keys=True) + "\n", option="--json")
    title = f"model artifacts in {args.dir} ({len(artifacts)})"
    with results_on_stderr(to_stdout):  # stdout carries the data alone
        print_fitted(
            title, COLUMNS, [_table_row(a) for a in artifacts], left=3, elsewhere="--json / --csv have all"
        )
        if any(a.meta.get("classes") for a in artifacts):
            console.print("h/gap: label horizon and gap in bars; Nc: a classifier over N classes")
        for path in dict.fromkeys(path for path in (args.json, args.csv) if path and path != "-"):
            console.print(f"wrote {path}", soft_wrap=True, highlight=False, markup=False)
    return 0
