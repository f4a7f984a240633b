"""``tape models [DIR]``: the frozen model artifacts in a registry folder (``models.ml.registry``),
each verified against its content hash; ``--json`` prints every artifact's metadata."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich import box
from rich.table import Table

from cli.progress import console
from cli.wiring import ConfigError
from models.ml.registry import ArtifactError, list_artifacts

__all__ = ["add_models_parser", "cmd_models"]


def add_models_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser("models", help="list the model artifacts in a registry folder")
    parser.add_argument(
        "dir", nargs="?", default="models-registry", help="registry folder (default: %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print every artifact's metadata as JSON")


def _ic_out(metrics: dict[str, float]) -> str:
    """The out-of-sample rank IC: a final model's mean over its walk-forward windows, a window's
    model (``tape train``'s ``register_folds``) its own test window's."""
    value = metrics.get("wf_mean_test_ic", metrics.get("test_ic"))
    return "-" if value is None else f"{value:.3f}"


def cmd_models(args: argparse.Namespace) -> int:
    try:
        artifacts = list_artifacts(Path(args.dir))
    except ArtifactError as error:
        raise ConfigError(str(error)) from None
    if args.json:
        print(json.dumps([{"hash": a.hash, **a.meta} for a in artifacts], indent=1, sort_keys=True))
        return 0
    title = f"model artifacts in {args.dir} ({len(artifacts)}); --json for all"
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False)
    table.add_column("hash", no_wrap=True)
    table.add_column("train window", no_wrap=True)
    table.add_column("h/gap", no_wrap=True)
    table.add_column("rows", justify="right")
    table.add_column("IC out", justify="right")
    for a in artifacts:
        meta, label = a.meta, a.meta.get("label", {})
        window = meta.get("train_window", {})
        table.add_row(
            a.hash,
            f"{window.get('start', '?')}..{window.get('end', '?')}",
            f"{label.get('horizon', '?')}/{label.get('gap', '?')}"
            + (f" {meta['classes']}c" if meta.get("classes") else ""),
            str(meta.get("rows", "?")),
            _ic_out(meta.get("metrics", {})),
        )
    if any(a.meta.get("classes") for a in artifacts):
        table.caption = "h/gap: label horizon and gap in bars; Nc: a classifier over N classes"
    console.print(table)
    return 0
