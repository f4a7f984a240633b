"""A LightGBM model on real US daily bars (ORCL, NVDA, YHOO): trained on 2004-2009 from the lake,
registered as an artifact, traded 2010-2012 by ``models.ml.strategy:ModelRanker`` named by
entry in a TOML, and the journal replays bit for bit (whole and one day)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightgbm", reason="the ml extra (lightgbm) is not installed")

from cli.main import main
from domain.events import DayClosed, OrderFilled
from domain.market import Panel
from kernel.store import open_journal
from lake.ingest import ingest
from lake.partitioned import Lake
from lake.sources import parse_yahoo
from lake.store import load_panel
from models.features.cross_section import FeatureSpec
from models.ml.artifact import train_and_register
from models.ml.features import feature_matrix, panel_frame
from models.ml.labels import LabelSpec
from models.ml.registry import load
from models.ml.strategy import ModelRanker, predict_artifact
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


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("ml")
    ingest(root / "lake", [SHARED / "us" / name for name in NAMES], parse_yahoo)
    lake = Lake(root / "lake")
    began = time.perf_counter()
    digest, model = train_and_register(
        lake,
        root / "registry",
        SPECS,
        LabelSpec(horizon=21, gap=1),
        utc_ns("2004-01-01"),
        utc_ns("2009-12-31"),
    )
    seconds = time.perf_counter() - began
    # the data set the strategy trades: from 2009-09 so the features have warmed up by 2010
    lake.export(
        root / "us3", "1d", calendar="XNYS", start_ns=utc_ns("2009-09-01"), end_ns=utc_ns("2012-12-31")
    )
    config = root / "ml.toml"
    config.write_text(
        f'run_id = "ml-ranker"\nseed = 7\ndataset = "{root / "us3"}"\njournal = "{root / "journal"}"\n'
        'currency = "USD"\ninitial_cash = "1000000"\nus_regulatory_fees = false\n\n'
        '[strategy]\nentry = "models.ml.strategy:ModelRanker"\n'
        f'params = {{ artifact_dir = "{root / "registry"}", artifact = "{digest}", top_k = 1, weight = 0.95, '
        "start_day = 20100101 }\n"
    )
    return {
        "root": root,
        "lake": lake,
        "digest": digest,
        "model": model,
        "seconds": seconds,
        "config": config,
    }


def test_training_is_byte_identical_and_the_artifact_records_its_window(trained: dict[str, object]) -> None:
    root, lake, digest = trained["root"], trained["lake"], trained["digest"]
    assert isinstance(root, Path) and isinstance(lake, Lake) and isinstance(digest, str)
    again, _ = train_and_register(
        lake,
        root / "registry2",
        SPECS,
        LabelSpec(horizon=21, gap=1),
        utc_ns("2004-01-01"),
        utc_ns("2009-12-31"),
    )
    assert again == digest  # same lake, same seed: the same bytes, so the same content hash
    first, second = load(root / "registry", digest), load(root / "registry2", again)
    assert (first.folder / "model.txt").read_bytes() == (second.folder / "model.txt").read_bytes()
    meta = first.meta
    assert meta["train_window"]["start"] == "2004-01-01" and meta["train_window"]["end"] == "2009-12-31"
    assert meta["lake_content_hash"] == lake.content_hash
    assert meta["label"] == {"kind": "forward_return", "horizon": 21, "gap": 1, "thresholds": []}
    assert meta["rows"] > 3 * 1000 and meta["metrics"]["wf_folds"] >= 5
    print(
        f"training + walk-forward: {trained['seconds']:.2f}s, rows {meta['rows']}, metrics {meta['metrics']}"
    )


def test_the_strategy_scores_causally(trained: dict[str, object]) -> None:
    root, digest = trained["root"], trained["digest"]
    assert isinstance(root, Path) and isinstance(digest, str)
    panel, _ = load_panel(root / "us3")
    full = ModelRanker(artifact_dir=str(root / "registry"), artifact=digest)
    full.schedule(panel)
    cut = panel.steps // 2
    prefix = ModelRanker(artifact_dir=str(root / "registry"), artifact=digest)
    prefix.schedule(_prefix(panel, cut))
    np.testing.assert_array_equal(prefix.scores, full.scores[:cut])
    assert np.isfinite(full.scores[-1]).all()


def test_the_strategy_sees_the_features_and_predictions_training_computes_from_the_lake(
    trained: dict[str, object],
) -> None:
    """The data set the strategy trades starts in 2009-09; the lake training read starts in the
    1990s. At every bar both score, the features are the same floats and so are the
    predictions (the 20-bar volatility differed in its last bits with Polars' rolling_std)."""
    root, lake, digest = trained["root"], trained["lake"], trained["digest"]
    assert isinstance(root, Path) and isinstance(lake, Lake) and isinstance(digest, str)
    artifact = load(root / "registry", digest)
    names = list(artifact.meta["feature_names"])
    panel, _ = load_panel(root / "us3")
    trading = feature_matrix(panel_frame(panel), SPECS)
    training = feature_matrix(panel_frame(lake.panel("1d", end_ns=utc_ns("2012-12-31"))), SPECS)
    both = (
        trading.drop_nans(names)
        .drop_nulls(names)
        .join(training, on=["ts_ns", "instrument_id"], suffix="_lake")
    )
    assert both.height > 2_000
    for name in names:
        np.testing.assert_array_equal(
            both.get_column(name).to_numpy(), both.get_column(f"{name}_lake").to_numpy(), err_msg=name
        )
    ranker = ModelRanker(artifact_dir=str(root / "registry"), artifact=digest)
    ranker.schedule(panel)
    lake_scores = predict_artifact(artifact, both.select([f"{n}_lake" for n in names]).to_numpy())
    step = np.searchsorted(panel.ts_ns, both.get_column("ts_ns").to_numpy())
    column = [
        [i.instrument_id for i in panel.instruments].index(iid) for iid in both.get_column("instrument_id")
    ]
    np.testing.assert_array_equal(ranker.scores[step, column], lake_scores)


def test_an_artifact_from_before_feature_versions_is_scored_with_the_features_it_was_trained_on(
    trained: dict[str, object],
) -> None:
    """The trained artifact's metadata with the features' versions taken out (an artifact
    written before versions) registers under another hash; ``ModelRanker`` scores it with the
    version-1 volatility (Polars' rolling_std), the current artifact with version 2."""
    from models.ml.registry import register
    from models.ml.strategy import score_panel

    root, digest = trained["root"], trained["digest"]
    assert isinstance(root, Path) and isinstance(digest, str)
    current = load(root / "registry", digest)
    assert [f["version"] for f in current.meta["features"]] == [1, 1, 2, 1]
    meta = {**current.meta, "features": [{k: v for k, v in f.items() if k != "version"}
                                         for f in current.meta["features"]]}  # fmt: skip
    old = register(root / "registry-old", current.model_text, meta)
    assert old != digest
    panel, _ = load_panel(root / "us3")
    names = list(current.meta["feature_names"])
    v1 = feature_matrix(panel_frame(panel), [dataclasses.replace(s, version=1) for s in SPECS])
    v2 = feature_matrix(panel_frame(panel), SPECS)
    volatility = names[2]
    assert (v1.get_column(volatility) != v2.get_column(volatility)).any()  # the versions differ here
    ranker = ModelRanker(artifact_dir=str(root / "registry-old"), artifact=old)
    ranker.schedule(panel)
    rows = v1.drop_nans(names).drop_nulls(names)
    step = np.searchsorted(panel.ts_ns, rows.get_column("ts_ns").to_numpy())
    ids = [i.instrument_id for i in panel.instruments]
    column = [ids.index(iid) for iid in rows.get_column("instrument_id")]
    expected = predict_artifact(current, rows.select(names).to_numpy())
    np.testing.assert_array_equal(ranker.scores[step, column], expected)
    np.testing.assert_array_equal(
        score_panel(load(root / "registry-old", old), panel)[step, column], expected
    )


def _prefix(panel: Panel, steps: int) -> Panel:
    """The panel's first ``steps`` steps (it holds no corporate actions, funding or settles)."""
    fields = {f: getattr(panel, f)[:steps] for f in ("ts_ns", "day", "open", "high", "low", "close", "volume",
                                                     "valid", "last_close")}  # fmt: skip
    return dataclasses.replace(panel, **fields)


def test_the_model_trades_2010_2012_from_the_toml_and_replays(
    trained: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    root, config = trained["root"], trained["config"]
    assert isinstance(root, Path) and isinstance(config, Path)
    assert main(["backtest", str(config)]) == 0
    journal = root / "journal"
    with open_journal(journal) as opened:
        events = [event for _, event in opened.events()]
    closes = [e for e in events if isinstance(e, DayClosed)]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    first_fill_day = min(f.ts_ns for f in fills)
    assert first_fill_day >= utc_ns("2010-01-01") and len(fills) >= 10
    assert main(["replay", str(journal)]) == 0
    day = str(closes[len(closes) // 2].day)
    assert main(["replay", str(journal), "--day", f"{day[:4]}-{day[4:6]}-{day[6:]}"]) == 0
    capsys.readouterr()
    assert main(["models", str(root / "registry"), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["hash"] for a in listed] == [trained["digest"]]
    nav = closes[-1].nav_minor / 100
    print(f"2010-2012: {len(closes)} sessions, {len(fills)} fills, final NAV {nav:,.2f} USD")
