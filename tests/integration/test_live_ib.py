"""``tape live`` with ``[live] venue = "ib"`` against the loopback fake TWS (tests/venues/
_fake_tws.py) through the real ib_async client: bars from a ``keepUpToDate`` historical-data
subscription, orders out after their journal commit, executions and their commission reports
booked to the cent, reconciliation at the start, after IB's 1101 (data lost) and at the end
with no difference; IB's connectivity codes and pacing journaled as ``venue.connection.v1``; a
session killed with SIGKILL resumes (bars it missed fetched up to TWS's time), sends no order
twice and books every execution once; ``tape replay --day`` reproduces its days; a gateway
that cannot be reached exits 4 with one line. No API keys are read for IB."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import msgspec
import pytest

pytest.importorskip("ib_async", reason="ib_async is in the dev/live extras")

from cli.main import main
from cli.wiring import replay_builder
from domain.events import (
    BarsReceived,
    DayClosed,
    OrderFilled,
    OrderSubmitted,
    VenueConnection,
    VenueMessageReceived,
    VenueReconciled,
)
from kernel.replay import replay
from kernel.store import open_journal
from lake.store import load_panel, write_dataset
from tests.factories import count_events, paper_config
from tests.venues._fake_tws import FakeTws, FakeTwsThread, market_from_dataset

HISTORY = 60
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A seeded two-stock daily market (24x7 calendar: no calendar start-up cost) and its first
    ``HISTORY`` days as the history a session warms up on."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from lake.synth import synth_dataset

    root = tmp_path_factory.mktemp("ib")
    synth = root / "synth"
    synth_dataset(synth, seed=11, symbols=2, bars=100, frequency="1d", calendar="24x7", start="2021-01-01")
    panel, _ = load_panel(synth)
    stocks = [msgspec.structs.replace(inst, asset_class="equity") for inst in panel.instruments]
    table = pq.read_table(synth / "bars.parquet")
    first = table.filter(pc.less_equal(table["ts_ns"], int(panel.ts_ns[HISTORY - 1])))
    for path, bars in ((root / "market", table), (root / "history", first)):
        write_dataset(path, name=path.name, frequency="1d", calendar="24x7", instruments=stocks, bars=bars)
    return root / "market", root / "history"


def ib_config(path: Path, history: Path, journal: Path, start_ns: int, end_ns: int, port: int) -> Path:
    paper_config(path, history, journal, start_ns, end_ns, grace_s=5 * 86_400)
    text = path.read_text().replace('run_id = "paper-local"', 'run_id = "live-ib"')
    text = text.replace('exchange = "binance"', 'exchange = "ib"')
    text = text.replace('initial_cash = "1000000"', 'initial_cash = "1000000"\nus_regulatory_fees = false')
    path.write_text(
        text + '\n[venue]\nkind = "live"\n\n[account]\ntype = "cash"\n\n'
        f'[live]\nvenue = "ib"\nport = {port}\nclient_id = 17\n'
    )
    return path


def new_tws(full: Path, start_ns: int) -> FakeTwsThread:
    contracts, bars = market_from_dataset(full, start_ns)
    return FakeTwsThread(FakeTws(contracts=contracts, market=bars, cash={"USD": "1000000"}))


def events_of(journal: Path) -> list[object]:
    with open_journal(journal) as store:
        return [event for _, event in store.events()]


def cents(text: str) -> int:
    return int((Decimal(text) * 100).quantize(Decimal(1), ROUND_HALF_EVEN))


def exec_id(reason: str) -> str:
    """The IB execution id in a fill message's reason (``trade:{instrument}:{execId} fee=...``)."""
    return reason.split(" ")[0].split(":", 2)[2]


def check_books(journal: Path, tws: FakeTws) -> list[object]:
    """Every execution booked once, with its commission to the cent; each order sent once; the
    last reconciliation equal to TWS; the journal replays, whole and by day."""
    events = events_of(journal)
    fills = [e.message for e in events if isinstance(e, VenueMessageReceived) and e.message.kind == "fill"]
    booked = Counter(exec_id(m.reason) for m in fills)
    executions = {ex.exec_id: ex for ex in tws.executions}
    assert executions and set(booked) == set(executions) and set(booked.values()) == {1}, booked
    for message in fills:
        ex = executions[exec_id(message.reason)]
        assert message.commission_minor == cents(ex.commission), (message, ex.commission)
        assert message.qty_raw == int(ex.shares)
    refs = Counter(order.order_ref for order in tws.orders.values())
    assert refs and set(refs.values()) == {1}, refs  # no client order id sent twice
    submitted = {e.order_id for e in events if isinstance(e, OrderSubmitted)}
    assert len(refs) <= len(submitted)
    filled = [e for e in events if isinstance(e, OrderFilled)]
    assert sum(e.commission_minor for e in filled) == sum(cents(ex.commission) for ex in tws.executions)
    reconciled = [e for e in events if isinstance(e, VenueReconciled)]
    assert reconciled[-1].when == "stop" and reconciled[-1].differences == [], reconciled[-1]
    with open_journal(journal) as store:
        outcome = replay(store, replay_builder)
        assert outcome.ok, outcome.divergence
    return events


def test_an_ib_session_trades_reconciles_and_replays(
    market: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    for name in ("TAPE_BINANCE_API_KEY", "TAPE_BINANCE_SECRET"):  # IB asks for no keys
        monkeypatch.delenv(name, raising=False)
    fake = new_tws(full, start)
    tws = fake.tws
    tws.pace_history = 1  # the first bar subscription is refused for pacing, then asked again
    tws.after_bar = {
        8: [(1100, "Connectivity between IB and Trader Workstation has been lost.")],
        9: [(1102, "Connectivity between IB and Trader Workstation has been restored - data maintained.")],
        14: [(1101, "Connectivity between IB and Trader Workstation has been restored - data lost.")],
    }
    try:
        player = fake.spawn(tws.play(60))
        journal = tmp_path / "journal"
        config = ib_config(tmp_path / "live.toml", history, journal, start, end, fake.port)
        assert main(["live", str(config)]) == 0
        output = capsys.readouterr().out
        player.result(10)
        events = check_books(journal, tws)
    finally:
        fake.close()
    reconciled = [e for e in events if isinstance(e, VenueReconciled)]
    assert [r.when for r in reconciled] == ["start", "reconnect", "stop"], output
    assert all(r.differences == [] for r in reconciled), [r.differences for r in reconciled]
    assert len([e for e in events if isinstance(e, DayClosed)]) == panel.steps - HISTORY
    states = Counter((e.stream, e.state) for e in events if isinstance(e, VenueConnection))
    assert states[("ib-server", "disconnected")] == 1 and states[("ib-server", "restored")] == 2, states
    assert states[("ib-server", "reconciled")] == 1 and states[("ib", "pacing")] == 1, states
    assert "IB 1100" in output and "pacing" in output
    assert "live (ib)" in output and "reconciled (stop) with ib" in output
    days = [e.day for e in events if isinstance(e, DayClosed)]
    for day in (days[3], days[-1]):
        assert main(["replay", str(journal), "--day", str(day)]) == 0
    report = tmp_path / "report.json"  # the report's fees: IB's commission reports, to the cent
    assert main(["report", str(journal), "--json", str(report)]) == 0
    fees = json.loads(report.read_text())["summary"]["fees"]
    assert round(fees * 100) == sum(cents(ex.commission) for ex in tws.executions) > 0


def test_a_killed_ib_session_resumes_without_sending_an_order_twice(
    market: tuple[Path, Path], tmp_path: Path
) -> None:
    """SIGKILL twice. The first kill comes as soon as an order (a limit at the close) reaches
    TWS, which holds its market meanwhile, then fills it on the bars it plays while the session
    is down: the resume finds the order by its orderRef instead of sending it again and books
    the execution it missed. The second comes after five fills. While the session is down TWS plays on (two
    bars), so each resume fetches the bars it missed up to TWS's time before it watches again."""
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    fake = new_tws(full, start)
    tws = fake.tws
    journal = tmp_path / "journal"
    config = ib_config(tmp_path / "live.toml", history, journal, start, end, fake.port)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "cli.main", "live", str(config)]
    try:
        player = fake.spawn(tws.play(25))
        tws.pause_on_order = True
        for killed_when in ("an order reached TWS", "five fills"):
            process = subprocess.Popen(
                argv + (["--resume"] if journal.exists() else []),
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and not (
                tws.orders if tws.pause_on_order else count_events(journal, OrderFilled) >= 5
            ):
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)
            output, _ = process.communicate(timeout=20)
            assert time.monotonic() < deadline, f"{killed_when}: not reached ({tws})\n{output[-3000:]}"
            first = tws.pause_on_order
            tws.pause_on_order = tws.paused = False
            played = tws.played
            for _ in range(2):  # the market goes on while the session is down
                fake.call(tws.play_step())
            assert tws.played == min(played + 2, len(next(iter(tws.market.values()))))
            if first:  # the order the session sent filled while it was down
                assert tws.executions and count_events(journal, OrderFilled) == 0
        done = subprocess.run([*argv, "--resume"], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        player.result(10)
        events = check_books(journal, tws)
    finally:
        fake.close()
    resumed = [e for e in events if isinstance(e, VenueReconciled) and e.when == "resume"]
    assert len(resumed) == 2 and resumed[0].fills_recovered >= 1, resumed
    for line in (line for r in resumed for line in r.differences):  # sent by no one: rejected
        assert line.endswith("journaled, never reached the venue"), line
    bars = [e for e in events if isinstance(e, BarsReceived)]
    assert sorted({e.ts_ns for e in bars}) == [int(ts) for ts in panel.ts_ns[HISTORY:]]  # none lost
    days = [e.day for e in events if isinstance(e, DayClosed)]
    assert len(days) == panel.steps - HISTORY
    assert main(["replay", str(journal), "--day", str(days[len(days) // 2])]) == 0


def test_ib_refusals_are_clear(
    market: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full, history = market
    panel, _ = load_panel(full)
    start, end = int(panel.ts_ns[HISTORY]), int(panel.ts_ns[-1])
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = ib_config(tmp_path / "live.toml", history, tmp_path / "journal", start, end, port)
    assert main(["live", str(config)]) == 4
    out = capsys.readouterr().out
    assert f"no TWS / IB Gateway API at 127.0.0.1:{port}" in out and "internal error" not in out
    assert "Traceback" not in out
    wrong = tmp_path / "binance-bars.toml"
    wrong.write_text(config.read_text().replace('exchange = "ib"', 'exchange = "binance"'))
    assert main(["live", str(wrong)]) == 2
    assert 'set paper.exchange = "ib"' in capsys.readouterr().out
    assert main(["paper", str(config)]) == 2
    assert "tape live" in capsys.readouterr().out
    assert main(["live", str(config), "--local-exchange", str(full)]) == 2
    assert "live.host:live.port" in capsys.readouterr().out
    keyed = tmp_path / "keyed.toml"
    keyed.write_text(config.read_text().replace('venue = "ib"', 'venue = "ib"\nsecrets_file = "/tmp/k.toml"'))
    assert main(["live", str(keyed)]) == 2
    assert "IB has no API keys" in capsys.readouterr().out


def test_ib_settings_journal_the_old_bytes_and_the_shipped_config_loads() -> None:
    """The [live] rows IB added leave a Binance configuration's journaled bytes as they were
    (``LATER_DEFAULTS``); ``cli/defaults/live_ib.toml`` reads as an IB session."""
    from cli.wiring import load_config
    from sim.backtest import BacktestConfig, LiveConfig

    shipped = load_config(ROOT / "cli" / "defaults" / "live_ib.toml")
    assert shipped.live is not None and shipped.live.venue == "ib" and shipped.paper is not None
    assert (shipped.live.port, shipped.live.client_id, shipped.paper.exchange) == (7497, 1, "ib")
    assert not shipped.us_regulatory_fees
    binance = msgspec.structs.replace(
        shipped, live=LiveConfig(), paper=msgspec.structs.replace(shipped.paper, exchange="binance")
    )
    text = binance.canonical_json()
    live = json.loads(text)["live"]
    assert not {"venue", "host", "port", "client_id", "account"} & set(live), live
    assert BacktestConfig.from_json(text).live == LiveConfig()
    assert '"venue":"ib"' in shipped.canonical_json()
