"""``tape tearsheet``: PNG files with real charts (not blank images) and one self-contained
HTML page embedding them, for a run of two strategies, a sweep and a walk-forward."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cli.main import main
from tests.factories import make_dataset, record_experiments

plt = pytest.importorskip("matplotlib.pyplot", reason="needs matplotlib: pip install 'tape[research]'")

CONFIG = """
run_id = "sheet"
dataset = "data"
journal = "journals/sheet"
[[strategies]]
name = "sma_crossover"
params = {{ fast = 5, slow = 20, weight = 0.9, strategy_id = "trend" }}
[[strategies]]
name = "momentum"
params = {{ lookback = 40, skip = 5, top = 1, weight = 0.9, strategy_id = "rotation" }}
{extra}
"""


def _chart(png: bytes) -> np.ndarray:
    image = plt.imread(io.BytesIO(png), format="png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
    return image


def _assert_drawn(png: bytes) -> None:
    """Not an empty canvas: many distinct colours and ink on a good share of the pixels."""
    image = _chart(png)[:, :, :3]
    colours = np.unique((image * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50
    assert (image.mean(axis=2) < 0.9).mean() > 0.02  # not just a white page


def _assert_page(folder: Path, names: set[str]) -> None:
    page = (folder / "tearsheet.html").read_text()
    embedded = dict(re.findall(r"<img id='([^']+)' alt='[^']*' src='data:image/png;base64,([^']+)'>", page))
    assert set(embedded) == names
    for name, data in embedded.items():
        png = (folder / f"{name}.png").read_bytes()
        assert base64.b64decode(data) == png  # one self-contained file: the PNGs are inside
        _assert_drawn(png)


def test_a_runs_tearsheet_draws_every_chart_and_is_reproducible(tmp_path: Path) -> None:
    make_dataset(tmp_path / "data", symbols=3, bars=500)
    (tmp_path / "run.toml").write_text(CONFIG.format(extra=""))
    assert main(["backtest", str(tmp_path / "run.toml")]) == 0
    journal = tmp_path / "journals" / "sheet"
    assert main(["tearsheet", str(journal), "--out", str(tmp_path / "a")]) == 0
    _assert_page(tmp_path / "a", {"equity", "monthly", "rolling", "exposure", "trades", "strategies"})
    assert "Sortino" in (tmp_path / "a" / "tearsheet.html").read_text()  # the report's rows
    assert main(["tearsheet", str(journal), "--out", str(tmp_path / "b")]) == 0
    for png in (tmp_path / "a").glob("*.png"):
        assert (tmp_path / "b" / png.name).read_bytes() == png.read_bytes()


def test_sweep_and_walkforward_tearsheets(tmp_path: Path) -> None:
    make_dataset(tmp_path / "data", symbols=3, bars=400)
    grid = 'grid = { "strategies.0.params.fast" = [3, 5], "strategies.0.params.slow" = [20, 30] }'
    (tmp_path / "sweep.toml").write_text(CONFIG.format(extra=f"[sweep]\n{grid}"))
    assert main(["sweep", str(tmp_path / "sweep.toml"), "--workers", "1", "--out", str(tmp_path / "s")]) == 0
    assert main(["tearsheet", str(tmp_path / "s")]) == 0
    _assert_page(tmp_path / "s" / "tearsheet", {"sweep_fast_slow"})
    walk = f"[walkforward]\ntrain_days = 150\ntest_days = 80\n{grid}"
    (tmp_path / "wf.toml").write_text(CONFIG.format(extra=walk))
    out = str(tmp_path / "w")
    assert main(["walkforward", str(tmp_path / "wf.toml"), "--workers", "1", "--out", out]) == 0
    assert main(["tearsheet", str(tmp_path / "w")]) == 0
    _assert_page(tmp_path / "w" / "tearsheet", {"walkforward"})
    # --metric picks a sweep's heatmaps; for a walk-forward or a run it was silently ignored
    for what in (tmp_path / "w", tmp_path / "s" / "journals"):
        assert main(["tearsheet", str(what), "--metric", "sortino", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
    assert main(["tearsheet", str(tmp_path / "s"), "--metric", "sortino", "--out", str(tmp_path / "x")]) == 0


def test_a_journal_without_closed_days_is_refused(tmp_path: Path) -> None:
    assert main(["tearsheet", str(tmp_path / "nothing")]) == 2


def test_sweep_heatmaps_of_parameters_sharing_a_last_name_each_get_their_own_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two risk limits and a window: three heatmaps, three files and three ids, each named by
    the parameters' shortest unambiguous names; a metric that is not recorded is refused, naming
    the valid ones, before anything is written."""
    rows = [
        ({"risk.name.limit_e8": name, "risk.sector.limit_e8": sector, "strategy.params.fast": fast},
         {"sharpe": 0.1 * name / 10_000_000 + fast / 100, "annual_volatility": 0.1 + fast / 100})
        for name in (20_000_000, 30_000_000) for sector in (20_000_000, 30_000_000) for fast in (5, 10)
    ]  # fmt: skip
    record_experiments(tmp_path / "s" / "experiments.sqlite", "qa", rows)
    with pytest.raises(SystemExit) as refused:
        main(["tearsheet", str(tmp_path / "s"), "--metric", "bogus"])
    assert refused.value.code == 2
    assert "annual_volatility" in capsys.readouterr().err
    assert not (tmp_path / "s" / "tearsheet").exists()
    assert main(["tearsheet", str(tmp_path / "s"), "--metric", "annual_volatility"]) == 0
    names = {"sweep_name.limit_e8_sector.limit_e8", "sweep_name.limit_e8_fast", "sweep_sector.limit_e8_fast"}
    _assert_page(tmp_path / "s" / "tearsheet", names)
    assert "and 3 PNG files" in " ".join(capsys.readouterr().out.split())
    page = (tmp_path / "s" / "tearsheet" / "tearsheet.html").read_text()
    assert "best annual_volatility</td><td>15.0%" in page  # the lowest volatility is the best


def test_an_out_that_cannot_be_written_is_refused_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out`` under a file: refused in one line naming ``--out``, the folder and why, as
    every output option's path is (it was the bare ``[Errno 20] Not a directory: ...``), and
    before the page is drawn (by the option's type, ``cli.arguments.output_folder``)."""
    rows = [
        ({"strategy.params.fast": fast, "strategy.params.slow": 20}, {"sharpe": fast / 10})
        for fast in (5, 10)
    ]
    record_experiments(tmp_path / "s" / "experiments.sqlite", "qa", rows)
    (tmp_path / "file").write_text("")
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(["tearsheet", str(tmp_path / "s"), "--out", str(tmp_path / "file" / "sheet")])
    said = " ".join(capsys.readouterr().err.split())
    reason = f"cannot write it: {tmp_path / 'file'} is not a folder"
    assert refused.value.code == 2 and f"argument --out: {tmp_path / 'file' / 'sheet'}: {reason}" in said


def test_a_walkforwards_page_shows_the_stitched_max_drawdown(tmp_path: Path) -> None:
    """A run's page shows its max drawdown and longest drawdown; a walk-forward's showed the
    stitched return and Sharpe only. Both figures now, from the stitched returns through
    sim.performance.return_stats (the walk-forward's own stitched stats agree)."""
    import json

    import numpy as np

    from sim.performance import return_stats

    make_dataset(tmp_path / "data", symbols=3, bars=400)
    grid = 'grid = { "strategies.0.params.fast" = [3, 5], "strategies.0.params.slow" = [20] }'
    (tmp_path / "wf.toml").write_text(
        CONFIG.format(extra=f"[walkforward]\ntrain_days = 150\ntest_days = 80\n{grid}")
    )
    assert (
        main(["walkforward", str(tmp_path / "wf.toml"), "--workers", "1", "--out", str(tmp_path / "w")]) == 0
    )
    assert main(["tearsheet", str(tmp_path / "w")]) == 0
    stitched = json.loads((tmp_path / "w" / "walkforward.json").read_text())["stitched"]
    stats = return_stats(np.array(stitched["returns"]), 252)
    assert stats.max_drawdown < 0 and stats.max_drawdown_periods > 0
    assert stats.max_drawdown == stitched["stats"]["max_drawdown"]
    page = (tmp_path / "w" / "tearsheet" / "tearsheet.html").read_text()
    assert re.search(
        rf"stitched max drawdown</t[dh]>\s*<td[^>]*>{re.escape(f'{stats.max_drawdown:.2%}')}<", page
    )
    days = f"{stats.max_drawdown_periods:,} days"
    assert re.search(rf"stitched longest drawdown</t[dh]>\s*<td[^>]*>{re.escape(days)}<", page)


def test_a_walkforward_chart_title_keeps_the_walkforwards_own_annualisation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On 24x7 data the walk-forward annualises on 365 sessions (walkforward.json's stats); the
    chart's title recomputed its Sharpe on 252, so the title and the page disagreed."""
    import matplotlib.axes

    from sim.performance import return_stats
    from sim.tearsheet import walkforward_figures

    returns = np.random.default_rng(3).normal(0.001, 0.01, 400)
    from datetime import date, timedelta

    days = [int((date(2021, 1, 1) + timedelta(days=k)).strftime("%Y%m%d")) for k in range(400)]
    stats = return_stats(returns, 365)
    report = {
        "run_id": "wf",
        "folds": [{"test": ["2021-01-01", "2022-02-04"]}],
        "stitched": {"days": days, "returns": returns.tolist(), "stats": stats.__dict__},
    }
    titles: list[str] = []
    real = matplotlib.axes.Axes.set_title

    def set_title(self: Any, text: str, *args: Any, **kwargs: Any) -> Any:
        titles.append(text)
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", set_title)
    walkforward_figures(report)
    assert f"{return_stats(returns, 252).sharpe:.2f}" != f"{stats.sharpe:.2f}"  # the test can tell them apart
    assert titles and f"Sharpe {stats.sharpe:.2f}," in titles[0]
    longest = f"(longest {stats.max_drawdown_periods:,} sessions)"
    assert f"max drawdown {stats.max_drawdown:.1%} {longest}" in titles[0]
