"""``tape report`` of a book of several currencies splits the NAV change into each other
currency's FX PnL (what it held at the previous close revalued at the close's rate) and the
trading PnL (the rest), exactly in minor units. Before, the report gave the NAV alone: a USD book
holding CNY saw its NAV move on a day when only the CNY rate moved, with nothing to say so.

CONSTRUCTED two-currency book (``tests.factories.two_currency_run``: USD base, 1,000,000 USD and
5,000,000 CNY, the CNY rate 0.140, 0.143, 0.146, 0.149, 0.152 USD) whose prices are chosen so
that the second day has a trade and a rate move and the third a rate move alone; the figures of
those two days were worked by hand (below) and are checked to the cent."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cli.main import main as tape
from cli.progress import console
from domain.events import CurrenciesMarked, DayClosed, Event
from kernel.store import open_journal
from sim.metrics import RunFold
from tests.factories import two_currency_run

# AAA (USD) and BBB (CNY), cents: both bought at the second day's price (10.10 USD, 9.90 CNY),
# unchanged on the third, moving after.
CLOSES = {1: [1000, 1010, 1010, 1020, 1050], 2: [1000, 990, 990, 1040, 1005]}


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return two_currency_run(tmp_path_factory.mktemp("fx-pnl"), closes=CLOSES)


def _cents(value: float) -> int:
    return round(value * 100)


def _daily_split(events: list[Event]) -> list[tuple[int, int, int, int]]:
    """(day, NAV change, FX PnL of CNY, trading PnL) in cents, day by day: the report's running
    figures as a run's ``RunFold`` gives them at each close."""
    fold, rows, before = RunFold(), [], (0, 0, 0)
    for event in events:
        fold.add(event)
        if isinstance(event, CurrenciesMarked):
            report, _ = fold.report_and_navs()
            now = (_cents(report.final_nav - report.initial_nav), _cents(report.fx_pnl["CNY"]),
                   _cents(report.trading_pnl))  # fmt: skip
            rows.append((event.day, *(a - b for a, b in zip(now, before, strict=True))))
            before = now
    return rows


def test_fx_and_trading_pnl_by_hand(journal: Path) -> None:
    with open_journal(journal) as handle:
        events = [event for _, event in handle.events()]
    navs = {e.day: e.nav_minor for e in events if isinstance(e, DayClosed)}
    assert navs[20240102] == 170_000_000  # 1,000,000 USD + 5,000,000 CNY at 0.14
    days = {day: (change, fx, trading) for day, change, fx, trading in _daily_split(events)}
    # Day 1: nothing held before the first close (the initial NAV is valued at its rates).
    assert days[20240102] == (0, 0, 0)
    # Day 2, a trade and a rate move. Held at day 1's close: 5,000,000.00 CNY, worth
    # 700,000.00 USD at 0.140 and 715,000.00 at 0.143: FX PnL 15,000.00. Bought 17,000 AAA at
    # 10.10 USD (commission 171.70 USD) and 121,428 BBB at 9.90 CNY (commission 1,202.14 CNY =
    # 171.91 USD at 0.143), both closing at their fill price: trading PnL -343.61, the fees.
    # NAV 1,700,000.00 -> 1,714,656.39: +14,656.39 = 15,000.00 - 343.61.
    assert navs[20240103] == 171_465_639
    assert days[20240103] == (1_465_639, 1_500_000, -34_361)
    # Day 3, the rate alone (0.143 -> 0.146), no price moved, nothing traded. Held at day 2's
    # close: 4,998,797.86 CNY (3,796,660.66 cash + 121,428 x 9.90), worth 714,828.09 USD at
    # 0.143 (714,828.093...) and 729,824.49 at 0.146 (729,824.487...): FX PnL 14,996.40, and
    # all of the NAV change; trading PnL 0.
    assert navs[20240104] - navs[20240103] == 1_499_640
    assert days[20240104] == (1_499_640, 1_499_640, 0)
    # Every day, and so the whole run: FX + trading = the NAV change, to the cent.
    assert all(change == fx + trading for change, fx, trading in days.values())


@pytest.mark.parametrize("width", [80, 120])
def test_the_report_prints_and_writes_the_split(
    journal: Path,
    tmp_path: Path,
    width: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(console, "width", width)
    out_json, out_csv = tmp_path / "r.json", tmp_path / "csv"
    assert tape(["report", str(journal), "--json", str(out_json), "--csv", str(out_csv)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= width
    summary = json.loads(out_json.read_text())["summary"]
    with (out_csv / "summary.csv").open() as handle:
        flat = {row["metric"]: row["value"] for row in csv.DictReader(handle)}
    split = summary["pnl_by_source"]
    change = _cents(summary["final_nav"] - summary["initial_nav"])
    assert _cents(split["nav_change"]) == change
    assert _cents(split["fx"]["CNY"]) + _cents(split["trading"]) == change
    assert set(split["fx"]) == {"CNY"}  # the base has no FX PnL
    assert float(flat["pnl_by_source.fx.CNY"]) == split["fx"]["CNY"]
    assert float(flat["pnl_by_source.trading"]) == split["trading"]
    assert float(flat["pnl_by_source.nav_change"]) == split["nav_change"]
    assert any("PnL by source" in line and "base USD" in line for line in lines)
    for label, value in (("NAV change", split["nav_change"]), ("FX PnL CNY", split["fx"]["CNY"]),
                         ("trading PnL", split["trading"])):  # fmt: skip
        row = next(line for line in lines if label in line)  # whole on one line
        assert f"{value:,.2f} USD" in row, row
