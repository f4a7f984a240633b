"""SVG snapshots of every cockpit screen at 80x24 and at 140x40, compared with the committed
ones in ``tests/snapshots/svg/``, and the 80-column readability rule: every table shows whole
columns within the screen's width and nothing on any screen is cut to an ellipsis.

What would differ between two runs is taken out of the screen, not out of the SVG: the run is
built in a temporary directory with relative paths (``data``, ``journal``), so the header (the
journal's path) and the data screen (the data set's uri) read the same on every machine;
animations are off (the tab underline slides); focus is taken off every widget before a
screenshot (an input's cursor blinks, a table's cursor row is coloured by whether the table
has focus). The comparison is then exact but for trailing white space (Textual's
``terminal-NNN`` class prefix is a hash of the screen's content). Update after an intended
change with ``make test-snapshot-update`` (``TAPE_UPDATE_SNAPSHOTS=1``); a mismatch writes the
new screenshot to ``tests/snapshots/output/`` to look at.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Footer, Tab

from cli.cockpit_cmd import cockpit_sources
from tests.factories import make_config, make_dataset, run
from tui import CockpitApp
from tui.tables import TABLES

HERE = Path(__file__).parent
EXPECTED = HERE / "svg"
OUTPUT = HERE / "output"
SIZES = ((80, 24), (140, 40))
UPDATE = os.environ.get("TAPE_UPDATE_SNAPSHOTS") == "1"
REPLAY_DAY = "2020-06-01"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("snapshots")
    cwd = Path.cwd()
    os.chdir(root)
    try:
        make_dataset(Path("data"), symbols=4, bars=300)
        run(make_config(Path("data"), Path("journal")))
    finally:
        os.chdir(cwd)
    return root


async def until(pilot: Pilot[None], condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.perf_counter() + seconds
    while not condition():
        assert time.perf_counter() < deadline, "the cockpit did not get there in time"
        await pilot.pause(0.05)


def normalise(svg: str) -> str:
    """The SVG without trailing white space (an editor's or git's, never Textual's)."""
    return "\n".join(line.rstrip() for line in svg.strip().splitlines())


def screen_text(svg: str) -> str:
    """The characters drawn on the screen (the SVG's text nodes)."""
    return "".join(re.findall(r">([^<]*)</text>", svg))


def readability_problems(app: CockpitApp, name: str) -> list[str]:
    """Tables of the active screen wider than the screen, a cell wider than its column, or a
    tab label not whole on the screen (the tabs scroll: "8 Command" or " Centre" at 80)."""
    problems = [
        f"{name}: tab {tab.label} is cut (columns {tab.region.x}..{tab.region.right} of {app.size.width})"
        for tab in app.query(Tab)
        if tab.region.x < 0 or tab.region.right > app.size.width
    ]
    problems += [  # a key of the footer scrolled off the screen (on the replay: help and quit)
        f"{name}: footer key {getattr(key, 'key', '?')} {getattr(key, 'description', '')} is cut"
        for key in app.screen.query_one(Footer).children
        if key.region.right > app.size.width
    ]
    for table in app.query(DataTable):
        if f"#{table.id}" not in TABLES or table.region.width == 0:
            continue
        width = sum(column.get_render_width(table) for column in table.columns.values())
        room = table.scrollable_content_region.width
        if width > room:
            problems.append(f"{name}: #{table.id} is {width} wide in {room}")
        wrapping = {column.label for column in TABLES[f"#{table.id}"] if column.wraps}
        for key, column in table.columns.items():
            if str(column.label) in wrapping:  # free text: its cells wrap onto more lines
                continue
            for row_key in table.rows:
                cell = str(table.get_cell(row_key, key))
                if len(cell) > column.get_render_width(table) - 2:
                    problems.append(f"{name}: #{table.id} cuts {cell!r} in column {column.label}")
    return problems


async def visit(app: CockpitApp, pilot: Pilot[None], screen: str) -> None:
    """Go to one screen and wait until everything it shows has loaded."""
    if screen == "why":
        await pilot.press("2")
        app.query_one("#blotter", DataTable).focus()
        await pilot.press("w")
        await until(pilot, lambda: app.query_one("#why-table", DataTable).row_count > 0)
    elif screen == "replay":
        await pilot.press("6", "slash", *REPLAY_DAY, "enter")
        await until(pilot, lambda: app.data.tape is not None and app.data.replay_result is not None)
        await pilot.press("right_square_bracket")
    else:
        await pilot.press(str(("centre", "orders", "positions", "why", "journal", "replay", "data",
                               "commands").index(screen) + 1))  # fmt: skip
    if screen == "positions":
        await until(pilot, lambda: app.data.marks is not None)
    if screen == "journal":
        await until(pilot, lambda: app.query_one("#tail", DataTable).row_count > 0)
    await app.workers.wait_for_complete()
    app.screen.set_focus(None)  # no blinking input cursor, no focused-or-not table cursor colour
    await pilot.wait_for_scheduled_animations()
    await pilot.pause(0.2)


SCREENS = ("centre", "orders", "positions", "why", "journal", "replay", "data", "commands")


@pytest.mark.asyncio
@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
async def test_every_screen_matches_its_snapshot_and_is_readable(
    workdir: Path, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    app = CockpitApp(cockpit_sources(Path("journal"), follow=False))
    app.animation_level = "none"  # the tab underline would be caught mid-slide
    mismatched, unreadable = [], []
    async with app.run_test(size=size) as pilot:
        data = app.data
        await until(pilot, lambda: app.detail_ready and None not in (data.summary, data.execution))
        for screen in SCREENS:
            await visit(app, pilot, screen)
            name = f"cockpit_{screen}_{size[0]}x{size[1]}.svg"
            svg = app.export_screenshot(title=name.removesuffix(".svg"))
            assert "…" not in screen_text(svg), f"{name}: something on the screen is cut to an ellipsis"
            if size[0] <= 80:
                unreadable += readability_problems(app, screen)
            if UPDATE:
                EXPECTED.mkdir(exist_ok=True)
                (EXPECTED / name).write_text(svg)
                continue
            expected = EXPECTED / name
            if not expected.exists() or normalise(expected.read_text()) != normalise(svg):
                OUTPUT.mkdir(exist_ok=True)
                (OUTPUT / name).write_text(svg)
                mismatched.append(name)
    assert unreadable == []
    assert mismatched == [], (
        f"screens differ from tests/snapshots/svg (new ones in tests/snapshots/output): {mismatched}; "
        "after an intended change run `make test-snapshot-update`"
    )
