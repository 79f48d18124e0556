import json
from pathlib import Path

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


def test_an_unchanged_chapter_is_not_executed_again_and_a_changed_one_is_stale(tmp_path, monkeypatch):
    chapter = write_chapter(tmp_path, crash=False)
    register(monkeypatch, chapter)
    first = runner.run_chapter("demo", {"scale": "smoke"}, progress=False, force=True)  # other tests ran "demo"
    assert not first.cached and first.fingerprint["digest"]
    again = runner.run_chapter("demo", {"scale": "smoke"}, progress=False)
    assert again.cached and again.finished == first.finished
    assert not runner.run_chapter("demo", {"scale": "smoke"}, progress=False, force=True).cached
    nb = nbformat.read(chapter.notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("A new paragraph."))
    nbformat.write(nb, chapter.notebook)
    assert runner.staleness(runner.load_status(chapter)) == ["the notebook's source"]
    assert runner.status_line(chapter).startswith("STALE")
    assert not runner.run_chapter("demo", {"scale": "smoke"}, progress=False).cached


def test_fingerprints_follow_each_chapters_own_imports():
    from repro import fingerprint
    from repro.paths import REPO_ROOT

    files = {c.slug: {str(p.relative_to(REPO_ROOT)) for p in fingerprint.code_files(c.notebook)}
             for c in chapters.available()}
    assert any(f.startswith("repro/sylvie/") for f in files["sylvie"])
    assert all("repro/claims.py" in v for v in files.values())  # the core, followed through repro/__init__
    assert not any(f.startswith("repro/sylvie/") for f in files["acme"])  # touching Sylvie leaves Acme current
    assert not any(f.startswith("repro/sylvie/") for f in files["torchgt"])  # TorchGT no longer borrows Sylvie's code
    # the shared graph module makes exactly the two graph chapters stale
    assert {slug for slug, v in files.items() if "repro/graphs.py" in v} == {"sylvie", "torchgt"}
    # the registry enters each fingerprint as that chapter's entry, not as the whole file
    code = runner.fingerprint_of(chapters.get("sylvie"), chapters.get("sylvie").defaults())["code"]
    assert "repro/chapters.py" not in code and "repro/chapters.py (this chapter's entry)" in code


def test_a_killed_run_keeps_the_last_good_page_and_says_interrupted(tmp_path, monkeypatch):
    import os
    import signal
    import threading

    good = write_chapter(tmp_path, crash=False)
    register(monkeypatch, good)
    first = runner.run_chapter("demo", {"scale": "smoke"}, progress=False)
    page = runner.executed_path(good).read_text()
    (tmp_path / "hanging").mkdir()
    hanging = write_chapter(tmp_path / "hanging", crash=False, hang=True)  # the same chapter, edited to hang
    monkeypatch.setattr(chapters, "CHAPTERS", tuple(c for c in chapters.CHAPTERS if c.slug != "demo") + (hanging,))
    # late enough that the kernel sits in the sleeping cell, not in start-up imports
    timer = threading.Timer(25.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run_chapter("demo", {"scale": "smoke"}, progress=False, force=True)
    finally:
        timer.cancel()
    assert runner.executed_path(good).read_text() == page  # the last good page is untouched
    status = runner.load_status(hanging)
    assert status.status == "ran" and status.finished == first.finished
    assert status.last_attempt["status"] == "interrupted" and "interrupted" in runner.status_line(hanging)
    assert not list((runner.build_dir() / "tmp").glob("98_demo-*"))  # no half-written notebook left behind


def test_a_second_run_of_the_same_chapter_stops_at_once(tmp_path, monkeypatch):
    chapter = write_chapter(tmp_path, crash=False)
    register(monkeypatch, chapter)
    with runner.chapter_lock(chapter):
        with pytest.raises(runner.ChapterBusyError, match="already running"):
            runner.run_chapter("demo", {"scale": "smoke"}, progress=False, force=True)


def test_provenance_answers_could_i_get_this_number_again(tmp_path, monkeypatch):
    register(monkeypatch, write_chapter(tmp_path, crash=False))
    prov = runner.run_chapter("demo", {"scale": "smoke"}, progress=False, force=True).provenance
    for key in ("date", "git_commit", "python", "packages", "threads", "settings", "data_files", "wall_time_s"):
        assert key in prov, key
    for package in ("numpy", "scipy", "pandas", "scikit-learn", "pymetis", "papermill", "torch"):
        assert package in prov["packages"]
    assert "REPRO_BUILD" in prov["settings"]


def test_the_rendered_chapter_shows_one_parameters_cell(tmp_path, monkeypatch):
    register(monkeypatch, write_chapter(tmp_path, crash=False))
    result = runner.run_chapter("demo", {"scale": "smoke"}, progress=False, force=True)
    nb = nbformat.read(result.notebook, as_version=4)
    defaults = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "Parameters of this run" in injected[0].source
    assert all("remove-cell" in c.metadata["tags"] for c in defaults)


@pytest.mark.parametrize("crash", [False, True])
def test_a_run_leaves_no_scratch_behind(tmp_path, monkeypatch, crash):
    chapter = write_chapter(tmp_path, crash=crash, scratch=True)
    if crash:  # the crash comes after the scratch file: move it last
        nb = nbformat.read(chapter.notebook, as_version=4)
        nb.cells.append(nb.cells.pop(3))
        nbformat.write(nb, chapter.notebook)
    register(monkeypatch, chapter)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # as in a fresh `repro book` process, before any temp file
    result = runner.run_chapter(chapter.slug, {"scale": "smoke"}, progress=False, force=True)
    # the runner's own process keeps its temp dir: a later chapter in the same `repro book` must still find it
    assert Path(tempfile.gettempdir()).is_dir() and "scratch" not in tempfile.gettempdir()
    nb = nbformat.read(result.notebook, as_version=4)
    printed = [o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if "SCRATCH" in o.get("text", "")]
    assert printed, "the scratch cell did not run"
    left = printed[0].split()[1]
    assert left.startswith(str(runner.build_dir() / "tmp"))  # under the build's temp area, not the system's
    assert not any((runner.build_dir() / "tmp").glob("*-scratch-*"))  # and gone once the run ended
