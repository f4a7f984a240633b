"""Frozen model artifacts, stored by content hash.

``ROOT/<hash>/`` holds ``model.txt`` (the LightGBM model text) and ``artifact.json`` (the
feature specs in order, the label spec, the training window, the lake's content hash, the
training rows' hash, the LightGBM settings and version, metrics). The hash is blake2b-128 over
both files' bytes, so ``load(root, hash)`` re-hashes what it reads and refuses anything that
changed; registering the same model and metadata twice gives the same folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Artifact", "ArtifactError", "artifact_hash", "list_artifacts", "load", "register"]

MODEL_FILE = "model.txt"
META_FILE = "artifact.json"


class ArtifactError(ValueError):
    """An artifact that is missing or whose bytes do not hash to its name."""


@dataclass(frozen=True)
class Artifact:
    hash: str
    model_text: str
    meta: dict[str, Any]
    folder: Path


def _meta_bytes(meta: dict[str, Any]) -> bytes:
    return (json.dumps(meta, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


def artifact_hash(model: bytes, meta: bytes) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for name, data in ((MODEL_FILE, model), (META_FILE, meta)):
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def register(root: Path, model_text: str, meta: dict[str, Any]) -> str:
    """Write the artifact under ``root/<hash>/`` (atomically: a staged folder renamed into
    place) and return its hash; an artifact already there is verified and kept."""
    model, meta_bytes = model_text.encode(), _meta_bytes(meta)
    digest = artifact_hash(model, meta_bytes)
    folder = Path(root) / digest
    if folder.exists():
        load(root, digest)
        return digest
    folder.parent.mkdir(parents=True, exist_ok=True)
    staged = folder.parent / f".{digest}.staging-{os.getpid()}"
    staged.mkdir()
    (staged / MODEL_FILE).write_bytes(model)
    (staged / META_FILE).write_bytes(meta_bytes)
    staged.rename(folder)
    return digest


def load(root: Path, digest: str) -> Artifact:
    """The artifact named ``digest``, after checking its bytes still hash to that name."""
    folder = Path(root) / digest
    try:
        model, meta = (folder / MODEL_FILE).read_bytes(), (folder / META_FILE).read_bytes()
    except FileNotFoundError as error:
        raise ArtifactError(f"no model artifact {digest} under {root}: {error.filename} is missing") from None
    actual = artifact_hash(model, meta)
    if actual != digest:
        raise ArtifactError(
            f"model artifact {folder} hashes to {actual}, not {digest}: its files were changed"
        )
    return Artifact(digest, model.decode(), json.loads(meta), folder)


def list_artifacts(root: Path) -> list[Artifact]:
    """Every artifact under ``root``, verified, oldest training window first then by hash."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no model registry at {root}")
    found = [load(root, p.name) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    return sorted(found, key=lambda a: (a.meta.get("train_window", {}).get("end_ts_ns", 0), a.hash))
