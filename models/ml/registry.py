"""Frozen model artifacts, stored by content hash.

``ROOT/<hash>/`` holds the model file and ``artifact.json`` (the feature specs in order, the
label spec, the training window, the lake's content hash, the training rows' hash, the
learner's settings and version, metrics). The model file is ``model.txt`` for a text model
(LightGBM's model text) or ``model.bin`` for a binary one (a PyTorch network's weights,
``models.ml.mlp``). The hash is blake2b-128 over both files' names, lengths and bytes, so
``load(root, hash)`` re-hashes what it reads and refuses anything that changed; registering
the same model and metadata twice gives the same folder.

With a ``sink`` (anything with ``append(event)``: the composition root passes a journal),
``register`` journals a ``ModelRegistered`` event naming the hash and what the artifact holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from domain.events import ModelRegistered

__all__ = [
    "Artifact",
    "ArtifactError",
    "EventSink",
    "artifact_hash",
    "list_artifacts",
    "load",
    "registered_event",
    "register",
]

_HASH = re.compile(r"[0-9a-f]{32}")
MODEL_FILE = "model.txt"
MODEL_BINARY_FILE = "model.bin"
META_FILE = "artifact.json"


class ArtifactError(ValueError):
    """An artifact that is missing or whose bytes do not hash to its name."""


class EventSink(Protocol):
    """Where ``register`` journals its event (a ``kernel`` journal, opened by the caller)."""

    def append(self, event: ModelRegistered) -> object: ...


@dataclass(frozen=True)
class Artifact:
    hash: str
    model_bytes: bytes
    meta: dict[str, Any]
    folder: Path
    model_file: str = MODEL_FILE

    @property
    def model_text(self) -> str:
        """A text model's contents (LightGBM); a binary model has none."""
        if self.model_file != MODEL_FILE:
            raise ArtifactError(f"model artifact {self.hash} holds {self.model_file}, not a text model")
        return self.model_bytes.decode()


def _meta_bytes(meta: dict[str, Any]) -> bytes:
    return (json.dumps(meta, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


def artifact_hash(model: bytes, meta: bytes, model_file: str = MODEL_FILE) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for name, data in ((model_file, model), (META_FILE, meta)):
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def register(root: Path, model: str | bytes, meta: dict[str, Any], *, sink: EventSink | None = None) -> str:
    """Write the artifact under ``root/<hash>/`` (atomically: a staged folder renamed into
    place) and return its hash; an artifact already there is verified and kept. ``model`` is
    a text model (``str``, stored as ``model.txt``) or a binary one (``bytes``, ``model.bin``).
    With ``sink``, a ``ModelRegistered`` event is appended to it (also when the artifact was
    already there: ``created`` says which)."""
    model_file = MODEL_FILE if isinstance(model, str) else MODEL_BINARY_FILE
    model_bytes = model.encode() if isinstance(model, str) else bytes(model)
    meta_bytes = _meta_bytes(meta)
    digest = artifact_hash(model_bytes, meta_bytes, model_file)
    folder = Path(root) / digest
    created = not folder.exists()
    if created:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staged = folder.parent / f".{digest}.staging-{os.getpid()}"
        staged.mkdir()
        (staged / model_file).write_bytes(model_bytes)
        (staged / META_FILE).write_bytes(meta_bytes)
        staged.rename(folder)
    artifact = load(root, digest)
    if sink is not None:
        sink.append(registered_event(artifact, created=created))
    return digest


def registered_event(artifact: Artifact, *, created: bool) -> ModelRegistered:
    """The journal's record of one registration. Its time is the end of the training window
    (the artifact holds no wall-clock time), so the same registration gives the same event."""
    meta = artifact.meta
    window = meta.get("train_window", {})
    return ModelRegistered(
        ts_ns=int(window.get("end_ts_ns", 0)),
        artifact=artifact.hash,
        model_kind=str(meta.get("kind", "")),
        model_file=artifact.model_file,
        model_bytes=len(artifact.model_bytes),
        feature_names=[str(name) for name in meta.get("feature_names", [])],
        train_start_ts_ns=int(window.get("start_ts_ns", 0)),
        train_end_ts_ns=int(window.get("end_ts_ns", 0)),
        lake_content_hash=str(meta.get("lake_content_hash", "")),
        rows_hash=str(meta.get("rows_hash", "")),
        created=created,
    )


def load(root: Path, digest: str) -> Artifact:
    """The artifact named ``digest``, after checking its bytes still hash to that name."""
    folder = Path(root) / digest
    if not folder.is_dir():  # not "<folder>/model.txt is missing" for an artifact that is not there at all
        where = "no such folder" if Path(root).is_dir() else f"no model registry at {root}"
        raise ArtifactError(f"no model artifact {digest} under {root}: {where}")
    present = [name for name in (MODEL_FILE, MODEL_BINARY_FILE) if (folder / name).is_file()]
    if len(present) > 1:
        raise ArtifactError(f"model artifact {folder} holds both {MODEL_FILE} and {MODEL_BINARY_FILE}")
    if not present:  # a network's model.bin as much as a LightGBM model.txt
        raise ArtifactError(
            f"no model artifact {digest} under {root}: its model file ({MODEL_FILE} or {MODEL_BINARY_FILE}) "
            "is missing"
        )
    model_file = present[0]
    try:
        model, meta = (folder / model_file).read_bytes(), (folder / META_FILE).read_bytes()
    except FileNotFoundError as error:
        raise ArtifactError(f"no model artifact {digest} under {root}: {error.filename} is missing") from None
    actual = artifact_hash(model, meta, model_file)
    if actual != digest:
        raise ArtifactError(
            f"model artifact {folder} hashes to {actual}, not {digest}: its files were changed"
        )
    return Artifact(digest, model, json.loads(meta), folder, model_file)


def list_artifacts(root: Path) -> list[Artifact]:
    """Every artifact under ``root``, verified, oldest training window first then by hash."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no model registry at {root}")
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    strays = [p.name for p in folders if not _HASH.fullmatch(p.name)]
    if strays:  # not "no model artifact x: x/model.txt is missing" for a folder that is not a registry
        shown = ", ".join(strays[:3]) + (" ..." if len(strays) > 3 else "")
        raise ArtifactError(
            f"{root} is not a model registry: it holds {shown}, "
            "not only artifact folders (named by their 32-hex-digit hash)"
        )
    found = [load(root, p.name) for p in folders]
    return sorted(found, key=lambda a: (a.meta.get("train_window", {}).get("end_ts_ns", 0), a.hash))
