"""``tape models [DIR]``: the frozen model artifacts in a registry folder (``models.ml.registry``),
each verified against its content hash; ``--json`` prints every artifact's metadata."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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


def cmd_models(args: argparse.Namespace) -> int:
    try:
        artifacts = list_artifacts(Path(args.dir))
    except ArtifactError as error:
        raise ConfigError(str(error)) from None
    if args.json:
        print(json.dumps([{"hash": a.hash, **a.meta} for a in artifacts], indent=1, sort_keys=True))
        return 0
    table = Table(title=f"model artifacts in {args.dir} ({len(artifacts)})")
    table.add_column("hash", no_wrap=True)
    for column in ("kind", "train window", "features", "label", "rows", "wf test IC", "lake"):
        table.add_column(column, overflow="fold")
    for a in artifacts:
        meta, label = a.meta, a.meta.get("label", {})
        window = meta.get("train_window", {})
        table.add_row(
            a.hash,
            str(meta.get("kind", "?")),
            f"{window.get('start', '?')} .. {window.get('end', '?')}",
            str(len(meta.get("features", []))),
            f"fwd {label.get('horizon', '?')} gap {label.get('gap', '?')}",
            str(meta.get("rows", "?")),
            f"{meta.get('metrics', {}).get('wf_mean_test_ic', float('nan')):.4f}",
            str(meta.get("lake_content_hash", ""))[:12],
        )
    console.print(table)
    return 0
