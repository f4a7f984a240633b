"""``tape tearsheet``'s HTML page opened in headless Chromium: every embedded chart decodes and
is laid out at its size, and the screenshot of the page shows the charts (not an empty page).

Needs Playwright (the dev extra) and a Chromium it can drive: ``TAPE_CHROMIUM`` (a path), a
``chromium-headless-shell`` / ``chromium`` on PATH (Debian: ``apt-get install
chromium-headless-shell``), or a browser Playwright installed itself. Skipped otherwise, saying
which is missing. Playwright's own ``playwright install`` downloads a browser build from outside
the package registries, so this test does not rely on it.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cli.main import main
from tests.factories import make_dataset

plt = pytest.importorskip("matplotlib.pyplot", reason="needs matplotlib: pip install 'tape[research]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")

CHARTS = {"equity", "monthly", "rolling", "exposure", "trades", "strategies"}
CONFIG = """
run_id = "sheet"
dataset = "data"
journal = "journals/sheet"
[[strategies]]
name = "sma_crossover"
params = { fast = 5, slow = 20, weight = 0.9, strategy_id = "trend" }
[[strategies]]
name = "momentum"
params = { lookback = 40, skip = 5, top = 1, weight = 0.9, strategy_id = "rotation" }
"""


def _chromium() -> str | None:
    """A Chromium executable: TAPE_CHROMIUM, one on PATH, or Playwright's own (None: none)."""
    configured = os.environ.get("TAPE_CHROMIUM")
    if configured:
        return configured
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    with sync_api.sync_playwright() as playwright:
        own = playwright.chromium.executable_path
    return own if Path(own).is_file() else None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium for Playwright: apt-get install chromium-headless-shell, or set TAPE_CHROMIUM",
)


def _ink(png: bytes) -> tuple[int, float]:
    """Distinct colours and the share of non-white pixels of a screenshot."""
    image = plt.imread(io.BytesIO(png), format="png")[:, :, :3]
    colours = len(np.unique((image * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    return colours, float((image.mean(axis=2) < 0.9).mean())


def _render(page_path: Path) -> tuple[list[dict[str, Any]], dict[str, bytes], bytes]:
    """Open the page in headless Chromium: each <img>'s state, each <img>'s screenshot and the
    whole page's."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(page_path.as_uri())
            page.wait_for_load_state("load")
            images = page.eval_on_selector_all(
                "img",
                "els => els.map(e => ({id: e.id, complete: e.complete, natural: e.naturalWidth,"
                " shown: e.getBoundingClientRect().width}))",
            )
            shots = {str(i["id"]): page.locator(f"img#{i['id']}").screenshot() for i in images}
            whole = page.screenshot(full_page=True)
        finally:
            browser.close()
    return images, shots, whole


def _blank_charts(shots: dict[str, bytes]) -> list[str]:
    """The charts whose painted pixels look like an empty canvas."""
    blank = []
    for name, shot in shots.items():
        colours, ink = _ink(shot)
        if colours <= 50 or ink <= 0.02:
            blank.append(name)
    return blank


def test_the_tearsheet_renders_its_charts_in_headless_chromium(tmp_path: Path) -> None:
    make_dataset(tmp_path / "data", symbols=3, bars=500)
    (tmp_path / "run.toml").write_text(CONFIG)
    assert main(["backtest", str(tmp_path / "run.toml")]) == 0
    assert main(["tearsheet", str(tmp_path / "journals" / "sheet"), "--out", str(tmp_path / "sheet")]) == 0
    images, shots, whole = _render(tmp_path / "sheet" / "tearsheet.html")
    assert {image["id"] for image in images} == CHARTS
    for image in images:
        assert image["complete"], image
        assert image["natural"] > 400, image  # the PNG decoded in the browser
        assert image["shown"] > 200, image  # and is laid out, not collapsed
    assert _blank_charts(shots) == []  # each chart as the browser painted it, not a blank box
    colours, ink = _ink(whole)
    assert colours > 100
    assert ink > 0.05  # the page shows the charts, not an empty page


def test_canary_a_page_of_blank_images_is_caught(tmp_path: Path) -> None:
    """The checker must fail on a page whose images are empty canvases of the charts' size."""
    blank = tmp_path / "blank.png"
    plt.imsave(blank, np.ones((500, 900, 3)))
    tags = "".join(f"<img id='{name}' alt='' src='{blank.name}'>" for name in sorted(CHARTS))
    (tmp_path / "page.html").write_text(f"<html><body>{tags}</body></html>")
    images, shots, whole = _render(tmp_path / "page.html")
    assert len(images) == len(CHARTS)
    assert sorted(_blank_charts(shots)) == sorted(CHARTS)
    assert _ink(whole)[1] <= 0.05
