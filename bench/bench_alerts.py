"""Alert latency: from the journal commit that trips a rule to the e-mail arriving at a loopback
SMTP server (aiosmtpd), through a real ``tape alerts follow`` process; and that process's CPU
share while the journal grows at about 1,000 events/s.

One writer (this process) appends filler order events (submitted + accepted, which the
reject_rate rule decodes) at ``--rate`` events/s in 10 ms commits, and every ``--gap-s`` a day
close that alternates a 3% loss (trips daily_loss, limit 2%) and a 3% gain (clears it), so each
trip is a new alert. The time of a trip is read right after its commit returns; the mail's
arrival time is read by the SMTP handler; the trip is matched to its mail by the journal seq in
the body. The follower's CPU time comes from /proc/PID/stat.

    .venv/bin/python bench/bench_alerts.py [--trips 50] [--poll-s 0.25] [--rate 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from domain.events import DayClosed, Event, OrderAccepted, OrderSubmitted  # noqa: E402
from kernel.store import open_journal  # noqa: E402
from tests.alert_servers import MailSink, start_smtp  # noqa: E402

SEQ = re.compile(r", seq (\d+), event time")


def rules_file(folder: Path, port: int) -> Path:
    path = folder / "alerts.toml"
    path.write_text(
        "notify_resolved = false\n"
        '[[rules]]\nkind = "daily_loss"\nlimit_bps = 200\n\n'
        '[[rules]]\nkind = "reject_rate"\nlimit_bps = 5000\n\n'
        '[[rules]]\nkind = "kill_switch"\n\n'
        f'[[routes]]\nkind = "smtp"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        'sender = "tape@localhost"\nto = ["me@localhost"]\nmin_severity = "info"\n'
    )
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fillers(counter: int, count: int, ts_ns: int) -> list[Event]:
    events: list[Event] = []
    for i in range(counter, counter + count // 2):
        order_id = f"f-{i}"
        events.append(
            OrderSubmitted(
                ts_ns=ts_ns,
                order_id=order_id,
                strategy_id="filler",
                instrument_id=1,
                side=1,
                order_type="market",
                qty_raw=1,
                limit_px_raw=0,
                decision_px_raw=1,
            )
        )
        events.append(OrderAccepted(ts_ns=ts_ns, order_id=order_id))
    return events


def wait_ready(state: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if state.exists():
            try:
                with sqlite3.connect(state) as db:
                    if int(db.execute("SELECT value FROM meta WHERE key='checkpoint'").fetchone()[0]) >= 0:
                        return
            except sqlite3.Error:
                pass
        time.sleep(0.05)
    raise SystemExit("the follower did not start")


def run(trips: int, poll_s: float, rate: int, gap_s: float) -> dict[str, object]:
    sink = MailSink()
    controller = start_smtp(sink)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        journal_path = folder / "journal"
        rules = rules_file(folder, sink.port)
        writer = open_journal(journal_path, writable=True, records_per_commit_max=100_000)
        nav = 1_000_000
        writer.append(
            DayClosed(
                ts_ns=time.time_ns(),
                day=1,
                step=0,
                nav_minor=nav,
                cash_minor=nav,
                gross_exposure_minor=0,
                currency="USD",
            )
        )
        writer.commit()
        follower = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli.main",
                "alerts",
                "follow",
                str(journal_path),
                "--rules",
                str(rules),
                "--poll-s",
                str(poll_s),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(folder / "alerts.state.sqlite")
            cpu_start, wall_start = cpu_seconds(follower.pid), time.monotonic()
            committed: dict[int, int] = {}
            counter, events, day = 0, 1, 2
            tick_s = 0.01
            next_trip = time.monotonic() + gap_s
            while len(committed) < trips:
                behind = int(rate * (time.monotonic() - wall_start)) - events
                per_tick = max(0, behind // 2 * 2)  # paced by the clock, not by the sleeps
                for event in fillers(counter, per_tick, time.time_ns()):
                    writer.append(event)
                counter += per_tick // 2
                events += per_tick
                if time.monotonic() >= next_trip:
                    nav = 970_000 if nav == 1_000_000 else 1_000_000
                    seq = writer.append(
                        DayClosed(
                            ts_ns=time.time_ns(),
                            day=day,
                            step=day,
                            nav_minor=nav,
                            cash_minor=nav,
                            gross_exposure_minor=0,
                            currency="USD",
                        )
                    )
                    writer.commit()
                    if nav == 970_000:
                        committed[seq] = time.time_ns()
                    day += 1
                    events += 1
                    next_trip += gap_s
                else:
                    writer.commit()
                time.sleep(tick_s)
            received = sink.wait_for(trips, timeout_s=30)
            cpu_used, wall_used = cpu_seconds(follower.pid) - cpu_start, time.monotonic() - wall_start
        finally:
            follower.send_signal(signal.SIGTERM)
            follower.wait(timeout=30)
            writer.close()
            controller.stop()
    latencies_ms = []
    for mail in received:
        match = SEQ.search(mail.message.get_payload())
        if match and int(match.group(1)) in committed:
            latencies_ms.append((mail.at_ns - committed[int(match.group(1))]) / 1e6)
    latencies_ms.sort()
    p99_index = min(len(latencies_ms) - 1, max(0, round(0.99 * len(latencies_ms)) - 1))
    return {
        "trips": trips,
        "mails_matched": len(latencies_ms),
        "poll_s": poll_s,
        "p50_ms": round(statistics.median(latencies_ms), 1),
        "p99_ms": round(latencies_ms[p99_index], 1),
        "max_ms": round(latencies_ms[-1], 1),
        "events_per_s": round(events / wall_used),
        "follower_cpu_share": round(cpu_used / wall_used, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trips", type=int, default=50)
    parser.add_argument("--poll-s", type=float, nargs="+", default=[0.25, 0.05])
    parser.add_argument("--rate", type=int, default=1000, help="filler events per second")
    parser.add_argument("--gap-s", type=float, default=0.3, help="seconds between day closes")
    args = parser.parse_args()
    for poll_s in args.poll_s:
        figures = run(args.trips, poll_s, args.rate, args.gap_s)
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
