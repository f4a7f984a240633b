"""A user's strategies, in a package of their own, run through the TOML without touching Tape:
one by ``entry = "module:Class"``, one by an entry point in the ``tape.strategies`` group. Each
command runs as its own ``tape`` process (the package is found through PYTHONPATH, as a user's
installed package would be), and the run replays whole and by day."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cli.wiring import ConfigError, load_config, make_strategies
from domain.events import DayClosed, OrderSubmitted
from kernel.store import open_journal
from models.indicators import indicator
from tests.factories import make_dataset

REVERSAL = '''
import numpy as np


class Reversal:
    """Buy the name that fell most over the lookback; its state is derived from the data."""

    def __init__(self, *, lookback: int = 5, weight: float = 0.5, strategy_id: str = "reversal"):
        if lookback < 1:
            raise ValueError(f"lookback must be at least 1, got {lookback}")
        self.lookback, self.weight, self.strategy_id = lookback, weight, strategy_id

    def schedule(self, panel):
        return np.arange(self.lookback, panel.steps, self.lookback, dtype=np.int64)

    def decide(self, view):
        close = view.history("close", self.lookback + 1).astype(np.float64)
        ok = view.valid() & (close[0] > 0) & (close[-1] > 0)
        weights = np.zeros(close.shape[1])
        if ok.any():
            change = np.where(ok, close[-1] / np.where(ok, close[0], 1.0), np.inf)
            weights[int(np.argmin(change))] = self.weight
        return weights
'''

TREND = '''
import numpy as np


def make(*, window: int = 20, strategy_id: str = "user-trend"):
    """A factory function works as well as a class."""
    return Trend(window, strategy_id)


class Trend:
    def __init__(self, window, strategy_id):
        self.window, self.strategy_id = window, strategy_id

    def schedule(self, panel):
        return np.arange(self.window, panel.steps, dtype=np.int64)

    def decide(self, view):
        close = view.history("close", self.window).astype(np.float64)
        up = view.valid() & (close[0] > 0) & (close[-1] > close.mean(axis=0))
        return np.where(up, 0.9 / max(int(up.sum()), 1), 0.0)

    def limit_prices(self, view):
        return {}
'''


def _user_package(root: Path) -> Path:
    """``tape_user_alpha`` with two strategies, and its distribution metadata declaring one of
    them in the ``tape.strategies`` entry-point group (what ``pip install`` would write)."""
    package = root / "tape_user_alpha"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "reversal.py").write_text(textwrap.dedent(REVERSAL))
    (package / "trend.py").write_text(textwrap.dedent(TREND))
    info = root / "tape_user_alpha-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tape-user-alpha\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tape.strategies]\nuser_trend = tape_user_alpha.trend:make\n")
    return root


def _tape(*args: str, path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), os.getcwd()]), "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_plugin_strategies_from_a_users_package_run_report_and_replay(tmp_path: Path) -> None:
    site = _user_package(tmp_path / "site")
    dataset = make_dataset(tmp_path / "data", symbols=4, bars=300)
    config = tmp_path / "run.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            run_id = "user-plugins"
            dataset = "{dataset}"
            journal = "{tmp_path / "j"}"

            [[strategies]]
            entry = "tape_user_alpha.reversal:Reversal"
            params = {{ lookback = 5, weight = 0.5 }}
            budget = "0.25"

            [[strategies]]
            name = "user_trend"
            params = {{ window = 15 }}
            budget = "0.75"
            """
        )
    )
    listed = _tape("strategies", "--json", path=site)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["user_trend"] == "tape_user_alpha.trend:make"
    ran = _tape("backtest", str(config), path=site)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "reversal" in ran.stdout and "user-trend" in ran.stdout  # the attribution table
    with open_journal(tmp_path / "j") as journal:
        events = [event for _, event in journal.events()]
    senders = {e.strategy_id for e in events if isinstance(e, OrderSubmitted)}
    assert {"reversal", "user-trend"} <= senders
    days = [e.day for e in events if isinstance(e, DayClosed)]
    whole = _tape("replay", str(tmp_path / "j"), path=site)
    assert whole.returncode == 0 and "replay matched" in whole.stdout, whole.stdout + whole.stderr
    day = str(days[len(days) // 2])
    by_day = _tape("replay", str(tmp_path / "j"), "--day", f"{day[:4]}-{day[4:6]}-{day[6:]}", path=site)
    assert by_day.returncode == 0 and "replay matched" in by_day.stdout, by_day.stdout + by_day.stderr


def test_a_replay_without_the_users_package_says_what_is_missing(tmp_path: Path) -> None:
    site = _user_package(tmp_path / "site")
    dataset = make_dataset(tmp_path / "data", symbols=3, bars=120)
    config = tmp_path / "run.toml"
    config.write_text(
        f'run_id = "one-plugin"\ndataset = "{dataset}"\njournal = "{tmp_path / "j"}"\n'
        '[strategy]\nentry = "tape_user_alpha.reversal:Reversal"\nparams = { lookback = 3 }\n'
    )
    assert _tape("backtest", str(config), path=site).returncode == 0
    gone = _tape("replay", str(tmp_path / "j"), path=tmp_path / "nowhere")
    assert gone.returncode == 2
    assert "the run's strategies must load as they did when it ran" in gone.stdout
    assert "cannot import tape_user_alpha.reversal: ModuleNotFoundError" in gone.stdout
    assert "Traceback" not in gone.stdout + gone.stderr


def _config_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(f'run_id = "r"\ndataset = "d"\njournal = "j"\n{body}')
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "give one [strategy] table, or several [[strategies]]"),
        ('[strategy]\nname = "sma_crossover"\n[[strategies]]\nname = "momentum"\n', "not both"),
        ("[strategy]\nparams = {}\n", "needs a name"),
        ('[strategy]\nname = "a"\nentry = "b:c"\n', "not both"),
        ('[strategy]\nentry = "no_colon"\n', 'must read "package.module:Name"'),
        ('[strategy]\nname = "sma_crossover"\nbudget = "0.5"\n', "budgets are for [[strategies]]"),
        (
            '[[strategies]]\nname = "a"\nbudget = "0.6"\n[[strategies]]\nname = "b"\nbudget = "0.3"\n',
            "sum to 0.9",
        ),
        ('[[strategies]]\nname = "a"\nbudget = "1"\n[[strategies]]\nname = "b"\n', "have no budget"),
        ('[[strategies]]\nname = "a"\nbudget = "0.123456789"\n', "at most eight decimals"),
        ('[[strategies]]\nname = "a"\nbudget = "-0.5"\n', "outside (0, 1]"),
        ('[[strategies]]\nname = "a"\nbudget = "half"\n', "budget must be a decimal"),
        (
            '[strategy]\nname = "a"\n[strategy.risk]\nname = { limit_e8 = 20000000, action = "clip" }\n',
            "a single [strategy]'s policy is the book's",
        ),
    ],
)
def test_strategy_tables_that_cannot_work_are_refused_with_the_reason(
    tmp_path: Path, body: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=r"c\.toml: ") as caught:
        load_config(_config_file(tmp_path, body))
    assert message in str(caught.value)


def test_budgets_left_out_are_equal_shares_split_exactly(tmp_path: Path) -> None:
    body = "".join(
        f'[[strategies]]\nname = "sma_crossover"\nparams = {{ strategy_id = "s{i}" }}\n' for i in range(3)
    )
    config = load_config(_config_file(tmp_path, body))
    assert config.budgets_e8() == [33_333_334, 33_333_333, 33_333_333]
    assert [s.strategy_id for s in make_strategies(config)] == ["s0", "s1", "s2"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('name = "no_such_strategy"', "unknown strategy 'no_such_strategy'; installed: "),
        ('entry = "no_such_module:X"', "cannot import no_such_module: ModuleNotFoundError"),
        ('entry = "json:no_such_name"', "json has no 'no_such_name'"),
        ('entry = "json:__doc__"', "is not a class or a function"),
        ('entry = "collections:OrderedDict"', "it has no strategy_id"),
        ('name = "sma_crossover"\nparams = { fast = 30, slow = 10 }', "need 0 < fast < slow"),
        (
            'name = "sma_crossover"\nparams = { speed = 3 }',
            "no parameter 'speed'; it takes fast, slow, weight",
        ),
        ('name = "sma_crossover"\nparams = { fast = 3, slow = 9.5 }', "slow must be a whole number of bars"),
        ('name = "momentum"\nparams = { lookback = 60.0, skip = 5, top = 2 }', "lookback must be a whole"),
        ('name = "momentum"\nparams = { lookback = 60, skip = 5, top = true }', "top must be a whole number"),
        # these said "'<' not supported between instances of 'float' and 'str'", or were taken
        # (a bool as a weight of 1; momentum's "1" failed part-way into the run)
        ('name = "sma_crossover"\nparams = { weight = "0.5" }', "weight must be a number in (0, 1]"),
        ('name = "sma_crossover"\nparams = { weight = true }', "weight must be a number in (0, 1], got True"),
        ('name = "sma_crossover"\nparams = { short_weight = "x" }', "short_weight must be a number in [0"),
        ('name = "momentum"\nparams = { weight = "1" }', "weight must be a number in (0, 1], got '1'"),
        ('name = "limit_up_chase"\nparams = { weight = "x" }', "weight must be a number in (0, 1]"),
        ('name = "option_ladder"\nparams = { every = "5" }', "every must be a whole number >= 1, got '5'"),
        ('name = "sma_crossover"\nparams = { strategy_id = 5 }', "must be a non-empty str, got 5"),
    ],
)
def test_strategies_that_cannot_be_built_say_why(tmp_path: Path, table: str, message: str) -> None:
    config = load_config(_config_file(tmp_path, f"[strategy]\n{table}\n"))
    with pytest.raises(ConfigError) as caught:
        make_strategies(config)
    assert message in str(caught.value)


def _sdk_examples() -> dict[str, str]:
    """The code blocks of docs/strategy_sdk.md that follow an ``sdk-example`` marker, by path."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "strategy_sdk.md").read_text()
    examples = {}
    for part in text.split("<!-- sdk-example: ")[1:]:
        name, _, rest = part.partition(" -->")
        body = rest.split("```", 2)[1]
        examples[name] = body.split("\n", 1)[1]
    return examples


def test_the_sdk_pages_indicator_snippet_passes_nan_at_missing_bars() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "strategy_sdk.md").read_text()
    body = text.split("<!-- sdk-snippet: indicators -->", 1)[1].split("```", 2)[1].split("\n", 1)[1]
    scope: dict[str, object] = {}
    exec(body, scope)  # the documentation's own code
    rng = np.random.default_rng(5)
    raw = np.round(10_000 * np.exp(np.cumsum(rng.normal(0, 0.02, 80)))).astype(np.int64)
    valid = np.ones(80, dtype=bool)
    valid[[20, 21, 50]] = False
    close = np.where(valid, raw, 0)[:, None]  # a missing bar: valid False, zeros
    panel = SimpleNamespace(close=close, valid=valid[:, None], instruments=(SimpleNamespace(price_digits=2),))
    strategy = SimpleNamespace()
    steps = scope["schedule"](strategy, panel)  # type: ignore[operator]
    want = indicator("rsi", period=14).batch(raw[valid] / 100)
    assert np.isnan(strategy._rsi[~valid]).all()
    np.testing.assert_array_equal(strategy._rsi[valid], want)  # the missing bars skipped, not zeros
    assert steps.dtype == np.int64 and set(steps) <= set(np.flatnonzero(valid))


def test_the_sdk_pages_worked_example_runs_and_replays_as_written(tmp_path: Path) -> None:
    examples = _sdk_examples()
    assert set(examples) == {"mydesk/breakout.py", "run.toml"}
    (tmp_path / "mydesk").mkdir()
    (tmp_path / "mydesk" / "__init__.py").write_text("")
    (tmp_path / "mydesk" / "breakout.py").write_text(examples["mydesk/breakout.py"])
    (tmp_path / "run.toml").write_text(examples["run.toml"])
    synth = _tape("synth", str(tmp_path / "data" / "daily"), "--symbols", "20", "--bars", "750",
                  "--frequency", "1d", "--calendar", "24x7", path=tmp_path)  # fmt: skip
    assert synth.returncode == 0, synth.stdout + synth.stderr
    ran = _tape("backtest", str(tmp_path / "run.toml"), path=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    with open_journal(tmp_path / "journals" / "breakout") as journal:
        events = [event for _, event in journal.events()]
    submitted = [e for e in events if isinstance(e, OrderSubmitted)]
    assert len(submitted) > 20 and any(e.limit_px_raw for e in submitted)
    for args in ((), ("--day", "2015-06-30")):
        again = _tape("replay", str(tmp_path / "journals" / "breakout"), *args, path=tmp_path)
        assert again.returncode == 0 and "replay matched" in again.stdout, again.stdout + again.stderr


MISBEHAVING = '''
import numpy as np


class Misbehaving:
    """Decides once, at step 5, returning what ``kind`` names."""

    def __init__(self, *, kind: str, strategy_id: str = "misbehaving"):
        self.kind, self.strategy_id = kind, strategy_id

    def schedule(self, panel):
        if self.kind == "never":  # an indicator's warm-up longer than the data
            return np.array([], dtype=np.int64)
        return np.array([5], dtype=np.int64)

    def decide(self, view):
        names = len(view.panel.instruments)
        if self.kind == "raises":
            return {"a": 1}["b"]
        if self.kind == "huge":
            return np.full(names, 1e30)
        if self.kind == "strings":
            return np.array(["a"] * names)
        return np.full(names, 0.1)

    def limit_prices(self, view):
        close = view.history("last_close", 1)[0]  # NumPy integers: raw prices as they are
        first = view.panel.instruments[0].instrument_id
        if self.kind == "float_limit":
            return {first: float(close[0])}
        if self.kind == "limit_raises":
            return {first: int(close[0]) // 0}
        return {first: close[0] * 101 // 100}
'''


def misbehaving_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, *, run_id: str) -> Path:
    """A backtest TOML trading ``Misbehaving(kind)`` from a module written in ``tmp_path``."""
    (tmp_path / "user_misbehaving.py").write_text(textwrap.dedent(MISBEHAVING))
    monkeypatch.syspath_prepend(str(tmp_path))
    dataset = make_dataset(tmp_path / "data", symbols=3, bars=20)
    config = tmp_path / "run.toml"
    config.write_text(
        f'run_id = "{run_id}"\ndataset = "{dataset}"\njournal = "{tmp_path / "j"}"\n'
        f'[strategy]\nentry = "user_misbehaving:Misbehaving"\nparams = {{ kind = "{kind}" }}\n'
    )
    return config


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("huge", "misbehaving at step 5: SYN0001: a weight target of 1e+30 is a weight of 1e+30 times"),
        ("strings", "misbehaving at step 5: weight targets must be 3 numbers in the universe's column order"),
        ("float_limit", "misbehaving at step 5: limit_prices must map instrument ids to raw integer prices"),
        ("raises", "misbehaving at step 5: decide raised KeyError: 'b'"),
        ("limit_raises", "misbehaving at step 5: limit_prices raised ZeroDivisionError: integer division"),
    ],
)
def test_what_a_strategy_returns_that_cannot_be_used_is_its_error_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    message: str,
) -> None:
    """These were 'internal error: OverflowError / ValueError / TypeError ... (a bug: please
    report it)', blaming Tape for the strategy's output, with exit 70."""
    from cli.main import main

    config = misbehaving_config(tmp_path, monkeypatch, kind, run_id="bad")
    assert main(["backtest", str(config)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert message in out, out
    assert "internal error" not in out


def test_a_strategy_that_raises_leaves_an_unfinished_run_that_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The journal ends at the step before, as docs/strategy_sdk.md says: sound, an unfinished
    run that replays (matched, exit 3) and that a new run on the path refuses. A refusal before
    the first group commit removed the whole journal (its records were appended but not yet
    committed: taken for a run refused before its first record), and a replay of one that was
    kept stopped on the strategy's error again (exit 2) instead of saying it matched."""
    from cli.main import main

    config = misbehaving_config(tmp_path, monkeypatch, "raises", run_id="bad")
    assert main(["backtest", str(config)]) == 2
    capsys.readouterr()
    with open_journal(tmp_path / "j") as journal:
        events = [event for _, event in journal.events()]
    assert len(events) > 2 and sum(isinstance(e, DayClosed) for e in events) == 5  # steps 0..4
    assert main(["verify", str(tmp_path / "j")]) == 3
    assert main(["replay", str(tmp_path / "j")]) == 3
    out = " ".join(capsys.readouterr().out.split())
    assert "replay matched an unfinished run" in out, out
    assert "misbehaving at step 5: decide raised KeyError" in out, out
    assert main(["backtest", str(config)]) == 2
    assert "never finished" in " ".join(capsys.readouterr().out.split())


def test_a_strategy_that_now_refuses_where_the_journal_goes_on_is_a_divergence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its code changed since the run: the replay says where it diverges and why (exit 1),
    as for any other change, not the strategy's error as if the journal were at fault."""
    from cli.main import main

    config = misbehaving_config(tmp_path, monkeypatch, "fine", run_id="ok")
    assert main(["backtest", str(config)]) == 0
    import user_misbehaving  # type: ignore[import-not-found]

    monkeypatch.setattr(user_misbehaving.Misbehaving, "decide", lambda self, view: 1 / 0)
    capsys.readouterr()
    assert main(["replay", str(tmp_path / "j")]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "replay diverged at seq" in out, out
    assert "the strategy refused where the journal goes on: misbehaving at step 5: decide raised" in out


def test_a_strategy_refused_in_a_sweep_names_the_run_and_its_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``misbehaving at step 5: ...`` alone did not say which of the sweep's runs refused."""
    from cli.main import main

    config = misbehaving_config(tmp_path, monkeypatch, "fine", run_id="sw")
    config.write_text(
        config.read_text() + '[sweep]\ngrid = { "strategy.params.kind" = ["fine", "raises"] }\nworkers = 1\n'
    )
    assert main(["sweep", str(config)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "sw-0001 (kind=raises): misbehaving at step 5: decide raised KeyError" in out, out


def test_a_strategy_refused_in_a_walk_forward_names_the_run_and_its_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    config = misbehaving_config(tmp_path, monkeypatch, "fine", run_id="wf")
    config.write_text(
        config.read_text() + "[walkforward]\ntrain_days = 8\ntest_days = 4\n"
        'grid = { "strategy.params.kind" = ["fine", "raises"] }\n'
    )
    assert main(["walkforward", str(config), "--workers", "1"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "wf-f00-is-0001 (kind=raises): misbehaving at step 5: decide raised KeyError" in out, out


def test_a_strategy_that_never_decides_is_noticed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A schedule with no step (an indicator whose warm-up is longer than the data) ran a whole
    backtest that never traded without a word."""
    from cli.main import main

    config = misbehaving_config(tmp_path, monkeypatch, "never", run_id="idle")
    assert main(["backtest", str(config)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "notice: idle: strategy misbehaving's schedule has no step" in err, err


def test_tape_traceback_shows_where_the_strategy_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one line names the exception; TAPE_TRACEBACK=1 gives the strategy's own traceback."""
    from cli.main import main
    from kernel.strategy import StrategyError

    monkeypatch.setenv("TAPE_TRACEBACK", "1")
    config = misbehaving_config(tmp_path, monkeypatch, "raises", run_id="bad")
    with pytest.raises(StrategyError) as raised:
        main(["backtest", str(config)])
    cause = raised.value.__cause__
    assert isinstance(cause, KeyError) and cause.__traceback__ is not None
    frames = traceback.extract_tb(cause.__traceback__)
    assert frames[-1].filename.endswith("user_misbehaving.py") and frames[-1].name == "decide"


def test_a_numpy_integer_limit_price_is_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``close[0] * 101 // 100`` of ``view.history`` is a NumPy integer, refused before."""
    from cli.main import main

    config = misbehaving_config(tmp_path, monkeypatch, "fine", run_id="ok")
    assert main(["backtest", str(config)]) == 0
    with open_journal(tmp_path / "j") as journal:
        submitted = [e for _, e in journal.events() if isinstance(e, OrderSubmitted)]
    assert [e.limit_px_raw > 0 for e in submitted].count(True) == 1


def test_an_error_naming_an_entry_prints_it_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``strategy no_such_module:X: cannot import`` was printed as ``no_such_module❌ cannot
    import``: the console read ``:X:`` as an emoji code."""
    from cli.main import main

    config = _config_file(tmp_path, '[strategy]\nentry = "no_such_module:X"\n')
    assert main(["backtest", str(config)]) == 2
    out = capsys.readouterr().out
    assert "strategy no_such_module:X: cannot import no_such_module" in " ".join(out.split())
    assert "❌" not in out
