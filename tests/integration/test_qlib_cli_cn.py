"""``tape qlib export|import`` on seven real A-shares (hikyuu raw daily bars 2007-2011): the
export from the command line; where pyqlib is installed, Qlib's own workflow (``qrun`` on
``cli/defaults/qlib_alpha158_lightgbm.yaml``: Alpha158 + LightGBM, MLflow at a sqlite URI) and
its ``pred.pkl`` imported from the MLflow artifact folder, traded in Tape and replayed bit for
bit (whole and one day); without pyqlib, the import of a CSV in Qlib's score format and the
refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cli.main import main
from domain.events import DayClosed, ModelLoaded, OrderFilled
from kernel.store import open_journal
from lake.ingest import ingest
from lake.partitioned import Lake
from lake.sources import parse_hikyuu_day
from models.qlib_bridge import read_export
from tests.factories import utc_ns

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
HIKYUU = SHARED / "cn" / "hikyuu"
pytestmark = [
    pytest.mark.needs_shared_data,
    pytest.mark.skipif(not SHARED.exists(), reason=f"real market data not present at {SHARED}"),
]
NAMES = ("600000.SH", "600004.SH", "600005.SH", "000001.SZ", "000002.SZ", "000004.SZ", "000005.SZ")

# A-share fees for 2010-2011 are the run's own (the built-in tables start later): stamp duty on
# sells only since 2008-09-19 (MARKET_RULES.md); the handling fee as cli/defaults' illustrative rows.
CN_FEES = """[cn_fees]
source = "test rates for 2010-2011: stamp duty 0.1% on sells (from 2008-09-19); handling illustrative"

[[cn_fees.rows]]
effective_from = 20080919
stamp_duty_buy_e8 = 0
stamp_duty_sell_e8 = 100_000
transfer_e8 = 0
handling_e8 = 8_700
regulatory_e8 = 0
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("qlib-cli")
    ingest(root / "lake", [HIKYUU / f"h5_{name}_day_raw.csv" for name in NAMES], parse_hikyuu_day)
    assert main(["qlib", "export", str(root / "lake"), str(root / "qlib"), "--start", "2007-01-01",
                 "--end", "2011-12-31"]) == 0  # fmt: skip
    Lake(root / "lake").export(
        root / "cn7", "1d", calendar="XSHG", start_ns=utc_ns("2010-01-01"), end_ns=utc_ns("2011-12-06")
    )
    return root


def _backtest_and_replay(root: Path, name: str, signal: Path, digest: str) -> list[object]:
    config = root / f"{name}.toml"
    config.write_text(
        f'run_id = "{name}"\nseed = 7\ndataset = "{root / "cn7"}"\njournal = "{root / ("journal-" + name)}"\n'
        'currency = "CNY"\ninitial_cash = "1000000"\n\n'
        '[strategy]\nentry = "models.qlib_bridge:QlibSignalRanker"\n'
        f'params = {{ signal = "{signal}", signal_hash = "{digest}", top_k = 2, every = 20 }}\n\n' + CN_FEES
    )
    assert main(["backtest", str(config)]) == 0
    journal = root / f"journal-{name}"
    with open_journal(journal) as opened:
        events = [event for _, event in opened.events()]
    closes = [e for e in events if isinstance(e, DayClosed)]
    assert main(["replay", str(journal)]) == 0
    day = str(closes[len(closes) // 2].day)
    assert main(["replay", str(journal), "--day", f"{day[:4]}-{day[4:6]}-{day[6:]}"]) == 0
    return events


def test_the_export_verb_writes_qlibs_layout_and_refuses_what_it_cannot_do(
    exported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = read_export(exported / "qlib")
    assert sorted(export.instruments) == sorted(f"{n[-2:]}{n[:6]}" for n in NAMES)
    assert export.calendar[0] >= 20070101 and export.calendar[-1] <= 20111231
    capsys.readouterr()
    assert main(["qlib", "export", str(exported / "lake"), str(exported / "qlib")]) == 2  # not empty
    assert "is not empty" in capsys.readouterr().out
    assert (
        main(["qlib", "export", str(exported / "lake"), str(exported / "q2"), "--symbols", "600999.SH"]) == 2
    )
    assert "600999.SH" in capsys.readouterr().out
    assert main(["qlib", "export", str(exported / "nolake"), str(exported / "q3")]) == 2
    assert "no lake" in capsys.readouterr().out
    # --json: the folder, the lake's hash, the sessions and every instrument (it had none)
    two = ["qlib", "export", str(exported / "lake"), str(exported / "q4"), "--symbols", "600000.SH,000001.SZ"]
    assert main([*two, "--json", "-"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    written = read_export(exported / "q4")
    assert printed["qlib_data"] == str((exported / "q4").resolve())
    assert printed["lake_content_hash"] == written.lake_content_hash == Lake(exported / "lake").content_hash
    assert printed["instruments"] == written.instruments and sorted(printed["instruments"]) == [
        "SH600000", "SZ000001",
    ]  # fmt: skip
    assert printed["sessions"] == len(written.calendar)
    assert (printed["first_day"], printed["last_day"]) == (written.calendar[0], written.calendar[-1])
    assert "wrote Qlib data" in captured.err
    two[3] = str(exported / "q5")
    assert main([*two, "--json", str(exported / "out" / "q5.json")]) == 0
    assert f"wrote {exported / 'out' / 'q5.json'}" in capsys.readouterr().out
    again = json.loads((exported / "out" / "q5.json").read_text())
    assert again == {**printed, "qlib_data": str((exported / "q5").resolve())}


def test_a_csv_in_qlibs_score_format_imports_trades_and_replays(
    exported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without pyqlib: 20-day momentum from the export's own close files, written as Qlib's
    ``datetime, instrument, score`` CSV, through ``tape qlib import``."""
    export = read_export(exported / "qlib")
    days = [f"{d // 10000}-{d // 100 % 100:02d}-{d % 100:02d}" for d in export.calendar]
    rows = []
    for name in export.instruments:
        data = np.fromfile(exported / "qlib" / "features" / name.lower() / "close.day.bin", dtype="<f4")
        first, close = int(data[0]), data[1:].astype(np.float64)
        for i in range(20, close.size):
            score = close[i] / close[i - 20] - 1
            if np.isfinite(score) and days[first + i] >= "2010-07-01":
                rows.append({"datetime": days[first + i], "instrument": name, "score": float(score)})
    pl.DataFrame(rows).write_csv(exported / "momentum.csv")
    capsys.readouterr()
    assert main(["qlib", "import", str(exported / "momentum.csv"), "--export", str(exported / "qlib"),
                 "--signal", str(exported / "momentum.parquet"), "--json", "-"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "trade it:" in captured.err  # the lines step aside to stderr (they were left out)
    assert report["rows"] == len(rows) and report["instruments"] == 7 and report["first_day"] >= 20100701
    events = _backtest_and_replay(exported, "momentum", exported / "momentum.parquet", report["signal_hash"])
    loaded = [e for e in events if isinstance(e, ModelLoaded)]
    assert [(e.artifact, e.model_kind) for e in loaded] == [(report["signal_hash"], "qlib_signal")]
    assert len([e for e in events if isinstance(e, OrderFilled)]) >= 10
    # refusals: an instrument the export does not hold; a folder with no pred.pkl
    pl.DataFrame([{"datetime": "2010-07-01", "instrument": "SH601988", "score": 1.0}]).write_csv(
        exported / "unknown.csv"
    )
    assert main(["qlib", "import", str(exported / "unknown.csv"), "--export", str(exported / "qlib"),
                 "--signal", str(exported / "unknown.parquet")]) == 2  # fmt: skip
    assert "SH601988" in capsys.readouterr().out
    (exported / "empty").mkdir()
    assert main(["qlib", "import", str(exported / "empty"), "--export", str(exported / "qlib"),
                 "--signal", str(exported / "x.parquet")]) == 2  # fmt: skip
    assert "0 pred.pkl files" in capsys.readouterr().out


@pytest.mark.qlib
def test_qrun_alpha158_lightgbm_predictions_trade_in_tape_and_replay(
    exported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Qlib's own workflow runner on the example YAML, in a subprocess of this interpreter."""
    pytest.importorskip("qlib", reason="pyqlib (the qlib extra) is not installed")
    pytest.importorskip("lightgbm", reason="Qlib's LGBModel needs lightgbm")
    work = exported / "qrun"
    work.mkdir()
    env = {
        **os.environ,
        "TAPE_QLIB_DATA": str(exported / "qlib"),
        "TAPE_QLIB_MLFLOW": str(work / "mlflow.db"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "qlib.cli.run", str(REPO / "cli/defaults/qlib_alpha158_lightgbm.yaml")],
        cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (work / "mlflow.db").stat().st_size > 0  # the sqlite tracking store was used
    capsys.readouterr()
    assert main(["qlib", "import", str(work / "mlruns"), "--export", str(exported / "qlib"),
                 "--signal", str(exported / "alpha158.parquet"), "--json", "-"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["first_day"] >= 20100701 and report["rows"] > 1000 and report["instruments"] == 7
    events = _backtest_and_replay(exported, "alpha158", exported / "alpha158.parquet", report["signal_hash"])
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert len(fills) >= 10 and min(f.ts_ns for f in fills) >= utc_ns("2010-07-01")
    with capsys.disabled():
        print(f"qrun Alpha158 + LGBModel: {report['rows']} predictions, {len(fills)} fills, replay matched")
