"""A frozen model traded in ``tape paper`` and in ``tape live`` against the local exchange (the
real ccxt.pro client on loopback): ``ModelRanker`` loads the registered artifact and scores each
bar as it arrives. The paper session's orders and fills are those of a backtest over the same
bars that loads the same artifact; the live session's orders go to the exchange and its fills
come back from it. Each session replays whole and by day (the replay loads the same bytes).

The artifact is a LightGBM regressor trained on a seeded lake (``tests.factories.synth_lake``);
the paper market is another seeded two-name market (``market_and_history``): the model's
features are per name and per bar, so it scores names it was not trained on. Nothing here is a
claim about the model's skill."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from cli.wiring import replay_builder
from domain.events import INPUT_KINDS, DayClosed, ModelLoaded, OrderFilled, TargetsDecided
from kernel.replay import replay
from kernel.store import open_journal
from lake.partitioned import Lake
from lake.store import load_panel
from tests.factories import market_and_history, paper_config, synth_lake, utc_ns

pytest.importorskip("lightgbm", reason="the [ml] extra (lightgbm) is not installed")

HISTORY = 60
# A month-end rebalance of the one name with the higher predicted return; short look-backs, so
# the model scores from the 21st bar (inside the history) and decides at the live month ends.
PARAMS = 'portfolio = "topk", top_k = 1, weight = 0.5'


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from models.features.cross_section import FeatureSpec
    from models.ml.artifact import train_and_register
    from models.ml.labels import LabelSpec

    root = tmp_path_factory.mktemp("model")
    lake = Lake(synth_lake(root / "lake", seed=11, symbols=6, bars=500))
    specs = [FeatureSpec("momentum", {"lookback": 20}), FeatureSpec("volatility", {"window": 10})]
    digest, _ = train_and_register(
        lake, root / "registry", specs, LabelSpec(horizon=5, gap=1), utc_ns("2015-01-02"),
        utc_ns("2016-12-30"), num_boost_round=30, params={"num_leaves": 7}, wf_train=252, wf_test=126,
    )  # fmt: skip
    return root / "registry", digest


def _derived(path: Path) -> list[object]:
    """The session's derived events but ``model.loaded``: its predictions hash covers the panel
    the run began with (a backtest's whole panel, a session's history)."""
    with open_journal(path) as journal:
        return [
            record.event()
            for record in journal.records()
            if record.kind not in INPUT_KINDS and record.kind != "model.loaded.v1"
        ]


def _with_strategy(config: Path, strategy: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's TOML with ``strategy`` as its ``[strategy]``; for ``live``, the local
    exchange's venue, a cash account and test keys."""
    head, rest = config.read_text().split("[strategy]", 1)
    config.write_text(head + strategy + "\n[paper]" + rest.split("[paper]", 1)[1])
    if mode == "live":
        monkeypatch.setenv("TAPE_TEST_API_KEY", "model-test-key")
        monkeypatch.setenv("TAPE_TEST_SECRET", "model-test-secret")
        config.write_text(
            config.read_text()
            + '\n[venue]\nkind = "live"\n\n[account]\ntype = "cash"\n\n[live]\nkeys_env = "TAPE_TEST"\n'
        )


def _replays_whole_and_by_day(path: Path) -> list[object]:
    """The journal's events, after checking it replays whole and from its first, middle and
    last day."""
    with open_journal(path) as journal:
        events = [event for _, event in journal.events()]
        whole = replay(journal, replay_builder)
        assert whole.ok, whole.divergence
        days = [e.day for e in events if isinstance(e, DayClosed)]
        for day in (days[0], days[len(days) // 2], days[-1]):
            outcome = replay(journal, replay_builder, day=day)
            assert outcome.ok, (day, outcome.divergence)
    return events


def _session(
    tmp_path: Path, history: Path, full: Path, span: tuple[int, int], strategy: str, mode: str,
    monkeypatch: pytest.MonkeyPatch,
) -> list[object]:  # fmt: skip
    """A ``mode`` session over ``span`` (start, end ns) on the local exchange with ``strategy``
    as its ``[strategy]``; its journal's events once it replays whole and by day."""
    config = paper_config(tmp_path / "paper.toml", history, tmp_path / "journal", *span)
    _with_strategy(config, strategy, mode, monkeypatch)
    assert main([mode, str(config), "--local-exchange", str(full), "--speed", "400"]) == 0
    return _replays_whole_and_by_day(tmp_path / "journal")


@pytest.mark.parametrize("mode", ["paper", "live"])
def test_a_model_strategy_trades_in_a_session_and_replays(
    artifact: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    registry, digest = artifact
    full, history = market_and_history(tmp_path / "market", seed=5, bars=150, history=HISTORY)
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    strategy = (
        f'[strategy]\nentry = "models.ml.strategy:ModelRanker"\n'
        f'params = {{ artifact_dir = "{registry}", artifact = "{digest}", {PARAMS} }}\n'
    )
    events = _session(tmp_path, history, full, (start, end), strategy, mode, monkeypatch)
    loaded = [e for e in events if isinstance(e, ModelLoaded)]
    assert [e.artifact for e in loaded] == [digest]
    live_decisions = [e for e in events if isinstance(e, TargetsDecided) and e.ts_ns >= start]
    fills = [e for e in events if isinstance(e, OrderFilled) and e.ts_ns >= start]
    assert len(live_decisions) >= 2 and fills, (len(live_decisions), len(fills))
    if mode == "live":  # the fills are the venue's: booked from its messages, not simulated
        days = [e.day for e in events if isinstance(e, DayClosed)]
        assert main(["replay", str(tmp_path / "journal"), "--day", str(days[-1])]) == 0
        return

    # The same bars and the same artifact as a backtest that trades from the first live day.
    day = str(int(panel.day[HISTORY]))
    backtest = tmp_path / "backtest.toml"
    backtest.write_text(
        (tmp_path / "paper.toml")
        .read_text()
        .split("[paper]")[0]
        .replace(str(history), str(full))
        .replace(str(tmp_path / "journal"), str(tmp_path / "bt"))
        + f'\n[window]\nstart = "{day[:4]}-{day[4:6]}-{day[6:]}"\n'
    )
    assert main(["backtest", str(backtest)]) == 0
    assert _derived(tmp_path / "journal") == _derived(tmp_path / "bt")


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Walk-forward window artifacts whose out-of-sample windows (30 days each, contiguous) run
    through the paper market's dates (2021-01..05): a seeded lake on the market's 24x7 calendar
    from 2019-06, LightGBM, folds registered."""
    from models.features.cross_section import FeatureSpec
    from models.ml.artifact import train_walk_forward
    from models.ml.labels import LabelSpec

    root = tmp_path_factory.mktemp("windows")
    lake = Lake(synth_lake(root / "lake", seed=13, symbols=6, bars=760, start="2019-06-01", calendar="24x7"))
    specs = [FeatureSpec("momentum", {"lookback": 20}), FeatureSpec("volatility", {"window": 10})]
    run = train_walk_forward(
        lake, root / "registry", specs, LabelSpec(horizon=5, gap=1), utc_ns("2019-06-01"),
        utc_ns("2021-06-30"), num_boost_round=20, params={"num_leaves": 7}, wf_train=365, wf_test=30,
        register_folds=True,
    )  # fmt: skip
    digests = [fold.artifact for fold in run.folds]
    assert all(isinstance(d, str) for d in digests)
    return root / "registry", [str(d) for d in digests]


@pytest.mark.parametrize("mode", ["paper", "live"])
def test_walk_forward_window_artifacts_trade_in_a_session_and_replay(
    windows: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """``WalkForwardRanker`` in ``tape paper`` and ``tape live`` on the local exchange: each
    window's artifact decides inside its own window only, the session replays whole and by
    day, and a paper session's derived events are a backtest's over the same bars with the
    same artifacts."""
    from models.ml.registry import load

    registry, digests = windows
    full, history = market_and_history(tmp_path / "market", seed=5, bars=150, history=HISTORY)
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    inside = [
        d for d in digests
        if int(load(registry, d).meta["walk_forward"]["test_end_ts_ns"]) >= start
        and int(load(registry, d).meta["walk_forward"]["test_start_ts_ns"]) <= end
    ]  # fmt: skip
    assert len(inside) >= 2  # the session crosses at least one window boundary
    listed = ", ".join(f'"{d}"' for d in digests)
    strategy = (
        f'[strategy]\nentry = "models.ml.strategy:WalkForwardRanker"\n'
        f'params = {{ artifact_dir = "{registry}", artifacts = [{listed}], {PARAMS} }}\n'
    )
    events = _session(tmp_path, history, full, (start, end), strategy, mode, monkeypatch)
    assert [e.artifact for e in events if isinstance(e, ModelLoaded)] == digests
    live = [e for e in events if isinstance(e, TargetsDecided) and e.ts_ns >= start]
    assert len(live) >= 2 and [e for e in events if isinstance(e, OrderFilled) and e.ts_ns >= start]
    # every live decision falls inside one window of an artifact listed
    bounds = [
        (int(load(registry, d).meta["walk_forward"]["test_start_ts_ns"]),
         int(load(registry, d).meta["walk_forward"]["test_end_ts_ns"]))
        for d in digests
    ]  # fmt: skip
    owners = {next((i for i, (a, b) in enumerate(bounds) if a <= e.ts_ns <= b), -1) for e in live}
    assert -1 not in owners and len(owners) >= 2, owners
    if mode == "live":  # the fills are the venue's: booked from its messages, not simulated
        return

    day = str(int(panel.day[HISTORY]))
    backtest = tmp_path / "backtest.toml"
    backtest.write_text(
        (tmp_path / "paper.toml")
        .read_text()
        .split("[paper]")[0]
        .replace(str(history), str(full))
        .replace(str(tmp_path / "journal"), str(tmp_path / "bt"))
        + f'\n[window]\nstart = "{day[:4]}-{day[4:6]}-{day[6:]}"\n'
    )
    assert main(["backtest", str(backtest)]) == 0
    assert _derived(tmp_path / "journal") == _derived(tmp_path / "bt")
