"""Build the book from smoke-executed chapters (plus one that crashes) and check the HTML."""
import re

import pytest

from helpers import register, write_chapter
from repro import book, chapters, runner


@pytest.mark.book
def test_book_builds_with_every_chapter_figures_and_a_full_scoreboard(tmp_path, monkeypatch):
    register(monkeypatch, write_chapter(tmp_path, crash=True))
    for chapter in chapters.available():
        status = runner.load_status(chapter)
        if status is None or status.status != "ran" or status.parameters.get("scale") != "smoke":
            runner.run_chapter(chapter.slug, {"scale": "smoke"}, progress=False)
    failed = runner.run_chapter("crashing", {"scale": "smoke"}, progress=False)
    assert failed.status == "failed"
    results = book.recorded_results()
    assert book.build_html(results, quiet=True) == 0, "jupyter-book reported warnings or errors"

    html = book.html_dir()
    for result in results:
        page = html / "chapters" / f"{chapters.get(result.chapter).stem}.html"
        assert page.exists(), f"missing page for {result.chapter}"
        text = page.read_text()
        if result.status == "ran" and result.chapter != "demo":
            images = re.findall(r'<img[^>]+src="([^"]+)"', text)
            assert images, f"{result.chapter}: no figures embedded"
            assert all((page.parent / src).resolve().exists() for src in images)
    assert "This chapter failed" in (html / "chapters" / "99_crashing.html").read_text()

    scoreboard = (html / "scoreboard.html").read_text()
    kinds = [c.get("kind", "reproduction") for r in results for c in r.claims]
    assert scoreboard.count('class="claim-row"') == kinds.count("reproduction")
    assert scoreboard.count('class="check-row"') == kinds.count("check")
    # the page opens with the per-chapter counts and the stacked-bar figure; the intro shows the same counts
    assert scoreboard.index("At a glance") < scoreboard.index("Execution status")
    assert (html / book.COUNTS_FIGURE).exists() or (html / "_images").exists()
    intro = (html / "intro.html").read_text()
    assert "scoreboard_counts" not in intro and "check passed" in intro
    assert scoreboard.count('class="status-row"') == len(results)
    assert "failed" in scoreboard
    assert (book.build_dir() / "scoreboard.csv").exists() and (book.build_dir() / "scoreboard.json").exists()


def test_readme_counts_are_generated_between_markers(tmp_path):
    from repro.paths import REPO_ROOT

    text = (REPO_ROOT / "README.md").read_text()
    assert book.README_START in text and book.README_END in text
    new = book.update_readme_block(text, "| generated |")
    assert new.count("| generated |") == 1 and new.replace("| generated |", "") != text
    readme = tmp_path / "README.md"
    readme.write_text(text)
    assert not book.write_readme_counts([], readme)  # never from a partial or smoke build
    assert readme.read_text() == text
