"""What the cockpit is given by its composition root (``cli/cockpit_cmd.py``).

The cockpit reads the journal itself (``kernel``) but never imports the simulator's folds
(``sim``) or the lake: the run's report summary, its execution quality and the marks of the
positions are built by the caller from the same folds ``tape report`` uses and handed in as
callables. Each is called in a worker thread with a read-only journal the cockpit opened for
it, never on the UI thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from domain.events import DatasetReferenced, RunStarted
from domain.execution.posttrade_fold import ExecutionRow, ExecutionTotals
from kernel.journal import Journal
from kernel.setup import RunSetup
from projections.alerts import Alert, AlertOperation, Silence

__all__ = [
    "COMMANDS_DISABLED_REASON",
    "AlertDesk",
    "AlertsView",
    "CockpitSources",
    "CommandSender",
    "ExecutionLike",
    "Marks",
    "ReplayBuild",
    "SummaryLike",
]

COMMANDS_DISABLED_REASON = (
    "Operator commands go to a running session (tape paper): it journals each as it arrives and "
    "applies it at its next step. No session is writing this journal now (a backtest's kernel has "
    "stopped; a paper session that ended or died reads nothing), so the buttons are off. Backtests "
    "schedule halt / flatten / rearm / pause / resume in the config ([[operator_commands]]); the "
    "journaled commands are listed below. Alerts are acknowledged on the command centre (a) when the "
    "cockpit was opened with --alerts RULES, as tape alerts ack does."
)
COMMANDS_LIVE = (
    "A session is writing this journal: halt (no new risk), flatten (close the book) and rearm go "
    "to its kill switch; pause / resume stop and restart the decisions of the strategy named "
    "above. The session journals each command when it reads it and applies it at its next step. "
    "Alerts are acknowledged on the command centre (a) when the cockpit was opened with --alerts "
    "RULES, as tape alerts ack does."
)


class CommandSender(Protocol):
    """Sends operator commands to the session writing the journal (built by cli)."""

    def running(self) -> bool: ...

    def send(self, command: str, note: str, strategy: str = "") -> str: ...

    def refusal(self, command: str, strategy: str = "") -> str | None:
        """Why ``send`` would refuse ``command`` (a pause / resume naming no strategy of the
        session's book), or None: asked before the operator is asked to confirm."""
        ...


class AlertDesk(Protocol):
    """The alert state ``tape alerts follow`` keeps for this journal (built by cli from a rules
    file). Both are called in worker threads; errors are ``ValueError`` with the reason."""

    @property
    def operator(self) -> str: ...  # who an acknowledgement is recorded as

    @property
    def where(self) -> str: ...  # the rules file, for the screen

    def firing(self) -> list[Alert]: ...

    def acknowledge(self, alert_id: int) -> Alert: ...  # exactly what ``tape alerts ack`` does

    def operations(self) -> tuple[list[tuple[int, AlertOperation]], list[Silence]]:
        """The alerts journal's acknowledgements and silences as (seq, event), and the silences
        in force now (folded from it)."""
        ...


@dataclass(frozen=True)
class AlertsView:
    """One read of the alert desk: the firing alerts, the journaled operations, the silences."""

    firing: list[Alert]
    operations: list[tuple[int, AlertOperation]]
    silences: list[Silence]


class SummaryLike(Protocol):
    """The run's report (``sim.metrics.RunReport``): formatted rows and whether it finished."""

    @property
    def finished(self) -> bool: ...

    def rows(self) -> list[tuple[str, str]]: ...


class ExecutionLike(Protocol):
    """Execution quality (``sim.execution_report.ExecutionReport``): per parent order,
    per strategy, per day and in total (``domain.execution.posttrade_fold`` rows)."""

    @property
    def rows(self) -> list[ExecutionRow]: ...

    @property
    def by_strategy(self) -> dict[str, ExecutionTotals]: ...

    @property
    def by_day(self) -> dict[int, ExecutionTotals]: ...

    @property
    def total(self) -> ExecutionTotals: ...


ReplayBuild = Callable[[RunStarted, DatasetReferenced], RunSetup]


@dataclass(frozen=True)
class Marks:
    """The prices the kernel values its book at (built by cli): each step's last closes (a
    queued run's live rows from its journaled bars) or, for a perpetual, the venue's mark in
    effect at the step (journaled ``market.mark_price_received.v1``)."""

    at_step: Callable[[int], dict[int, int]]  # panel step -> instrument id -> price (raw)
    step_at: Callable[[int], int]  # event time (UTC ns) -> the panel step it belongs to


@dataclass(frozen=True)
class CockpitSources:
    """The journal and the folds the composition root built for it (each may be absent: the
    screen then says what is missing)."""

    journal: Path
    summary: Callable[[Journal], SummaryLike] | None = None
    # one per currency the orders traded in, sorted (``sim.execution_report.execution_reports``)
    execution: Callable[[Journal], Sequence[ExecutionLike]] | None = None
    marks: Callable[[Journal], Marks] | None = None  # loads the data set once, in a worker
    replay_build: ReplayBuild | None = None
    health: Callable[[], list[str]] | None = None  # data health lines (the lake's, via cli)
    replay_day: int | None = None  # open on the replay screen at this day (YYYYMMDD)
    commands: CommandSender | None = None  # operator commands to a running session
    alerts: AlertDesk | None = None  # the firing alerts, acknowledged with ``a``
    follow: bool = True  # poll the journal's length and fold what was appended
    poll_interval_s: float = 0.5
