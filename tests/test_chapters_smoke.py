"""Every registered chapter executes at scale="smoke" through the same runner as `repro run`."""
import pytest

from repro import chapters, runner
from repro.claims import CHECK_VERDICTS, VERDICTS


@pytest.mark.chapter
@pytest.mark.parametrize("chapter", chapters.available(), ids=lambda c: c.slug)
def test_chapter_runs_at_smoke_scale(chapter, record_property):
    # the build area is this test session's own (conftest), so a smoke status there was executed in this session,
    # e.g. by the book test; executing every chapter twice would double the suite's slowest part
    result = runner.load_status(chapter)
    if result is None or result.parameters.get("scale") != "smoke":
        result = runner.run_chapter(chapter.slug, {"scale": "smoke"}, progress=False)
    record_property("wall_s", result.wall_s)
    print(f"\n{chapter.slug}: {result.status} in {result.wall_s:.1f} s at smoke scale")
    assert result.status == "ran", result.error
    assert result.claims, "no claims recorded"
    assert all(c["verdict"] in (CHECK_VERDICTS if c.get("kind") == "check" else VERDICTS) for c in result.claims)
    assert result.provenance.get("git_commit") and result.provenance.get("wall_time_s") is not None
