"""Cockpit bench: opening a large journal, and following one that grows, each against a
baseline measured in the same run.

Builds (once, under var/bench_cockpit/) a seeded minute-bar backtest -- 5 symbols x 200,000
one-minute bars on the 24x7 calendar, SMA(3)/SMA(9) crossover -- whose journal holds about
1.3 million records.

**Open** (``--rounds`` rounds): the cockpit headless (Textual's ``run_test`` at 100x30),
timed from the app's construction:

* ``first screen``: the command centre shows the whole journal (NAV and drawdown curves over
  every day close, exposure and leverage against the policy, the kill switch, the latest risk
  verdicts, data staleness) -- the target is < 1 s;
* ``orders folded``: the funnel, blotter and why-chain index over every order event;
* ``report folds``: ``sim.metrics`` summary and ``sim.execution_report`` handed in by cli.

Baselines, same journal, same run: the first screen's fold without the UI
(``CockpitData.read_overview``), and the raw read of every record (``Journal.records``), with
and without decoding each payload.

**Follow**: a second process appends the journal's records to a fresh journal (seeded with
its first 20,000) at ``--rate`` records/s in commits of ``--batch``, stamping each commit
with ``time.monotonic_ns`` (one clock for both processes). The cockpit follows it (polling
every ``--poll`` s); for every commit, the time until the command centre's header shows the
record count that includes it (a run with the command centre on display) and until the journal
screen's last row is that commit's last record (a run with the journal screen on display).
The cockpit process's CPU time over the follow, per second of it, is printed too (a figure a
loaded machine changes less than latencies). While it follows, ``?`` is pressed every 0.5 s
and timed until the help screen is up (input to repaint, through the Pilot), and four times
before the writer starts (the same press on an idle cockpit: its baseline). Baseline: a plain
reader polling the same journal at the same interval (open, length, read the new records,
close -- what the cockpit's poll worker does), its commit-to-read latency for the same commits.

Run: ``.venv/bin/python bench/bench_cockpit.py [--rounds 3] [--poll 0.1] [--rate 1000]``;
``--journal PATH`` follows (and opens) an existing journal instead of building the 1.3-million
record one (the follow bench reads only its first 20,000 + rate x seconds records);
``--code DIR`` measures the cockpit of another checkout (e.g. a worktree of the previous commit)
with this script, for a before/after pair run back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ``--code DIR``: measure the cockpit of another checkout (an older commit: the baseline of a
# change, run by the same script on the same machine in the same session)
CODE = Path(sys.argv[sys.argv.index("--code") + 1]).resolve() if "--code" in sys.argv else ROOT
sys.path.insert(0, str(CODE))

from textual.pilot import Pilot  # noqa: E402
from textual.widgets import DataTable, Static  # noqa: E402

from cli.cockpit_cmd import cockpit_sources  # noqa: E402
from kernel.store import open_journal  # noqa: E402
from tui import CockpitApp  # noqa: E402
from tui.data import CockpitData  # noqa: E402
from tui.help import HelpScreen  # noqa: E402
from tui.tail import TailFilter  # noqa: E402

WORK = ROOT / "var" / "bench_cockpit"
CONFIG = """\
run_id = "bench-cockpit"
seed = 7
dataset = "minute"
journal = "journal1m"
currency = "USD"
initial_cash = "1000000"

[strategy]
name = "sma_crossover"
params = { fast = 3, slow = 9, weight = 0.95 }

[risk]
gross_leverage = { limit_e8 = 150_000_000, action = "scale" }
name = { limit_e8 = 30_000_000, action = "clip" }

[fill]
slippage_e8 = 10_000
commission_e8 = 5_000
"""


def build_journal() -> Path:
    journal = WORK / "journal1m"
    if journal.exists():
        return journal
    WORK.mkdir(parents=True, exist_ok=True)
    tape = str(Path(sys.executable).with_name("tape"))
    if not (WORK / "minute").exists():
        subprocess.run(
            [
                tape,
                "synth",
                "minute",
                "--symbols",
                "5",
                "--bars",
                "200000",
                "--frequency",
                "1m",
                "--calendar",
                "24x7",
            ],
            cwd=WORK,
            check=True,
        )
    (WORK / "sma.toml").write_text(CONFIG)
    subprocess.run([tape, "backtest", "sma.toml"], cwd=WORK, check=True, stdout=subprocess.DEVNULL)
    return journal


class StampedApp(CockpitApp):
    """Stamps the moment the command centre has been refreshed with the folded overview
    (Textual's ``call_after_refresh`` of the app's own ``first_screen_painted``)."""

    painted_at = 0.0

    def first_screen_painted(self) -> None:
        self.painted_at = time.perf_counter()
        super().first_screen_painted()


async def one_round(journal: Path) -> dict[str, float]:
    started = time.perf_counter()
    app = StampedApp(cockpit_sources(journal, follow=False))
    marks: dict[str, float] = {}
    async with app.run_test(size=(100, 30)) as pilot:
        while len(marks) < 3:
            now = time.perf_counter() - started
            if app.first_screen_ready and "first screen" not in marks:
                marks["first screen"] = app.painted_at - started
            if app.detail_ready and "orders folded" not in marks:
                marks["orders folded"] = now
            folded = app.data.summary is not None and app.data.execution is not None
            if folded and "report folds" not in marks:
                marks["report folds"] = now
            if now > 300:
                raise RuntimeError("the cockpit did not load in 300 s")
            await pilot.pause(0.005)
        assert "NAV" in str(app.query_one("#cc-head").render())
    return marks


def open_baselines(journal: Path) -> dict[str, float]:
    """The same journal read without the UI: the first screen's fold, and every record."""
    data = CockpitData(cockpit_sources(journal, follow=False))
    started = time.perf_counter()
    data.read_overview()
    times = {"overview fold, no UI": time.perf_counter() - started}
    with open_journal(journal) as handle:
        started = time.perf_counter()
        count = sum(1 for _ in handle.records(0, verify=False))
        times[f"raw read of all {count:,} records"] = time.perf_counter() - started
        started = time.perf_counter()
        for record in handle.records(0, verify=False):
            record.event()
        times["raw read + decode of every record"] = time.perf_counter() - started
    return times


# --- following a growing journal ---------------------------------------------------------

SEED_RECORDS = 20_000


def writer_main(source: Path, target: Path, start: int, end: int, rate: int, batch: int) -> None:
    """The second process: append ``source``'s records [start, end) to ``target`` at ``rate``
    records/s, printing ``last_seq monotonic_ns`` after each commit."""
    with open_journal(source) as handle:
        events = [
            record.event()
            for record, _ in zip(handle.records(start, verify=False), range(end - start), strict=False)
        ]
    journal = open_journal(target, writable=True)
    print("ready", time.monotonic_ns(), flush=True)
    began = time.monotonic()
    for first in range(0, len(events), batch):
        chunk = events[first : first + batch]
        for event in chunk:
            journal.append(event)
        journal.commit()
        print(start + first + len(chunk) - 1, time.monotonic_ns(), flush=True)
        delay = began + (first + len(chunk)) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    journal.close()


def seed_journal(source: Path, target: Path, count: int) -> None:
    with open_journal(source) as handle:
        events = [
            record.event() for record, _ in zip(handle.records(0, verify=False), range(count), strict=False)
        ]
    journal = open_journal(target, writable=True)
    for event in events:
        journal.append(event)
    journal.commit()
    journal.close()


class Writer:
    """The writer process and its commit stamps (last seq -> monotonic ns), read in a thread."""

    def __init__(self, source: Path, target: Path, count: int, rate: int, batch: int) -> None:
        command = [sys.executable, __file__, "--writer", str(source), str(target), str(SEED_RECORDS),
                   str(SEED_RECORDS + count), str(rate), str(batch)]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.commits: dict[int, int] = {}
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            head, stamp = line.split()
            if head == "ready":
                self.ready.set()
            else:
                self.commits[int(head)] = int(stamp)

    def done(self) -> bool:
        return self.process.poll() is not None

    def join(self) -> None:
        self.process.wait()
        self.thread.join()


def latencies_ms(commits: dict[int, int], seen: list[tuple[int, int]]) -> list[float]:
    """For every commit, the first time a count covering its last seq was seen (ms)."""
    result = []
    for last_seq, stamp in sorted(commits.items()):
        times = [at for count, at in seen if count > last_seq]
        if times:
            result.append((min(times) - stamp) / 1e6)
    return result


def baseline_follow(source: Path, poll_s: float, count: int, rate: int, batch: int) -> list[float]:
    """A plain reader at the cockpit's poll interval: open, length, read the new records."""
    with tempfile.TemporaryDirectory() as work:
        target = Path(work) / "growing"
        seed_journal(source, target, SEED_RECORDS)
        writer = Writer(source, target, count, rate, batch)
        writer.ready.wait(60)
        seen: list[tuple[int, int]] = []
        done = SEED_RECORDS
        while not writer.done() or done < SEED_RECORDS + count:
            with open_journal(target) as journal:
                length = len(journal)
                for _ in journal.records(done, verify=False):
                    pass
            if length > done:
                seen.append((length, time.monotonic_ns()))
                done = length
            time.sleep(poll_s)
        writer.join()
        return latencies_ms(writer.commits, seen)


async def cockpit_follow(
    source: Path, screen: str, poll_s: float, count: int, rate: int, batch: int
) -> dict[str, list[float]]:
    """Follow a growing journal with ``screen`` (centre or journal) on display: for every
    commit, the time until that screen shows it; every 0.5 s, a key press timed to its repaint."""
    with tempfile.TemporaryDirectory() as work:
        target = Path(work) / "growing"
        seed_journal(source, target, SEED_RECORDS)
        app = CockpitApp(cockpit_sources(target, follow=True, poll_interval_s=poll_s))
        seen: list[tuple[int, int]] = []
        keys: list[float] = []
        async with app.run_test(size=(100, 30)) as pilot:
            head, tail = app.query_one("#cc-head", Static), app.query_one("#tail", DataTable)
            while not (app.detail_ready and tail.row_count):
                await pilot.pause(0.01)
            await pilot.press("1" if screen == "centre" else "5")
            idle = [await press_to_repaint(app, pilot) for _ in range(4)]  # baseline: not following
            writer = Writer(source, target, count, rate, batch)
            cpu_started, wall_started = time.process_time(), time.monotonic()
            next_key = time.monotonic() + 0.5
            shown = SEED_RECORDS
            while not writer.done() or shown < SEED_RECORDS + count:
                # the widgets' contents, not a render of them: rendering every few ms would
                # load the UI thread the bench measures (Textual repaints at its next frame)
                if screen == "centre":
                    match = re.search(r"([\d,]+) records", str(head.content))
                    now_shown = int(match.group(1).replace(",", "")) if match else 0
                else:
                    now_shown = int(str(tail.get_row_at(tail.row_count - 1)[0])) + 1 if tail.row_count else 0
                if now_shown > shown:
                    seen.append((now_shown, time.monotonic_ns()))
                    shown = now_shown
                if time.monotonic() > next_key:
                    keys.append(await press_to_repaint(app, pilot))
                    next_key = time.monotonic() + 0.5
                await pilot.pause(0.01)
            writer.join()
            cpu_share = (time.process_time() - cpu_started) / (time.monotonic() - wall_started)
        return {
            f"{screen}: CPU s per s followed": [cpu_share * 1000],
            f"{screen}: commit to screen": latencies_ms(writer.commits, seen),
            f"{screen}: key to repaint": keys,
            f"{screen}: key to repaint, idle": idle,
        }


async def press_to_repaint(app: CockpitApp, pilot: Pilot[None]) -> float:
    """``?`` timed until the help screen is up and painted (ms); ``escape`` closes it again."""
    started = time.perf_counter()
    await pilot.press("question_mark")
    while not isinstance(app.screen, HelpScreen):
        await pilot.pause(0.001)
    await pilot.wait_for_scheduled_animations()
    elapsed = (time.perf_counter() - started) * 1000
    await pilot.press("escape")
    return elapsed


def poll_work(source: Path, seed: int, polls: int, per_poll: int) -> dict[str, list[float]]:
    """The journal screen's work per poll while it follows, without the UI (a worker's share):
    a journal seeded with ``seed`` of ``source``'s records grows by ``per_poll`` records before
    each poll. Timed for every poll, unfiltered and filtered (``kind:filled``):

    * before (the previous commit's poll): fold the appended records (``read_growth`` with no
      page) and read the last page again (``read_tail``: the last 200 records decoded and
      described; with a filter the scan goes up to ``SCAN_MAX`` records back);
    * now: fold the appended records and extend the page by the appended ones that match
      (``read_growth`` with the page, ``apply_growth``).

    Thread CPU time (``time.thread_time``: what the poll costs the process, little changed by
    other processes' load), ms per poll."""
    with open_journal(source) as handle:
        wanted = range(seed + polls * per_poll)
        events = [record.event() for record, _ in zip(handle.records(0, verify=False), wanted, strict=False)]
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as work:
        target = Path(work) / "growing"
        writer = open_journal(target, writable=True)
        for event in events[:seed]:
            writer.append(event)
        writer.commit()
        data = CockpitData(cockpit_sources(target, follow=False))
        data.overview, data.detail = data.read_overview(), data.read_detail()
        filters = {"": TailFilter(), "kind:filled": TailFilter.parse("kind:filled")}
        pages = {name: data.read_tail(tail_filter, None) for name, tail_filter in filters.items()}
        for poll in range(polls):
            for event in events[seed + poll * per_poll : seed + (poll + 1) * per_poll]:
                writer.append(event)
            writer.commit()
            start = data.overview.records
            for name, tail_filter in filters.items():
                label = f"filter {name}" if name else "no filter"
                began = time.thread_time()
                growth = data.read_growth(start, None)
                data.read_tail(tail_filter, None)
                results.setdefault(f"before, {label}", []).append((time.thread_time() - began) * 1000)
                began = time.thread_time()
                growth = data.read_growth(start, pages[name])
                data.tail = pages[name]
                if growth is not None:
                    data.apply_growth(growth)
                results.setdefault(f"now, {label}", []).append((time.thread_time() - began) * 1000)
                pages[name] = data.tail
                data.overview.records = data.detail.records = start  # the next filter folds the same records
            data.overview.records = data.detail.records = start + per_poll
        writer.close()
    return results


def summary_ms(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"median {statistics.median(ordered):7.1f} ms  p95 {p95:7.1f} ms  max {ordered[-1]:7.1f} ms  "
        f"({len(ordered)} samples)"
    )


def run_open(journal: Path, rounds: int) -> None:
    results = [asyncio.run(one_round(journal)) for _ in range(rounds)]
    for name in ("first screen", "orders folded", "report folds"):
        values = [result[name] for result in results]
        print(
            f"{name:<36} median {statistics.median(values):6.3f} s  (rounds: "
            f"{', '.join(f'{v:.3f}' for v in values)})"
        )
    first = statistics.median(result["first screen"] for result in results)
    print(f"target: first full command-centre screen < 1 s -- {'met' if first < 1 else 'MISSED'}")
    print("baselines (same journal, this run):")
    for name, seconds in open_baselines(journal).items():
        print(f"  {name:<34} {seconds:6.3f} s")


def run_follow(journal: Path, poll_s: float, rate: int, batch: int, seconds: float) -> None:
    count = int(rate * seconds)
    print(f"following: {count:,} records appended at {rate:,}/s in commits of {batch} "
          f"(after {SEED_RECORDS:,}), cockpit polling every {poll_s} s")  # fmt: skip
    cockpit = {}
    for screen in ("centre", "journal"):
        cockpit.update(asyncio.run(cockpit_follow(journal, screen, poll_s, count, rate, batch)))
    for name, values in cockpit.items():
        if "CPU" in name:  # the cockpit process's CPU time over the follow, per second of it
            print(f"  {name:<34} {values[0] / 1000:7.2f} (both threads; the Pilot's 10 ms checks included)")
            continue
        print(f"  {name:<34} {summary_ms(values)}")
    baseline = baseline_follow(journal, poll_s, count, rate, batch)
    print(f"  {'baseline: plain reader, same poll':<34} {summary_ms(baseline)}")
    behind = max([*cockpit["centre: commit to screen"], *cockpit["journal: commit to screen"], 0]) / 1000
    print(
        f"target: never more than 1 s behind -- {'met' if behind <= 1 else 'MISSED'} (worst {behind:.2f} s)"
    )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        source, target, start, end, rate, batch = sys.argv[2:8]
        writer_main(Path(source), Path(target), int(start), int(end), int(rate), int(batch))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the open bench (0: skip it)")
    parser.add_argument("--poll", type=float, default=0.1, help="the cockpit's poll interval when following")
    parser.add_argument("--rate", type=int, default=1000, help="records/s the writer appends")
    parser.add_argument("--batch", type=int, default=50, help="records per commit")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the writer appends")
    parser.add_argument("--journal", type=Path, help="an existing journal to open and follow (not built)")
    parser.add_argument("--code", type=Path, help="measure the cockpit of this checkout (read at import)")
    parser.add_argument(
        "--poll-work", type=int, default=0, metavar="SEED", help="time a poll's work, before and now"
    )
    args = parser.parse_args()
    journal = args.journal or build_journal()
    print(f"cockpit code: {CODE}")
    with open_journal(journal) as handle:
        records = len(handle)
    print(f"journal {journal}: {records:,} records")
    if args.poll_work:
        per_poll = max(1, int(args.rate * args.poll))
        print(f"poll work: {per_poll} records appended before each of 100 polls, after {args.poll_work:,}")
        for name, values in poll_work(journal, args.poll_work, 100, per_poll).items():
            print(f"  {name:<34} {summary_ms(values)}")
        return 0
    if args.rounds:
        run_open(journal, args.rounds)
    if args.seconds:
        run_follow(journal, args.poll, args.rate, args.batch, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
