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
    assert scoreboard.count('class="claim-row"') == sum(len(r.claims) for r in results)
    assert scoreboard.count('class="status-row"') == len(results)
    assert "failed" in scoreboard
    assert (book.build_dir() / "scoreboard.csv").exists() and (book.build_dir() / "scoreboard.json").exists()
