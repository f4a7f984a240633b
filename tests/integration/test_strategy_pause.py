"""Pausing and resuming one strategy of a book: ``[[operator_commands]]`` with ``pause`` /
``resume`` and ``strategy``. The paused strategy takes no decisions between the two, the other
goes on; the commands are journaled (``strategy.commanded.v1``); the run replays whole and from
any day, the paused state folded from the journal; configurations without them journal the
same bytes as before; a command naming no strategy of the book is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.wiring import make_strategies, replay_builder
from domain.events import StrategyCommanded, TargetsDecided
from kernel.loop import KernelError
from kernel.replay import replay
from kernel.store import open_journal
from sim.backtest import BacktestConfig, OperatorCommandConfig, StrategyConfig, run_backtest
from tests.factories import make_dataset

DAY_NS = 86_400 * 10**9


def _config(data: Path, journal: Path, commands: list[OperatorCommandConfig]) -> BacktestConfig:
    return BacktestConfig(
        run_id="pause",
        dataset=str(data),
        journal=str(journal),
        strategies=[
            StrategyConfig(
                name="sma_crossover", params={"fast": 3, "slow": 9, "weight": 0.9, "strategy_id": "trend"},
                budget="0.5",
            ),
            StrategyConfig(
                name="sma_crossover", params={"fast": 5, "slow": 20, "weight": 0.9, "strategy_id": "slow"},
                budget="0.5",
            ),
        ],
        operator_commands=commands,
    )  # fmt: skip


def test_a_paused_strategy_decides_nothing_until_resumed(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", seed=4, symbols=3, bars=300)
    commands = [
        OperatorCommandConfig(at="2020-04-01T00:00:00Z", command="pause", strategy="trend", operator="ana"),
        OperatorCommandConfig(at="2020-07-01T00:00:00Z", command="resume", strategy="trend", operator="ana"),
    ]
    config = _config(data, tmp_path / "j", commands)
    run_backtest(config, make_strategies(config))
    with open_journal(tmp_path / "j") as journal:
        events = [event for _, event in journal.events()]
        pause, resume = [e for e in events if isinstance(e, StrategyCommanded)]
        assert (pause.command, pause.strategy_id, resume.command) == ("pause", "trend", "resume")
        decided = [(e.strategy_id, e.ts_ns) for e in events if isinstance(e, TargetsDecided)]
        trend = [ts for sid, ts in decided if sid == "trend"]
        slow = [ts for sid, ts in decided if sid == "slow"]
        assert not [ts for ts in trend if pause.ts_ns <= ts < resume.ts_ns]
        assert [ts for ts in trend if ts < pause.ts_ns] and [ts for ts in trend if ts >= resume.ts_ns]
        assert [ts for ts in slow if pause.ts_ns <= ts < resume.ts_ns]  # the other goes on
        assert replay(journal, replay_builder).ok
        for day_ns in (pause.ts_ns + 10 * DAY_NS, resume.ts_ns + 5 * DAY_NS):  # paused, resumed
            day = int(_day(day_ns))
            outcome = replay(journal, replay_builder, day=day)
            assert outcome.ok, (day, outcome.divergence)
    # Without the pause the journal differs exactly from the pause on: the test can fail.
    plain = _config(data, tmp_path / "plain", [])
    run_backtest(plain, make_strategies(plain))
    with open_journal(tmp_path / "plain") as journal:
        unpaused = [
            e.ts_ns for _, e in journal.events() if isinstance(e, TargetsDecided) and e.strategy_id == "trend"
        ]
    assert [ts for ts in unpaused if pause.ts_ns <= ts < resume.ts_ns]


def _day(ts_ns: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp((ts_ns - 1) / 1e9, UTC).strftime("%Y%m%d")


def test_commands_are_checked(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", seed=4, symbols=3, bars=120)
    with pytest.raises(ValueError, match="names a strategy"):
        OperatorCommandConfig(at="2020-02-01T00:00:00Z", command="pause")
    with pytest.raises(ValueError, match="takes no strategy"):
        OperatorCommandConfig(at="2020-02-01T00:00:00Z", command="halt", strategy="trend")
    unknown = [OperatorCommandConfig(at="2020-02-01T00:00:00Z", command="pause", strategy="nobody")]
    config = _config(data, tmp_path / "j", unknown)
    with pytest.raises(KernelError, match="'nobody', not one of this book's"):
        run_backtest(config, make_strategies(config))


def test_a_kill_switch_command_journals_the_config_as_before(tmp_path: Path) -> None:
    halt = OperatorCommandConfig(at="2020-02-01T00:00:00Z", command="halt", operator="ana")
    config = _config(tmp_path / "data", tmp_path / "j", [halt])
    journaled = json.loads(config.canonical_json())["operator_commands"]
    assert journaled == [{"at": "2020-02-01T00:00:00Z", "command": "halt", "note": "", "operator": "ana"}]
    assert BacktestConfig.from_json(config.canonical_json()).operator_commands == [halt]
