"""The Qlib bridge on real A-shares (hikyuu raw daily bars, five SH/SZ names, 2007-2011):
the export's binary layout read back against the lake (always), read back through Qlib's own
``D.features`` where pyqlib is installed, and Qlib-format predictions imported as a signal,
traded in Tape from a TOML and replayed bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from cli.main import main
from domain.events import InstrumentsDefined, ModelLoaded, OrderFilled
from kernel.store import open_journal
from lake.ingest import ingest
from lake.partitioned import Lake
from lake.schema import Kind
from lake.sources import parse_hikyuu_day
from models.qlib_bridge import (
    QlibBridgeError,
    QlibSignalRanker,
    export_qlib,
    import_qlib_predictions,
    qlib_symbol,
    read_export,
    read_feature_bin,
)
from tests.factories import utc_ns

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
HIKYUU = SHARED / "cn" / "hikyuu"
pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}"),
]
FILES = ("h5_600000.SH_day_raw.csv", "h5_600004.SH_day_raw.csv", "h5_600005.SH_day_raw.csv",
         "h5_000001.SZ_day_raw.csv", "h5_000002.SZ_day_raw.csv")  # fmt: skip


# The built-in A-share fee tables start in 2015: rates for 2009-2011 are the run's own (stamp duty on
# sells only since 2008-09-19, MARKET_RULES.md; the handling fee as cli/defaults' illustrative rows).
CN_FEES = """[cn_fees]
source = "test rates for 2009-2011: stamp duty 0.1% on sells (from 2008-09-19); handling illustrative"

[[cn_fees.rows]]
effective_from = 20080919
stamp_duty_buy_e8 = 0
stamp_duty_sell_e8 = 100_000
transfer_e8 = 0
handling_e8 = 8_700
regulatory_e8 = 0
"""


def _init_qlib(root: Path) -> None:
    """qlib.init on the export, its MLflow store a sqlite file under ``root`` (by default Qlib
    makes ./mlruns in the working folder, a file store mlflow has deprecated)."""
    import qlib

    store = {"class": "MLflowExpManager", "module_path": "qlib.workflow.expm",
             "kwargs": {"uri": f"sqlite:///{root / 'mlflow.db'}", "default_exp_name": "tape"}}  # fmt: skip
    qlib.init(provider_uri=str(root / "qlib"), region="cn", exp_manager=store)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("qlib")
    ingest(root / "lake", [HIKYUU / name for name in FILES], parse_hikyuu_day)
    lake = Lake(root / "lake")
    export = export_qlib(lake, root / "qlib", start_ns=utc_ns("2007-01-01"), end_ns=utc_ns("2011-12-31"))
    return {"root": root, "lake": lake, "export": export}


def _lake_bars(lake: Lake) -> pl.DataFrame:
    frame = pl.from_arrow(
        lake.read(Kind.BARS, "1d", start_ns=utc_ns("2007-01-01"), end_ns=utc_ns("2011-12-31"))
    )
    assert isinstance(frame, pl.DataFrame)
    return frame


def test_the_binary_layout_holds_the_lakes_bars(exported: dict[str, object]) -> None:
    root, lake = exported["root"], exported["lake"]
    assert isinstance(root, Path) and isinstance(lake, Lake)
    qlib_root = root / "qlib"
    calendar = (qlib_root / "calendars" / "day.txt").read_text().split()
    bars = _lake_bars(lake)
    days = sorted(set(bars.get_column("day").to_list()))
    assert calendar == [f"{d // 10000}-{d // 100 % 100:02d}-{d % 100:02d}" for d in days]
    lines = [line.split("\t") for line in (qlib_root / "instruments" / "all.txt").read_text().splitlines()]
    assert sorted(name for name, _, _ in lines) == [
        "SH600000",
        "SH600004",
        "SH600005",
        "SZ000001",
        "SZ000002",
    ]
    by_symbol = {i.symbol: i for i in lake.instruments()}
    for name, first, last in lines:
        inst = by_symbol[f"{name[2:]}.{name[:2]}"]
        mine = bars.filter(pl.col("instrument_id") == inst.instrument_id).sort("day")
        start, close = read_feature_bin(qlib_root / "features" / name.lower() / "close.day.bin")
        assert calendar[start] == first and calendar[start + close.size - 1] == last
        index = np.searchsorted(days, mine.get_column("day").to_numpy()) - start
        expected = mine.get_column("close").to_numpy() / 10**inst.price_digits
        np.testing.assert_array_equal(close[index], expected.astype(np.float32))
        missing = np.setdiff1d(np.arange(close.size), index)
        assert np.isnan(close[missing]).all()  # suspensions stay NaN, never filled
        _, volume = read_feature_bin(qlib_root / "features" / name.lower() / "volume.day.bin")
        np.testing.assert_array_equal(volume[index], mine.get_column("volume").to_numpy().astype(np.float32))
        _, vwap = read_feature_bin(qlib_root / "features" / name.lower() / "vwap.day.bin")
        low = mine.get_column("low").to_numpy() / 10**inst.price_digits
        high = mine.get_column("high").to_numpy() / 10**inst.price_digits
        traded = volume[index] > 0
        # vwap from the bar's amount lies within its range (a little slack: the amount is rounded)
        assert (vwap[index][traded] >= low[traded] * 0.99).all() and (
            vwap[index][traded] <= high[traded] * 1.01
        ).all()
    assert read_export(qlib_root).instruments["SH600000"]["symbol"] == "600000.SH"


def test_refusals(exported: dict[str, object], tmp_path: Path) -> None:
    lake = exported["lake"]
    assert isinstance(lake, Lake)
    assert qlib_symbol("000002.SZ") == "SZ000002" and qlib_symbol("orcl") == "ORCL"
    with pytest.raises(QlibBridgeError, match="no Qlib name"):
        qlib_symbol("BTC/USDT")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(QlibBridgeError, match="not empty"):
        export_qlib(lake, tmp_path / "busy")
    root = exported["root"]
    assert isinstance(root, Path)
    unknown = pd.DataFrame(
        {"datetime": pd.to_datetime(["2010-01-04"]), "instrument": ["SH601398"], "score": [1.0]}
    )
    with pytest.raises(QlibBridgeError, match="does not hold"):
        import_qlib_predictions(unknown, root / "qlib", tmp_path / "s.parquet")
    twice = pd.DataFrame({"datetime": pd.to_datetime(["2010-01-04"] * 2), "instrument": ["SH600000"] * 2,
                          "score": [1.0, 2.0]})  # fmt: skip
    with pytest.raises(QlibBridgeError, match="more than one score"):
        import_qlib_predictions(twice, root / "qlib", tmp_path / "s.parquet")


@pytest.mark.qlib
def test_qlib_reads_the_export_back_exactly(exported: dict[str, object]) -> None:
    qlib = pytest.importorskip("qlib", reason="pyqlib (the qlib extra) is not installed")
    from qlib.data import D

    root, lake = exported["root"], exported["lake"]
    assert isinstance(root, Path) and isinstance(lake, Lake)
    _init_qlib(root)
    fields = ["$open", "$high", "$low", "$close", "$volume", "$amount", "$vwap"]
    frame = D.features(["SH600000", "SZ000002"], fields, start_time="2007-01-01", end_time="2011-12-31")
    for name in ("SH600000", "SZ000002"):
        read = frame.xs(name, level="instrument")
        for field in fields:
            _, values = read_feature_bin(root / "qlib" / "features" / name.lower() / f"{field[1:]}.day.bin")
            np.testing.assert_array_equal(read[field].to_numpy(dtype=np.float32), values)
    print(f"qlib {qlib.__version__} D.features read {frame.shape} exactly as written")


def _momentum_scores(lake: Lake) -> pd.DataFrame:
    """A Qlib-format score frame (index datetime, instrument; column score) from the lake's
    closes: 20-day momentum, a stand-in for a model's predictions where Qlib is absent."""
    bars = _lake_bars(lake).sort(["instrument_id", "day"])
    names = {i.instrument_id: qlib_symbol(i.symbol) for i in lake.instruments()}
    scored = bars.with_columns(
        (pl.col("close") / pl.col("close").shift(20) - 1).over("instrument_id").alias("score")
    ).drop_nulls("score")
    out = pd.DataFrame({
        "datetime": pd.to_datetime(scored.get_column("day").cast(pl.String).to_list(), format="%Y%m%d"),
        "instrument": [names[i] for i in scored.get_column("instrument_id").to_list()],
        "score": scored.get_column("score").to_numpy(),
    })  # fmt: skip
    return out.set_index(["datetime", "instrument"]).sort_index()


def _qlib_scores(root: Path) -> pd.DataFrame | None:
    """The same signal computed by Qlib's expression engine on the export, if pyqlib is here."""
    try:
        from qlib.data import D
    except ImportError:
        return None
    _init_qlib(root)
    frame = D.features(D.instruments("all"), ["$close / Ref($close, 20) - 1"], start_time="2007-01-01",
                       end_time="2011-12-31")  # fmt: skip
    frame.columns = ["score"]
    return frame.dropna().swaplevel().sort_index()


def test_qlib_predictions_trade_in_tape_and_replay(
    exported: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    root, lake = exported["root"], exported["lake"]
    assert isinstance(root, Path) and isinstance(lake, Lake)
    scores = _qlib_scores(root)
    source = "qlib's expression engine" if scores is not None else "the lake (pyqlib absent)"
    if scores is None:
        scores = _momentum_scores(lake)
    digest = import_qlib_predictions(scores, root / "qlib", root / "signal.parquet")
    # the same scores through a CSV file (as float64: a float32 column's CSV text is rounded)
    scores = scores.astype("float64")
    csv = root / "scores.csv"
    scores.reset_index().to_csv(csv, index=False)
    assert import_qlib_predictions(csv, root / "qlib", root / "signal-csv.parquet") == digest  # same rows
    lake.export(
        root / "cn5", "1d", calendar="XSHG", start_ns=utc_ns("2009-01-01"), end_ns=utc_ns("2011-12-06")
    )
    config = root / "qlib.toml"
    config.write_text(
        f'run_id = "qlib-signal"\nseed = 7\ndataset = "{root / "cn5"}"\njournal = "{root / "journal"}"\n'
        'currency = "CNY"\ninitial_cash = "1000000"\n\n'
        '[strategy]\nentry = "models.qlib_bridge:QlibSignalRanker"\n'
        f'params = {{ signal = "{root / "signal.parquet"}", signal_hash = "{digest}", '
        "top_k = 2, every = 20 }\n\n" + CN_FEES
    )
    assert main(["backtest", str(config)]) == 0
    with open_journal(root / "journal") as opened:
        events = [event for _, event in opened.events()]
    assert isinstance(events[2], InstrumentsDefined) and isinstance(events[3], ModelLoaded)
    assert (events[3].artifact, events[3].model_kind) == (digest, "qlib_signal")
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert len(fills) >= 20
    assert main(["replay", str(root / "journal")]) == 0
    capsys.readouterr()
    with capsys.disabled():
        print(f"signal from {source}: {events[3].predictions} scores, {len(fills)} fills, replay matched")
    # the signal's contents changed: the strategy (so the replay) is refused
    changed = pl.read_parquet(root / "signal.parquet").with_columns(pl.col("score") * 2)
    changed.write_parquet(root / "signal.parquet")
    with pytest.raises(QlibBridgeError, match="hashes to"):
        QlibSignalRanker(signal=str(root / "signal.parquet"), signal_hash=digest)
    assert main(["replay", str(root / "journal")]) == 2


@pytest.mark.qlib
def test_alpha158_with_lightgbm_in_qlibs_workflow_and_its_predictions_trade_in_tape(
    exported: dict[str, object], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Qlib's Alpha158 handler and LGBModel on the export, run through Qlib's recorder with an
    MLflow store at a sqlite URI (mlflow's ./mlruns file store is deprecated: DEPENDENCIES.md);
    the test segment's predictions are imported and traded in Tape, and the run replays."""
    pytest.importorskip("qlib", reason="pyqlib (the qlib extra) is not installed")
    pytest.importorskip("lightgbm", reason="Qlib's LGBModel needs lightgbm")
    from qlib.utils import init_instance_by_config
    from qlib.workflow import R

    root = exported["root"]
    assert isinstance(root, Path)
    # with a sqlite tracking store, MLflow still puts run artifacts (pred.pkl) in ./mlruns
    monkeypatch.chdir(root)
    _init_qlib(root)
    span = {"start_time": "2007-01-01", "end_time": "2011-12-06", "instruments": "all"}
    fit = {"fit_start_time": "2007-01-01", "fit_end_time": "2009-12-31"}  # Alpha158's normalisation window
    handler = {"class": "Alpha158", "module_path": "qlib.contrib.data.handler", "kwargs": {**span, **fit}}
    segments = {"train": ("2007-01-01", "2009-12-31"), "valid": ("2010-01-01", "2010-06-30"),
                "test": ("2010-07-01", "2011-12-06")}  # fmt: skip
    dataset = init_instance_by_config({"class": "DatasetH", "module_path": "qlib.data.dataset",
                                       "kwargs": {"handler": handler, "segments": segments}})  # fmt: skip
    model = init_instance_by_config({"class": "LGBModel", "module_path": "qlib.contrib.model.gbdt",
                                     "kwargs": {"loss": "mse", "num_threads": 1, "seed": 7, "num_leaves": 15,
                                                "early_stopping_rounds": 20}})  # fmt: skip
    with R.start(experiment_name="tape"):
        model.fit(dataset)
        prediction = model.predict(dataset)
        R.save_objects(**{"pred.pkl": prediction})
        recorder = R.get_recorder()
    saved = recorder.load_object("pred.pkl")  # read back from the MLflow store
    assert saved.index.names == ["datetime", "instrument"] and len(saved) > 1000
    digest = import_qlib_predictions(saved.to_frame("score"), root / "qlib", root / "alpha158.parquet")
    config = root / "alpha158.toml"
    config.write_text(
        f'run_id = "alpha158"\nseed = 7\ndataset = "{root / "cn5"}"\n'
        f'journal = "{root / "journal-alpha158"}"\n'
        'currency = "CNY"\ninitial_cash = "1000000"\n\n'
        '[strategy]\nentry = "models.qlib_bridge:QlibSignalRanker"\n'
        f'params = {{ signal = "{root / "alpha158.parquet"}", signal_hash = "{digest}", '
        "top_k = 2, every = 20 }\n\n" + CN_FEES
    )
    if not (root / "cn5").exists():
        lake = exported["lake"]
        assert isinstance(lake, Lake)
        lake.export(
            root / "cn5", "1d", calendar="XSHG", start_ns=utc_ns("2009-01-01"), end_ns=utc_ns("2011-12-06")
        )
    assert main(["backtest", str(config)]) == 0
    with open_journal(root / "journal-alpha158") as opened:
        events = [event for _, event in opened.events()]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert isinstance(events[3], ModelLoaded) and events[3].artifact == digest and len(fills) >= 10
    assert min(f.ts_ns for f in fills) >= utc_ns("2010-07-01")  # the test segment's scores only
    assert main(["replay", str(root / "journal-alpha158")]) == 0
    capsys.readouterr()
    with capsys.disabled():
        print(f"alpha158 + LGBModel: {len(saved)} test predictions, {len(fills)} fills, replay matched")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("2010-01-04,SH600000,abc", "prediction 1's score 'abc' is not a number"),
        ("2010-13-04,SH600000,0.1", "prediction 1's datetime '2010-13-04' is not a date"),
        ("2010-01-04,SH600000,", "prediction 1 has no score"),
        (",SH600000,0.1", "prediction 1 has no datetime"),
        ("2010-01-04,,0.1", "prediction 1 has no instrument"),
        # these named no prediction: "predictions hold a score that is NaN or infinite", "... more
        # than one score for one (datetime, instrument)"
        ("2010-01-04,SH600000,nan", "prediction 1's score nan is not a finite number"),
        ("2010-01-04,SH600000,-inf", "prediction 1's score -inf is not a finite number"),
        ("2010-01-05,SH600000,0.1", "predictions 1 and 2 are both 2010-01-05 SH600000"),
    ],
)
def test_a_csv_cell_that_is_not_a_score_is_refused_by_row(
    exported: dict[str, object], tmp_path: Path, rows: str, message: str
) -> None:
    """A score of 'abc' and a date of 2010-13-04 were Polars' cast errors (tape qlib import:
    'internal error', exit 70); an empty score was imported as a score (null) and counted."""
    root = exported["root"]
    assert isinstance(root, Path)
    csv = tmp_path / "pred.csv"
    csv.write_text(f"datetime,instrument,score\n{rows}\n2010-01-05,SH600000,0.2\n")
    with pytest.raises(QlibBridgeError, match=message):
        import_qlib_predictions(csv, root / "qlib", tmp_path / "s.parquet")
    assert not (tmp_path / "s.parquet").exists()
    csv.write_text("datetime,instrument,score\n2010-01-04 00:00:00,SH600000,1\n20100105,SH600000,0.2\n")
    import_qlib_predictions(csv, root / "qlib", tmp_path / "s.parquet")  # other date forms, an int score
    assert pl.read_parquet(tmp_path / "s.parquet").get_column("day").to_list() == [20100104, 20100105]
