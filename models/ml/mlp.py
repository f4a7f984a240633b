"""A small PyTorch network over the LightGBM path's feature rows: a multi-layer perceptron
regressing the forward-return label, trained deterministically on the CPU, walk-forward with
the same folds and embargo (``models.ml.train``), and frozen as a binary artifact.

Determinism: every fit and every prediction runs inside ``deterministic_torch`` — one
intra-op thread, ``torch.use_deterministic_algorithms(True)``, and the global generator forked
and seeded (``torch.random.fork_rng``), so a caller's torch state is left as it was. Weight
initialisation draws from that seeded generator; mini-batch order from a ``torch.Generator``
seeded from the same ``seed``. Rows come in (ts_ns, instrument_id) order. The same rows, seed
and settings give byte-identical weights on one machine and one torch build (the version is
recorded in the artifact).

The weights file (``model.bin``) is the network's ``state_dict`` tensors, in order, as
little-endian float32, concatenated; ``artifact.json`` names each tensor and its shape
(``network.parameters``), so the file needs no pickle and ``torch.save``'s per-file
serialisation id (random) never enters an artifact.

Prediction standardises the features with the training window's mean and standard deviation
(stored in the artifact), runs the network in blocks of ``PREDICT_BLOCK_ROWS`` rows (the last
block padded with zeros), and undoes the label scaling. A fixed block shape makes a row's
prediction independent of how many rows are scored with it, so a strategy scoring a truncated
panel gets the same floats as on the whole panel.

As a classifier (``classes`` > 0) the last layer has one output per class, the loss is cross
entropy on ``label_class``, nothing scales the label, and prediction gives the softmax class
probabilities (``predict_mlp_proba``) and, as the score a strategy ranks by, ``class_score``
(P(highest class) - P(lowest class)), as for a LightGBM classifier. The artifact's
``network.outputs`` says how many classes (a regressor's network has no such field).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import torch

from models.ml.train import (
    Fold,
    FoldResult,
    class_labels,
    class_score,
    classification_metrics,
    feature_array,
    rank_ic,
    rows_hash,
    walk_forward_with,
    window_rows,
)

__all__ = [
    "MODEL_KIND",
    "PREDICT_BLOCK_ROWS",
    "MlpConfig",
    "TrainedNet",
    "deterministic_torch",
    "predict_mlp",
    "predict_mlp_proba",
    "train_window_mlp",
    "walk_forward_mlp",
]

MODEL_KIND = "torch_mlp"
PREDICT_BLOCK_ROWS = 1024
_DTYPE = np.dtype("<f4")


@dataclass(frozen=True)
class MlpConfig:
    """The network and its training: hidden layer widths (ReLU between), full passes over the
    window, mini-batch rows, Adam's learning rate and weight decay."""

    hidden: tuple[int, ...] = (32, 16)
    epochs: int = 30
    batch_rows: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        if not self.hidden or any(width < 1 for width in self.hidden):
            raise ValueError(f"mlp: hidden layer widths must be positive, got {self.hidden}")
        if self.epochs < 1 or self.batch_rows < 1:
            raise ValueError(
                f"mlp: epochs and batch_rows must be positive, got {self.epochs}, {self.batch_rows}"
            )
        if not self.learning_rate > 0 or self.weight_decay < 0:
            raise ValueError(
                f"mlp: learning rate must be > 0 and weight decay >= 0, got {self.learning_rate}, "
                f"{self.weight_decay}"
            )

    def to_json(self) -> dict[str, Any]:
        return {"hidden": list(self.hidden), "epochs": self.epochs, "batch_rows": self.batch_rows,
                "learning_rate": self.learning_rate, "weight_decay": self.weight_decay}  # fmt: skip


@dataclass(frozen=True)
class TrainedNet:
    weights: bytes  # model.bin
    network: dict[str, Any]  # layer widths and the tensors' names and shapes, in file order
    preprocessing: dict[str, Any]  # feature mean and std, label scale (training window)
    training: dict[str, Any]  # the settings used, the seed and the torch build
    features: tuple[str, ...]
    start_ts: int
    end_ts: int
    rows: int
    rows_hash: str
    metrics: dict[str, float] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        """The artifact.json fields the network needs to predict."""
        return {"network": self.network, "preprocessing": self.preprocessing, "training": self.training}


@contextmanager
def deterministic_torch(seed: int) -> Iterator[None]:
    """One thread, deterministic kernels and a seeded global generator, restored on exit."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)


def _network(inputs: int, hidden: Sequence[int], outputs: int = 1) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    width = inputs
    for size in hidden:
        layers += [torch.nn.Linear(width, size), torch.nn.ReLU()]
        width = size
    layers.append(torch.nn.Linear(width, outputs))
    return torch.nn.Sequential(*layers).to(torch.float32)


def _standardise(x: npt.NDArray[np.float64], mean: npt.ArrayLike, std: npt.ArrayLike) -> torch.Tensor:
    scaled = (x - np.asarray(mean, dtype=np.float64)) / np.asarray(std, dtype=np.float64)
    return torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32))


def _weights_bytes(net: torch.nn.Module) -> tuple[bytes, list[list[Any]]]:
    blobs, layout = [], []
    for name, tensor in net.state_dict().items():
        array = tensor.detach().cpu().contiguous().numpy().astype(_DTYPE)
        blobs.append(array.tobytes())
        layout.append([name, list(array.shape)])
    return b"".join(blobs), layout


def _fit(net: torch.nn.Sequential, x: torch.Tensor, y: torch.Tensor, config: MlpConfig, seed: int) -> float:
    """Adam on mean squared error (``y`` float, (rows, 1)) or cross entropy (``y`` class
    indices, int64), shuffled mini-batches; the last epoch's mean loss."""
    loss_of = torch.nn.functional.cross_entropy if y.dtype == torch.int64 else torch.nn.functional.mse_loss
    optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    order_generator = torch.Generator().manual_seed(seed)
    rows = x.shape[0]
    loss_sum = 0.0
    for _ in range(config.epochs):
        order = torch.randperm(rows, generator=order_generator)
        loss_sum = 0.0
        for start in range(0, rows, config.batch_rows):
            batch = order[start : start + config.batch_rows]
            optimiser.zero_grad(set_to_none=True)
            loss = loss_of(net(x[batch]), y[batch])
            loss.backward()
            optimiser.step()
            loss_sum += float(loss.detach()) * batch.shape[0]
    return loss_sum / rows


def train_window_mlp(
    rows: pl.DataFrame,
    features: Sequence[str],
    start_ts: int,
    end_ts: int,
    *,
    seed: int = 7,
    config: MlpConfig | None = None,
    classes: int = 0,
) -> TrainedNet:
    """Train the network on ``design_rows`` rows in [start_ts, end_ts], labels embargoed at
    end_ts; with ``classes`` > 0 a classifier on ``label_class``."""
    config = config or MlpConfig()
    window = window_rows(rows, start_ts, end_ts)
    if window.height == 0:
        raise ValueError(f"no labelled rows in the training window {start_ts}..{end_ts}")
    if window.filter(pl.col("label_end_ts") > end_ts).height:  # the embargo, stated once more
        raise AssertionError("a training label extends past the window")
    x_raw, y_raw = feature_array(window, features), window.get_column("label").to_numpy().astype(np.float64)
    mean = x_raw.mean(axis=0)
    std = np.where(x_raw.std(axis=0) > 0, x_raw.std(axis=0), 1.0)
    preprocessing: dict[str, Any] = {"feature_mean": [float(v) for v in mean],
                                     "feature_std": [float(v) for v in std]}  # fmt: skip
    target = class_labels(window, classes) if classes else None
    label_scale = float(y_raw.std()) if y_raw.std() > 0 else 1.0
    if target is None:
        preprocessing["label_scale"] = label_scale
    with deterministic_torch(seed):
        net = _network(len(features), config.hidden, classes or 1)
        x = _standardise(x_raw, mean, std)
        if target is None:
            y = torch.from_numpy(np.ascontiguousarray(y_raw / label_scale, dtype=np.float32)).unsqueeze(1)
        else:
            y = torch.from_numpy(np.ascontiguousarray(target, dtype=np.int64))
        final_loss = _fit(net, x, y, config, seed)
    weights, layout = _weights_bytes(net)
    network = {"inputs": len(features), "hidden": list(config.hidden), "activation": "relu",
               "dtype": "float32", "byteorder": "little", "parameters": layout}  # fmt: skip
    if classes:
        network["outputs"] = classes
    training = {**config.to_json(), "seed": seed, "optimiser": "adam", "loss": "cross_entropy" if classes
                else "mse", "threads": 1, "deterministic_algorithms": True,
                "torch_version": torch.__version__}  # fmt: skip
    meta = {"network": network, "preprocessing": preprocessing}
    metrics = {"train_rows": float(window.height)}
    if target is None:
        fitted = predict_mlp(weights, meta, x_raw)
        metrics |= {
            "train_ic": rank_ic(fitted, y_raw),
            "train_rmse": float(np.sqrt(np.mean((fitted - y_raw) ** 2))),
        }
    else:
        proba = predict_mlp_proba(weights, meta, x_raw)
        metrics |= {"train_ic": rank_ic(class_score(proba), y_raw), **classification_metrics(proba, target)}
    metrics["final_loss"] = final_loss
    return TrainedNet(weights, network, preprocessing, training, tuple(features), start_ts, end_ts,
                      window.height, rows_hash(window), metrics)  # fmt: skip


def _load_network(weights: bytes, network: dict[str, Any]) -> torch.nn.Sequential:
    """The network ``network`` describes, with the weights from ``model.bin``; a file whose size
    or layout does not match the description is refused."""
    net = _network(
        int(network["inputs"]), [int(w) for w in network["hidden"]], int(network.get("outputs", 1))
    )
    expected = {name: tuple(t.shape) for name, t in net.state_dict().items()}
    layout = {str(name): tuple(int(d) for d in shape) for name, shape in network["parameters"]}
    if layout != expected:
        raise ValueError(f"mlp artifact: tensors {layout} do not match the network's {expected}")
    sizes = [int(np.prod(shape)) for shape in layout.values()]
    if len(weights) != sum(sizes) * _DTYPE.itemsize:
        raise ValueError(
            f"mlp artifact: model.bin holds {len(weights)} bytes, the network needs {sum(sizes) * 4}"
        )
    state, offset = {}, 0
    for (name, shape), size in zip(layout.items(), sizes, strict=True):
        array = np.frombuffer(weights, dtype=_DTYPE, count=size, offset=offset * _DTYPE.itemsize)
        state[name] = torch.from_numpy(array.astype(np.float32).reshape(shape))
        offset += size
    net.load_state_dict(state)
    return net.eval()


def _outputs(weights: bytes, meta: dict[str, Any], x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The network's raw outputs, (rows, outputs), one thread, in fixed-shape blocks."""
    outputs = int(meta["network"].get("outputs", 1))
    out = np.empty((x.shape[0], outputs), dtype=np.float64)
    if x.shape[0] == 0:
        return out
    prep = meta["preprocessing"]
    scaled = _standardise(x, prep["feature_mean"], prep["feature_std"])
    with deterministic_torch(0), torch.no_grad():
        net = _load_network(weights, meta["network"])  # its throw-away initialisation draws inside the fork
        for start in range(0, x.shape[0], PREDICT_BLOCK_ROWS):
            block = scaled[start : start + PREDICT_BLOCK_ROWS]
            rows = block.shape[0]
            if rows < PREDICT_BLOCK_ROWS:
                block = torch.cat([block, torch.zeros(PREDICT_BLOCK_ROWS - rows, block.shape[1])])
            result = net(block)
            if outputs > 1:
                result = torch.softmax(result, dim=1)
            out[start : start + rows] = result[:rows].numpy().astype(np.float64)
    return out


def predict_mlp_proba(
    weights: bytes, meta: dict[str, Any], x: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """A classifier network's softmax class probabilities, (rows, classes)."""
    if "outputs" not in meta["network"]:
        raise ValueError("mlp artifact: a regression network has no class probabilities")
    return _outputs(weights, meta, x)


def predict_mlp(weights: bytes, meta: dict[str, Any], x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """What a strategy ranks by: a regressor's predictions in label units, or a classifier's
    ``class_score``; one thread, in fixed-shape blocks."""
    if x.shape[0] == 0:
        return np.zeros(0)
    if "outputs" in meta["network"]:
        return class_score(predict_mlp_proba(weights, meta, x))
    return _outputs(weights, meta, x)[:, 0] * float(meta["preprocessing"]["label_scale"])


def walk_forward_mlp(
    rows: pl.DataFrame,
    features: Sequence[str],
    windows: Sequence[Fold],
    *,
    seed: int = 7,
    config: MlpConfig | None = None,
    classes: int = 0,
) -> list[FoldResult]:
    """Train the network on each fold's window (embargoed) and predict its test window."""

    def fit(fold: Fold) -> tuple[int, Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]]:
        net = train_window_mlp(rows, features, *fold.train, seed=seed, config=config, classes=classes)
        meta = net.meta()
        return net.rows, lambda x: predict_mlp(net.weights, meta, x)

    return walk_forward_with(rows, features, windows, fit)
