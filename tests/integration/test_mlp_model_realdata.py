"""The PyTorch network on real US daily bars (ORCL, NVDA, YHOO): trained on 2004-2009 from the
lake with its registration journaled, trained again to the same artifact hash, traded 2010-2012
by ``ModelRanker`` named in a TOML, the run's ``model.loaded`` record naming the artifact and
its predictions; replay re-derives it, refuses an altered artifact, and diverges at that record
when the predictions change."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the ml extra (torch==2.13.0) is not installed")

from cli.main import main
from cli.wiring import replay_builder
from domain.events import DayClosed, InstrumentsDefined, ModelLoaded, ModelRegistered, OrderFilled
from kernel.replay import replay
from kernel.store import open_journal
from lake.ingest import ingest
from lake.partitioned import Lake
from lake.sources import parse_yahoo
from lake.store import load_panel
from models.features.cross_section import FeatureSpec
from models.ml import mlp
from models.ml.artifact import train_and_register
from models.ml.labels import LabelSpec
from models.ml.registry import load, register
from models.ml.strategy import ModelRanker, predictions_hash
from tests.factories import US_DAILY_NAMES, utc_ns

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}"),
]
NAMES = US_DAILY_NAMES
SPECS = [
    FeatureSpec("momentum", {"lookback": 60, "skip": 5}),
    FeatureSpec("momentum", {"lookback": 5}),
    FeatureSpec("volatility", {"window": 20}),
    FeatureSpec("distance_from_mean", {"window": 20}),
]
LABEL = LabelSpec(horizon=21, gap=1)


def _train(lake: Lake, registry: Path, sink: object = None) -> tuple[str, mlp.TrainedNet]:
    digest, net = train_and_register(lake, registry, SPECS, LABEL, utc_ns("2004-01-01"), utc_ns("2009-12-31"),
                                     learner="torch_mlp", sink=sink)  # type: ignore[arg-type]  # fmt: skip
    assert isinstance(net, mlp.TrainedNet)
    return digest, net


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("mlp")
    ingest(root / "lake", [SHARED / "us" / name for name in NAMES], parse_yahoo)
    lake = Lake(root / "lake")
    began = time.perf_counter()
    with open_journal(root / "registry-journal", writable=True) as journal:
        digest, net = _train(lake, root / "registry", journal)
        journal.commit()
    seconds = time.perf_counter() - began
    lake.export(
        root / "us3", "1d", calendar="XNYS", start_ns=utc_ns("2009-09-01"), end_ns=utc_ns("2012-12-31")
    )
    config = root / "mlp.toml"
    config.write_text(
        f'run_id = "mlp-ranker"\nseed = 7\ndataset = "{root / "us3"}"\njournal = "{root / "journal"}"\n'
        'currency = "USD"\ninitial_cash = "1000000"\nus_regulatory_fees = false\n\n'
        '[strategy]\nentry = "models.ml.strategy:ModelRanker"\n'
        f'params = {{ artifact_dir = "{root / "registry"}", artifact = "{digest}", top_k = 1, weight = 0.95, '
        "start_day = 20100101 }\n"
    )
    return {"root": root, "lake": lake, "digest": digest, "net": net, "seconds": seconds, "config": config}


def test_training_is_byte_identical_and_its_registration_is_journaled(trained: dict[str, object]) -> None:
    root, lake, digest = trained["root"], trained["lake"], trained["digest"]
    assert isinstance(root, Path) and isinstance(lake, Lake) and isinstance(digest, str)
    began = time.perf_counter()
    again, _ = _train(lake, root / "registry2")
    seconds_again = time.perf_counter() - began
    assert again == digest  # same lake, same seed: the same weights and metadata, so the same hash
    first, second = load(root / "registry", digest), load(root / "registry2", again)
    assert first.model_file == "model.bin"
    assert (first.folder / "model.bin").read_bytes() == (second.folder / "model.bin").read_bytes()
    meta = first.meta
    assert meta["kind"] == "torch_mlp" and meta["training"]["deterministic_algorithms"] is True
    assert meta["train_window"]["start"] == "2004-01-01" and meta["train_window"]["end"] == "2009-12-31"
    assert meta["lake_content_hash"] == lake.content_hash and meta["metrics"]["wf_folds"] >= 5
    with open_journal(root / "registry-journal", writable=True) as journal:
        register(root / "registry", first.model_bytes, meta, sink=journal)  # already there: created=False
        journal.commit()
        events = [event for _, event in journal.events()]
    assert [type(e) for e in events] == [ModelRegistered, ModelRegistered]
    assert [(e.artifact, e.created) for e in events] == [(digest, True), (digest, False)]
    assert events[0].model_kind == "torch_mlp" and events[0].model_bytes == len(first.model_bytes)
    assert events[0].rows_hash == meta["rows_hash"] and events[0].train_end_ts_ns == utc_ns("2009-12-31")
    assert events[0].feature_names == meta["feature_names"]
    print(f"mlp training + walk-forward: {trained['seconds']:.2f}s, again {seconds_again:.2f}s, "
          f"rows {meta['rows']}, metrics {meta['metrics']}")  # fmt: skip


def test_the_strategy_scores_causally(trained: dict[str, object]) -> None:
    root, digest = trained["root"], trained["digest"]
    assert isinstance(root, Path) and isinstance(digest, str)
    panel, _ = load_panel(root / "us3")
    full = ModelRanker(artifact_dir=str(root / "registry"), artifact=digest)
    full.schedule(panel)
    cut = panel.steps // 2
    prefix = ModelRanker(artifact_dir=str(root / "registry"), artifact=digest)
    prefix.schedule(panel.head(cut))
    np.testing.assert_array_equal(prefix.scores, full.scores[:cut])
    assert np.isfinite(full.scores[-1]).all()


def test_the_network_trades_from_the_toml_journals_its_model_and_replays(
    trained: dict[str, object], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, config, digest = trained["root"], trained["config"], trained["digest"]
    assert isinstance(root, Path) and isinstance(config, Path) and isinstance(digest, str)
    assert main(["backtest", str(config)]) == 0
    journal_path = root / "journal"
    with open_journal(journal_path) as opened:
        events = [event for _, event in opened.events()]
    assert isinstance(events[2], InstrumentsDefined) and isinstance(events[3], ModelLoaded)
    loaded = events[3]
    panel, _ = load_panel(root / "us3")
    ranker = ModelRanker(artifact_dir=str(root / "registry"), artifact=digest)
    ranker.schedule(panel)
    assert (loaded.strategy_id, loaded.artifact, loaded.model_kind) == ("model_ranker", digest, "torch_mlp")
    assert loaded.predictions_hash == predictions_hash(ranker.scores)
    assert loaded.predictions == int(np.isfinite(ranker.scores).sum()) > 1000
    fills = [e for e in events if isinstance(e, OrderFilled)]
    closes = [e for e in events if isinstance(e, DayClosed)]
    assert min(f.ts_ns for f in fills) >= utc_ns("2010-01-01") and len(fills) >= 10
    assert main(["replay", str(journal_path)]) == 0
    day = str(closes[len(closes) // 2].day)
    assert main(["replay", str(journal_path), "--day", f"{day[:4]}-{day[4:6]}-{day[6:]}"]) == 0
    with capsys.disabled():
        nav = closes[-1].nav_minor / 100
        print(f"mlp 2010-2012: {len(closes)} sessions, {len(fills)} fills, final NAV {nav:,.2f} USD")

    # other predictions from the same bytes (another torch build, say): replay diverges at model.loaded
    original = mlp.predict_mlp
    monkeypatch.setattr(mlp, "predict_mlp", lambda w, m, x: original(w, m, x) * (1 + 1e-12))
    with open_journal(journal_path) as opened:
        result = replay(opened, replay_builder)
    monkeypatch.undo()
    assert result.divergence is not None and result.divergence.seq == 3
    assert isinstance(result.divergence.expected, ModelLoaded)
    assert isinstance(result.divergence.actual, ModelLoaded)
    assert result.divergence.actual.predictions_hash != loaded.predictions_hash

    # an altered artifact: the replay is refused before a kernel is built, naming both hashes
    weights = root / "registry" / digest / "model.bin"
    original_bytes = weights.read_bytes()
    capsys.readouterr()
    try:
        weights.write_bytes(original_bytes[:-1] + bytes([original_bytes[-1] ^ 1]))
        assert main(["replay", str(journal_path)]) == 2
    finally:
        weights.write_bytes(original_bytes)
    shown = capsys.readouterr()
    assert "hashes to" in shown.out + shown.err and digest in shown.out + shown.err
    assert main(["replay", str(journal_path)]) == 0
