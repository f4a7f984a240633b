"""``tape train CONFIG.toml`` on a seeded lake: the same configuration and seed give
byte-identical artifacts (every walk-forward window's and the final one), the registrations are
journaled, the table has its JSON and CSV forms, the run configuration written from the
template trades the final artifact in a backtest that replays bit for bit, and bad
configurations are refused with the reason."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

pytest.importorskip("lightgbm", reason="the ml extra (lightgbm) is not installed")

from cli.main import main
from cli.wiring import load_config, make_strategies
from domain.events import DayClosed, ModelLoaded, ModelRegistered, OrderFilled
from kernel.store import open_journal
from lake.partitioned import Lake
from models.features.cross_section import FeatureSpec
from models.ml.artifact import train_and_register
from models.ml.labels import LabelSpec
from models.ml.registry import list_artifacts, load
from sim.backtest import run_backtest
from tests.factories import synth_lake, utc_ns

TRAIN = """[train]
lake = "{lake}"
registry = "{registry}"
journal = "{registry}-journal"
model = "{model}"
seed = {seed}
start = "2015-06-01"
end = "2017-12-29"
{settings}
label = {{ horizon = 10, gap = 1 }}
walk_forward = {{ train_bars = 252, test_bars = 126 }}

[[train.features]]
name = "momentum"
params = {{ lookback = 60, skip = 5 }}

[[train.features]]
name = "volatility"
params = {{ window = 20 }}

[[train.features]]
name = "alpha158"
params = {{ name = "KMID" }}
steps = [["rank", {{}}]]

[train.run]
template = "run.toml.in"
out = "{registry}-run.toml"
"""

RUN_TEMPLATE = """run_id = "trained-model"
seed = 7
dataset = "data"
journal = "journal"
currency = "USD"
initial_cash = "1000000"
us_regulatory_fees = false

[strategy]
entry = "models.ml.strategy:ModelRanker"

[strategy.params]
artifact_dir = "${artifact_dir}"
artifact = "${artifact}"
portfolio = "topk_dropout"
top_k = 3
n_drop = 1
weight = 0.9
start_day = 20180101

[risk]
name = { limit_e8 = 40_000_000, action = "clip" }
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train")
    synth_lake(root / "lake", seed=11, symbols=8, bars=900, start="2015-01-02")
    (root / "run.toml.in").write_text(RUN_TEMPLATE)
    Lake(root / "lake").export(root / "data", "1d", calendar="XNYS", start_ns=utc_ns("2017-09-01"))
    return root


def _config(root: Path, registry: str, *, model: str = "lightgbm", seed: int = 7, settings: str = "") -> Path:
    if not settings:
        settings = "num_boost_round = 60\nparams = { num_leaves = 7 }" if model == "lightgbm" else ""
    path = root / f"{registry}.toml"
    path.write_text(TRAIN.format(lake="lake", registry=registry, model=model, seed=seed, settings=settings))
    return path


def _train(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["train", str(config), "--json", "-"]) == 0
    report: dict[str, object] = json.loads(capsys.readouterr().out)
    return report


def _hashes(report: dict[str, object]) -> list[str]:
    windows = report["windows"]
    assert isinstance(windows, list)
    return [str(w["artifact"]) for w in windows]


def test_same_config_and_seed_give_byte_identical_artifacts(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _train(_config(workdir, "reg-a"), capsys)
    second = _train(_config(workdir, "reg-b"), capsys)
    other_seed = _train(_config(workdir, "reg-c", seed=8), capsys)
    windows = first["windows"]
    assert isinstance(windows, list) and len(windows) >= 4
    # each entry's window is an object (it was the string "0", "1", ..., "final")
    assert [w["window"]["index"] for w in windows] == [*range(len(windows) - 1), None]
    assert [w["window"]["final"] for w in windows] == [False] * (len(windows) - 1) + [True]
    assert windows[-1]["window"]["train"] == {
        "start": "2015-06-01", "end": "2017-12-29",
        "start_ts_ns": utc_ns("2015-06-01"), "end_ts_ns": utc_ns("2017-12-30") - 1,
    } and windows[-1]["window"]["test"] is None  # fmt: skip
    assert _hashes(first) == _hashes(second)  # every window's artifact and the final one
    assert first["artifact"] == windows[-1]["artifact"]
    assert set(_hashes(other_seed)).isdisjoint(_hashes(first))  # bagging draws from the seed
    for digest in _hashes(first):
        a, b = load(workdir / "reg-a", digest), load(workdir / "reg-b", digest)
        assert (
            a.model_bytes == b.model_bytes
            and (a.folder / "artifact.json").read_bytes() == (b.folder / "artifact.json").read_bytes()
        )
    final = load(workdir / "reg-a", str(first["artifact"])).meta
    assert final["train_window"]["start"] == "2015-06-01" and final["train_window"]["end"] == "2017-12-29"
    assert (
        final["kind"] == "lightgbm" and final["num_boost_round"] == 60 and final["params"]["num_leaves"] == 7
    )
    assert len(final["walk_forward"]["folds"]) == len(windows) - 1
    fold = load(workdir / "reg-a", str(windows[0]["artifact"])).meta
    window = windows[0]["window"]
    assert fold["walk_forward"]["fold"] == 0 and fold["walk_forward"]["test"] == [
        window["test"]["start"], window["test"]["end"]
    ]  # fmt: skip
    assert (fold["walk_forward"]["test_start_ts_ns"], fold["walk_forward"]["test_end_ts_ns"]) == (
        window["test"]["start_ts_ns"], window["test"]["end_ts_ns"]
    )  # fmt: skip
    assert fold["train_window"]["end"] == window["train"]["end"]
    assert fold["train_window"]["end_ts_ns"] == window["train"]["end_ts_ns"]
    assert window["train"]["end_ts_ns"] < window["test"]["start_ts_ns"]
    # the registrations are journaled, in the table's order
    with open_journal(workdir / "reg-a-journal") as journal:
        registered = [e for _, e in journal.events() if isinstance(e, ModelRegistered)]
    assert [e.artifact for e in registered] == _hashes(first) and all(e.created for e in registered)
    assert len(list_artifacts(workdir / "reg-a")) == len(windows)
    # the Python call with the same settings registers the same final artifact
    specs = [FeatureSpec("momentum", {"lookback": 60, "skip": 5}), FeatureSpec("volatility", {"window": 20}),
             FeatureSpec("alpha158", {"name": "KMID"}, (("rank", {}),))]  # fmt: skip
    digest, _ = train_and_register(Lake(workdir / "lake"), workdir / "reg-py", specs, LabelSpec(10, 1),
                                   utc_ns("2015-06-01"), utc_ns("2017-12-30") - 1, params={"num_leaves": 7},
                                   num_boost_round=60, wf_train=252, wf_test=126)  # fmt: skip
    assert digest == first["artifact"]


def test_training_reports_progress_from_the_start_and_per_feature(workdir: Path) -> None:
    """The bar was first drawn after the design rows (each feature computed and checked causal:
    on 150 seeded names x 2,000 bars 4.6 s of a 10.4 s run, on 500 names most of it) with
    nothing shown before. Now: 0 done before the lake is read, then one step per feature, per
    window and for the final model."""
    from models.ml.artifact import train_walk_forward

    calls: list[tuple[int, int]] = []
    specs = [FeatureSpec("momentum", {"lookback": 60, "skip": 5}), FeatureSpec("volatility", {"window": 20}),
             FeatureSpec("alpha158", {"name": "KMID"})]  # fmt: skip
    run = train_walk_forward(Lake(workdir / "lake"), workdir / "reg-progress", specs, LabelSpec(10, 1),
                             utc_ns("2015-06-01"), utc_ns("2017-12-30") - 1, params={"num_leaves": 7},
                             num_boost_round=5, wf_train=252, wf_test=126,
                             progress=lambda done, total: calls.append((done, total)))  # fmt: skip
    features, total = len(specs), len(specs) + len(run.folds) + 1
    assert len(run.folds) >= 2
    assert calls[: features + 1] == [(done, features + 2) for done in range(features + 1)]
    assert calls[features + 1 :] == [(done, total) for done in range(features, total + 1)]


def test_the_table_csv_and_a_second_run_into_the_same_registry(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(workdir, "reg-d")
    capsys.readouterr()
    assert main(["train", str(config)]) == 0
    table = capsys.readouterr().out
    assert "final" in table and "IC out" in table and "tape backtest" in table
    lines = table.splitlines()
    rows_end = next(i for i, line in enumerate(lines) if line.startswith("final artifact"))
    assert max(len(line) for line in lines[:rows_end]) <= 80  # the table; the paths after it are not wrapped
    assert main(["train", str(config), "--csv", "-"]) == 0  # again: the same artifacts, kept
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[-1]["window"] == "final" and rows[0]["test_start"] and not rows[-1]["test_start"]
    with open_journal(workdir / "reg-d-journal") as journal:
        registered = [e for _, e in journal.events() if isinstance(e, ModelRegistered)]
    assert len(registered) == 2 * len(rows) and not any(e.created for e in registered[len(rows) :])


def test_the_table_at_60_columns_cuts_no_figure(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 60 columns every column of the table was cut ('2015-06…', '1,…', '+0.…'). The training
    window now wraps after its '..', the in-sample IC is named under the table, and the rows,
    the out-of-sample IC and the hash's first 12 characters are whole."""
    from cli.progress import console

    config = _config(workdir, "reg-d")
    assert main(["train", str(config), "--csv", "-"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    monkeypatch.setattr(console, "width", 60)
    assert main(["train", str(config)]) == 0
    out = capsys.readouterr().out
    table = out[: out.index("final artifact")].splitlines()
    assert max(len(line) for line in table) <= 60 and "…" not in out
    words = " ".join(table).split()
    assert "not shown at this width: IC in" in " ".join(words)
    for row in rows:
        line = next(line.split() for line in table if line.split()[:1] == [row["window"]])
        figures = [f"{int(row['train_rows']):,}", f"{float(row['test_ic']):+.3f}", row["artifact"][:12]]
        assert line == [row["window"], f"{row['train_start']}..", row["test_end"] or "-", *figures]
        assert row["train_end"] in words


def test_the_trained_artifact_trades_from_the_written_config_and_replays(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _train(_config(workdir, "reg-e"), capsys)
    run_config = Path(str(report["run_config"]))
    assert f'artifact = "{report["artifact"]}"' in run_config.read_text()
    assert main(["backtest", str(run_config)]) == 0
    with open_journal(workdir / "journal") as journal:
        events = [e for _, e in journal.events()]
    loaded = [e for e in events if isinstance(e, ModelLoaded)]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    closes = [e for e in events if isinstance(e, DayClosed)]
    assert [e.artifact for e in loaded] == [report["artifact"]] and loaded[0].predictions > 0
    assert len(fills) >= 5 and min(f.ts_ns for f in fills) >= utc_ns("2018-01-01")
    assert main(["replay", str(workdir / "journal")]) == 0
    day = str(closes[len(closes) // 2].day)
    assert main(["replay", str(workdir / "journal"), "--day", f"{day[:4]}-{day[4:6]}-{day[6:]}"]) == 0


@pytest.mark.parametrize("start_day", ["", "start_day = 20170102\n", "start_day = 20171229\n"])
def test_a_final_artifact_traded_inside_its_training_window_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str], start_day: str
) -> None:
    """A planted leak: the final model (trained 2015-06-01..2017-12-29) traded from a day of its
    own training window — the data set's first (no start_day) or a start_day inside it — trades
    on returns it learnt. It ran, in-sample NAV and all, with no word; it is refused before a
    journal opens, and ``in_sample = true`` runs it on purpose (and replays)."""
    report = _train(_config(workdir, "reg-e"), capsys)
    written = Path(str(report["run_config"])).read_text()
    leaky, journal = workdir / "leaky.toml", workdir / f"journal-leak{start_day[12:20]}"
    leaky.write_text(
        written.replace("start_day = 20180101\n", start_day).replace('"journal"', f'"{journal}"')
    )
    capsys.readouterr()
    assert main(["backtest", str(leaky)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert f"artifact {report['artifact']} was trained on data to 2017-12-29" in out
    assert "overlaps its trading window (look-ahead)" in out and "in_sample = true" in out
    assert not journal.exists()
    leaky.write_text(leaky.read_text().replace("weight = 0.9\n", "weight = 0.9\nin_sample = true\n"))
    assert main(["backtest", str(leaky)]) == 0
    assert main(["replay", str(journal)]) == 0


def test_every_verb_that_starts_a_run_refuses_a_model_inside_its_training_window(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tape backtest refused a ModelRanker trading inside its artifact's training window; tape
    sweep, tape walkforward and tape montecarlo --perturb ran the same look-ahead with no word.
    Each refuses it now (exit 2, before a journal opens: the one check, ``cli.wiring.
    new_run_strategies``), and a journal written before the check still replays."""
    report = _train(_config(workdir, "reg-f"), capsys)
    written = Path(str(report["run_config"])).read_text()
    leaky = written.replace("start_day = 20180101\n", "").replace('"journal"', f'"{workdir / "journal-f"}"')
    expected = f"artifact {report['artifact']} was trained on data to 2017-12-29"
    grid = '{ "strategy.params.top_k" = [2, 3] }'
    tables = {
        "sweep": f'\n[sweep]\ngrid = {grid}\nout = "{workdir / "sweep-f"}"\n',
        "walkforward": f"\n[walkforward]\ntrain_days = 60\ntest_days = 40\ngrid = {grid}\n",
    }
    for verb, table in tables.items():
        config = workdir / f"leaky-{verb}.toml"
        config.write_text(leaky + table)
        capsys.readouterr()
        assert main([verb, str(config), "--out", str(workdir / f"{verb}-f")]) == 2, verb
        out = " ".join(capsys.readouterr().out.split())
        assert expected in out and "in_sample = true" in out, (verb, out)
        assert not (workdir / f"{verb}-f" / "journals").exists(), verb
    # a journal written before the check (the simulator's API does not check): it replays, and
    # tape montecarlo --perturb (new runs of its configuration) refuses it
    config_path = workdir / "leaky-mc.toml"
    config_path.write_text(leaky)
    config = load_config(config_path)
    journal = run_backtest(config, make_strategies(config)).journal
    assert main(["replay", str(journal)]) == 0
    capsys.readouterr()
    out_dir = workdir / "mc-f"
    assert main(["montecarlo", str(journal), "--perturb", "2", "--workers", "1", "--out", str(out_dir)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert expected in out, out
    assert not (out_dir / "journals").exists()


def test_a_torch_network_trains_byte_identically_through_the_verb(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch", reason="the ml extra (torch) is not installed")
    settings = "mlp = { hidden = [8], epochs = 2, batch_rows = 512 }"
    first = _train(_config(workdir, "reg-t1", model="torch_mlp", settings=settings), capsys)
    second = _train(_config(workdir, "reg-t2", model="torch_mlp", settings=settings), capsys)
    assert _hashes(first) == _hashes(second)
    final = load(workdir / "reg-t1", str(first["artifact"]))
    assert final.model_file == "model.bin" and final.meta["training"]["epochs"] == 2
    assert final.model_bytes == load(workdir / "reg-t2", str(first["artifact"])).model_bytes


WALK_FORWARD_TEMPLATE = (
    RUN_TEMPLATE.replace(
        'entry = "models.ml.strategy:ModelRanker"', 'entry = "models.ml.strategy:WalkForwardRanker"'
    )
    .replace('artifact = "${artifact}"', "artifacts = ${artifacts}")
    .replace("start_day = 20180101\n", "")
    .replace('journal = "journal"', 'journal = "journal-wf"')
    .replace('dataset = "data"', 'dataset = "data-wf"')
)


def test_a_torch_classifier_trains_byte_identically_and_its_windows_trade_in_sequence(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``task = "classification"`` through the verb (the network, up/down), twice: the same
    bytes; a template naming ``${artifacts}`` trades the window artifacts one after another,
    and the stitched run replays whole and for one day."""
    pytest.importorskip("torch", reason="the ml extra (torch) is not installed")
    (workdir / "wf.toml.in").write_text(WALK_FORWARD_TEMPLATE)
    # the windows trade 2016-2017: a data set from 2015-09 (warm-up for the 60-bar momentum)
    Lake(workdir / "lake").export(workdir / "data-wf", "1d", calendar="XNYS", start_ns=utc_ns("2015-09-01"))
    settings = 'task = "classification"\nmlp = { hidden = [8], epochs = 2, batch_rows = 512 }'
    reports = []
    for registry in ("reg-c1", "reg-c2"):
        config = _config(workdir, registry, model="torch_mlp", settings=settings)
        text = config.read_text().replace("gap = 1 }", "gap = 1, thresholds = [0.0] }")
        config.write_text(text.replace('template = "run.toml.in"', 'template = "wf.toml.in"'))
        reports.append(_train(config, capsys))
    assert _hashes(reports[0]) == _hashes(reports[1]) and reports[0]["task"] == "classification"
    for digest in _hashes(reports[0]):
        first, second = load(workdir / "reg-c1", digest), load(workdir / "reg-c2", digest)
        assert first.model_bytes == second.model_bytes and first.meta == second.meta
        assert first.meta["classes"] == 2 and first.meta["network"]["outputs"] == 2
    windows = _hashes(reports[0])[:-1]
    run_config = Path(str(reports[0]["run_config"]))
    assert f"artifacts = {json.dumps(windows)}" in run_config.read_text()
    journal = workdir / "journal-wf"
    assert main(["backtest", str(run_config)]) == 0
    with open_journal(journal) as opened:
        events = [e for _, e in opened.events()]
    assert [e.artifact for e in events if isinstance(e, ModelLoaded)] == windows
    closes = [e for e in events if isinstance(e, DayClosed)]
    assert len([e for e in events if isinstance(e, OrderFilled)]) >= 5
    assert main(["replay", str(journal)]) == 0
    day = str(closes[len(closes) // 2].day)
    assert main(["replay", str(journal), "--day", f"{day[:4]}-{day[4:6]}-{day[6:]}"]) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('name = "momentum"', 'name = "moment"'), "unknown feature 'moment'"),
        (('model = "lightgbm"', 'model = "xgboost"'), "is not one of lightgbm, torch_mlp"),
        (("horizon = 10, gap = 1", "horizon = 10, gap = -1"), "gap must be >= 0"),
        (('end = "2017-12-29"', 'end = "2015-01-01"'), "is before start"),
        (("seed = 7", "seed = 7\nepochs = 3"), "unknown setting(s) ['epochs']"),
        (('journal = "reg-x-journal"', 'journal = "reg-x/journal"'), "outside the registry"),
        (('lake = "lake"', 'lake = "no-lake"'), "no lake at"),
        (("train_bars = 252", "train_bars = 5000"), "0 walk-forward windows"),
        # each of these was "0 walk-forward windows: the training window holds 0 labelled bars":
        # the reason (no such bars, none in the window, a label longer than the data) unsaid
        (("horizon = 10, gap = 1", "horizon = 2000, gap = 1"), "= 2001 later bars, but no instrument has"),
        (("horizon = 10, gap = 1", "horizon = 2000, gap = 1"), "the horizon is longer than the data"),
        (
            ('start = "2015-06-01"\nend = "2017-12-29"', 'start = "2030-01-02"\nend = "2030-12-31"'),
            "the lake has no 1d bars in the training window 2030-01-02..2030-12-31 (its bars",
        ),
        (
            ("seed = 7", 'seed = 7\nfrequency = "1h"'),
            "no labelled rows: the lake has no 1h bars up to 2017-12-29",
        ),
        (('start = "2015-06-01"', 'start = "2017-12-20"'), "a label ends gap 1 + horizon 10 = 11 bars after"),
        (("seed = 7", 'seed = 7\ntask = "classification"'), "classification needs label thresholds"),
        (("seed = 7", 'seed = 7\ntask = "ranking"'), "task 'ranking' is not one of"),
        # these were LightGBM's errors once training had begun ('internal error: LightGBMError:
        # Unknown token fast'), "yes"/"no" a true register_folds, and the label's place said twice
        (("num_leaves = 7", 'learning_rate = "fast"'), "LightGBM refuses params"),
        (("num_leaves = 7", "num_leaves = -3"), "LightGBM refuses params"),
        (("num_boost_round = 60", "num_boost_round = 0"), "num_boost_round must be at least 1, got 0"),
        (("seed = 7", 'seed = 7\nregister_folds = "no"'), "register_folds must be true or false, got 'no'"),
        (
            ("horizon = 10, gap = 1", 'horizon = "10", gap = 1'),
            "toml: [train].label: horizon must be an integer",
        ),
        # the run's configuration was written over the training configuration (or the template)
        # after the training: that file was lost
        (('out = "reg-x-run.toml"', 'out = "reg-x.toml"'), "[train].run: out"),
        (('out = "reg-x-run.toml"', 'out = "reg-x.toml"'), "is this configuration: writing the run's"),
        (('out = "reg-x-run.toml"', 'out = "./run.toml.in"'), "run.toml.in is the template"),
    ],
)
def test_bad_configurations_are_refused_with_the_reason(
    workdir: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str], message: str
) -> None:
    config = _config(workdir, "reg-x")
    text = config.read_text()
    assert change[0] in text
    config.write_text(text.replace(change[0], change[1], 1))
    capsys.readouterr()
    assert main(["train", str(config)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert message in out
    assert out.count("[train]") <= 1  # where it is, said once
    assert not (workdir / "reg-x").exists()  # nothing registered


def test_a_template_that_does_not_name_the_artifact_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "bad.toml.in").write_text(RUN_TEMPLATE.replace("${artifact}", "fixed"))
    config = _config(workdir, "reg-y")
    config.write_text(config.read_text().replace('template = "run.toml.in"', 'template = "bad.toml.in"'))
    capsys.readouterr()
    assert main(["train", str(config)]) == 2
    assert "names ${artifact_dir} and ${artifact} or ${artifacts}" in " ".join(
        capsys.readouterr().out.split()
    )
    # the windows' artifacts are named only when they are registered
    (workdir / "wf-bad.toml.in").write_text(WALK_FORWARD_TEMPLATE)
    text = config.read_text().replace('template = "bad.toml.in"', 'template = "wf-bad.toml.in"')
    config.write_text(text.replace("seed = 7", "seed = 7\nregister_folds = false", 1))
    assert main(["train", str(config)]) == 2
    assert "set register_folds = true" in " ".join(capsys.readouterr().out.split())
    assert not (workdir / "reg-y").exists()
