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
from repro.claims import (
    CHECK,
    CHECK_FAILED,
    CHECK_PASSED,
    FOUR_COLUMN_TABLE_HEAD,
    REPRODUCTION,
    VERDICTS,
    badge_html,
    source_text,
)
from repro.paths import BOOK_SOURCE, REPO_ROOT, build_dir
from repro.runner import RunResult, executed_path, load_status, staleness

SCOREBOARD_COLUMNS = ("chapter", "id", "kind", "statement", "paper_value", "paper_source", "confidence",
                      "measured_text", "scale", "seeds", "verdict", "reason", "premise")
COUNT_COLUMNS = (*VERDICTS, CHECK_PASSED, CHECK_FAILED)
COUNTS_FIGURE = "scoreboard_counts.png"
README_START, README_END = "<!-- scoreboard:start -->", "<!-- scoreboard:end -->"


def scoreboard_rows(results: list[RunResult]) -> list[dict]:
    rows = []
    for r in results:
        for c in r.claims:
            row = {"chapter": r.chapter, **{k: c.get(k) for k in SCOREBOARD_COLUMNS if k != "chapter"}}
            row["kind"] = row["kind"] or REPRODUCTION  # status files from before checks existed
            rows.append(row)
    return rows


def counts_markdown(results: list[RunResult]) -> str:
    """Per chapter, the count of each verdict of its reproductions plus its checks passed / failed: a markdown
    table that the scoreboard, the intro and the README share, generated from the recorded runs."""
    by_chapter = {r.chapter: r for r in results}
    head = ["#", "chapter", "status", "scale", *COUNT_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    totals = dict.fromkeys(COUNT_COLUMNS, 0)
    for ch in chapters.CHAPTERS:
        r = by_chapter.get(ch.slug)
        if ch.planned:
            cells, status, scale = [""] * len(COUNT_COLUMNS), "planned", ""
        elif r is None:
            cells, status, scale = [""] * len(COUNT_COLUMNS), "not run", ""
        else:
            counts = r.counts
            for k in COUNT_COLUMNS:
                totals[k] += counts[k]
            cells, status, scale = [str(counts[k]) for k in COUNT_COLUMNS], r.status, str(r.parameters.get("scale"))
        lines.append("| " + " | ".join([f"{ch.number:02d}", f"`{ch.slug}`", status, scale, *cells]) + " |")
    lines.append("| " + " | ".join(["", "**all**", "", "", *(f"**{totals[k]}**" for k in COUNT_COLUMNS)]) + " |")
    return "\n".join(lines)


def counts_figure(results: list[RunResult], path: Path) -> Path:
    """One stacked horizontal bar per executed chapter: its reproductions by verdict, then its checks."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from repro.claims import BADGE_COLOURS

    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * max(len(results), 1)))
    labels = [r.chapter for r in results]
    left = [0] * len(results)
    for verdict in COUNT_COLUMNS:
        widths = [r.counts[verdict] for r in results]
        hatch = "//" if verdict in (CHECK_PASSED, CHECK_FAILED) else None
        ax.barh(labels, widths, left=left, color=BADGE_COLOURS[verdict], label=verdict, hatch=hatch,
                edgecolor="white")
        left = [a + b for a, b in zip(left, widths)]
    ax.invert_yaxis()
    ax.set_xlabel("claims (count)")
    ax.set_title("Verdicts per chapter (checks hatched: never counted as reproduced)", fontsize=10)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.08), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def update_readme_block(text: str, block: str) -> str:
    """Replace what lies between the README's scoreboard markers with ``block``."""
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    return text[:start] + "\n" + block + "\n" + text[end:]


def published(results: list[RunResult]) -> bool:
    """Whether these results are the book's: every written chapter ran at the default scale."""
    by_chapter = {r.chapter: r for r in results}
    return all((r := by_chapter.get(c.slug)) is not None and r.status == "ran"
               and r.parameters.get("scale") == "default" for c in chapters.available())


def write_readme_counts(results: list[RunResult], readme: Path | None = None) -> bool:
    """Refresh the README's counts from a default-scale build of every chapter (never from a smoke run)."""
    readme = readme or REPO_ROOT / "README.md"
    if not published(results) or not readme.exists():
        return False
    text = readme.read_text()
    new = update_readme_block(text, counts_markdown(results))
    if new != text:
        readme.write_text(new)
    return True


def recorded_results() -> list[RunResult]:
    """The latest status of every chapter that has been run, in chapter order."""
    return [r for c in chapters.CHAPTERS if (r := load_status(c)) is not None and r.status != "interrupted"]


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
        stale = [] if ch.planned else staleness(r)
        if stale:  # its inputs changed since it ran: the page shows an older state of the code
            state += f"<br><small><b>stale</b>: {html.escape('; '.join(stale))} changed since</small>"
        status_rows.append(
            f'<tr class="status-row"><td><a href="chapters/{ch.stem}.html">{ch.number:02d} {html.escape(ch.title)}'
            f"</a></td><td>{state}</td><td>{r.parameters.get('scale')}</td><td>{r.wall_s:.1f}</td>"
            f"<td>{r.reproduced}/{sum(r.counts[v] for v in VERDICTS)}</td>"
            f"<td>{r.counts[CHECK_PASSED]}/{r.counts[CHECK_PASSED] + r.counts[CHECK_FAILED]}</td>"
            f"<td>{r.finished}</td></tr>"
        )
    rows = scoreboard_rows(results)
    reproduction_rows = [_claim_row(r, "claim-row") for r in rows if r["kind"] == REPRODUCTION]
    check_rows = [_claim_row(r, "check-row") for r in rows if r["kind"] == CHECK]
    planned = [c for c in chapters.CHAPTERS if c.planned]
    return "\n".join([
        "# Scoreboard", "",
        "Every claim of every executed chapter, with the paper's value, where the paper states it and how sure we are "
        "of it ([paper]: read in the paper, [code]: the official code or its result files, [secondary]: a third-party "
        "summary), our measurement, and the verdict that the chapter's code computed from it. *Reproductions* measure "
        "what the paper claims; *checks* verify our own implementation (formula identities, counts by construction, "
        "determinism) and never count as reproduced. The same table is written to `scoreboard.csv` and "
        "`scoreboard.json` in the build folder.", "",
        "## At a glance", "",
        counts_markdown(results), "",
        f"![Verdicts per chapter]({COUNTS_FIGURE})", "",
        "## Execution status", "",
        '<div style="overflow-x:auto"><table><thead><tr><th>chapter</th><th>status</th><th>scale</th>'
        "<th>wall time (s)</th><th>reproduced</th><th>checks passed</th><th>finished</th></tr></thead><tbody>",
        *status_rows, "</tbody></table></div>", "",
        "## Reproductions", "",
        FOUR_COLUMN_TABLE_HEAD + "<tbody>",
        *reproduction_rows, "</tbody></table>", "",
        "## Checks of our implementation", "",
        FOUR_COLUMN_TABLE_HEAD + "<tbody>",
        *check_rows, "</tbody></table>", "",
        ("Chapters not written yet: " + ", ".join(f"{c.number:02d} {c.slug}" for c in planned) + ".")
        if planned else "",
        "",
    ])


def _claim_row(row: dict, css_class: str) -> str:
    seeds = f", {row['seeds']} seeds" if row["seeds"] and row["seeds"] > 1 else ""
    premise = f"<br><small>premise: {html.escape(row['premise'])}</small>" if row.get("premise") else ""
    cells = (
        f"<small>{html.escape(row['chapter'])}</small><br><b>{html.escape(row['id'])}</b> "
        f"{html.escape(row['statement'])}{premise}",
        html.escape(str(row["paper_value"])) + f"<br><small>{html.escape(source_text(row))}</small>",
        html.escape(row["measured_text"]) + f"<br><small>scale {html.escape(str(row['scale']))}{seeds}</small>",
        badge_html(row["verdict"]) + f"<br><small>{html.escape(row['reason'])}</small>",
    )
    return f'<tr class="{css_class}">' + "".join(f'<td style="vertical-align:top">{c}</td>' for c in cells) + "</tr>"


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
    counts_figure(results, src / COUNTS_FIGURE)
    intro = src / "intro.md"
    if intro.exists():  # the intro's counts come from the same runs as the scoreboard, never typed
        intro.write_text(intro.read_text().replace("{{ scoreboard_counts }}", counts_markdown(results)))
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
