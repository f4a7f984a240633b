"""``tape paper CONFIG``: the configured strategies on a venue's live bars, against the simulated
venue (the same matching, costs and market rules as a backtest), on the clock.

The run's data set is the history the strategies warm up on; ``[paper]`` names the exchange and
the live steps (``start`` .. ``end`` on the data set's calendar and frequency). Bars come through
ccxt's websocket (``venues.ccxt_venue``), are gathered into steps (``venues.bar_feed``), stamped
with their arrival time and journaled before the kernel applies them (``kernel.stream``), so
``tape replay JOURNAL`` (and ``--day``) re-derives the session from the journal alone.

``--local-exchange MARKET`` starts a loopback Binance (``venues.local_exchange``) that plays the
bars of the data set MARKET at ``--speed`` bars a second: paper trading with no account and no
network, on the venue's clock (the close of the last bar it played).

With ``[venue] kind = "paper"`` the orders go to the paper broker at the edge
(``venues.paper_broker``) instead of the bar simulator in the kernel: they reach it after the
``[paper]`` latency and fill at the venue's quoted bid / ask (``paper.quotes``: watched,
stamped and journaled as ``QuoteReceived`` inputs), else on the bars; its answers come back as
a live venue's do, journaled as inputs, so the session replays from its journal alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import getpass
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol

import msgspec
import numpy as np

from cli.arguments import output_file
from cli.exits import EXIT_OK
from cli.progress import console, one_stdout, plural, progress_bar, results_on_stderr, write_output
from cli.report_cmd import print_report
from cli.wiring import ConfigError, journal_override, load_config, new_run_strategies, replay_builder
from domain.events import (
    BarsReceived,
    CommandReceived,
    FundingReceived,
    MarkPriceReceived,
    QuoteReceived,
    RunStarted,
    VenueConnection,
    VenueHeartbeat,
)
from domain.instruments import Instrument
from domain.orders import OrderStatus
from domain.riskrules import KillState
from kernel.journal import Journal, JournalError
from kernel.loop import Kernel, KernelError
from kernel.operator_inbox import (
    COMMANDS,
    CommandInbox,
    SessionClaim,
    SessionRunning,
    inbox_path,
    running_session,
    send_command,
    session_strategies,
)
from kernel.outbox import OutboxVenue
from kernel.replay import resume
from kernel.run_status import run_status
from kernel.schedules import STRATEGY_COMMANDS
from kernel.setup import RunSetup
from kernel.store import open_journal
from kernel.stream import QueueSource
from lake.sessions import frequency_ns
from lake.store import DatasetRef, dataset_ref, read_manifest
from sim.backtest import BacktestConfig, LiveConfig, build_setup, journal_inputs
from venues.bar_feed import StepAssembler
from venues.ccxt_venue import (
    CcxtVenue,
    StreamNote,
    VenueBar,
    VenueDataError,
    VenueError,
    VenueFunding,
    VenueQuote,
    map_error,
)
from venues.health import AnswerWatch, HeartbeatWatch, StaleWatch
from venues.mark_feed import MarkFeed
from venues.paper_broker import BrokerCosts, LatencyModel, PaperBroker

__all__ = [
    "Edge",
    "open_ccxt_venue",
    "open_ib_venue",
    "Player",
    "Started",
    "add_command_parser",
    "add_paper_parser",
    "bar_updates",
    "cmd_command",
    "cmd_paper",
    "market_type",
    "run_session",
    "session_options",
]

EXIT_STOPPED = 130
PLAYED_OUT = "the local exchange played all its bars"  # why a session on --local-exchange stopped


def add_paper_parser(verbs: Any) -> None:
    paper = verbs.add_parser(
        "paper", help="paper-trade the config's strategies on a venue's live bars (simulated fills)"
    )
    paper.add_argument("config", help="a run's TOML with a [paper] table")
    session_options(paper)


def session_options(parser: Any) -> None:
    """The options ``tape paper`` and ``tape live`` share."""
    parser.add_argument("--journal", help="override the config's journal path (a new journal)")
    parser.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                        help="at the session's end: its summary (steps, bars, broker or venue "
                        "counts, journal and chain head) as JSON (alone or '-': stdout; same exit "
                        "status)")  # fmt: skip
    parser.add_argument(
        "--resume", action="store_true", help="carry on the session the journal holds (stopped or crashed)"
    )
    parser.add_argument(
        "--local-exchange",
        metavar="MARKET",
        help="play MARKET (a data set) on a loopback Binance and trade it",
    )
    parser.add_argument(
        "--speed", type=float, default=None, help="--local-exchange: bars played a second (default 20)"
    )
    parser.add_argument(
        "--disconnect-every",
        type=int,
        default=None,
        metavar="N",
        help="--local-exchange: drop its websockets (market data, a live session's order streams) "
        "after every N bars played (a fault drill)",
    )
    parser.add_argument(
        "--local-fee",
        default=None,
        metavar="RATE",
        help="--local-exchange: its maker and taker fee rate (e.g. 0.001; default 0)",
    )
    parser.add_argument(
        "--venue-port",
        type=int,
        default=0,
        metavar="PORT",
        help="trade a local exchange already running on 127.0.0.1:PORT (python -m venues.local_exchange)",
    )
    parser.add_argument(
        "--local-fee-in",
        choices=("received", "quote"),
        default=None,
        help="--local-exchange: fees in the asset received (base on buys, as Binance; the default) "
        "or in the quote",
    )


def add_command_parser(verbs: Any) -> None:
    command = verbs.add_parser(
        "command", help="send an operator command (halt, flatten, rearm, pause, resume) to a running session"
    )
    command.add_argument("journal", help="the journal the session writes")
    command.add_argument("command", choices=COMMANDS)
    command.add_argument(
        "--operator", default=None, help="who sends it (default: the login name, as getpass.getuser finds it)"
    )
    command.add_argument("--note", default="", help="why (journaled with the command)")
    command.add_argument("--strategy", default="", help="pause / resume: the strategy (its strategy_id)")
    command.add_argument("--json", type=output_file, metavar="PATH", nargs="?", const="-",
                         help="write the command sent and the inbox it went to as JSON (alone or '-': "
                         "stdout)")  # fmt: skip


def cmd_command(args: argparse.Namespace) -> int:
    """Append the command to the session's inbox; the session journals and applies it.
    ``--json``: what was sent, and where."""
    on_stdout = one_stdout(json=args.json)
    if running_session(args.journal) is None:
        if not Path(args.journal).exists():
            raise ConfigError(f"no journal at {args.journal}: no session writes it to apply the command")
        raise ConfigError(
            f"{args.journal}: no session is running for this journal; nothing would apply the command"
        )
    operator = _login_name() if args.operator is None else args.operator
    if not operator.strip():
        raise ConfigError("name the operator who sends the command: --operator NAME (no login name found)")
    if args.command in STRATEGY_COMMANDS and not args.strategy:
        trades = session_strategies(args.journal)
        book = f" (the session's book trades {', '.join(trades)})" if trades else ""
        raise ConfigError(f"{args.command} stops or restarts one strategy: name it with --strategy ID{book}")
    if args.command not in STRATEGY_COMMANDS and args.strategy:
        raise ConfigError(f"{args.command} is a command to the whole book: leave out --strategy")
    try:
        path = send_command(args.journal, args.command, operator, args.note, args.strategy)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    with results_on_stderr(on_stdout):
        console.print(f"{args.command} sent to {path} (the session applies it at its next step)")
    if args.json:
        document = {"journal": str(Path(args.journal)), "inbox": str(path), "command": args.command,
                    "operator": operator, "note": args.note, "strategy": args.strategy}  # fmt: skip
        write_output(args.json, json.dumps(document, indent=1) + "\n", option="--json")
    return EXIT_OK


def _login_name() -> str:
    """Who runs ``tape command`` when ``--operator`` is not given: ``$LOGNAME``, ``$USER``, ...
    or the password database's name of the user id (a container or a systemd unit may set no
    ``$USER``); empty only when none names it, which ``send_command`` refuses."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""


@dataclass
class _Session:
    """What one paper session has to say at its end."""

    stopped: str = ""
    venue_errors: int = 0
    bars_received: int = 0
    bars_superseded: int = 0  # by a later update of the same bar before its step went
    bars_waiting: int = 0  # for a step that had not gone when the session ended
    broker: PaperBroker | None = None
    marks: MarkFeed | None = None


def cmd_paper(args: argparse.Namespace) -> int:
    on_stdout = one_stdout(json=args.json)
    config, market, player = prepare_session(args, "paper")
    if config.venue.kind == "live":
        raise ConfigError(f'{args.config}: [venue] kind = "live" trades at the venue: run it with tape live')
    summary: dict[str, Any] = {}
    with results_on_stderr(on_stdout):
        code = asyncio.run(run_session(config, market, player, carry_on=args.resume, summary=summary))
    write_session_json(args.json, summary, code)
    return code


def write_session_json(path: str | None, summary: dict[str, Any], code: int) -> None:
    """``paper --json`` / ``live --json``: the session's summary at its end (none when it
    stopped before it began: that was said in its ``error:`` line)."""
    if path and summary:
        text = json.dumps({**summary, "exit_status": code}, indent=1) + "\n"
        write_output(path, text, option="--json")


def prepare_session(args: argparse.Namespace, verb: str) -> tuple[BacktestConfig, Path | None, Player]:
    """The configuration (``paper.start = "now"`` resolved), the local exchange's market and
    how it plays, checked before anything is opened."""
    config = load_config(Path(args.config), journal_override(args.journal))
    if config.paper is None:
        raise ConfigError(f"{args.config}: no [paper] table (exchange, start, end): tape {verb} needs one")
    if args.local_exchange and config.paper.clock != "venue":
        raise ConfigError(f'{args.config}: --local-exchange plays history: set paper.clock = "venue"')
    _check_local_options(args, verb)
    speed = 20.0 if args.speed is None else args.speed
    if not speed > 0:  # also NaN, which would stall the player
        raise ConfigError(f"--speed must be positive, got {args.speed}")
    _check_exchange(args, config, verb)
    config = _resolved(config)
    disconnect_every = args.disconnect_every or 0
    if disconnect_every < 0:
        raise ConfigError(f"--disconnect-every must be >= 0, got {args.disconnect_every}")
    market = Path(args.local_exchange) if args.local_exchange else None
    try:
        fee = Decimal(args.local_fee or "0")
    except InvalidOperation:
        raise ConfigError(f"--local-fee must be a number, got {args.local_fee!r}") from None
    if not 0 <= fee < 1:
        raise ConfigError(f"--local-fee must be in [0, 1), got {args.local_fee}")
    if args.venue_port and (market is not None or not 0 < args.venue_port < 65536):
        raise ConfigError("--venue-port: a port (1-65535) of a local exchange; not with --local-exchange")
    fee_in = args.local_fee_in or "received"
    return config, market, Player(speed, disconnect_every, fee, fee_in, args.venue_port)


def _check_local_options(args: argparse.Namespace, verb: str) -> None:
    """The options that only say how ``--local-exchange`` plays are refused without it (they
    would be ignored, and the session would trade the configured venue instead); a live session
    resumes against the venue it traded, which a new local exchange is not."""
    given = [
        option
        for option, value in (
            ("--speed", args.speed),
            ("--disconnect-every", args.disconnect_every),
            ("--local-fee", args.local_fee),
            ("--local-fee-in", args.local_fee_in),
        )
        if value is not None
    ]
    if given and not args.local_exchange:
        where = (
            "the exchange on --venue-port plays as python -m venues.local_exchange was told"
            if args.venue_port
            else "without it the session trades the configured paper.exchange"
        )
        raise ConfigError(f"{' and '.join(given)}: only with --local-exchange MARKET ({where})")
    if verb == "live" and args.resume and args.local_exchange:
        raise ConfigError(
            "--local-exchange starts a new exchange, whose account holds none of the session's "
            "orders, fills or balances: a live session resumes against the venue it traded. For a "
            "stop-and-resume drill run the exchange on its own (python -m venues.local_exchange "
            "MARKET --port-file PORT ...) and trade it with --venue-port (docs/local_exchange.md)"
        )


def _check_exchange(args: argparse.Namespace, config: BacktestConfig, verb: str) -> None:
    """``paper.exchange``: a ccxt exchange, or ``ib``: bars from TWS / IB Gateway at the
    ``[live]`` table's ``host``:``port`` as ``client_id`` (``venue = "ib"``), for ``tape live``
    and ``tape paper`` alike (docs/live_ib.md, "tape paper on IB bars")."""
    assert config.paper is not None
    if config.paper.exchange == "ib":  # bars from TWS / IB Gateway, on the session's own connection
        if config.live is None or config.live.venue != "ib":
            raise ConfigError(
                f'{args.config}: paper.exchange = "ib" reads bars from TWS / IB Gateway: name it in a '
                '[live] table (venue = "ib", host, port, client_id)'
            )
        if args.local_exchange or args.venue_port:
            raise ConfigError(
                "--local-exchange / --venue-port play a loopback Binance; an IB session trades the "
                "gateway at live.host:live.port"
            )
    else:
        try:
            import ccxt.pro  # the live extra (also in dev)
        except ImportError:
            raise ConfigError(
                f"{args.config}: tape {verb} reads a venue through ccxt: pip install 'tape[live]'"
            ) from None
        if not hasattr(ccxt.pro, config.paper.exchange):
            raise ConfigError(
                f"{args.config}: paper.exchange: ccxt has no exchange {config.paper.exchange!r}"
            )


def _resolved(config: BacktestConfig) -> BacktestConfig:
    """``paper.start = "now"`` becomes the time read here (journaled with the configuration)."""
    assert config.paper is not None
    if config.paper.start != "now":
        return config
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    try:
        paper = msgspec.structs.replace(config.paper, start=now)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return msgspec.structs.replace(config, paper=paper)


def venue_instruments(config: BacktestConfig, instruments: tuple[Instrument, ...]) -> list[Instrument]:
    """The run's instruments under the venue's symbols: ``paper.symbols``, or the symbol itself
    when it reads ``BASE/QUOTE`` (or the venue is IB, whose contracts are named by symbol), or
    ``SYMBOL/CURRENCY``."""
    assert config.paper is not None
    named = config.paper.symbols
    unknown = sorted(set(named) - {inst.symbol for inst in instruments})
    if unknown:
        raise ConfigError(f"paper.symbols names {unknown}, which the data set does not hold")
    out = []
    for inst in instruments:
        symbol = named.get(inst.symbol) or (
            inst.symbol
            if "/" in inst.symbol or config.paper.exchange == "ib"
            else f"{inst.symbol}/{inst.currency}"
        )
        out.append(msgspec.structs.replace(inst, symbol=symbol))
    return out


PERPETUAL_CLASSES = frozenset({"crypto_perp"})


def market_type(instruments: list[Instrument] | tuple[Instrument, ...]) -> str:
    """``usdm`` when the run trades perpetuals (the data set's ``asset_class`` says so: USD-M
    futures, ccxt ``binanceusdm``), ``spot`` when it trades none; a run with both is refused
    (one ccxt client, one account type)."""
    perps = [inst.symbol for inst in instruments if inst.asset_class in PERPETUAL_CLASSES]
    if not perps:
        return "spot"
    if len(perps) != len(instruments):
        others = sorted(inst.symbol for inst in instruments if inst.asset_class not in PERPETUAL_CLASSES)
        raise ConfigError(
            f"the run trades perpetuals {perps} and other instruments {others}: one session trades "
            "one account type (spot or USD-M); split it into two runs"
        )
    return "usdm"


@dataclass(frozen=True)
class Player:
    """How the local exchange plays its market: bars a second, and a websocket drop every N."""

    speed: float
    disconnect_every: int = 0
    fee: Decimal = Decimal(0)
    fee_in: str = "received"
    port: int = 0  # a local exchange already running on 127.0.0.1 (--venue-port)

    async def play(self, local: Any) -> None:
        played = 0
        while local.engine.remaining_steps:
            await local.step()
            played += 1
            if self.disconnect_every and played % self.disconnect_every == 0:
                await local.disconnect("all")  # market data and, for tape live, the order streams
            await asyncio.sleep(1 / self.speed)


@dataclass(frozen=True)
class Started:
    """A session's kernel and queue source, fresh or resumed from its journal."""

    kernel: Kernel
    source: QueueSource
    note: str


def _fresh(config: BacktestConfig, journal: Journal, setup: RunSetup, ref: DatasetRef) -> Started:
    assert config.paper is not None
    if len(journal):
        verb = "live" if config.venue.kind == "live" else "paper"
        if run_status(journal).finished:
            raise JournalError(
                f"{config.journal} already holds a finished session ({plural(len(journal), 'record')}): "
                "choose a new journal path (--journal)"
            )
        raise JournalError(
            f"{config.journal} already holds {plural(len(journal), 'record')} of a session that did not "
            f"finish: carry it on with tape {verb} --resume, or choose a new journal path (--journal)"
        )
    kernel = Kernel(setup, journal, arrived=setup.start_step)  # its refusals before any record
    journal_inputs(journal, config, ref, setup.panel)
    kernel.begin()
    journal.commit()
    source = QueueSource(kernel, journal=journal, name=_source_name(config))
    return Started(kernel, source, "")


def _source_name(config: BacktestConfig) -> str:
    assert config.paper is not None
    return f"{'live' if config.venue.kind == 'live' else 'paper'}:{config.paper.exchange}"


def _resumed(config: BacktestConfig, journal: Journal) -> tuple[BacktestConfig, Started]:
    """The session the journal holds, re-derived and carried on (``kernel.replay.resume``); its
    journaled configuration must be this one (``paper.start`` as it was resolved then)."""
    assert config.paper is not None
    if not len(journal):
        raise JournalError(f"{config.journal} is empty: there is no session to resume (leave out --resume)")
    first = journal.record(0).event()
    if not isinstance(first, RunStarted):
        raise JournalError(f"{config.journal} does not start with run.started")
    journaled = BacktestConfig.from_json(first.config_json)
    if journaled.paper is None:
        raise JournalError(f"{config.journal} is not a paper session's journal")
    asked = msgspec.structs.replace(
        config, paper=msgspec.structs.replace(config.paper, start=journaled.paper.start)
    )
    if asked.canonical_json() != journaled.canonical_json():
        changed = _differences(json.loads(journaled.canonical_json()), json.loads(asked.canonical_json()))
        raise ConfigError(
            f"{config.journal} was written with another configuration than this one: not resumed "
            f"(journal -> file: {'; '.join(changed[:5])}{'; ...' if len(changed) > 5 else ''}); "
            "put the journaled values back, or start a new session with --journal"
        )
    resumed = resume(journal, replay_builder, source_name=_source_name(config))
    journal.commit()
    note = (
        f"resumed: {plural(resumed.records_compared, 'derived record')} re-derived byte for byte; "
        f"carrying on at step {resumed.source.next_row:,}"
    )
    return journaled, Started(resumed.kernel, resumed.source, note)


def _differences(journaled: Any, asked: Any, path: str = "") -> list[str]:
    """Where two configurations (as JSON) differ: ``key: journaled -> asked``, by dotted path."""
    if isinstance(journaled, dict) and isinstance(asked, dict):
        out: list[str] = []
        for key in sorted(set(journaled) | set(asked)):
            name = f"{path}.{key}" if path else str(key)
            if key not in asked:
                out.append(f"{name}: {json.dumps(journaled[key])} -> not set")
            elif key not in journaled:
                out.append(f"{name}: not set -> {json.dumps(asked[key])}")
            else:
                out += _differences(journaled[key], asked[key], name)
        return out
    if journaled == asked:
        return []
    return [f"{path or 'the configuration'}: {json.dumps(journaled)} -> {json.dumps(asked)}"]


class BarVenue(Protocol):
    """Where a session's bars come from (``CcxtVenue``, ``IbVenue``): the next updates of a
    stream, and the bars since a time over a request (the catch-up after a gap)."""

    async def watch_bars(self, instrument_id: int, timeframe: str) -> list[VenueBar]: ...

    async def fetch_bars(
        self, instrument_id: int, timeframe: str, *, since_ms: int | None = None, limit: int | None = None
    ) -> list[VenueBar]: ...


class QuoteVenue(Protocol):
    """Where the paper broker's quotes come from (``CcxtVenue``: Binance's bookTicker;
    ``IbVenue``: a ``reqMktData`` stream): the next best bid / ask of one instrument."""

    async def watch_quote(self, instrument_id: int) -> VenueQuote: ...


class SessionVenue(BarVenue, QuoteVenue, Protocol):
    """A paper session's venue (``CcxtVenue``, ``IbVenue``): bars, quotes and the heartbeat's
    timed round trip."""

    async def round_trip(self) -> int: ...


class Edge(Protocol):
    """What a live session adds to a paper session (``cli.live_cmd``): the venue (its keys, the
    adapter ``open_venue`` builds), and the bridge that sends the kernel's orders after each
    commit and hands the venue's answers in. ``closed_bars``: the venue hands out final bars
    only (IB), so a step is complete once every name's bar is in."""

    name: str
    closed_bars: bool

    def exchange_config(self) -> dict[str, Any]: ...

    def local_balances(self, quote: str) -> dict[str, str]: ...

    async def open_venue(
        self,
        exchange: str,
        exchange_config: dict[str, Any],
        instruments: list[Instrument],
        stack: Any,
        setup: RunSetup,
        interval_ns: int,
    ) -> Any: ...

    async def start(self, venue: Any, started: Started, journal: Any, clock: Callable[[], int]) -> None: ...

    async def after_commit(self) -> None: ...

    async def before_funding(self) -> None: ...

    def fills_from(self, funding_ms: int) -> None: ...

    async def stop(self) -> None: ...


async def run_session(
    config: BacktestConfig,
    market: Path | None,
    player: Player,
    *,
    carry_on: bool,
    edge: Edge | None = None,
    summary: dict[str, Any] | None = None,
) -> int:
    """A paper session (or, with ``edge``, a live one): fresh or resumed, to its end or a stop;
    ``summary`` (when given) is filled with what its end says (``session_json``)."""
    assert config.paper is not None
    frequency = str(read_manifest(Path(config.dataset))["frequency"])
    if carry_on and not Path(config.journal).exists():
        raise JournalError(f"{config.journal}: no journal there to resume (leave out --resume)")
    fresh = None
    if not carry_on:  # everything checked before a journal is opened
        ref = dataset_ref(Path(config.dataset))
        strategies = new_run_strategies(config)  # checked as tape backtest checks a run
        fresh = build_setup(config, strategies, expected_hash=ref.content_hash, queued=True), ref
    local = None if market is None else _local_markets(market, config, frequency)
    try:  # one session per journal: before it is opened for writing (which repairs its tail)
        claim = SessionClaim(config.journal)
    except SessionRunning as error:
        raise ConfigError(str(error)) from None
    except OSError as error:
        raise ConfigError(f"{config.journal}: cannot mark its session beside it: {error}") from None
    try:
        return await _run_claimed(config, local, player, fresh, frequency, edge, claim, summary)
    finally:
        claim.release()


async def _run_claimed(
    config: BacktestConfig,
    market: LocalMarkets | None,
    player: Player,
    fresh: tuple[RunSetup, DatasetRef] | None,
    frequency: str,
    edge: Edge | None,
    claim: SessionClaim,
    summary: dict[str, Any] | None = None,
) -> int:
    journal = open_journal(config.journal, backend=config.journal_backend, writable=True)
    try:
        if fresh is None:
            config, started = _resumed(config, journal)
        else:
            started = _fresh(config, journal, *fresh)
        kernel, source = started.kernel, started.source
        setup = kernel.setup
        assert config.paper is not None
        # tape command / the cockpit look for it, and for the book's strategies
        claim.mark(os.getpid(), [slot.strategy.strategy_id for slot in setup.strategies])
        instruments = venue_instruments(config, setup.panel.instruments)
        live = setup.panel.steps - setup.start_step
        verb = "paper" if edge is None else f"live ({edge.name})"
        console.print(
            f"{verb} {config.run_id}: {plural(live, 'step')} of {frequency} from {config.paper.start} to "
            f"{config.paper.end}; history {plural(setup.start_step, 'step')}; journal {config.journal}"
        )
        if started.note:
            console.print(started.note)
        try:
            with progress_bar(f"{verb} {config.run_id}", live, complete=False) as update:
                session = await _session(config, frequency, instruments, started, journal, market,
                                         player, lambda: update(source.next_row - setup.start_step),
                                         edge)  # fmt: skip
        finally:
            claim.unmark()
        if source.done:
            kernel.finish()
        journal.commit()
        _print_summary(config, source, session, journal.last_hash.hex(), len(journal), resumed=fresh is None)
        if summary is not None:
            summary.update(session_json(config, source, session, journal.last_hash.hex(), len(journal)))
            summary.update(resumed=fresh is None, step=source.next_row, steps=setup.panel.steps)
    finally:
        journal.close()
    if not source.done:
        again_verb = "tape paper" if edge is None else "tape live"
        again = f"carry the session on with {again_verb} --resume"
        if session.stopped == PLAYED_OUT:  # a resume would start an exchange with nothing to play
            again = (
                f"--local-exchange {market.path if market is not None else ''} has no bar after it, "
                f"so the session cannot go on with it (paper.end {config.paper.end} lies past its last bar)"
            )
        elif edge is not None and market is not None:  # the exchange, and its account, ended with it
            again = (
                "a live session on --local-exchange is not resumed (its exchange ended with it; "
                "--venue-port trades one that outlives the session)"
            )
        console.print(
            f"[yellow]stopped ({session.stopped})[/] at step {source.next_row:,} of {setup.panel.steps:,}: "
            f"what arrived is journaled and replays; {again}"
        )
        return EXIT_STOPPED
    print_report(Path(config.journal))
    return EXIT_OK


async def _session(
    config: BacktestConfig,
    frequency: str,
    instruments: list[Instrument],
    started: Started,
    journal: Any,
    market: LocalMarkets | None,
    player: Player,
    progress: Callable[[], None],
    edge: Edge | None,
) -> _Session:
    """Watch each instrument's bars, hand complete steps to the source, let empty steps pass on
    the clock; until the grid's last step, a signal or the local exchange's end."""
    assert config.paper is not None
    source = started.source
    interval, grace = frequency_ns(frequency), int(config.paper.grace_s * 1e9)
    ids = [inst.instrument_id for inst in instruments]
    closed = market is not None or player.port > 0 or config.paper.exchange == "ib"  # IB: final bars
    closed = closed or (edge is not None and edge.closed_bars)
    grid = source.grid_ts
    assembler = StepAssembler(ids, interval, grace, closed_bars=closed, grid_ns=grid)
    if source.next_row > 0:  # the history's steps (and a resumed session's) went already
        assembler.handed_to = int(grid[source.next_row - 1])
    pump = _Pump(source, journal, assembler, progress, inbox_path(config.journal))
    pump.stop_on_signals()
    pump.watch_health(config, instruments, started.kernel, interval + grace)
    pump.venue_name = config.paper.exchange
    kind = _market_type(config, instruments, local=market is not None or player.port > 0)
    async with contextlib.AsyncExitStack() as stack:
        first = int(grid[min(source.next_row, len(grid) - 1)])  # the next step's bars on
        local, venue = await _open_venues(
            config, market, player, edge, instruments, stack, started, interval, kind, first
        )
        clock = _clock(config.paper.clock, pump.assembler)
        pump.use_broker(config, started, clock, interval)
        if edge is not None:  # reconciled before the first new order; sends after each commit
            await edge.start(venue, started, journal, clock)
            stack.push_async_callback(edge.stop)
            pump.edge = edge
        if kind == "usdm":  # the venue's settled fundings, journaled before the step they fall in
            pump.funding = await _funding_feed(venue, ids, clock, started, journal, edge)
            if config.paper.marks:  # and its marks, which value the positions
                pump.marks = pump.session.marks = _mark_feed(ids, clock, journal)
        if started.note:  # resumed: the bars played while the session was down, over REST, for
            # every name before any stream (one name's batch must not run the clock ahead of another's)
            await pump.catch_up(venue, ids, frequency, assembler.handed_to // 1_000_000)
        watchers = pump.watchers(config, venue, ids, frequency)
        try:
            playing = None
            if local is not None:
                await local.wait_for_kline_subscriptions(len(instruments))
                playing = asyncio.create_task(player.play(local))
            await pump.run(clock, grace, playing)
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
    pump.session.bars_received = pump.assembler.received
    pump.session.bars_superseded = pump.assembler.superseded
    pump.session.bars_waiting = pump.assembler.waiting
    return pump.session


async def _open_venues(
    config: BacktestConfig,
    market: LocalMarkets | None,
    player: Player,
    edge: Edge | None,
    instruments: list[Instrument],
    stack: contextlib.AsyncExitStack[Any],
    started: Started,
    interval: int,
    kind: str,
    first: int,
) -> tuple[Any, Any]:
    """The session's local exchange (``--local-exchange``; None otherwise) and the venue it
    trades and takes bars from, both closed with ``stack``: a live edge's ([live] venue:
    ``cli.live_cmd.open_venue``), an ``IbVenue`` (``paper.exchange = "ib"``) or a ccxt client."""
    assert config.paper is not None
    local = None
    exchange_config: dict[str, Any] = {}
    if market is not None:
        local = await stack.enter_async_context(
            _local_exchange(market, instruments, first, interval, edge, config.currency, player)
        )
        exchange_config = local.ccxt_config(rate_limit_ms=5)
    elif player.port:  # a local exchange running on its own (python -m venues.local_exchange)
        from venues.local_exchange import ccxt_config as local_ccxt_config

        keys = edge.exchange_config() if edge is not None else {"apiKey": "local-api-key", "secret": "-"}
        exchange_config = local_ccxt_config(
            player.port, keys["apiKey"], keys["secret"], rate_limit_ms=5, market_type=kind
        )
    elif edge is not None:
        exchange_config = edge.exchange_config()
    if edge is not None:
        venue = await edge.open_venue(
            config.paper.exchange, exchange_config, instruments, stack, started.kernel.setup, interval
        )
    elif config.paper.exchange == "ib":  # a paper session on IB bars: the connection, no orders
        assert config.live is not None
        venue = await open_ib_venue(config.live, instruments, stack, started.kernel.setup, interval)
    else:
        venue = await open_ccxt_venue(config.paper.exchange, exchange_config, instruments, stack)
    return local, venue


async def _funding_feed(
    venue: CcxtVenue,
    ids: list[int],
    clock: Callable[[], int],
    started: Started,
    journal: Any,
    edge: Edge | None,
) -> FundingFeed:
    """A perpetuals session's funding inputs, from after the history (or the last journaled);
    a live session's fills from the next funding time on wait for it (``Edge.fills_from``)."""
    feed = FundingFeed(venue, list(ids), clock)
    setup = started.kernel.setup
    await feed.start(int(setup.panel.ts_ns[setup.start_step - 1]) // 1_000_000, journal)
    if edge is not None:
        edge.fills_from(feed.next_ms)
    return feed


def _mark_feed(ids: list[int], clock: Callable[[], int], journal: Any) -> MarkFeed:
    """A perpetuals session's mark prices, newer than any its journal holds (a resumed one)."""
    feed = MarkFeed(ids, clock)
    for record in journal.records_of_kinds(frozenset({"market.mark_price_received.v1"}), 2):
        event = record.event()
        assert isinstance(event, MarkPriceReceived)
        feed.resume_after([event])
    return feed


def _market_type(config: BacktestConfig, instruments: list[Instrument], *, local: bool) -> str:
    """The session's account type (``market_type``); a local exchange's perpetuals are Binance
    USD-M, so ``paper.exchange`` must name ccxt's ``binanceusdm``."""
    assert config.paper is not None
    kind = market_type(instruments)
    if config.live is not None and config.live.market != kind:
        raise ConfigError(
            f'live.market = "{config.live.market}", but the data set\'s instruments trade as "{kind}" '
            "(perpetuals: usdm; spot pairs: spot)"
        )
    if kind == "usdm" and local and config.paper.exchange != "binanceusdm":
        raise ConfigError(
            f'paper.exchange = "{config.paper.exchange}": the local exchange trades perpetuals as '
            'Binance USD-M: set paper.exchange = "binanceusdm"'
        )
    return kind


async def open_ib_venue(
    settings: LiveConfig,
    instruments: list[Instrument],
    stack: contextlib.AsyncExitStack[Any],
    setup: RunSetup,
    interval_ns: int,
) -> Any:
    """An ``IbVenue`` on TWS / IB Gateway at ``live.host``:``live.port`` as ``live.client_id``,
    connected (contracts qualified), its bars mapped to the run's grid, closed with ``stack``:
    ``tape live``'s adapter (``cli.live_cmd.open_venue``) and a paper session's bars. ib_async's
    own log lines stay out of the console (the adapter reports what matters as notes the
    session journals)."""
    try:
        import ib_async  # the live extra (also in dev)
    except ImportError:
        raise ConfigError(
            "IB bars and orders ([live] venue = \"ib\") need ib_async: pip install 'tape[live]'"
        ) from None
    from venues.ib_venue import IbVenue

    logging.getLogger("ib_async").addHandler(logging.NullHandler())
    venue = IbVenue(
        ib_async.IB(),
        instruments,
        host=settings.host,
        port=settings.port,
        client_id=settings.client_id,
        account=settings.account,
    )
    venue.bar_grid(setup.panel.ts_ns.tolist(), setup.panel.day.tolist(), interval_ns)
    await venue.connect()
    stack.push_async_callback(venue.close)
    return venue


async def open_ccxt_venue(
    exchange: str, exchange_config: dict[str, Any], instruments: list[Instrument], stack: Any
) -> CcxtVenue:
    """A ccxt.pro client for ``exchange`` (closed with ``stack``) and its markets loaded."""
    import ccxt.pro  # the live extra (also in dev)

    factory = getattr(ccxt.pro, exchange, None)
    if factory is None:
        raise ConfigError(f"paper.exchange: ccxt has no exchange {exchange!r}")
    config = dict(exchange_config)
    sandbox = bool(config.pop("sandbox", False))
    client = factory(config)
    stack.push_async_callback(client.close)
    if sandbox:  # the venue's test network ([live] testnet = true)
        client.set_sandbox_mode(True)
    rng = np.random.default_rng()  # network backoff only: nothing it decides is journaled
    venue = CcxtVenue(client, instruments, jitter=lambda delay: delay * float(rng.uniform(0.5, 1.0)))
    await venue.load_markets()
    return venue


_TAKEN_KEPT = 1_000  # bars remembered per instrument to tell ccxt's repeats (its cache's size)


class _Pump:
    """Bars from the watchers into the assembler; complete steps from it into the source."""

    def __init__(
        self,
        source: QueueSource,
        journal: Any,
        assembler: StepAssembler,
        progress: Callable[[], None],
        inbox: Path,
    ) -> None:
        self.source = source
        self.journal = journal
        self.assembler = assembler
        self.progress = progress
        self.session = _Session()
        self.stop = asyncio.Event()
        self.arrived = asyncio.Event()
        self._newest: dict[int, int] = {}
        self._taken: dict[int, dict[int, VenueBar]] = {}  # instrument -> open ms -> bar (_take)
        self.inbox = CommandInbox(inbox)
        self.edge: Edge | None = None
        self.broker: _Broker | None = None
        self.quotes: list[VenueQuote] = []  # arrived, not yet stamped and journaled
        self.stale: StaleWatch | None = None
        self.answers: AnswerWatch | None = None
        self.beats: HeartbeatWatch | None = None
        self.kernel: Kernel | None = None
        self._sent: dict[str, int] = {}  # order id -> when the edge sent it (unanswered orders)
        self._health_sent: int | None = None  # the time of this watch's last command
        self.venue_name = ""
        # market data's (stream, state, detail), not journaled yet: the watchers' (``market``)
        # and, for a paper session on IB bars, the adapter's notes (``ib-server``, ``socket``, ``ib``)
        self.connection: list[tuple[str, str, str]] = []
        self.heartbeats: list[tuple[bool, int, str]] = []  # (ok, round trip ns, why not), not journaled yet
        self.health_command = "halt"
        self.funding: FundingFeed | None = None
        self.marks: MarkFeed | None = None  # a perpetuals session's mark prices (paper.marks)
        # The next funding time moved (fundings scheduled): the step booking the last of them,
        # until it has run (None: none scheduled, e.g. refused as late).
        self._funding_moved = False
        self._funding_step: int | None = None
        self._rng = np.random.default_rng()  # reconnect jitter only: nothing it decides is journaled

    def _commands(self, now: int) -> None:
        """Operator commands appended to the inbox since the last look, stamped ``now``."""
        for line in self.inbox.read():
            if line.reason:
                self.source.refuse(now, line.reason, line.detail)
                console.print(
                    f"[yellow]operator inbox: refused ({line.reason}): {line.detail}[/]", soft_wrap=True
                )
                continue
            received = CommandReceived(
                ts_ns=now,
                command=line.command,
                operator=line.operator,
                note=line.note,
                strategy_id=line.strategy,
            )
            try:
                step = self.source.command(received)
            except KernelError as error:  # after the last step, or a strategy not in the book
                reason = "BAD_COMMAND" if self._unknown_strategy(line.strategy) else "LATE_COMMAND"
                self.source.refuse(now, reason, str(error))
                console.print(
                    f"[yellow]operator {line.operator}: {line.command} refused ({reason}): {error}[/]",
                    soft_wrap=True,
                )
                continue
            console.print(f"operator {line.operator}: {line.command} (applied at step {step:,})")

    def _unknown_strategy(self, strategy: str) -> bool:
        """A pause / resume naming no strategy of this book."""
        if not strategy or self.kernel is None:
            return False
        return strategy not in {slot.strategy.strategy_id for slot in self.kernel.setup.strategies}

    def stop_on_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stop, sig.name)

    def _stop(self, why: str) -> None:
        if not self.stop.is_set():  # the first reason stands: a second Ctrl-C or a SIGTERM after it
            self.session.stopped = why
        self.stop.set()

    async def watch(self, venue: BarVenue, instrument_id: int, frequency: str) -> None:
        """One instrument's bars from the websocket. After a failure it waits (longer each time),
        watches again and, once the stream answers, fetches over REST the bars it missed (those
        played while no subscription was live), before the stream's own."""
        failures = 0
        while True:
            try:
                bars = await venue.watch_bars(instrument_id, frequency)
                if failures:
                    since = self._newest.get(instrument_id)
                    missed = await venue.fetch_bars(instrument_id, frequency, since_ms=since)
                    self._take(instrument_id, missed)
                    symbol = venue.instruments[instrument_id].symbol
                    self.connection.append(
                        ("market", "reconciled", f"{symbol}: {len(missed)} bars over REST")
                    )
            except Exception as error:
                failures += 1
                self.session.venue_errors += 1
                if failures == 1:  # the episode's first: journaled (connection state)
                    symbol = venue.instruments[instrument_id].symbol
                    self.connection.append(("market", "disconnected", f"{symbol}: {map_error(error)}"))
                console.print(f"[yellow]venue: {map_error(error)}[/]; watching again", soft_wrap=True)
                await asyncio.sleep(
                    min(5.0, 0.05 * 2 ** min(failures, 7)) * float(self._rng.uniform(0.5, 1.0))
                )
                continue
            failures = 0
            self._take(instrument_id, bars)

    def watch_health(
        self, config: BacktestConfig, instruments: list[Instrument], kernel: Kernel, overdue_ns: int
    ) -> None:
        """With ``kill_switch.stale_data_ns_max``: every pass, each name's data age, judged
        against the limit or ``overdue_ns`` (a bar and the grace: a bar may be that late without
        anything being wrong), whichever is longer; with ``latency_ns_max`` and a venue that
        answers later: each unanswered order's wait; with ``paper.heartbeat_s``: each heartbeat's
        round trip against ``latency_ns_max`` and the unanswered ones in a row against
        ``paper.heartbeat_misses`` (``venues.health``). One past its limit goes in as a journaled
        command from ``health``."""
        switch = config.kill_switch
        self.health_command = "flatten" if switch.flatten_on_trip else "halt"
        if switch.stale_data_ns_max:
            names = {inst.instrument_id: inst.symbol for inst in instruments}
            self.stale = StaleWatch(names, max(switch.stale_data_ns_max, overdue_ns))
        if switch.latency_ns_max and isinstance(kernel.setup.venue, OutboxVenue):
            self.answers = AnswerWatch(switch.latency_ns_max)
        if config.paper is not None and config.paper.heartbeat_s:
            self.beats = HeartbeatWatch(switch.latency_ns_max, config.paper.heartbeat_misses)
        self.kernel = kernel

    def _journal_connection(self, now: int) -> None:
        """The market data streams' drops and recoveries since the last pass, as journaled
        inputs (``VenueConnection``, stream ``market``; a live session's order streams journal
        their own)."""
        notes, self.connection = self.connection, []
        for stream, state, detail in notes:
            self.journal.append(
                VenueConnection(ts_ns=now, venue=self.venue_name, stream=stream, state=state, detail=detail)
            )
        beats, self.heartbeats = self.heartbeats, []
        for ok, rtt, detail in beats:
            self.journal.append(
                VenueHeartbeat(ts_ns=now, venue=self.venue_name, ok=ok, rtt_ns=rtt, detail=detail)
            )
            if self.beats is not None:  # journaled first: the command's note reads after it
                self._health_command(now, self.beats.check(ok, rtt, detail))

    def _health(self, now: int) -> None:
        if self.stale is not None:
            self._health_command(now, self.stale.check(now, self.assembler.newest))

    def _answers(self, now: int) -> None:
        """After the pass's steps took the venue's answers: orders still waiting for one."""
        if self.answers is None or self.kernel is None:
            return
        open_orders = self.kernel.state.open_orders
        self._sent = {oid: ts for oid, ts in self._sent.items() if oid in open_orders}
        waiting = {
            oid: self._sent[oid]
            for oid, order in open_orders.items()
            if order.status is OrderStatus.SUBMITTED and oid in self._sent
        }
        self._health_command(now, self.answers.check(now, waiting))

    def _note_sends(self) -> None:
        """The ``sent`` messages the edge just handed in (the kernel takes them at its next
        step): when each order left, for ``_answers``."""
        if self.answers is not None and self.kernel is not None:
            outbox = self.kernel.setup.venue
            assert isinstance(outbox, OutboxVenue)
            for message in outbox.peek():
                if message.kind == "sent":
                    self._sent.setdefault(message.order_id, message.ts_ns)

    def _health_command(self, now: int, note: str | None) -> None:
        """A health finding as a journaled command, unless the kill switch is tripped already or
        this watch's last command has not been re-armed since (it would only be refused)."""
        if note is None:
            return
        kill = self.kernel.state.kill if self.kernel is not None else None
        if kill is not None and kill.state is not KillState.ARMED:
            return
        if self._health_sent is not None and (kill is None or kill.since_ts_ns <= self._health_sent):
            return
        self._health_sent = now
        received = CommandReceived(ts_ns=now, command=self.health_command, operator="health", note=note)
        try:
            step = self.source.command(received)
        except KernelError as error:
            self.source.refuse(now, "LATE_COMMAND", str(error))
            return
        console.print(f"[yellow]health: {note}[/] ({self.health_command} at step {step:,})", soft_wrap=True)

    def use_broker(
        self, config: BacktestConfig, started: Started, clock: Callable[[], int], interval: int
    ) -> None:
        """``[venue] kind = "paper"``: the paper broker at the edge answers the kernel's orders."""
        if config.venue.kind == "paper":
            resumed_at = self.assembler.handed_to  # the last step a resumed session had
            self.broker = _Broker(config, started, self.journal, clock, interval, resumed_at)
            self.session.broker = self.broker.broker

    def watchers(
        self, config: BacktestConfig, venue: SessionVenue, ids: list[int], frequency: str
    ) -> list[asyncio.Task[None]]:
        """The session's watcher tasks: each name's bars; its quotes for the paper broker with
        ``paper.quotes``; the heartbeat with ``paper.heartbeat_s``."""
        assert config.paper is not None
        tasks = [asyncio.create_task(self.watch(venue, iid, frequency)) for iid in ids]
        if self.broker is not None and config.paper.quotes:
            tasks += [asyncio.create_task(self.watch_quotes(venue, iid)) for iid in ids]
        if self.marks is not None:
            assert isinstance(venue, CcxtVenue)
            tasks += [asyncio.create_task(self.watch_marks(venue, iid, self.marks)) for iid in ids]
        if config.paper.heartbeat_s:
            tasks.append(asyncio.create_task(self.heartbeat(venue, config.paper.heartbeat_s)))
        if self.edge is None and config.paper.exchange == "ib":  # no bridge reads the adapter's notes
            tasks.append(asyncio.create_task(self.venue_notes(venue)))
        return tasks

    async def venue_notes(self, venue: Any) -> None:
        """A paper session on IB bars: the adapter's connection notes (IB's 1100 / 1101 / 1102,
        the socket dropped and back, pacing), journaled at the next pass as ``tape live``'s
        bridge journals them, and printed. Order states and fills cannot come (the session
        sends no order to IB); one that does is counted as a venue error and dropped."""
        while True:
            note = await venue.updates.get()
            if not isinstance(note, StreamNote):
                self.session.venue_errors += 1
                continue
            detail = f": {note.detail}" if note.detail else ""
            console.print(f"venue ib ({note.stream}): {note.kind}{detail}", soft_wrap=True, markup=False)
            self.connection.append((note.stream, note.kind, note.detail))
            self.arrived.set()

    async def watch_quotes(self, venue: QuoteVenue, instrument_id: int) -> None:
        """One instrument's best bid / ask from the venue's stream (Binance's websocket, IB's
        ``reqMktData``; the paper broker fills at them)."""
        await self._stream("quotes", lambda: venue.watch_quote(instrument_id), self._quote)

    def _quote(self, quote: VenueQuote) -> None:
        self.quotes.append(quote)  # not a bound ``append``: each pass takes the list and starts a new one

    async def watch_marks(self, venue: CcxtVenue, instrument_id: int, feed: MarkFeed) -> None:
        """One perpetual's mark price from the venue's stream (Binance's ``@markPrice@1s``),
        journaled before the step it falls in runs (``_marks``)."""
        await self._stream("mark prices", lambda: venue.watch_mark_price(instrument_id), feed.take)

    async def _stream(
        self, what: str, watch: Callable[[], Awaitable[Any]], take: Callable[[Any], None]
    ) -> None:
        """Each next message of one stream to ``take``; after a failure it waits longer each
        time and watches again."""
        failures = 0
        while True:
            try:
                message = await watch()
            except Exception as error:
                failures += 1
                self.session.venue_errors += 1
                console.print(f"[yellow]venue {what}: {map_error(error)}[/]; watching again", soft_wrap=True)
                await asyncio.sleep(
                    min(5.0, 0.05 * 2 ** min(failures, 7)) * float(self._rng.uniform(0.5, 1.0))
                )
                continue
            failures = 0
            take(message)
            self.arrived.set()

    async def heartbeat(self, venue: SessionVenue, every_s: float) -> None:
        """Every ``every_s`` seconds of the wall clock: one timed round trip to the venue,
        journaled at the next pass (``VenueHeartbeat``); a failure is journaled with its reason."""
        while True:
            await asyncio.sleep(every_s)
            try:
                rtt = await venue.round_trip()
            except Exception as error:
                self.heartbeats.append((False, 0, str(map_error(error))))
            else:
                self.heartbeats.append((True, rtt, ""))

    async def catch_up(self, venue: BarVenue, ids: list[int], frequency: str, since_ms: int) -> None:
        """The bars each name's venue played from ``since_ms`` on (a resumed session's gap)."""
        for instrument_id in ids:
            self._take(instrument_id, await venue.fetch_bars(instrument_id, frequency, since_ms=since_ms))

    def _take(self, instrument_id: int, bars: list[VenueBar]) -> None:
        """Each bar the venue sent, to the assembler. ccxt hands back the tail of its cache, so a
        bar older than the newest seen is either one taken already, unchanged (ccxt's repeat,
        skipped), or one the venue sent late (out of order): that goes in, to fill its step if
        the step has not gone, else to be quarantined with a reason -- never dropped unseen."""
        taken = self._taken.setdefault(instrument_id, {})
        for bar in bars:
            if bar.open_ms >= self._newest.get(instrument_id, 0):
                self._newest[instrument_id] = bar.open_ms
            elif taken.get(bar.open_ms) == bar:
                continue
            taken[bar.open_ms] = bar
            self.assembler.add(bar)
        while len(taken) > _TAKEN_KEPT:  # as many as ccxt's cache holds, the oldest go first
            del taken[next(iter(taken))]
        self.arrived.set()

    async def run(self, clock: Callable[[], int], grace: int, player: asyncio.Task[None] | None) -> None:
        quiet = 0  # polls with nothing new since the local exchange stopped playing
        while not self.source.done and not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), timeout=0.25)
            quiet = 0 if self.arrived.is_set() else quiet + 1
            self.arrived.clear()
            now = clock()
            self._commands(now)
            self._journal_connection(now)
            self._health(now)
            broker = self.broker
            if broker is not None:  # quotes first: a step's bars come after its quotes
                quotes, self.quotes = self.quotes, []
                broker.quotes(quotes, now)
            for bars in self.assembler.due(now):
                if broker is not None:  # the broker sees them before the kernel's step takes its answers
                    broker.bars(bars)
                await self._fundings(bars.ts_ns, now)
                self._marks(bars.ts_ns, now)
                self.source.push(bars)
                self._funded()
            await self._fundings(now - grace, now)
            self._marks(now - grace, now)
            self.source.pass_time(now - grace)
            self._funded()
            self._answers(now)
            self.journal.commit()
            if broker is not None:  # durable, so now the broker may hear of it
                broker.after_commit()
            if self.edge is not None:  # durable, so now the venue may hear of it
                await self.edge.after_commit()
            self._note_sends()
            self.progress()
            if player is not None and player.done():
                if player.exception() is not None:
                    raise player.exception()  # type: ignore[misc]
                if quiet >= 4:
                    self._stop(PLAYED_OUT)

    async def _fundings(self, up_to_ns: int, now: int) -> None:
        """The fundings settled at or before ``up_to_ns``, journaled and scheduled before the
        steps they fall in run (a perpetuals run); each is booked at the first step at or after
        its time not yet run, which the pump remembers (``_funded``)."""
        if self.funding is None:
            return
        before = self.funding.next_ms
        due = await self.funding.due(up_to_ns)
        if due and self.edge is not None:  # the venue's fills before the funding, in the book first
            await self.edge.before_funding()
        for received in due:
            try:
                step = self.source.funding(received)
            except KernelError as error:
                self.source.refuse(now, "LATE_FUNDING", str(error))
                continue
            self._funding_step = step if self._funding_step is None else max(step, self._funding_step)
        if self.funding.next_ms != before:
            self._funding_moved = True

    def _marks(self, up_to_ns: int, now: int) -> None:
        """The perpetuals' marks due up to ``up_to_ns`` (the newest of each at or before it),
        journaled and scheduled before the steps they fall in run; one the kernel cannot take is
        quarantined beside it (``BAD_MARK``). Marks after the run's last step stay pending."""
        if self.marks is None:
            return
        for received in self.marks.due(min(up_to_ns, int(self.source.grid_ts[-1]))):
            try:
                self.source.mark(received)
            except KernelError as error:
                self.marks.counts.refused += 1
                self.source.refuse(now, "BAD_MARK", str(error))

    def _funded(self) -> None:
        """Once the step booking the scheduled fundings has run (not merely been scheduled: the
        clock's pass may stop short of it), a live session's fills made after them go in, and
        the next funding time is the one fills wait for. Until then reconciliation counts the
        venue's payment as settled ahead of its step, and the book pays funding on the position
        the venue held at the funding time."""
        if not self._funding_moved:
            return
        if self._funding_step is not None and self.source.next_row <= self._funding_step:
            return
        self._funding_moved, self._funding_step = False, None
        if self.edge is not None and self.funding is not None:
            self.edge.fills_from(self.funding.next_ms)


class FundingFeed:
    """A perpetuals session's funding inputs: before a step at or after a funding time runs, the
    settled rate and mark from the venue (``CcxtVenue.fetch_funding``) become a journaled
    ``FundingReceived``, which the kernel books like a backtest's funding row. The earliest
    funding after the last journaled says when to ask: one the venue states settled already (a
    session lagging the venue), else the venue's next funding time (``next_funding_ms``), which
    runs ahead of a lagging session and would skip it; a settlement the venue does not state
    yet is asked again for ``wait_s`` (then the step goes on, and the funding is booked at the
    next step that has not run: counted as ``late``)."""

    def __init__(
        self, venue: CcxtVenue, instrument_ids: list[int], clock: Callable[[], int], *, wait_s: float = 2.0
    ) -> None:
        self.venue = venue
        self.ids = instrument_ids
        self.clock = clock
        self.wait_s = wait_s
        self.received = 0
        self.late = 0
        self._last_ms: dict[int, int] = {}
        self._next_ms: dict[int, int] = {}
        self._waited: dict[int, int] = {}  # the due time already waited for (asked once more a step)

    @property
    def next_ms(self) -> int:
        """The earliest funding time not journaled yet (ms; 0: the venue states none)."""
        return min((ms for ms in self._next_ms.values() if ms), default=0)

    async def start(self, history_end_ms: int, journal: Any) -> None:
        """Where the journal left off (fundings after the history's last step; a resumed
        session: after the last journaled) and the venue's next funding times."""
        for iid in self.ids:
            self._last_ms[iid] = history_end_ms
        for record in journal.records_of_kinds(frozenset({"market.funding_received.v1"}), 2):
            event = record.event()
            assert isinstance(event, FundingReceived)
            self._last_ms[event.instrument_id] = max(
                self._last_ms.get(event.instrument_id, 0), event.ts_ns // 1_000_000
            )
        for iid in self.ids:
            self._next_ms[iid] = await self._next_due(iid)

    async def _next_due(self, iid: int) -> int:
        """The earliest funding time after the last journaled: one the venue settled already (a
        session behind the venue: its running next funding time is past it), else the venue's
        next. Raises what the venue's next funding time raises."""
        try:
            rows = await self.venue.fetch_funding(iid, since_ms=self._last_ms[iid] + 1)
        except (VenueError, VenueDataError) as error:
            console.print(f"[yellow]funding: {error}[/]", soft_wrap=True)
            rows = []
        settled = [row.funding_ms for row in rows if row.funding_ms > self._last_ms[iid]]
        return min(settled) if settled else await self.venue.next_funding_ms(iid)

    async def due(self, up_to_ns: int) -> list[FundingReceived]:
        """The fundings the venue settled at or before ``up_to_ns`` that are not journaled yet."""
        out: list[FundingReceived] = []
        up_to_ms = up_to_ns // 1_000_000
        for iid in self.ids:
            due_ms = self._next_ms.get(iid, 0)
            if not due_ms or due_ms > up_to_ms:
                continue
            fresh = await self._settled(iid, due_ms, up_to_ms)
            if not fresh:
                self._late(iid, due_ms)
                continue
            for row in fresh:
                out.append(
                    FundingReceived(
                        ts_ns=row.funding_ms * 1_000_000,
                        received_ns=self.clock(),
                        instrument_id=iid,
                        rate_e8=row.rate_e8,
                        mark_px_raw=row.mark_raw,
                    )
                )
                self._last_ms[iid] = row.funding_ms
            self.received += len(fresh)
            try:
                self._next_ms[iid] = await self._next_due(iid)
            except (VenueError, VenueDataError) as error:
                console.print(f"[yellow]funding: {error}[/]", soft_wrap=True)
        return out

    async def _settled(self, iid: int, due_ms: int, up_to_ms: int) -> list[VenueFunding]:
        """What the venue states settled after the last journaled funding, up to ``up_to_ms``:
        asked every 0.1 s for ``wait_s`` until the due time is there (once per due time)."""
        waited = 0.0
        while True:
            try:
                rows = await self.venue.fetch_funding(iid, since_ms=self._last_ms[iid] + 1)
            except (VenueError, VenueDataError) as error:  # asked again at the next step
                console.print(f"[yellow]funding: {error}[/]", soft_wrap=True)
                rows = []
            fresh = [row for row in rows if self._last_ms[iid] < row.funding_ms <= up_to_ms]
            done = any(row.funding_ms >= due_ms for row in fresh)
            if done or waited >= self.wait_s or self._waited.get(iid) == due_ms:
                return fresh
            await asyncio.sleep(0.1)
            waited += 0.1

    def _late(self, iid: int, due_ms: int) -> None:
        if self._waited.get(iid) != due_ms:
            self.late += 1
            console.print(
                f"[yellow]funding due at {due_ms} ms: the venue states none after {self.wait_s:g} s; "
                "asked again at each step, booked at the first step after it comes[/]",
                soft_wrap=True,
            )
        self._waited[iid] = due_ms


class _Broker:
    """The paper broker's edge (``[venue] kind = "paper"``): quotes stamped and journaled as
    they are handed on, the kernel's requests sent after each commit (stamped with the edge's
    clock), the broker's answers handed to the kernel's outbox for its next step."""

    def __init__(
        self,
        config: BacktestConfig,
        started: Started,
        journal: Any,
        clock: Callable[[], int],
        interval: int,
        resumed_at: int = 0,
    ) -> None:
        assert config.paper is not None
        outbox = started.kernel.setup.venue
        if not isinstance(outbox, OutboxVenue):
            raise ConfigError('the paper broker needs [venue] kind = "paper"')
        fill = config.fill
        guard = started.kernel.state.venue_guard
        # a resumed session numbers on from the messages its kernel took (the rest died with it)
        next_seq = 1 if guard is None else max([guard.next_seq, *(seq + 1 for seq in guard.held)])
        self.broker = PaperBroker(
            {inst.instrument_id: inst for inst in started.kernel.setup.panel.instruments},
            LatencyModel(config.paper.latency_ms, config.paper.latency_jitter_ms, config.seed),
            BrokerCosts(fill.commission_e8, fill.taker_e8, fill.maker_e8, fill.slippage_e8),
            interval_ns=interval,
            next_seq=next_seq,
        )
        self.outbox = outbox
        self.journal = journal
        self.clock = clock
        outbox.sending = True
        if started.note:  # resumed: what the broker held died with the process that ran it
            orders = started.kernel.state.open_orders
            outbox.deliver(self.broker.restarted(list(orders.values()), max(clock(), resumed_at)))

    def quotes(self, quotes: list[VenueQuote], now: int) -> None:
        for quote in quotes:
            event = QuoteReceived(
                ts_ns=now,
                instrument_id=quote.instrument_id,
                bid_px_raw=quote.bid_px_raw,
                bid_qty_raw=quote.bid_qty_raw,
                ask_px_raw=quote.ask_px_raw,
                ask_qty_raw=quote.ask_qty_raw,
                venue_ts_ns=quote.ts_ms * 1_000_000,
            )
            self.journal.append(event)
            self.outbox.deliver(self.broker.on_quote(event))

    def bars(self, bars: BarsReceived) -> None:
        self.outbox.deliver(self.broker.on_bars(bars))

    def after_commit(self) -> None:
        for request in self.outbox.take_requests():
            self.outbox.deliver(self.broker.send(request.kind, request.order, self.clock()))


def _clock(kind: str, assembler: StepAssembler) -> Callable[[], int]:
    """The edge's clock: the wall clock, or the venue's as its bars tell it (``venue_clock``)."""
    if kind == "wall":
        return time.time_ns
    return assembler.venue_clock


@dataclass(frozen=True)
class LocalMarkets:
    """``--local-exchange MARKET``: the data set and its markets, read and checked before the
    session's journal is opened."""

    path: Path
    markets: list[Any]  # venues.local_exchange.LocalMarket


def _local_markets(path: Path, config: BacktestConfig, frequency: str) -> LocalMarkets:
    """The markets of the data set ``--local-exchange`` plays, refused (exit 2, nothing opened)
    when it is not a data set the local exchange can play or has no bar closing in the
    session's span (``paper.start`` .. ``paper.end``): such a session would have nothing to
    trade and stop at once."""
    from venues.local_exchange import markets_from_dataset

    assert config.paper is not None
    try:
        markets = markets_from_dataset(path)
    except (ValueError, OSError, KeyError) as error:
        raise ConfigError(f"--local-exchange: {error}") from None
    interval_ms = frequency_ns(frequency) // 1_000_000
    closes = [bar.open_ms + interval_ms for m in markets for bar in m.bars]
    start_ns, end_ns = config.paper.span_ns()
    if not any(start_ns // 1_000_000 <= close <= end_ns // 1_000_000 for close in closes):
        held = "it holds no bar"
        if closes:
            held = f"its bars close from {_iso_ms(min(closes))} to {_iso_ms(max(closes))}"
        raise ConfigError(
            f"--local-exchange {path}: no bar closes between paper.start ({config.paper.start}) and "
            f"paper.end ({config.paper.end}); {held}: nothing to play"
        )
    return LocalMarkets(path, markets)


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@contextlib.asynccontextmanager
async def _local_exchange(
    market: LocalMarkets,
    instruments: list[Instrument],
    first_close_ns: int,
    interval_ns: int,
    edge: Edge | None,
    currency: str,
    player: Player,
) -> Any:
    """A loopback Binance playing ``market``'s bars that close at or after ``first_close_ns``;
    a live session's keys and its configured cash there."""
    from venues.local_exchange import LocalExchange

    kind = market_type(instruments)

    def symbol(m: Any) -> str:  # ccxt's unified symbol: BASE/QUOTE, or BASE/QUOTE:SETTLE for USD-M
        return f"{m.base}/{m.quote}:{m.quote}" if kind == "usdm" else f"{m.base}/{m.quote}"

    by_symbol = {inst.symbol for inst in instruments}
    first_open_ms = (first_close_ns - interval_ns) // 1_000_000
    markets = [
        dataclasses.replace(m, bars=[bar for bar in m.bars if bar.open_ms >= first_open_ms])
        for m in market.markets
        if symbol(m) in by_symbol
    ]
    if len(markets) != len(instruments):
        missing = sorted(by_symbol - {symbol(m) for m in markets})
        raise ConfigError(f"--local-exchange {market.path}: no market for {missing}")
    quotes = {m.quote for m in markets}
    balances: dict[str, str] = {quote: "1000000" for quote in quotes}
    keys: dict[str, Any] = {"apiKey": "local-api-key", "secret": None}
    if edge is not None:  # the session's keys, and its configured cash
        keys, balances = edge.exchange_config(), edge.local_balances(currency)
    async with LocalExchange(
        markets,
        balances,
        api_key=keys["apiKey"],
        api_secret=keys["secret"],
        maker_fee=player.fee,
        taker_fee=player.fee,
        fees_in=player.fee_in,
        market_type=kind,
    ) as exchange:
        yield exchange


def bar_updates(received: int, superseded: int, waiting: int) -> str:
    """The summary's count of bar updates, with what did not reach the kernel (so that they add
    up to its ``received``): superseded by a later update of the same bar before its step went,
    or waiting for a step that had not run when the session ended."""
    parts = [
        f"{count:,} {what}"
        for count, what in (
            (superseded, "superseded by a later update of the same bar"),
            (waiting, "waiting for a step that did not run"),
        )
        if count
    ]
    return plural(received, "update") + (f" ({', '.join(parts)})" if parts else "")


def session_json(
    config: BacktestConfig, source: QueueSource, session: _Session, head: str, records: int
) -> dict[str, Any]:
    """What ``_print_summary`` says, as JSON values (``paper --json`` / ``live --json``)."""
    counts = source.counts
    document: dict[str, Any] = {
        "run_id": config.run_id,
        "journal": str(config.journal),
        "records": records,
        "chain_head": head,
        "done": source.done,
        "stopped": "" if source.done else session.stopped,
        "bars": {
            "updates": session.bars_received,
            "superseded": session.bars_superseded,
            "waiting": session.bars_waiting,
        },
        "kernel": {
            "received": counts.received,
            "accepted": counts.accepted,
            "quarantined": dict(sorted(counts.quarantined.items())),
            "empty_steps": counts.empty_steps,
        },
        "venue_errors": session.venue_errors,
        "broker": None,
        "marks": None,
    }
    if session.broker is not None:
        broker = dataclasses.asdict(session.broker.counts)
        waits = sorted(broker.pop("latency_ns"))
        broker["latency_median_ms"] = waits[len(waits) // 2] / 1e6 if waits else None
        broker["latency_max_ms"] = waits[-1] / 1e6 if waits else None
        document["broker"] = broker
    if session.marks is not None:
        document["marks"] = {**dataclasses.asdict(session.marks.counts), "pending": session.marks.pending}
    return document


def _print_summary(
    config: BacktestConfig, source: QueueSource, session: _Session, head: str, records: int, *, resumed: bool
) -> None:
    counts = source.counts
    quarantined = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.quarantined.items())) or "none"
    updates = bar_updates(session.bars_received, session.bars_superseded, session.bars_waiting)
    # a resumed session's kernel counts the whole session (its journal's bars re-derived too);
    # the venue's updates are this process's only
    venue, kernel = ("since this resume", "over the whole session") if resumed else ("", "")
    console.print(
        f"bars from the venue{' ' + venue if venue else ''}: {updates}; "
        f"to the kernel{' ' + kernel if kernel else ''}: {counts.received:,} "
        f"received = {counts.accepted:,} accepted + {sum(counts.quarantined.values()):,} quarantined "
        f"({quarantined}); {plural(counts.empty_steps, 'step')} passed with no bar; venue errors "
        f"{session.venue_errors}",
        soft_wrap=True,
    )
    broker = session.broker
    if broker is not None:
        c = broker.counts
        waits = sorted(c.latency_ns)
        slowest = ""
        if waits:
            median, top = waits[len(waits) // 2] / 1e6, waits[-1] / 1e6
            slowest = f"; sent to arrival median {median:,.0f} ms, slowest {top:,.0f} ms"
        since = " since this resume (the venue's traffic is not journaled)" if resumed else ""
        console.print(
            f"paper broker{since}: {plural(c.sent, 'order')} sent, {c.acks} acknowledged, "
            f"{c.rejects} rejected; fills {c.quote_fills} at quotes + {c.bar_fills} on bars; "
            f"{plural(c.cancels, 'cancel')} ({c.cancelled} done, "
            f"{c.cancel_rejected} refused); {plural(c.quotes, 'quote')}{slowest}",
            soft_wrap=True,
        )
    if session.marks is not None:
        console.print(session.marks.counts.summary(session.marks.pending), soft_wrap=True)
    console.print(
        f"journal {config.journal}: {plural(records, 'record')}, chain head {head[:16]}...", soft_wrap=True
    )
