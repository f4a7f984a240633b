"""``tape report``'s outputs: ``-`` is stdout for each option that writes one file (the data
alone there, the tables on stderr), ``--csv DIR`` (several files) refuses it, and drawdowns
print negative, as the report's JSON and every research table give them (QA: ``--orders -``
and ``--strategies -`` wrote a file called ``-``, ``--csv -`` a folder, and the report printed
``max drawdown 31.98%`` beside research tables of ``-4.6%``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main as tape
from tests.factories import two_sleeve_run


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return two_sleeve_run(tmp_path_factory.mktemp("report-outputs"), "outputs")


@pytest.mark.parametrize(("option", "name"), [("--orders", "orders.csv"), ("--strategies", "strategies.csv")])
def test_a_dash_puts_the_file_alone_on_stdout(
    journal: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    option: str,
    name: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert tape(["report", str(journal), option, str(tmp_path / name)]) == 0
    capsys.readouterr()
    assert tape(["report", str(journal), option, "-"]) == 0
    captured = capsys.readouterr()
    assert captured.out == (tmp_path / name).read_bytes().decode()  # the same bytes as the file
    assert captured.out.count("\n") > 2
    assert "execution quality by strategy" in captured.err  # the tables: on stderr
    assert "wrote" not in captured.out + captured.err
    assert not (tmp_path / "-").exists()


def test_csv_into_a_dash_is_refused_before_any_work(
    journal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--csv DIR`` writes several files: ``-`` is no folder (it made one called ``-``)."""
    monkeypatch.chdir(tmp_path)
    assert tape(["report", str(journal), "--csv", "-"]) == 2
    out = " ".join(capsys.readouterr().err.split())  # `-` asked for stdout: the error on stderr
    assert "--csv takes a folder" in out, out
    assert "execution quality" not in out  # refused before the report is folded
    assert not (tmp_path / "-").exists()
    # Two outputs on stdout would be mixed there: refused, naming both.
    assert tape(["report", str(journal), "--json", "-", "--orders", "-"]) == 2
    out = " ".join(capsys.readouterr().err.split())
    assert "--json - and --orders - both write to stdout" in out and "give the other a file" in out, out
    assert list(tmp_path.iterdir()) == []


def test_drawdowns_print_negative_as_the_json_holds_them(
    journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli.progress import console

    monkeypatch.setattr(console, "width", 80)
    assert tape(["report", str(journal), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    drawdown = report["summary"]["returns"]["max_drawdown"]
    assert drawdown < 0  # as sim.performance and empyrical give it: unchanged
    row = next(line for line in out.splitlines() if "max drawdown" in line)
    assert f"{drawdown:.2%}" in row, row
    sleeves = {row["strategy"]: row["max_drawdown"] for row in report["strategies"]}
    assert sleeves["book"] is None  # the book's is the summary's
    for strategy in ("fast", "slow"):
        assert sleeves[strategy] < 0
        line = next(line for line in out.splitlines() if line.split()[:1] == [strategy])
        assert f"{sleeves[strategy]:.2%}" in line.split(), line
    assert max(len(line) for line in out.splitlines()) <= 80


def test_a_long_journal_path_in_the_title_breaks_between_its_folders(
    journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The title was the summary table's, wrapped to that table's width inside a name
    (``.../ml_ranke`` / ``r_us``); it is its own lines, broken after a '/' or '_' at the
    terminal's width, the path whole when the pieces are put together."""
    from cli.progress import console

    deep = tmp_path / "a_rather_long_folder_name" / "another_folder_for_the_runs" / "momentum_ranker_us"
    deep.parent.mkdir(parents=True)
    deep.symlink_to(journal, target_is_directory=journal.is_dir())
    monkeypatch.setattr(console, "width", 60)
    assert tape(["report", str(deep)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 60
    start = next(i for i, line in enumerate(lines) if line.startswith("report "))
    title = []
    for line in lines[start:]:
        title.append(line.strip())
        if line.rstrip().endswith("momentum_ranker_us"):
            break
    assert "".join(title) == f"report {deep}", title
    assert all(piece.endswith(("/", "_", "us")) for piece in title), title  # never inside a word
