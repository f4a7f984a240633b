"""``tape cockpit JOURNAL``: the Textual cockpit, given the same folds ``tape report`` uses.

The composition root of the cockpit: ``tui`` may not import ``sim`` or ``lake``, so the
report summary (``sim.metrics``), the execution quality (``sim.execution_report``), the
positions' marks (the run's last closes from its data set, ``lake``, and for a queued run its
journaled bars and mark prices) and the replay builder are built here and handed in as
callables that the cockpit calls in worker threads.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.markup import escape

from cli.alerts_cmd import (
    acknowledge_alert,
    alert_operations,
    firing_alerts,
    load_alerts_config,
    poll_seconds,
)
from cli.ingest import add_holidays_option, holidays_option, tick_health_line
from cli.logs import Redactor
from cli.progress import console, plural
from cli.wiring import replay_builder
from domain.events import DatasetReferenced, RunStarted
from domain.markets import CalendarNotCovered, HolidayYears, holidays_hint
from kernel.journal import Journal, JournalError
from kernel.marks import MarkHistory
from kernel.operator_inbox import running_session, send_command, strategy_refusal
from kernel.replay import journaled_rows, queued_run
from kernel.store import open_journal
from lake.health import dataset_health
from lake.holidays import HolidayFileError
from lake.partitioned import Lake
from lake.store import load_panel
from lake.tick_health import tick_health
from projections.alerts import Alert, AlertOperation, Silence
from sim.backtest import BacktestConfig, run_panel
from sim.execution_report import execution_reports
from sim.metrics import report_from_journal
from tui import CockpitApp, CockpitSources
from tui.sources import Marks

__all__ = [
    "COCKPIT_HOLIDAYS",
    "AlertDeskOf",
    "add_cockpit_parser",
    "cmd_cockpit",
    "cockpit_sources",
    "lake_health_lines",
]


def _marks(journal: Journal) -> Marks:
    """The prices the kernel valued its book at, by step, and the step of an event time: the
    run's last closes -- a backtest's from its data set; a queued run's (``tape paper``,
    ``tape live``: the data set holds only the history) with its live rows filled from the
    journaled bars and clock steps, as a replay fills them -- and, for a perpetual, the venue's
    mark in effect at the step where one was journaled (``kernel.marks``)."""
    run = journal.record(0).event()
    ref = journal.record(1).event()
    if not isinstance(run, RunStarted) or not isinstance(ref, DatasetReferenced):
        raise JournalError("journal does not start with run.started and dataset.referenced")
    if queued_run(journal):
        config = BacktestConfig.from_json(run.config_json)
        panel, start_step = run_panel(config, expected_hash=ref.content_hash)
        panel = panel.emptied(start_step)
        arrived, marks = journaled_rows(journal, panel, start_step)
    else:
        panel, _ = load_panel(Path(ref.uri), expected_hash=ref.content_hash)
        arrived, marks = panel.steps, MarkHistory()  # a backtest's journal holds no mark
    ids = [inst.instrument_id for inst in panel.instruments]

    def at_step(step: int) -> dict[int, int]:
        """The prices at ``step``; past the rows read, the newest row's closes (a session went
        on since: what it journaled after is not read again)."""
        step = min(max(step, 0), max(arrived, 1) - 1)
        row = panel.last_close[step].tolist()
        prices = dict(zip(ids, (int(px) for px in row), strict=True))
        prices.update(marks.at(step))
        return prices

    def step_at(ts_ns: int) -> int:
        """The last step whose time is at or before ``ts_ns`` (the kernel stamps a step's
        events with its time)."""
        return max(int(np.searchsorted(panel.ts_ns, ts_ns, side="right")) - 1, 0)

    return Marks(at_step, step_at)


COCKPIT_HOLIDAYS = holidays_hint("tape cockpit JOURNAL --lake LAKE --holidays FILE")
"""What the data tab says to do when the lake's bars run past a calendar's coverage (the
cockpit's own option, as ``tape health``'s refusal names ``tape health``'s)."""


def lake_health_lines(lake_root: Path, holidays: HolidayYears | None = None) -> list[str]:
    """``tape health``'s numbers, one line per data set of the lake: bars, then trades and
    quotes (``cli.ingest.tick_health_line``), checked on XSHG extended by ``holidays`` (``tape
    cockpit --holidays``, read as ``tape health --holidays`` reads it). Bars past a calendar's
    coverage give ``tape health``'s refusal as the one line, naming the cockpit's option."""
    if not (lake_root / "lake.json").exists():
        return [f"{lake_root} is not a lake (no lake.json)"]
    lines = []
    lake = Lake(lake_root)
    try:
        health = dataset_health(lake, holidays=holidays)
        ticks = tick_health(lake, holidays=holidays)
    except CalendarNotCovered as error:  # its hint named tape export's option
        return [f"data health not shown: {error.pointing(COCKPIT_HOLIDAYS)}"]
    for item in health:
        reasons = ", ".join(f"{reason} {count}" for reason, count in item.quarantined.items()) or "none"
        coverage = f"{item.coverage:.2%}" if item.gaps.bars_expected else "-"
        lines.append(
            f"{item.dataset}: {plural(item.instruments, 'instrument')}, {plural(item.rows, 'row')}, "
            f"coverage {coverage}, "
            f"{item.gaps.suspension_sessions:,} suspension sessions, {item.gaps.missing_bars:,} missing "
            f"bars, {item.gaps.missing_end_bars:,} missing at the end; quarantined: {reasons}"
        )
    lines += [tick_health_line(item) for item in ticks]
    return lines or [f"{lake_root}: no data sets"]


@dataclass(frozen=True)
class SessionCommands:
    """The cockpit's operator commands to the session writing ``journal`` (its inbox,
    ``kernel.operator_inbox``), sent as ``operator``."""

    journal: Path
    operator: str

    def running(self) -> bool:
        return running_session(self.journal) is not None

    def send(self, command: str, note: str, strategy: str = "") -> str:
        if not self.running():
            return f"{command} not sent: no session is writing {self.journal} now"
        path = send_command(self.journal, command, self.operator, note, strategy)
        return f"{command} sent to {path.name} as {self.operator}; the session applies it at its next step"

    def refusal(self, command: str, strategy: str = "") -> str | None:
        return strategy_refusal(self.journal, strategy) if strategy else None


@dataclass(frozen=True)
class AlertDeskOf:
    """The cockpit's view of the alert state a rules file names: the firing alerts of
    ``journal``, acknowledging one exactly as ``tape alerts ack`` does
    (``cli.alerts_cmd.acknowledge_alert``, recorded as ``operator``), and the acknowledgements
    and silences its alerts journal holds (``cli.alerts_cmd.alert_operations``)."""

    rules: Path
    journal: Path
    operator: str

    @property
    def where(self) -> str:
        return str(self.rules)

    def firing(self) -> list[Alert]:
        return firing_alerts(self.rules, self.journal)

    def acknowledge(self, alert_id: int) -> Alert:
        return acknowledge_alert(self.rules, alert_id, self.operator)

    def operations(self) -> tuple[list[tuple[int, AlertOperation]], list[Silence]]:
        return alert_operations(self.rules, self.journal)


def cockpit_sources(
    journal: Path,
    *,
    follow: bool = True,
    poll_interval_s: float = 0.5,
    lake: Path | None = None,
    replay_day: int | None = None,
    alerts: Path | None = None,
    holidays: HolidayYears | None = None,
) -> CockpitSources:
    return CockpitSources(
        journal=journal,
        summary=report_from_journal,
        execution=execution_reports,
        marks=_marks,
        replay_build=replay_builder,
        health=(lambda: lake_health_lines(lake, holidays)) if lake is not None else None,
        replay_day=replay_day,
        commands=SessionCommands(journal, os.environ.get("USER") or "cockpit"),
        alerts=AlertDeskOf(alerts, journal, getpass.getuser()) if alerts is not None else None,
        follow=follow,
        poll_interval_s=poll_interval_s,
    )


def cmd_cockpit(args: argparse.Namespace) -> int:
    # 0 made the poll timer divide by zero, a negative one spun the UI thread (not even SIGTERM
    # got through): refused here, as tape alerts follow refuses its --poll-s (exit 2)
    poll = poll_seconds(args.poll, "--poll")
    path = Path(args.journal)
    with open_journal(path):  # a missing or damaged journal is named before the screen opens
        pass
    lake = Path(args.lake) if args.lake else None
    if args.holidays and lake is None:
        return _refused("--holidays is for the data tab's lake health: give --lake LAKE as well")
    try:
        holidays = holidays_option(args)  # a file that cannot be used is named now, as tape health does
    except HolidayFileError as error:
        return _refused(str(error))
    alerts = Path(args.alerts) if args.alerts else None
    if alerts is not None:
        load_alerts_config(alerts, Redactor(), sending=False)  # a rules file that cannot be used is named now
    sources = cockpit_sources(
        path,
        follow=not args.no_follow,
        poll_interval_s=poll,
        lake=lake,
        replay_day=args.day,
        alerts=alerts,
        holidays=holidays,
    )
    CockpitApp(sources).run()
    return 0


def _refused(message: str) -> int:
    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    return 2


def session_day(text: str) -> int:
    """A ``--day`` option (argparse ``type``): YYYYMMDD or YYYY-MM-DD, a real calendar date, as
    the journal's YYYYMMDD integer; anything else is refused by argparse (exit 2)."""
    digits = text.replace("-", "") if text.count("-") in (0, 2) else ""
    if len(digits) != 8 or not digits.isascii() or not digits.isdigit():
        raise argparse.ArgumentTypeError(f"must be YYYY-MM-DD (or YYYYMMDD), got {text!r}")
    try:
        datetime.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r}") from None
    return int(digits)


def add_cockpit_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cockpit = verbs.add_parser("cockpit", help="the terminal cockpit on a journal (finished or growing)")
    cockpit.add_argument("journal")
    cockpit.add_argument("--no-follow", action="store_true", help="do not poll the journal for new records")
    cockpit.add_argument(
        "--poll", type=float, default=0.5, help="seconds between polls, 0.01 to 3600 (default 0.5)"
    )
    cockpit.add_argument("--lake", help="the lake the data set came from: its data health on the data tab")
    add_holidays_option(cockpit, "--lake's bars and trades are checked on the extended calendar")
    cockpit.add_argument(
        "--alerts", help="the alerts TOML of tape alerts follow: its firing alerts, acknowledged with a"
    )
    cockpit.add_argument(
        "--day",
        type=session_day,
        help="open on the replay screen at this session day (YYYYMMDD or YYYY-MM-DD): step through it",
    )
