import json

import nbformat
import pytest

from helpers import register, write_chapter
from repro import chapters, cli, runner
from repro.claims import CHECK_PASSED, REPRODUCED


def test_a_crashing_chapter_is_recorded_as_failed_with_its_traceback(tmp_path, monkeypatch):
    register(monkeypatch, write_chapter(tmp_path, crash=True))
    result = runner.run_chapter("crashing", {"scale": "smoke"}, progress=False)
    assert result.status == "failed" and "the experiment diverged" in result.error
    assert [c["verdict"] for c in result.claims] == [REPRODUCED, CHECK_PASSED]  # what ran before the crash is kept
    nb = nbformat.read(result.notebook, as_version=4)
    assert "This chapter failed" in nb.cells[0].source
    assert any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    status = json.loads(runner.status_path(chapters.get("crashing")).read_text())
    assert status["status"] == "failed"
    assert runner.status_line(chapters.get("crashing")).startswith("failed at")


def test_a_clean_chapter_records_its_claims(tmp_path, monkeypatch):
    register(monkeypatch, write_chapter(tmp_path, crash=False))
    result = runner.run_chapter("demo", {"seed": 3}, progress=False)
    assert result.status == "ran" and result.parameters["seed"] == 3 and len(result.claims) == 2
    # the check is reported apart and never counts as a reproduction
    assert "claims reproduced 1/1; checks 1/1 passed" in runner.status_line(chapters.get("demo"))


def test_bad_parameters_stop_before_anything_runs(tmp_path, monkeypatch):
    register(monkeypatch, write_chapter(tmp_path, crash=False))
    out = tmp_path / "never.ipynb"
    with pytest.raises(Exception, match="it accepts one of 'smoke', 'default', 'full'"):
        runner.run_chapter("demo", {"scale": "tiny"}, output=out)
    assert not out.exists()


def test_planned_chapter_says_so():
    with pytest.raises(runner.ChapterNotReadyError, match="planned"):
        runner.run_chapter("mas")


@pytest.mark.parametrize("argv, fragment", [
    (["run", "nosuch"], "unknown chapter 'nosuch'; known chapters:"),
    (["run", "sylvie", "-p", "bits", "3"], "parameter 'bits' got 3; it accepts one of 1, 2, 4, 8"),
    (["run", "sylvie", "--scale", "huge"], "it accepts one of 'smoke', 'default', 'full'"),
    (["run", "sylvie", "-p", "colour", "red"], "has no parameter 'colour'"),
    (["run", "mas"], "planned but has no notebook yet"),
    (["book", "--scale", "tiny"], "it accepts one of 'smoke', 'default', 'full'"),
    (["sweep", "sylvie", "-p", "seed", "0", "x"], "parameter 'seed' got 'x'"),
])
def test_cli_errors_are_one_line_with_exit_code_2(argv, fragment, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and err.count("\n") == 0


def test_cli_list_shows_every_chapter(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == len(chapters.CHAPTERS) and "planned" in out


def test_sweep_aggregates_over_seeds(tmp_path, monkeypatch, capsys):
    register(monkeypatch, write_chapter(tmp_path, crash=False))
    assert cli.main(["sweep", "demo", "-p", "seed", "0", "1", "--scale", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "sweep over seed = 0 1" in out and "c1: 2 ± 0 x" in out and "0: reproduced, 1: reproduced" in out


def test_scoreboard_prints_and_writes_files(tmp_path, monkeypatch, capsys):
    register(monkeypatch, write_chapter(tmp_path, crash=False))
    runner.run_chapter("demo", {"scale": "smoke"}, progress=False)
    assert cli.main(["scoreboard"]) == 0
    out = capsys.readouterr().out
    assert "c1" in out and "scoreboard.csv" in out
