"""``tape live`` against the local exchange (a loopback Binance, through the real ccxt.pro client):
orders go out after the journal commit that holds them, the venue's acks and fills come back as
journaled venue messages and are booked; reconciliation at the start and at the end finds the
venue's balances equal to the book's to the last 1e-8 (fees charged in the base asset included);
the session replays bit for bit, whole and by day; the keys appear nowhere in what it writes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from cli.main import main
from cli.wiring import replay_builder
from domain.events import (
    AdoptionReceived,
    BarsReceived,
    CashAdopted,
    CommandReceived,
    DayClosed,
    FeeTakenInKind,
    KillSwitchTripped,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PositionAdopted,
    VenueConnection,
    VenueMessageReceived,
    VenueReconciled,
)
from domain.ledger import position_change
from kernel.replay import replay
from kernel.store import open_journal
from lake.store import load_panel
from projections import rebuild_ledger
from tests.factories import count_events, market_and_history, paper_config

HISTORY = 60
KEY = "CANARY-KEY-5f0c9e1d"
SECRET = "CANARY-SECRET-a41b7733"


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The whole market (the local exchange plays it) and its first ``HISTORY`` days."""
    return market_and_history(tmp_path_factory.mktemp("live"), seed=7, bars=120, history=HISTORY)


def live_config(
    path: Path, history: Path, journal: Path, start_ns: int, end_ns: int, extra: str = ""
) -> Path:
    paper_config(path, history, journal, start_ns, end_ns, grace_s=5 * 86_400)
    path.write_text(
        path.read_text().replace('run_id = "paper-local"', 'run_id = "live-local"')
        + '\n[venue]\nkind = "live"\n\n[account]\ntype = "cash"\n\n[live]\nkeys_env = "TAPE_TEST"\n'
        + extra
    )
    return path


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPE_TEST_API_KEY", KEY)
    monkeypatch.setenv("TAPE_TEST_SECRET", SECRET)


def _events(journal: Path) -> list[object]:
    with open_journal(journal) as store:
        return [event for _, event in store.events()]


@pytest.mark.parametrize("fee_in", ["quote", "received"])
def test_a_live_session_books_the_venues_fills_and_replays(
    market: tuple[Path, Path], tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str], fee_in: str
) -> None:
    """Fees of 0.1%: in the quote asset, or (as Binance without BNB) in the asset received —
    base on a buy. A fee in the base is taken out of the book's position too (a
    ``FeeTakenInKind`` before the buy's fill, rounded up to the quantity unit, booked as
    commission at the fill price): the book never holds more than the venue, so every sale of
    the whole position goes through (before, the venue refused them: INSUFFICIENT_BALANCE), and
    reconciliation balances to 1e-8 with the rounding accounted for."""
    full, history = market
    panel, _ = load_panel(full)
    journal = tmp_path / "journal"
    config = live_config(
        tmp_path / "live.toml", history, journal, int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    )
    argv = ["live", str(config), "--local-exchange", str(full), "--speed", "60", "--local-fee", "0.001"]
    argv += ["--local-fee-in", fee_in]
    assert main(argv) == 0
    output = capsys.readouterr().out
    # A finished session is not resumed: its summary does not send the user to a resume (it
    # said "a resumed session recovers them by reconciling" of the answers after its last step).
    assert "resume" not in output, output
    events = _events(journal)
    reconciled = [e for e in events if isinstance(e, VenueReconciled)]
    assert [r.when for r in reconciled] == ["start", "stop"], output
    assert all(r.differences == [] for r in reconciled), [r.differences for r in reconciled]
    submitted = [e for e in events if isinstance(e, OrderSubmitted)]
    received = [e.message for e in events if isinstance(e, VenueMessageReceived)]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert len(submitted) >= 4, output
    assert [m.venue_seq for m in received] == list(range(1, len(received) + 1))  # numbered on arrival
    assert {m.kind for m in received} >= {"ack", "fill"}
    assert len(fills) == sum(1 for m in received if m.kind == "fill") > 0
    in_kind = [e for e in events if isinstance(e, FeeTakenInKind)]
    if fee_in == "quote":
        assert in_kind == [] and all(f.commission_minor > 0 for f in fills)
    else:
        buys = [f for f in fills if f.side == 1]
        assert buys and [(e.order_id, e.px_raw) for e in in_kind] == [
            (f.order_id, f.fill_px_raw) for f in buys
        ]
        assert all(f.commission_minor == 0 for f in buys) and all(e.value_minor > 0 for e in in_kind)
        assert all(f.commission_minor > 0 for f in fills if f.side == -1)  # a sale's fee: in the quote
        # Each fee leaves the position just before its fill (journal order), never after.
        order = [
            (type(e).__name__, getattr(e, "order_id", ""))
            for e in events
            if isinstance(e, (FeeTakenInKind, OrderFilled))
        ]
        for index, (name, oid) in enumerate(order):
            if name == "FeeTakenInKind":
                assert order[index + 1] == ("OrderFilled", oid)
        # Sales of the whole position happened and went through (before, the venue refused
        # each: it held the fee less than the book).
        held: Counter[int] = Counter()
        flat_after_sale = 0
        for event in events:
            change = position_change(event)  # type: ignore[arg-type]
            if change is not None:
                held[change[0]] += change[1]
                flat_after_sale += (
                    isinstance(event, OrderFilled) and event.side == -1 and held[change[0]] == 0
                )
        assert flat_after_sale > 0 and min(held.values()) >= 0
        # The projections agree: the SQLite ledger rebuilt from the journal equals a fresh
        # rebuild (audit) and the journal's day books (reconcile), fees in kind included.
        ledger = tmp_path / "live.ledger.sqlite"
        rebuild_ledger(journal, ledger)
        assert main(["audit", str(journal), "--db", str(ledger)]) == 0
        assert main(["reconcile", str(journal), "--db", str(ledger)]) == 0, capsys.readouterr().out
    assert [e for e in events if isinstance(e, OrderRejected)] == [], output
    assert len([e for e in events if isinstance(e, DayClosed)]) == panel.steps - HISTORY
    with open_journal(journal) as store:
        outcome = replay(store, replay_builder)
        assert outcome.ok, outcome.divergence
        days = [e.day for e in events if isinstance(e, DayClosed)]
        for day in (days[5], days[len(days) // 2], days[-1]):
            by_day = replay(store, replay_builder, day=day)
            assert by_day.ok, (day, by_day.divergence)
    # The keys went to the ccxt client only.
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != "live.toml")
    for canary in (KEY, SECRET):
        assert canary.encode() not in written and canary not in output


@pytest.mark.parametrize("policy", ["adopt", "flatten"])
def test_an_account_holding_more_than_the_book_is_adopted_or_flattened(
    market: tuple[Path, Path],
    tmp_path: Path,
    keys: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    policy: str,
) -> None:
    """The venue's account holds 123.456 USD more than ``initial_cash`` and 7.5 SYN0001 the
    book never bought (its units: cents, whole shares). ``on_difference = "adopt"``: the start's
    reconciliation hands the kernel an ``AdoptionReceived``; the first live step books them
    (``PositionAdopted`` at that step's close, ``CashAdopted``, against
    ``equity:adjustment:USD``), the dust below the units stays remembered, the session trades
    on, the stop's reconciliation finds no difference, and the session replays whole and by
    day, its ledger projection equal to a rebuild and to the journal. ``flatten``: the start
    journals a flatten from ``reconciliation``, which trips the kill switch before any
    order."""
    from cli.live_cmd import LiveEdge

    balances = {"USD": "1000123.456", "SYN0001": "7.5"}  # beyond the book's units: 0.006 USD, 0.5
    monkeypatch.setattr(LiveEdge, "local_balances", lambda self, quote: balances)
    full, history = market
    panel, _ = load_panel(full)
    journal = tmp_path / "journal"
    config = live_config(
        tmp_path / "live.toml", history, journal, int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1]),
        extra=f'on_difference = "{policy}"\n',
    )  # fmt: skip
    assert main(["live", str(config), "--local-exchange", str(full), "--speed", "60"]) == 0
    output = capsys.readouterr().out
    events = _events(journal)
    reconciled = [e for e in events if isinstance(e, VenueReconciled)]
    assert reconciled[0].when == "start" and len(reconciled[0].differences) == 2, output
    if policy == "flatten":
        assert reconciled[0].action == "flattened"
        (command,) = [e for e in events if isinstance(e, CommandReceived)]
        assert (command.command, command.operator) == ("flatten", "reconciliation")
        (trip,) = [e for e in events if isinstance(e, KillSwitchTripped)]
        assert trip.flatten and not [e for e in events if isinstance(e, AdoptionReceived)]
        assert not [e for e in events if isinstance(e, OrderSubmitted)]  # tripped before any order
        return
    assert reconciled[0].action == "adopted" and reconciled[-1].differences == [], output
    (adoption,) = [e for e in events if isinstance(e, AdoptionReceived)]
    assert (adoption.positions, adoption.cash) == ([(1, 7)], [("USD", 12_345)])
    assert sorted(adoption.residue) == [("SYN0001", 50_000_000), ("USD", 600_000)]  # 1e-8: dust kept
    (position,) = [e for e in events if isinstance(e, PositionAdopted)]
    (cash,) = [e for e in events if isinstance(e, CashAdopted)]
    assert (position.instrument_id, position.qty_raw, cash.amount_minor) == (1, 7, 12_345)
    assert position.step == HISTORY  # the first live step, not a history step (the clock read 0)
    assert position.px_raw == int(panel.last_close[position.step, 0])  # that step's close
    assert position.value_minor == 7 * position.px_raw
    assert events.index(adoption) < events.index(position) < events.index(cash)
    assert not [e for e in events if isinstance(e, CommandReceived)]  # nothing halted
    assert len([e for e in events if isinstance(e, OrderFilled)]) > 0
    with open_journal(journal) as store:
        assert replay(store, replay_builder).ok
        days = [e.day for e in events if isinstance(e, DayClosed)]
        for day in (days[0], days[1], days[-1]):
            by_day = replay(store, replay_builder, day=day)
            assert by_day.ok, (day, by_day.divergence)
    ledger = tmp_path / "live.ledger.sqlite"
    rebuild_ledger(journal, ledger)
    assert main(["audit", str(journal), "--db", str(ledger)]) == 0
    assert main(["reconcile", str(journal), "--db", str(ledger)]) == 0, capsys.readouterr().out


def test_live_refusals_are_clear(
    market: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    monkeypatch.delenv("TAPE_TEST_API_KEY", raising=False)
    monkeypatch.delenv("TAPE_TEST_SECRET", raising=False)
    config = live_config(tmp_path / "live.toml", history, tmp_path / "journal", start, end)
    assert main(["live", str(config), "--local-exchange", str(full)]) == 2
    assert "TAPE_TEST_API_KEY" in capsys.readouterr().out
    secrets = tmp_path / "keys.toml"
    secrets.write_text(f'api_key = "{KEY}"\nsecret = "{SECRET}"\n')
    os.chmod(secrets, 0o644)
    loose = live_config(tmp_path / "loose.toml", history, tmp_path / "j2", start, end)
    loose.write_text(
        loose.read_text().replace('keys_env = "TAPE_TEST"', f'keys_env = ""\nsecrets_file = "{secrets}"')
    )
    assert main(["live", str(loose), "--local-exchange", str(full)]) == 2
    out = capsys.readouterr().out
    assert "chmod 600" in out and KEY not in out
    paper = paper_config(tmp_path / "paper.toml", history, tmp_path / "j3", start, end)
    assert main(["live", str(paper), "--local-exchange", str(full)]) == 2
    assert 'kind = "live"' in capsys.readouterr().out
    assert main(["paper", str(config), "--local-exchange", str(full)]) == 2
    assert "tape live" in capsys.readouterr().out
    assert not (tmp_path / "journal").exists()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("TAPE_TEST_API_KEY", KEY)
    monkeypatch.setenv("TAPE_TEST_SECRET", SECRET)
    assert main(["live", str(config), "--venue-port", str(port)]) == 4
    out = capsys.readouterr().out
    assert "VENUE_UNAVAILABLE" in out and "--resume" in out and "internal error" not in out


def test_killed_live_sessions_resume_without_sending_an_order_twice() -> None:
    """``bench/drill_live_kills.py`` with three SIGKILLs (the bench runs fifty): the exchange runs
    in its own process; no client order id is sent twice, every execution is booked once, the
    last reconciliation finds no difference and the journal replays."""
    drill = Path(__file__).resolve().parents[2] / "bench" / "drill_live_kills.py"
    done = subprocess.run(
        [sys.executable, str(drill), "--trials", "3", "--bars", "120"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "all checks passed" in done.stdout and "3 kills and resumes" in done.stdout


def test_the_shipped_live_config_runs_as_its_comment_says(
    tmp_path: Path, keys: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cli/defaults/live_local.toml``: its header's steps, as a newcomer would type them."""
    shipped = Path(__file__).resolve().parents[2] / "cli" / "defaults" / "live_local.toml"
    monkeypatch.setenv("TAPE_BINANCE_API_KEY", "local-key")
    monkeypatch.setenv("TAPE_BINANCE_SECRET", "local-secret")
    home = tmp_path / "var" / "live"
    data = home / "data" / "crypto-daily"
    synth = ["synth", str(data), "--symbols", "2", "--bars", "150", "--frequency", "1d"]
    assert main([*synth, "--calendar", "24x7", "--start", "2020-01-01", "--seed", "5"]) == 0
    config = home / "live_local.toml"
    config.write_text(shipped.read_text())
    argv = ["live", str(config), "--local-exchange", str(data), "--speed", "100", "--local-fee", "0.001"]
    assert main(argv) == 0
    events = _events(home / "journals" / "live_local")
    reconciled = [e for e in events if isinstance(e, VenueReconciled)]
    assert [r.when for r in reconciled] == ["start", "stop"] and reconciled[-1].differences == []
    assert sum(isinstance(e, OrderFilled) for e in events) > 0


def test_dropped_order_streams_reconnect_and_reconcile(
    market: tuple[Path, Path], tmp_path: Path, keys: None
) -> None:
    """Every ten bars the local exchange drops every websocket, the order streams too: the
    adapter catches up over REST, the session reconciles after each reconnect (journaled), and
    the book stays equal to the venue; the session replays."""
    full, history = market
    panel, _ = load_panel(full)
    journal = tmp_path / "journal"
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    config = live_config(tmp_path / "live.toml", history, journal, start, end)
    argv = ["live", str(config), "--local-exchange", str(full), "--speed", "30", "--disconnect-every", "10"]
    assert main([*argv, "--local-fee", "0.001", "--local-fee-in", "quote"]) == 0
    events = _events(journal)
    reconciled = [e for e in events if isinstance(e, VenueReconciled)]
    assert sum(r.when == "reconnect" for r in reconciled) >= 2
    assert [r.differences for r in reconciled] == [[]] * len(reconciled)
    states = Counter(e.state for e in events if isinstance(e, VenueConnection))
    assert states["disconnected"] >= 2 and states["reconciled"] >= 2, states
    assert sum(isinstance(e, OrderFilled) for e in events) > 0
    with open_journal(journal) as store:
        outcome = replay(store, replay_builder)
        assert outcome.ok, outcome.divergence


def test_the_keys_are_not_on_any_command_line(market: tuple[Path, Path], tmp_path: Path) -> None:
    """While a session runs, ``ps`` shows no key: they come through the environment only."""
    if shutil.which("ps") is None:
        pytest.skip("no ps on this machine (procps)")
    full, history = market
    panel, _ = load_panel(full)
    journal = tmp_path / "journal"
    config = live_config(
        tmp_path / "live.toml", history, journal, int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    )
    env = {**os.environ, "TAPE_TEST_API_KEY": KEY, "TAPE_TEST_SECRET": SECRET}
    argv = [
        sys.executable,
        "-m",
        "cli.main",
        "live",
        str(config),
        "--local-exchange",
        str(full),
        "--speed",
        "5",
    ]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while count_events(journal, BarsReceived) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert count_events(journal, BarsReceived) >= 2, "the session did not start"
        listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        assert "cli.main live" in listing
        assert KEY not in listing and SECRET not in listing
    finally:
        process.kill()
        output, _ = process.communicate(timeout=30)
    assert KEY not in output and SECRET not in output
