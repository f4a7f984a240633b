"""Classifiers and walk-forward trading on real A-shares (hikyuu raw daily bars, seven SH/SZ names).

A LightGBM three-class classifier (21-bar forward return below -2%, within ±2%, above +2%)
trained walk-forward 2007-2010 with every window's model registered: the same configuration and
seed give byte-identical artifacts, another seed other ones; its predictions are class
probabilities and the strategies rank by ``P(up) - P(down)``. The final classifier traded by
``ModelRanker`` (score-weighted) and the window artifacts traded one after another by
``WalkForwardRanker`` (top-k dropout) each replay bit for bit, whole and for one day; in the
stitched run every decision is made by the artifact of the window it falls in, which was
trained only on data before that window; a planted leak (an artifact whose training window
overlaps its trading window), windows out of order and a final model are refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightgbm", reason="the ml extra (lightgbm) is not installed")

from cli.main import main
from cli.wiring import replay_builder
from domain.events import DayClosed, ModelLoaded, OrderFilled, TargetsDecided
from kernel.replay import replay
from kernel.store import open_journal
from lake.ingest import ingest
from lake.partitioned import Lake
from lake.sources import parse_hikyuu_day
from lake.store import load_panel
from models.features.cross_section import FeatureSpec
from models.ml.artifact import train_walk_forward
from models.ml.features import feature_matrix, panel_frame, spec_from_json
from models.ml.labels import LabelSpec
from models.ml.registry import ArtifactError, load, register
from models.ml.strategy import WalkForwardRanker, artifact_probabilities, predict_artifact
from tests.factories import HIKYUU_SEVEN, cn_model_config, utc_ns

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
HIKYUU = SHARED / "cn" / "hikyuu"
pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}"),
]
SPECS = [
    FeatureSpec("momentum", {"lookback": 60, "skip": 5}),
    FeatureSpec("momentum", {"lookback": 5}),
    FeatureSpec("volatility", {"window": 20}),
    FeatureSpec("distance_from_mean", {"window": 20}),
]
LABEL = LabelSpec(horizon=21, gap=1, thresholds=(-0.02, 0.02))
START, END = "2007-01-01", "2010-12-31"
SETTINGS = {"learner": "lightgbm", "task": "classification", "num_boost_round": 60,
            "params": {"num_leaves": 7}, "wf_train": 252, "wf_test": 126, "register_folds": True}  # fmt: skip


def _config(root: Path, name: str, entry: str, params: str) -> Path:
    # The rows cover the data set's first session (2007-09-03), where a run is checked from,
    # though the strategies trade from 2011.
    return cn_model_config(root, name, entry, params, fees_from=20070901)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("classify")
    ingest(root / "lake", [HIKYUU / name for name in HIKYUU_SEVEN], parse_hikyuu_day)
    lake = Lake(root / "lake")
    began = time.perf_counter()
    run = train_walk_forward(lake, root / "registry", SPECS, LABEL, utc_ns(START), utc_ns(END), **SETTINGS)
    seconds = time.perf_counter() - began
    lake.export(
        root / "cn7", "1d", calendar="XSHG", start_ns=utc_ns("2007-09-01"), end_ns=utc_ns("2011-12-06")
    )
    return {"root": root, "lake": lake, "run": run, "seconds": seconds}


def _events(journal: Path) -> list[object]:
    with open_journal(journal) as opened:
        return [event for _, event in opened.events()]


def _replays(journal: Path) -> None:
    with open_journal(journal) as opened:
        whole = replay(opened, replay_builder)
        days = [e.day for _, e in opened.events() if isinstance(e, DayClosed)]
        one_day = replay(opened, replay_builder, day=days[len(days) // 2])
    assert whole.ok, whole.divergence
    assert one_day.ok, one_day.divergence


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_classifier_trains_byte_identically_and_predicts_class_probabilities(
    trained: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    root, lake, run = trained["root"], trained["lake"], trained["run"]
    assert isinstance(root, Path) and isinstance(lake, Lake)
    again = train_walk_forward(
        lake, root / "registry-again", SPECS, LABEL, utc_ns(START), utc_ns(END), **SETTINGS
    )
    digests = [f.artifact for f in run.folds] + [run.artifact]  # type: ignore[attr-defined]
    assert [f.artifact for f in again.folds] + [again.artifact] == digests and len(digests) >= 5
    for digest in digests:
        assert _files(root / "registry" / str(digest)) == _files(root / "registry-again" / str(digest))
    other = train_walk_forward(lake, root / "registry-seed", SPECS, LABEL, utc_ns(START), utc_ns(END),
                               **{**SETTINGS, "seed": 8, "register_folds": False})  # fmt: skip
    assert other.artifact != run.artifact  # type: ignore[attr-defined]

    final = load(root / "registry", str(run.artifact))  # type: ignore[attr-defined]
    assert final.meta["task"] == "classification" and final.meta["classes"] == 3
    assert final.meta["params"]["objective"] == "multiclass" and final.meta["params"]["num_class"] == 3
    panel, _ = load_panel(root / "cn7")
    matrix = feature_matrix(panel_frame(panel), [spec_from_json(s) for s in final.meta["features"]])
    x = matrix.drop_nulls().select(final.meta["feature_names"]).to_numpy().astype(np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    proba = artifact_probabilities(final, x)
    assert proba.shape == (x.shape[0], 3) and np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(predict_artifact(final, x), proba[:, 2] - proba[:, 0])
    assert len(set(np.argmax(proba, axis=1).tolist())) >= 2  # it does not predict one class everywhere
    capsys.readouterr()
    assert main(["models", str(root / "registry")]) == 0
    listing = capsys.readouterr().out
    assert listing.count("21/1 3c") == len(digests) and "classifier over N classes" in listing
    with capsys.disabled():
        sizes = [len(load(root / "registry", str(d)).model_bytes) for d in digests]
        print(
            f"\n3-class LightGBM, 7 A-shares {START}..{END}: {len(digests) - 1} windows + final trained in "
            f"{trained['seconds']:.1f} s; model.txt {min(sizes):,}-{max(sizes):,} bytes; final train "
            f"accuracy {final.meta['metrics']['train_accuracy']:.3f}, wf mean test IC "
            f"{final.meta['metrics']['wf_mean_test_ic']:+.3f}"
        )


def test_a_classifier_artifact_traded_in_a_backtest_replays_bit_for_bit(trained: dict[str, object]) -> None:
    root, run = trained["root"], trained["run"]
    assert isinstance(root, Path)
    params = (
        f'artifact_dir = "{root / "registry"}", artifact = "{run.artifact}", '  # type: ignore[attr-defined]
        'portfolio = "score_weighted", top_k = 3, cap = 0.4, weight = 0.9, start_day = 20110101'
    )
    config = _config(root, "classifier", "models.ml.strategy:ModelRanker", params)
    assert main(["backtest", str(config)]) == 0
    events = _events(root / "classifier")
    loaded = [e for e in events if isinstance(e, ModelLoaded)]
    assert [e.artifact for e in loaded] == [run.artifact] and loaded[0].predictions > 1000  # type: ignore[attr-defined]
    decisions = [e for e in events if isinstance(e, TargetsDecided)]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert len(decisions) >= 10 and len(fills) >= 10
    assert min(f.ts_ns for f in fills) >= utc_ns("2011-01-01")
    _replays(root / "classifier")


def test_the_window_artifacts_trade_in_sequence_each_only_in_its_own_window_and_replay(
    trained: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    root, run = trained["root"], trained["run"]
    assert isinstance(root, Path)
    windows = [str(f.artifact) for f in run.folds]  # type: ignore[attr-defined]
    params = (
        f'artifact_dir = "{root / "registry"}", artifacts = {json.dumps(windows)}, '
        'portfolio = "topk_dropout", top_k = 3, n_drop = 1, weight = 0.9'
    )
    config = _config(root, "stitched", "models.ml.strategy:WalkForwardRanker", params)
    assert main(["backtest", str(config)]) == 0
    events = _events(root / "stitched")
    loaded = [e for e in events if isinstance(e, ModelLoaded)]
    assert [e.artifact for e in loaded] == windows and all(e.predictions > 0 for e in loaded)
    assert len({e.predictions_hash for e in loaded}) == len(windows)
    metas = [load(root / "registry", digest).meta for digest in windows]
    trading = [(m["walk_forward"]["test_start_ts_ns"], m["walk_forward"]["test_end_ts_ns"]) for m in metas]
    trained_to = [m["train_window"]["end_ts_ns"] for m in metas]
    # which artifact made each decision: recomputed here from the panel and the artifacts' windows
    panel, _ = load_panel(root / "cn7")
    strategy = WalkForwardRanker(artifact_dir=str(root / "registry"), artifacts=windows)
    strategy.schedule(panel)
    decisions = [e for e in events if isinstance(e, TargetsDecided)]
    used = set()
    for decision in decisions[:-1]:
        ts = int(panel.ts_ns[decision.step])
        owner = int(strategy.window_of_step[decision.step])
        assert owner >= 0, f"step {decision.step}: a decision outside every window"
        assert trading[owner][0] <= ts <= trading[owner][1]
        assert trained_to[owner] < ts, (
            f"step {decision.step}: artifact {owner} was trained on data to {trained_to[owner]}"
        )
        used.add(owner)
    assert used == set(range(len(windows)))  # every window's artifact traded
    closing = decisions[-1]  # the first step after the last window: everything to 0
    assert int(panel.ts_ns[closing.step]) > trading[-1][1] and not any(closing.weights_e8)
    assert decisions[0].ts_ns >= trading[0][0]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert min(f.ts_ns for f in fills) > trading[0][0]
    _replays(root / "stitched")
    with capsys.disabled():
        nav = [e for e in events if isinstance(e, DayClosed)][-1].nav_minor / 100
        print(
            f"stitched walk-forward: {len(windows)} artifacts, {len(decisions)} decisions, "
            f"{len(fills)} fills, final NAV {nav:,.2f} CNY; replay matched whole and for one day"
        )


def test_a_planted_leak_and_a_broken_sequence_are_refused(
    trained: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    root, run = trained["root"], trained["run"]
    assert isinstance(root, Path)
    registry = root / "registry"
    windows = [str(f.artifact) for f in run.folds]  # type: ignore[attr-defined]
    # the leak: the second window's artifact, relabelled to trade from its own training window's middle
    honest = load(registry, windows[1])
    meta = json.loads(json.dumps(honest.meta))
    train = meta["train_window"]
    meta["walk_forward"]["test_start_ts_ns"] = (train["start_ts_ns"] + train["end_ts_ns"]) // 2
    leaky = register(registry, honest.model_text, meta)
    with pytest.raises(ArtifactError, match="overlaps its trading window"):
        WalkForwardRanker(artifact_dir=str(registry), artifacts=[windows[0], leaky, *windows[2:]])
    # a training window ending on the first trading day is a leak as well (by one bar)
    meta["walk_forward"]["test_start_ts_ns"] = train["end_ts_ns"]
    with pytest.raises(ArtifactError, match="look-ahead"):
        WalkForwardRanker(artifact_dir=str(registry), artifacts=[register(registry, honest.model_text, meta)])
    with pytest.raises(ArtifactError, match="must be in order"):
        WalkForwardRanker(artifact_dir=str(registry), artifacts=[windows[1], windows[0]])
    with pytest.raises(ArtifactError, match="names no out-of-sample window"):
        WalkForwardRanker(artifact_dir=str(registry), artifacts=[*windows, str(run.artifact)])  # type: ignore[attr-defined]
    # through the verb: refused before a journal opens, exit 2 with the reason
    params = f'artifact_dir = "{registry}", artifacts = {json.dumps([windows[0], leaky])}, top_k = 2'
    config = _config(root, "leaky", "models.ml.strategy:WalkForwardRanker", params)
    capsys.readouterr()
    assert main(["backtest", str(config)]) == 2
    assert "overlaps its trading window" in " ".join(capsys.readouterr().out.split())
    assert not (root / "leaky").exists()
