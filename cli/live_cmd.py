"""``tape live CONFIG``: the configured strategies trading at a venue: Binance spot through ccxt,
or Interactive Brokers through ib_async (``[live] venue``).

A live session is a paper session (``cli.paper_cmd``: bars from the venue's websocket through
the queue source, journaled before the kernel sees them) whose venue is the real one: the
configuration's ``[venue] kind = "live"`` gives the kernel an ``OutboxVenue``, and this module's
edge (``LiveEdge``)

* builds the venue's adapter (``open_venue``, the one place a ``[live] venue`` becomes one):
  for Binance it reads the keys from environment variables or a secrets file only its owner may
  read (``[live]``; they go to the ccxt client only — never to the journal, the logs or a
  command line); IB has no API keys (TWS / IB Gateway holds the login), so none are read: it
  connects to ``live.host``:``live.port`` as ``live.client_id``, and its bars come from the
  same connection (``IbVenue.watch_bars``: ``reqHistoricalData`` with ``keepUpToDate``);
* reconciles before the first new order (``venues.live_bridge``): the book's open orders at
  the venue, orders there that this session did not send, fills it missed, balances; what it
  finds is journaled (``venue.reconciled.v1``) and, under ``on_difference = "halt"``, a halt goes
  in as a journaled operator command;
* after every journal commit sends what the kernel asked (orders durable before they are sent;
  client order ids derived from the Tape order id, so a resend after a crash is found, not
  doubled), and hands the venue's answers in, numbered and stamped, for the kernel's next step;
* reconciles again after every reconnect of the order streams.

Interactive Brokers: ``docs/live_ib.md``.

``--local-exchange MARKET`` trades a loopback Binance (``venues.local_exchange``) with the same
keys, funded with the configured cash: the whole path with no account and no network.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from cli.exits import EXIT_OK
from cli.paper_cmd import (
    Started,
    open_ccxt_venue,
    open_ib_venue,
    prepare_session,
    run_session,
    session_options,
    write_session_json,
)
from cli.progress import console, one_stdout, plural, results_on_stderr
from cli.wiring import ConfigError
from domain.events import CommandReceived, LedgerPosted, VenueConnection, decode_event
from domain.instruments import Instrument
from kernel.loop import KernelError
from kernel.outbox import OutboxVenue
from kernel.setup import RunSetup
from sim.backtest import LiveConfig
from venues.ccxt_venue import CcxtVenue, VenueDataError, VenueError
from venues.live_bridge import Book, LiveBridge, ReconcilePolicy, client_tag

__all__ = ["LiveEdge", "add_live_parser", "cmd_live", "open_venue", "read_keys"]

_REMEMBERED = frozenset({"order.submitted.v1", "venue.message_received.v1", "venue.adoption_received.v1"})


def add_live_parser(verbs: Any) -> None:
    live = verbs.add_parser(
        "live", help="trade the config's strategies at a venue (Binance spot, or IB through ib_async)"
    )
    live.add_argument("config", help='a run\'s TOML with [paper] (steps), [venue] kind = "live" and [live]')
    session_options(live)


def cmd_live(args: argparse.Namespace) -> int:
    on_stdout = one_stdout(json=args.json)
    config, market, player = prepare_session(args, "live")
    if config.venue.kind != "live":
        raise ConfigError(f'{args.config}: tape live needs [venue] kind = "live" (and a [live] table)')
    settings = config.live or LiveConfig()
    assert config.paper is not None
    if settings.venue == "ib" and config.paper.exchange != "ib":
        raise ConfigError(
            f'{args.config}: [live] venue = "ib" takes its bars from the same gateway: '
            'set paper.exchange = "ib"'
        )
    keys = None if settings.venue == "ib" else read_keys(settings, os.environ)  # IB: the gateway's login
    edge = LiveEdge(keys, settings, config.initial_cash, testnet=settings.testnet)
    summary: dict[str, Any] = {}
    with results_on_stderr(on_stdout):
        code = asyncio.run(
            run_session(config, market, player, carry_on=args.resume, edge=edge, summary=summary)
        )
        edge.print_summary(finished=code == EXIT_OK)
    if summary:
        summary["venue"] = edge.summary_json()
    write_session_json(args.json, summary, code)
    return code


async def open_venue(
    settings: LiveConfig,
    exchange: str,
    exchange_config: dict[str, Any],
    instruments: list[Instrument],
    stack: contextlib.AsyncExitStack[Any],
    setup: RunSetup,
    interval_ns: int,
) -> Any:
    """The adapter a live session trades through, connected and closed with ``stack``: the one
    place a ``[live] venue`` becomes one (a new venue adds a branch here)."""
    if settings.venue == "ib":
        return await open_ib_venue(settings, instruments, stack, setup, interval_ns)
    venue = await open_ccxt_venue(exchange, exchange_config, instruments, stack)  # Binance spot / USD-M
    if settings.market == "usdm":
        await check_one_way(venue)
    return venue


async def check_one_way(venue: CcxtVenue) -> None:
    """A USD-M account must be in one-way mode: the book holds one net position per perpetual,
    and in hedge mode Binance refuses every order that names no position side (-4061). Checked
    before reconciliation, so no order leaves."""
    try:
        hedged = await venue.hedge_mode()
    except (VenueError, VenueDataError) as error:
        raise ConfigError(f"{venue.exchange.id}: cannot read the account's position mode: {error}") from None
    if hedged:
        raise ConfigError(
            f"{venue.exchange.id}: the account is in hedge mode (dualSidePosition); Tape keeps one net "
            "position per perpetual: switch the account to one-way mode, then start again (the journal "
            "is kept: --resume carries it on)"
        )


def read_keys(settings: LiveConfig, environ: os._Environ[str] | dict[str, str]) -> tuple[str, str]:
    """(api key, secret): from ``secrets_file`` (TOML, ``api_key`` and ``secret``; refused when
    its group or others may read it) or from ``{keys_env}_API_KEY`` / ``{keys_env}_SECRET``.
    Errors name where the keys were looked for, never a key."""
    if settings.secrets_file:
        path = Path(settings.secrets_file).expanduser()
        try:
            info = path.stat()
        except OSError as error:
            raise ConfigError(f"live.secrets_file {path}: {error.strerror}") from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"live.secrets_file {path} may be read by others (mode {stat.filemode(info.st_mode)}): "
                f"chmod 600 {path}"
            )
        if info.st_uid != os.getuid():
            raise ConfigError(f"live.secrets_file {path} belongs to another user")
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(
                f"live.secrets_file {path} is not readable TOML: {type(error).__name__}"
            ) from None
        key, secret = data.get("api_key"), data.get("secret")
        if not isinstance(key, str) or not isinstance(secret, str) or not key or not secret:
            raise ConfigError(f"live.secrets_file {path} needs text keys api_key and secret")
        return key, secret
    names = (f"{settings.keys_env}_API_KEY", f"{settings.keys_env}_SECRET")
    missing = [name for name in names if not environ.get(name)]
    if missing:
        raise ConfigError(
            f"tape live reads the venue's keys from {' and '.join(names)}: {', '.join(missing)} not set"
        )
    return environ[names[0]], environ[names[1]]


def funding_booked(journal: Any, instruments: Any) -> dict[tuple[int, int], int]:
    """Perpetual funding the book booked (``kernel.carry``'s postings), by (instrument id,
    funding time in ms): what reconciliation holds each venue funding payment against."""
    by_symbol = {inst.symbol: inst.instrument_id for inst in instruments}
    booked: dict[tuple[int, int], int] = {}
    for record in journal.records_of_kinds(frozenset({"ledger.posted.v1"}), 2):
        event = record.event()
        if not isinstance(event, LedgerPosted) or not event.memo.startswith("funding "):
            continue
        words = event.memo.split()
        key = (by_symbol.get(words[1], -1), int(words[-1]) // 1_000_000)
        cash = sum(p.amount_minor for p in event.postings if p.account.startswith("assets:cash:"))
        booked[key] = booked.get(key, 0) + cash
    return booked


class LiveEdge:
    """The live half of a session (module docstring); ``cli.paper_cmd.Edge``."""

    def __init__(
        self, keys: tuple[str, str] | None, settings: LiveConfig, initial_cash: str, *, testnet: bool = False
    ) -> None:
        self._keys = keys  # None: a venue without API keys (IB: the gateway holds the login)
        self._settings = settings
        self._policy = ReconcilePolicy(settings.on_difference, settings.unknown_orders, settings.unsent)
        self._initial_cash = initial_cash
        self._testnet = testnet
        self.name = settings.venue
        self.closed_bars = settings.venue == "ib"  # IbVenue hands out closed bars only
        self.bridge: LiveBridge | None = None
        self.reconciled: list[str] = []
        self._follow: asyncio.Task[None] | None = None
        self._venue: Any = None  # CcxtVenue or IbVenue
        self._started: Started | None = None
        self._journal: Any = None
        self._clock: Callable[[], int] = lambda: 0

    def exchange_config(self) -> dict[str, Any]:
        if self._keys is None:
            return {}
        config: dict[str, Any] = {"apiKey": self._keys[0], "secret": self._keys[1]}
        if self._testnet:
            config["sandbox"] = True
        return config

    def local_balances(self, quote: str) -> dict[str, str]:
        return {quote: self._initial_cash}

    async def open_venue(
        self,
        exchange: str,
        exchange_config: dict[str, Any],
        instruments: list[Instrument],
        stack: contextlib.AsyncExitStack[Any],
        setup: RunSetup,
        interval_ns: int,
    ) -> Any:
        return await open_venue(
            self._settings, exchange, exchange_config, instruments, stack, setup, interval_ns
        )

    async def start(self, venue: Any, started: Started, journal: Any, clock: Callable[[], int]) -> None:
        outbox = started.kernel.setup.venue
        if not isinstance(outbox, OutboxVenue):
            raise ConfigError('tape live needs [venue] kind = "live"')
        run = journal.record(0).event()
        self.name = venue.exchange.id
        bridge = LiveBridge(
            venue, outbox, venue.instruments.values(), tag=client_tag(run.config_json), clock=clock
        )
        bridge.remember(decode_event(record.payload) for record in journal.records_of_kinds(_REMEMBERED, 2))
        self.bridge, self._venue, self._started, self._journal, self._clock = (
            bridge,
            venue,
            started,
            journal,
            clock,
        )
        await self._reconcile("resume" if started.note else "start")
        outbox.sending = True  # reconciled: the kernel's orders go out from here on
        venue.start_streams()
        self._follow = asyncio.get_running_loop().create_task(bridge.follow())

    async def _reconcile(self, when: str) -> None:
        assert self.bridge is not None and self._started is not None
        kernel = self._started.kernel
        book = Book(
            open_orders=dict(kernel.state.open_orders),
            positions={iid: position.qty_raw for iid, position in kernel.state.positions.items()},
            cash_minor=kernel.valuation.cash_minor(),
            currency=kernel.setup.currency,
            cancel_requested=frozenset(kernel.state.cancel_requested),
            adopting=kernel.pending_adoptions(),
            funding_minor=funding_booked(self._journal, kernel.setup.panel.instruments),
        )
        try:
            found = await self.bridge.reconcile(book, when, self._policy, self.name)
        except VenueError as error:
            console.print(
                f"[yellow]reconciliation ({when}) could not ask the venue: {error}[/]", soft_wrap=True
            )
            return
        if when == "stop":  # nothing trades after it: reported, not acted on
            found = msgspec.structs.replace(found, action="none (session end)")
        self._journal.append(found)
        stop = "halted" in found.action or "flattened" in found.action
        adoption = self.bridge.take_adoption()
        if adoption is not None:
            try:
                self._started.source.adopt(adoption)
            except KernelError as error:  # refused (journaled): the differences stand, so halt
                self._started.source.refuse(adoption.ts_ns, "BAD_ADOPTION", str(error))
                console.print(f"[red]reconciliation ({when}): adoption refused: {error}[/]", soft_wrap=True)
                stop = True
            else:
                self.bridge.adopted(adoption)
        if stop:
            note = f"reconciliation ({when}): {len(found.differences)} differences"
            command = "flatten" if "flattened" in found.action else "halt"
            received = CommandReceived(
                ts_ns=found.ts_ns, command=command, operator="reconciliation", note=note
            )
            try:
                self._started.source.command(received)
            except KernelError as error:  # after the last step: nothing left to halt, said and counted
                self._started.source.refuse(found.ts_ns, "LATE_COMMAND", str(error))
        self._journal.commit()
        summary = (
            f"reconciled ({when}) with {self.name}: {plural(found.orders_checked, 'open order')} checked, "
            f"{plural(found.fills_recovered, 'fill')} recovered, "
            f"{plural(len(found.differences), 'difference')}; "
            f"action: {found.action}"
        )
        self.reconciled.append(summary)
        console.print(summary, soft_wrap=True)
        for line in found.differences:
            console.print(f"  {line}", soft_wrap=True)

    async def after_commit(self) -> None:
        """Send what the committed steps asked; after a reconnect, reconcile again."""
        assert self.bridge is not None
        await self.bridge.send(self.bridge.outbox.take_requests())
        self._journal_connection()
        if self.bridge.reconnected.is_set():
            self.bridge.reconnected.clear()
            await self._reconcile("reconnect")

    async def before_funding(self) -> None:
        """The fills the venue made before a funding it settled, caught up over REST and handed
        in, so the kernel applies them at the funding's step, before it books the funding (fills
        made at or after it wait: ``fills_from``)."""
        assert self.bridge is not None and self._venue is not None
        with contextlib.suppress(VenueError):  # the reconciliation reports what stays missing
            await self._venue.catch_up_fills()
        self.bridge.take_updates()

    def fills_from(self, funding_ms: int) -> None:
        """Perpetuals: fills from the next funding time (ms; 0: none) on wait until it is booked."""
        assert self.bridge is not None
        self.bridge.hold_fills_from(funding_ms)

    def _journal_connection(self) -> None:
        """The adapter's connection changes since the last commit, as journaled inputs."""
        assert self.bridge is not None
        notes, self.bridge.connection = self.bridge.connection, []
        for ts_ns, note in notes:
            console.print(
                f"venue {self.name} ({note.stream}): {note.kind}{': ' + note.detail if note.detail else ''}",
                soft_wrap=True,
                markup=False,
            )
            self._journal.append(
                VenueConnection(
                    ts_ns=ts_ns, venue=self.name, stream=note.stream, state=note.kind, detail=note.detail
                )
            )
        if notes:
            self._journal.commit()

    async def stop(self) -> None:
        """At the session's end (or a stop): a last reconciliation, reported and journaled
        (no halt: nothing trades after it), then the streams end."""
        if self.bridge is not None and self._started is not None:
            self.bridge.take_updates()
            self.bridge.hold_fills_from(None)  # fills held for a funding that no step will book
            with contextlib.suppress(Exception):  # the venue may be gone; the start will say so
                await self._reconcile("stop")
            self._journal_connection()
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow
        if self._venue is not None:
            await self._venue.stop_streams()
        if self.bridge is not None:
            self.bridge.take_updates()

    def summary_json(self) -> dict[str, Any]:
        """``print_summary``'s counts and the session's reconciliations, as JSON values."""
        bridge = self.bridge
        counts = None if bridge is None else bridge.counts
        return {
            "name": self.name,
            "orders_sent": 0 if counts is None else counts.sent,
            "cancels_sent": 0 if counts is None else counts.cancels_sent,
            "messages_to_kernel": 0 if counts is None else counts.messages,
            "fills_to_kernel": 0 if counts is None else counts.fills,
            "updates_of_other_orders": 0 if counts is None else counts.foreign,
            "after_last_step": 0 if bridge is None else bridge.outbox.waiting,
            "stream_notes": {} if counts is None else dict(sorted(counts.notes.items())),
            "reconciled": list(self.reconciled),
        }

    def print_summary(self, *, finished: bool) -> None:
        """The bridge's counts; the venue's answers that came after the kernel's last step are
        booked by a resume's reconciliation, or, for a finished session (which is not resumed),
        stand in its last reconciliation's report."""
        bridge = self.bridge
        if bridge is None:
            return
        counts = bridge.counts
        waiting = bridge.outbox.waiting
        notes = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.notes.items())) or "none"
        late = ""
        if waiting and finished:
            late = f" ({waiting} came after its last step: the session's last reconciliation reported them)"
        elif waiting:
            late = f" ({waiting} came after its last step: tape live --resume books them by reconciling)"
        console.print(
            f"venue {self.name}: {plural(counts.sent, 'order')} sent, "
            f"{plural(counts.cancels_sent, 'cancel')}, {plural(counts.messages, 'message')} to the "
            f"kernel{late}, {plural(counts.foreign, 'update')} of other orders; "
            f"stream notes: {notes}",
            soft_wrap=True,
        )
