"""Classifiers against regressors, trained in the same run on the same rows and windows.

    python bench/bench_classify.py [--repeat 3] [--rounds 60] [--epochs 30]

Seven real A-shares (hikyuu raw daily bars from ../shared/data/cn/hikyuu) ingested into a
temporary lake; four features, 21-bar forward return at gap 1, trained walk-forward
2007-01-01..2010-12-31 (252-bar training, 126-bar test windows: 5 windows and the final model,
every one registered). For LightGBM (``--rounds`` rounds, 7 leaves) and the PyTorch network
(``MlpConfig`` defaults but ``--epochs``): the regressor (the baseline), an up/down classifier
(thresholds [0.0]) and a three-class one (thresholds [-0.02, 0.02]). Reported per case: the
best of ``--repeat`` wall times of ``train_walk_forward`` (design rows included, a fresh
registry each time), the ratio against the same learner's regressor, the final artifact's
model file size and the window artifacts' range, and the out-of-sample mean rank IC. Prints
``uptime`` first: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake.ingest import ingest
from lake.partitioned import Lake
from lake.sources import parse_hikyuu_day
from models.features.cross_section import FeatureSpec
from models.ml.artifact import train_walk_forward
from models.ml.labels import LabelSpec
from models.ml.registry import load
from tests.factories import utc_ns

HIKYUU = Path(__file__).resolve().parents[2] / "shared" / "data" / "cn" / "hikyuu"
FILES = ("600000.SH", "600004.SH", "600005.SH", "000001.SZ", "000002.SZ", "000004.SZ", "000005.SZ")
SPECS = [
    FeatureSpec("momentum", {"lookback": 60, "skip": 5}),
    FeatureSpec("momentum", {"lookback": 5}),
    FeatureSpec("volatility", {"window": 20}),
    FeatureSpec("distance_from_mean", {"window": 20}),
]
CASES = (("regression", ()), ("2 classes", (0.0,)), ("3 classes", (-0.02, 0.02)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    if not HIKYUU.is_dir():
        print(f"no real data at {HIKYUU}", file=sys.stderr)
        return 2
    print(f"uptime: {os.popen('uptime').read().strip()}")
    from models.ml.mlp import MlpConfig

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        ingest(root / "lake", [HIKYUU / f"h5_{name}_day_raw.csv" for name in FILES], parse_hikyuu_day)
        lake = Lake(root / "lake")
        print(f"{'learner':<10} {'task':<11} {'best s':>7} {'vs reg':>7} {'final bytes':>12} "
              f"{'window bytes':>16} {'IC out':>7}")  # fmt: skip
        for learner in ("lightgbm", "torch_mlp"):
            baseline = 0.0
            for name, thresholds in CASES:
                task = "classification" if thresholds else "regression"
                settings = (
                    {"num_boost_round": args.rounds, "params": {"num_leaves": 7}}
                    if learner == "lightgbm"
                    else {"mlp": MlpConfig(epochs=args.epochs)}
                )
                times = []
                for attempt in range(args.repeat):
                    registry = root / f"reg-{learner}-{len(thresholds)}-{attempt}"
                    began = time.perf_counter()
                    run = train_walk_forward(
                        lake, registry, SPECS, LabelSpec(21, 1, tuple(thresholds)),
                        utc_ns("2007-01-01"), utc_ns("2010-12-31"), learner=learner, task=task,
                        wf_train=252, wf_test=126, register_folds=True, **settings,
                    )  # fmt: skip
                    times.append(time.perf_counter() - began)
                    if attempt:
                        shutil.rmtree(registry)
                best = min(times)
                baseline = baseline or best
                registry = root / f"reg-{learner}-{len(thresholds)}-0"
                final = len(load(registry, run.artifact).model_bytes)
                windows = [len(load(registry, str(f.artifact)).model_bytes) for f in run.folds]
                print(f"{learner:<10} {name:<11} {best:>7.2f} {best / baseline:>6.2f}x {final:>12,} "
                      f"{min(windows):>7,}-{max(windows):>8,} "
                      f"{run.meta['metrics']['wf_mean_test_ic']:>+7.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
