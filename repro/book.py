"""Assemble and build the jupyter-book: the intro, the scoreboard page, and one page per executed chapter."""
from __future__ import annotations

import html
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from repro import chapters
from repro.claims import FOUR_COLUMN_TABLE_HEAD, badge_html
from repro.paths import BOOK_SOURCE, build_dir
from repro.runner import RunResult, executed_path, load_status

SCOREBOARD_COLUMNS = ("chapter", "id", "statement", "paper_value", "paper_source", "measured_text", "scale", "seeds",
                      "verdict", "reason")


def scoreboard_rows(results: list[RunResult]) -> list[dict]:
    rows = []
    for r in results:
        for c in r.claims:
            rows.append({"chapter": r.chapter, **{k: c.get(k) for k in SCOREBOARD_COLUMNS if k != "chapter"}})
    return rows


def recorded_results() -> list[RunResult]:
    """The latest status of every chapter that has been run, in chapter order."""
    return [r for c in chapters.CHAPTERS if (r := load_status(c)) is not None]


def write_scoreboard_files(results: list[RunResult]) -> tuple[Path, Path]:
    """Write the cross-chapter claims table as CSV and JSON into the build area."""
    import pandas as pd

    out = build_dir()
    out.mkdir(parents=True, exist_ok=True)
    rows = scoreboard_rows(results)
    csv_path, json_path = out / "scoreboard.csv", out / "scoreboard.json"
    pd.DataFrame(rows, columns=list(SCOREBOARD_COLUMNS)).to_csv(csv_path, index=False)
    json_path.write_text(json.dumps({
        "chapters": [{"chapter": r.chapter, "status": r.status, "wall_s": r.wall_s, "finished": r.finished,
                      "scale": r.parameters.get("scale"), "error": r.error} for r in results],
        "claims": rows,
    }, indent=1, default=str))
    return csv_path, json_path


def scoreboard_markdown(results: list[RunResult]) -> str:
    """The scoreboard page: execution status per chapter, then every claim of every chapter in one table."""
    status_rows = []
    for r in results:
        ch = chapters.get(r.chapter)
        state = badge_html("not reproduced").replace("not reproduced", "failed") if r.status == "failed" else "ran"
        status_rows.append(
            f'<tr class="status-row"><td><a href="chapters/{ch.stem}.html">{ch.number:02d} {html.escape(ch.title)}'
            f"</a></td><td>{state}</td><td>{r.parameters.get('scale')}</td><td>{r.wall_s:.1f}</td>"
            f"<td>{r.reproduced}/{len(r.claims)}</td><td>{r.finished}</td></tr>"
        )
    claim_rows = []
    for row in scoreboard_rows(results):
        seeds = f", {row['seeds']} seeds" if row["seeds"] and row["seeds"] > 1 else ""
        cells = (
            f"<small>{html.escape(row['chapter'])}</small><br><b>{html.escape(row['id'])}</b> "
            f"{html.escape(row['statement'])}",
            html.escape(str(row["paper_value"])) + f"<br><small>{html.escape(row['paper_source'])}</small>",
            html.escape(row["measured_text"]) + f"<br><small>scale {html.escape(str(row['scale']))}{seeds}</small>",
            badge_html(row["verdict"]) + f"<br><small>{html.escape(row['reason'])}</small>",
        )
        claim_rows.append('<tr class="claim-row">' + "".join(f'<td style="vertical-align:top">{c}</td>'
                                                             for c in cells) + "</tr>")
    planned = [c for c in chapters.CHAPTERS if c.planned]
    return "\n".join([
        "# Scoreboard", "",
        "Every claim of every executed chapter, with the paper's value and where the paper states it, our "
        "measurement, and the verdict that the chapter's code computed from it. The same table is written to "
        "`scoreboard.csv` and `scoreboard.json` in the build folder.", "",
        "## Execution status", "",
        '<div style="overflow-x:auto"><table><thead><tr><th>chapter</th><th>status</th><th>scale</th>'
        "<th>wall time (s)</th><th>claims reproduced</th><th>finished</th></tr></thead><tbody>",
        *status_rows, "</tbody></table></div>", "",
        "## Claims", "",
        FOUR_COLUMN_TABLE_HEAD + "<tbody>",
        *claim_rows, "</tbody></table>", "",
        ("Chapters not written yet: " + ", ".join(f"{c.number:02d} {c.slug}" for c in planned) + ".")
        if planned else "",
        "",
    ])


def assemble(results: list[RunResult]) -> Path:
    """Lay out the book's source in the build area: config, intro, scoreboard, TOC and executed chapters."""
    src = build_dir() / "src"
    src.mkdir(parents=True, exist_ok=True)
    for item in BOOK_SOURCE.iterdir():
        if item.name.startswith((".", "_build")) or item.name in ("chapters",):
            continue
        target = src / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
    (src / "scoreboard.md").write_text(scoreboard_markdown(results))
    chapter_files = [f"chapters/{chapters.get(r.chapter).stem}" for r in results
                     if executed_path(chapters.get(r.chapter)).exists()]
    toc = {"format": "jb-book", "root": "intro",
           "parts": [{"caption": "The handbook", "chapters": [{"file": "scoreboard"}]}]}
    if chapter_files:
        toc["parts"].append({"caption": "Chapters", "chapters": [{"file": f} for f in chapter_files]})
    (src / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    return src


def html_dir() -> Path:
    return build_dir() / "_build" / "html"


def build_html(results: list[RunResult], quiet: bool = False) -> int:
    """Run jupyter-book (execution off: it renders what papermill executed) with warnings as errors."""
    src = assemble(results)
    write_scoreboard_files(results)
    beside_python = Path(sys.executable).with_name("jupyter-book")
    jb = str(beside_python) if beside_python.exists() else shutil.which("jupyter-book")
    if jb is None:
        raise RuntimeError("jupyter-book is not installed; install the book extra: pip install -e '.[book]'")
    cmd = [jb, "build", str(src), "--path-output", str(build_dir()), "-W", "--keep-going"]
    if quiet:
        cmd.append("-q")
    return subprocess.run(cmd).returncode
