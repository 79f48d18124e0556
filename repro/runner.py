"""Execute chapters with papermill, record their status, and collect their claims from the executed notebook."""
from __future__ import annotations

import json
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat

from repro import chapters, params
from repro.claims import CLAIMS_MIME, REPRODUCED, REPRODUCTION, counts_text, verdict_counts
from repro.paths import REPO_ROOT, build_dir
from repro.session import PROVENANCE_MIME


class ChapterNotReadyError(RuntimeError):
    """The chapter is registered but its notebook has not been written yet."""


@dataclass
class RunResult:
    chapter: str
    status: str  # "ran" | "failed"
    parameters: dict[str, Any]
    wall_s: float
    notebook: str
    finished: str
    claims: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def reproduced(self) -> int:
        """Reproductions reproduced; checks never count (status files from before checks existed count all)."""
        return sum(c["verdict"] == REPRODUCED and c.get("kind", REPRODUCTION) == REPRODUCTION for c in self.claims)

    @property
    def counts(self) -> dict[str, int]:
        return verdict_counts(self.claims)

    def summary(self) -> str:
        if self.status == "failed":
            return f"failed at {self.finished} ({self.error})"
        return (f"claims {counts_text(self.counts)} "
                f"(scale {self.parameters.get('scale')}, {self.wall_s:.0f} s, {self.finished})")


def executed_path(chapter: chapters.Chapter) -> Path:
    return build_dir() / "src" / "chapters" / f"{chapter.stem}.ipynb"


def status_path(chapter: chapters.Chapter) -> Path:
    return build_dir() / "status" / f"{chapter.slug}.json"


def load_status(chapter: chapters.Chapter) -> RunResult | None:
    path = status_path(chapter)
    if not path.exists():
        return None
    try:
        return RunResult(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def status_line(chapter: chapters.Chapter) -> str:
    if chapter.planned:
        return "planned (no notebook yet)"
    result = load_status(chapter)
    return "not run" if result is None else ("ran, " if result.status == "ran" else "") + result.summary()


def collect(nb: nbformat.NotebookNode, mime: str) -> list[Any]:
    """Every output payload of type ``mime`` in an executed notebook, in cell order."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if mime in data:
                found.append(data[mime])
    return found


def _mark_failed(nb: nbformat.NotebookNode, chapter: chapters.Chapter, error: str) -> None:
    badge = nbformat.v4.new_markdown_cell(
        f"```{{error}}\n**This chapter failed** while executing: `{error}`.\n\n"
        f"The traceback is shown at the cell that raised. Rerun it with `repro run {chapter.slug}` after fixing "
        f"the cause; the other chapters are unaffected.\n```"
    )
    badge.metadata["tags"] = ["repro-failed"]
    nb.cells.insert(0, badge)


def _stub_notebook(chapter: chapters.Chapter, error: str, tb: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {chapter.title}"),
        nbformat.v4.new_markdown_cell(f"The notebook could not be executed at all.\n\n```text\n{tb}\n```"),
    ]
    return nb


def run_chapter(name: str, overrides: dict[str, Any] | None = None, output: Path | None = None,
                progress: bool = True, record: bool = True, timeout: int | None = None) -> RunResult:
    """Validate parameters, execute the chapter with papermill, and record the result.

    A failure inside the notebook does not raise: it returns a result with status "failed", and the executed
    notebook keeps the traceback plus a "failed" banner so that the book can still render it. Invalid parameters
    and unknown or planned chapters raise before anything runs.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    chapter = chapters.get(name)
    if chapter.planned:
        raise ChapterNotReadyError(
            f"chapter {chapter.slug!r} is planned but has no notebook yet ({chapter.notebook.name}); "
            f"see `repro list` for the chapters that run"
        )
    values = params.validate(chapter.slug, chapter.params, overrides or {})
    output = Path(output) if output else executed_path(chapter)
    output.parent.mkdir(parents=True, exist_ok=True)
    error, started = None, time.perf_counter()
    try:
        papermill.execute_notebook(
            str(chapter.notebook), str(output), parameters=values, progress_bar=progress, cwd=str(REPO_ROOT),
            kernel_name="python3", execution_timeout=timeout, log_output=False,
        )
    except PapermillExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}".strip()
    except Exception as exc:  # noqa: BLE001 - a dead kernel or a timeout must not hide the other chapters
        error = f"{type(exc).__name__}: {exc}".strip()
        if not output.exists():
            nbformat.write(_stub_notebook(chapter, error, traceback.format_exc()), output)
    wall = time.perf_counter() - started
    nb = nbformat.read(output, as_version=4)
    claims = [c for block in collect(nb, CLAIMS_MIME) for c in block["claims"]]
    provenance = (collect(nb, PROVENANCE_MIME) or [{}])[-1]
    if error is None and not claims:
        error = "the chapter finished without recording any claim (record_claims was never called)"
    if error is not None:
        _mark_failed(nb, chapter, error)
        nbformat.write(nb, output)
    result = RunResult(
        chapter=chapter.slug, status="failed" if error else "ran", parameters=values, wall_s=round(wall, 2),
        notebook=str(output), finished=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        claims=claims, provenance=provenance, error=error,
    )
    if record:
        path = status_path(chapter)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(result), indent=1, default=str))
    return result
