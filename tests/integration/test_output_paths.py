"""Every output path a verb is given is checked before the verb does any work
(``cli.arguments.output_file`` / ``output_folder``, the argparse type of every ``--json [PATH]``,
``--csv PATH``, ``report --orders`` / ``--strategies`` / ``--csv DIR``, ``qlib import --signal``,
``tearsheet --out`` and the research verbs' ``--out DIR``):

* an empty path (``--json ""``, an unset ``$OUT``) is refused, exit 2: it was silently ignored
  (the verb ran and wrote nothing);
* a path that cannot be written (a folder where the file goes, a file where a folder goes, no
  permission) is refused, exit 2, naming it and why: it was found only after the backtest, the
  rebuild or the sweep had run, and the results were lost;
* the check creates nothing: a folder to make is made when the file is written;
* an output that cannot be stdout (a folder of files, the signal a strategy reads back) refuses
  ``-``: it became a file or a folder named ``-``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.arguments import output_file, output_folder
from cli.main import EXIT_REFUSED, build_parser, main
from tests.factories import make_config, make_dataset, run

FILE_OPTIONS = ("--json", "--csv", "--orders", "--strategies")
VERB_FILE_OPTIONS = {("qlib", "--signal")}  # a file the verb writes, under another name
FOLDER_OPTIONS = {  # several files into a folder
    ("report", "--csv"), ("tearsheet", "--out"), ("sweep", "--out"), ("walkforward", "--out"),
    ("montecarlo", "--out"),
}  # fmt: skip

CONFIG = """
run_id = "outputs"
seed = 11
dataset = "data"
journal = "journal"
initial_cash = "250000.00"

[strategy]
name = "sma_crossover"
params = {{ fast = 4, slow = 12, weight = 0.9 }}
"""


def _verbs(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> Iterator[
    tuple[tuple[str, ...], argparse.ArgumentParser]
]:  # fmt: skip
    """Every verb's words (``("projections", "rebuild")``) and its parser."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield words, parser
    for action in subparsers:
        for name, sub in action.choices.items():
            yield from _verbs(sub, (*words, name))


def _outputs() -> list[tuple[tuple[str, ...], argparse.ArgumentParser, argparse.Action]]:
    found = []
    for words, parser in _verbs(build_parser()):
        for action in parser._actions:
            option = action.option_strings[-1] if action.option_strings else None
            if option in FILE_OPTIONS or (words[0], option) in VERB_FILE_OPTIONS | FOLDER_OPTIONS:
                found.append((words, parser, action))
    return found


OUTPUTS = _outputs()


def _argv(words: tuple[str, ...], parser: argparse.ArgumentParser, option: str, value: str) -> list[str]:
    """The verb's words, the option, then a placeholder for each positional (so the line
    parses; the option first, as a typed positional's placeholder would be refused first)."""
    positionals = [
        next(iter(action.choices)) if action.choices else "NOPE"
        for action in parser._actions
        if not action.option_strings and action.nargs != argparse.SUPPRESS
    ]
    return [*words, option, value, *(str(p) for p in positionals)]


def _is_folder_option(words: tuple[str, ...], option: str) -> bool:
    return (words[0], option) in FOLDER_OPTIONS


def _id(case: tuple[tuple[str, ...], argparse.ArgumentParser, argparse.Action]) -> str:
    words, _, action = case
    return " ".join((*words, action.option_strings[0]))


def test_the_walk_finds_every_verbs_outputs() -> None:
    """The parametrised tests below cover what this walk finds: the verbs' outputs, not nothing."""
    named = {_id(case) for case in OUTPUTS}
    assert len(OUTPUTS) > 40
    for expected in ("backtest --json", "report --orders", "report --csv", "sweep --csv",
                     "projections rebuild --json", "tearsheet --out", "paper --json",
                     "qlib import --signal", "sweep --out", "walkforward --out",
                     "montecarlo --out"):  # fmt: skip
        assert expected in named


@pytest.mark.parametrize("case", OUTPUTS, ids=_id)
def test_every_output_option_has_the_checking_type(
    case: tuple[tuple[str, ...], argparse.ArgumentParser, argparse.Action],
) -> None:
    words, _, action = case
    expected = output_folder if _is_folder_option(words, action.option_strings[0]) else output_file
    assert action.type is expected


@pytest.mark.parametrize("case", OUTPUTS, ids=_id)
def test_an_empty_output_path_is_refused_by_every_verb(
    case: tuple[tuple[str, ...], argparse.ArgumentParser, argparse.Action],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--json ""`` parsed, and the verb ran and wrote nothing (``if args.json:``)."""
    words, parser, action = case
    option = action.option_strings[0]
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(_argv(words, parser, option, ""))
    assert refused.value.code == EXIT_REFUSED
    err = " ".join(capsys.readouterr().err.split())
    assert f"error: argument {option}: an empty path: give a" in err, err


@pytest.mark.parametrize("case", OUTPUTS, ids=_id)
def test_an_output_path_that_cannot_be_written_is_refused_by_every_verb(
    case: tuple[tuple[str, ...], argparse.ArgumentParser, argparse.Action],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    words, parser, action = case
    option = action.option_strings[0]
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-folder").mkdir()
    blocked = tmp_path / "a-file" / "out"  # a file where a folder must be
    cases = [(blocked, f"{blocked}: cannot write it: {tmp_path / 'a-file'} is not a folder")]
    if _is_folder_option(words, option):
        cases.append(
            (tmp_path / "a-file", f"{tmp_path / 'a-file'}: cannot write files in it: it is not a folder")
        )
    else:
        cases.append((tmp_path / "a-folder", f"{tmp_path / 'a-folder'}: cannot write it: it is a folder"))
    for path, reason in cases:
        with pytest.raises(SystemExit) as refused:
            build_parser().parse_args(_argv(words, parser, option, str(path)))
        assert refused.value.code == EXIT_REFUSED
        err = " ".join(capsys.readouterr().err.split())
        assert f"error: argument {option}: {reason}" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder"]  # nothing made


def test_a_writable_path_a_folder_to_make_and_stdout_pass_unchanged(tmp_path: Path) -> None:
    """A folder that does not exist yet is made when the file is written, not by the check."""
    (tmp_path / "a-folder").mkdir()
    for text in ("-", str(tmp_path / "new" / "deeper" / "x.json"), str(tmp_path / "x.json"), "x.json"):
        assert output_file(text) == text
    for text in ("-", str(tmp_path / "a-folder"), str(tmp_path / "new" / "csv"), "csv-out"):
        assert output_folder(text) == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder: nothing to refuse")
def test_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(argparse.ArgumentTypeError, match="no permission to write in"):
            output_file(str(locked / "x.json"))
        with pytest.raises(argparse.ArgumentTypeError, match="no permission to write in"):
            output_folder(str(locked / "csv"))
    finally:
        locked.chmod(0o755)


def test_strategies_with_an_empty_json_path_is_refused_not_run(capsys: pytest.CaptureFixture[str]) -> None:
    """Through ``tape`` itself: ``tape strategies --json ""`` listed the strategies, exit 0."""
    with pytest.raises(SystemExit) as refused:
        main(["strategies", "--json", ""])
    assert refused.value.code == EXIT_REFUSED
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "tape strategies: error: argument --json: an empty path" in captured.err


def test_a_backtest_with_an_unwritable_output_is_refused_before_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tape backtest CONFIG --json FOLDER`` ran the whole backtest, then said it could not
    write its summary (exit 2, the run's journal left behind, its summary lost)."""
    make_dataset(tmp_path / "data", symbols=2, bars=60)
    (tmp_path / "run.toml").write_text(CONFIG.format())
    (tmp_path / "taken").mkdir()
    monkeypatch.chdir(tmp_path)
    for option in ("--json", "--csv"):
        with pytest.raises(SystemExit) as refused:
            main(["backtest", "run.toml", option, "taken"])
        assert refused.value.code == EXIT_REFUSED
        assert f"argument {option}: taken: cannot write it: it is a folder" in capsys.readouterr().err
        assert not (tmp_path / "journal").exists()  # nothing run


def test_report_and_rebuild_refuse_unwritable_outputs_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``report --csv FILE`` (a folder is needed: several files), ``--orders`` / ``--strategies``
    into a folder, ``rebuild --json`` under a file: each refused before the journal is read or
    the ledger built (the rebuild built its ledger, then lost the checksums)."""
    journal = tmp_path / "j"
    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=60), journal))
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-folder").mkdir()
    ledger = tmp_path / "ledger.sqlite"
    for argv in (
        ["report", str(journal), "--csv", str(tmp_path / "a-file")],
        ["report", str(journal), "--orders", str(tmp_path / "a-folder")],
        ["report", str(journal), "--strategies", str(tmp_path / "a-folder")],
        ["rebuild", str(journal), "--db", str(ledger), "--json", str(tmp_path / "a-file" / "x.json")],
        ["projections", "rebuild", str(journal), "--db", str(ledger), "--csv", str(tmp_path / "a-folder")],
    ):
        capsys.readouterr()
        with pytest.raises(SystemExit) as refused:
            main(argv)
        assert refused.value.code == EXIT_REFUSED, argv
        captured = capsys.readouterr()
        assert "cannot write" in captured.err and captured.out == "", (argv, captured)
        assert not ledger.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder", "d", "j"]


def test_the_research_verbs_refuse_an_unwritable_out_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sweep`` / ``walkforward`` / ``montecarlo --perturb`` ``--out`` where a file is: refused
    with an ``Errno`` line naming the TOML (``[Errno 17] File exists``) once the data were read;
    ``montecarlo`` ran and printed its bootstrap first. Now exit 2 before any work, naming
    ``--out`` and why."""
    journal = tmp_path / "j"
    run(make_config(make_dataset(tmp_path / "d", symbols=2, bars=60), journal))
    (tmp_path / "a-file").write_text("")
    (tmp_path / "run.toml").write_text(CONFIG.format())
    for out in (tmp_path / "a-file", tmp_path / "a-file" / "out"):
        for argv in (
            ["sweep", str(tmp_path / "run.toml"), "--workers", "1"],
            ["walkforward", str(tmp_path / "run.toml"), "--workers", "1"],
            ["montecarlo", str(journal), "--samples", "20", "--perturb", "2", "--workers", "1"],
        ):
            with pytest.raises(SystemExit) as refused:
                main([*argv, "--out", str(out)])
            assert refused.value.code == EXIT_REFUSED, argv
            captured = capsys.readouterr()
            assert captured.out == "", (argv, captured.out)  # no bootstrap table: nothing ran
            assert f"argument --out: {out}: cannot write" in " ".join(captured.err.split()), argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "d", "j", "run.toml"]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["tearsheet", "NOPE", "--out", "-"], "--out takes a folder (tearsheet.html"),
        (["sweep", "NOPE.toml", "--out", "-"], "--out takes a folder (experiments.sqlite and the journals)"),
        (
            ["walkforward", "NOPE.toml", "--out", "-"],
            "--out takes a folder (experiments.sqlite and walkforward",
        ),
        (["montecarlo", "NOPE", "--perturb", "2", "--out", "-"], "--out takes a folder (the perturbed runs'"),
        (
            ["qlib", "import", "NOPE.csv", "--export", "NOPE", "--signal", "-"],
            "--signal takes the parquet file",
        ),
    ],
    ids=["tearsheet --out", "sweep --out", "walkforward --out", "montecarlo --out", "qlib import --signal"],
)
def test_an_output_that_cannot_be_stdout_refuses_a_dash(
    argv: list[str],
    said: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``tearsheet --out -`` wrote its page into a folder named ``-``, ``qlib import --signal -``
    a parquet file named ``-`` (and told the strategy to read it there): refused, exit 2, before
    the inputs are read (the inputs here do not exist: the ``-`` is refused first)."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == EXIT_REFUSED
    captured = capsys.readouterr()
    assert said in " ".join(captured.out.split()) and "cannot be '-' (stdout)" in captured.out, captured
    assert list(tmp_path.iterdir()) == []
