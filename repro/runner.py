"""Execute chapters with papermill, record their status, and collect their claims from the executed notebook."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat

from repro import chapters, fingerprint, params
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
    fingerprint: dict[str, Any] = field(default_factory=dict)
    last_attempt: dict[str, Any] | None = None  # set when a later run was interrupted; this result is the last good
    cached: bool = False  # returned from the execution cache, not executed now

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
        data = json.loads(path.read_text())
        data.pop("cached", None)
        return RunResult(**data)
    except (ValueError, TypeError):
        return None


def status_line(chapter: chapters.Chapter) -> str:
    if chapter.planned:
        return "planned (no notebook yet)"
    result = load_status(chapter)
    if result is None:
        return "not run"
    if result.status == "interrupted":
        return f"interrupted at {result.last_attempt['at']} (no finished run yet)"
    line = ("ran, " if result.status == "ran" else "") + result.summary()
    stale = staleness(result)
    if stale:
        line = "STALE (" + "; ".join(stale) + " changed since), " + line
    if result.last_attempt:
        line += f"; a later run was {result.last_attempt['status']} at {result.last_attempt['at']}"
    return line


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


# A hang must not block `repro book` forever: each cell may take this many times the chapter's whole budget.
BUDGET_S = {"smoke": 60, "default": 240}
TIMEOUT_MULTIPLE = 5
FULL_TIMEOUT_S = 6 * 3600


def default_timeout(scale: str) -> int:
    """Seconds per cell: a generous multiple of the scale's whole-chapter budget (full scale: 6 hours)."""
    return BUDGET_S[scale] * TIMEOUT_MULTIPLE if scale in BUDGET_S else FULL_TIMEOUT_S


class ChapterBusyError(RuntimeError):
    """Another run of the same chapter holds its lock."""


@contextlib.contextmanager
def chapter_lock(chapter: chapters.Chapter):
    """One recorded run of a chapter at a time: a second one stops at once instead of corrupting the first's files."""
    import fcntl

    path = build_dir() / "locks" / f"{chapter.slug}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise ChapterBusyError(f"chapter {chapter.slug!r} is already running ({handle.read().strip()}); wait for "
                                   "it, or stop it, then run again") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, since {_now()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a status file is as readable as any other output
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _save_status(chapter: chapters.Chapter, result: RunResult) -> None:
    write_atomically(status_path(chapter), json.dumps(asdict(result), indent=1, default=str))


def fingerprint_of(chapter: chapters.Chapter, values: dict[str, Any], data_keys=()) -> dict[str, Any]:
    from repro import data

    entry = repr(dataclasses.replace(chapter, source=None))  # the entry, not where a test put the notebook
    return fingerprint.compute(chapter.notebook, values, data.current_identities(data_keys), entry)


def staleness(result: RunResult) -> list[str]:
    """Why a recorded run no longer matches its inputs (empty: it is current)."""
    chapter = chapters.get(result.chapter)
    if chapter.planned:
        return ["the notebook is gone"]
    old = result.fingerprint
    return fingerprint.differences(old, fingerprint_of(chapter, result.parameters, old.get("data", {}).keys()))


def _hide_default_parameters(nb: nbformat.NotebookNode) -> None:
    """Render one "parameters of this run" cell: papermill's injected cell stays, the source's defaults go."""
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    if any("injected-parameters" in t for t in tags):
        for cell, t in zip(nb.cells, tags):
            if "parameters" in t and "remove-cell" not in t:
                cell.metadata["tags"] = [*t, "remove-cell"]
            if "injected-parameters" in t:
                cell.source = "# Parameters of this run (the chapter's defaults, with any overrides applied)\n" + \
                    "\n".join(ln for ln in cell.source.splitlines() if not ln.startswith("# Parameters"))


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same clean stop as Ctrl-C."""


_TERMINATING = []  # set by the SIGTERM handler


def _raise_terminated(signum, frame):
    _TERMINATING.append(signum)
    raise _Terminated()


def run_chapter(name: str, overrides: dict[str, Any] | None = None, output: Path | None = None,
                progress: bool = True, record: bool = True, timeout: int | None = None,
                force: bool = False) -> RunResult:
    """Validate parameters, execute the chapter with papermill, and record the result atomically.

    A recorded run is skipped, and its result returned with ``cached=True``, when the chapter's fingerprint (notebook,
    code, parameters, packages, data) matches its last successful run, unless ``force``. The notebook executes into
    a temporary file; only a finished run (successful or failed) replaces the last executed notebook and status,
    both with ``os.replace``. Ctrl-C or SIGTERM leaves the last good notebook and status in place, marks the status
    "interrupted", removes the temporary file and re-raises. A failure inside the notebook does not raise: it
    returns a result with status "failed", and the executed notebook keeps the traceback plus a "failed" banner.
    Invalid parameters and unknown or planned chapters raise before anything runs.
    """
    chapter = chapters.get(name)
    if chapter.planned:
        raise ChapterNotReadyError(
            f"chapter {chapter.slug!r} is planned but has no notebook yet ({chapter.notebook.name}); "
            f"see `repro list` for the chapters that run"
        )
    values = params.validate(chapter.slug, chapter.params, overrides or {})
    final = Path(output) if output else executed_path(chapter)
    if record and not force:
        last = load_status(chapter)
        if (last is not None and last.status == "ran" and last.parameters == values and final.exists()
                and not staleness(last)):
            last.cached = True
            return last
    lock = chapter_lock(chapter) if record else contextlib.nullcontext()
    with lock:
        return _execute(chapter, values, final, progress, record, timeout)


def _execute(chapter, values, final: Path, progress: bool, record: bool, timeout: int | None) -> RunResult:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from repro.session import environment

    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = build_dir() / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=scratch, prefix=f"{chapter.stem}-", suffix=".ipynb")
    os.close(fd)
    tmp = Path(tmp_name)
    os.unlink(tmp)  # papermill writes it; its absence afterwards means papermill never got that far
    env = environment()
    error, started = None, time.perf_counter()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if _main_thread() else None
    # the chapter's scratch space (TMPDIR for the kernel and every process it starts) lives in the build's temp area
    # and goes when the run ends, finished, failed or interrupted
    run_scratch = Path(tempfile.mkdtemp(dir=scratch, prefix=f"{chapter.stem}-scratch-"))
    saved_env = {k: os.environ.get(k) for k in ("TMPDIR", "REPRO_SCRATCH")}
    # this process keeps its own temp dir: tempfile caches the first one it sees, and the scratch goes after the run
    saved_tempdir, tempfile.tempdir = tempfile.tempdir, tempfile.gettempdir()
    os.environ["TMPDIR"] = os.environ["REPRO_SCRATCH"] = str(run_scratch)
    try:
        with _streamed(progress):
            papermill.execute_notebook(
                str(chapter.notebook), str(tmp), parameters=values, progress_bar=progress, cwd=str(REPO_ROOT),
                kernel_name="python3", execution_timeout=timeout or default_timeout(values["scale"]),
                log_output=progress,
            )
    except (KeyboardInterrupt, SystemError) as exc:
        # CPython 3.11 can turn an exception raised by a signal handler inside compile() into a SystemError
        if isinstance(exc, SystemError) and not _TERMINATING:
            raise
        with contextlib.suppress(OSError):
            tmp.unlink()
        if record:
            _mark_interrupted(chapter, values)
        if isinstance(exc, SystemError):
            raise KeyboardInterrupt from exc
        raise
    except PapermillExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}".strip()
    except Exception as exc:  # noqa: BLE001 - a dead kernel or a timeout must not hide the other chapters
        error = f"{type(exc).__name__}: {exc}".strip()
        if not tmp.exists():  # never credit an older notebook's claims to this run
            nbformat.write(_stub_notebook(chapter, error, traceback.format_exc()), tmp)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _TERMINATING.clear()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        tempfile.tempdir = saved_tempdir
        shutil.rmtree(run_scratch, ignore_errors=True)
    wall = time.perf_counter() - started
    nb = nbformat.read(tmp, as_version=4)
    claims = [c for block in collect(nb, CLAIMS_MIME) for c in block["claims"]]
    notebook_provenance = (collect(nb, PROVENANCE_MIME) or [{}])[-1]
    if error is None and not claims:
        error = "the chapter finished without recording any claim (record_claims was never called)"
    if error is not None:
        _mark_failed(nb, chapter, error)
    _hide_default_parameters(nb)
    nbformat.write(nb, tmp)
    data_files = notebook_provenance.get("data_files", {})
    provenance = {**notebook_provenance, **env, "parameters": values, "data_files": data_files,
                  "wall_time_s": round(wall, 2), "runner_peak_rss_mb": _children_peak_rss_mb()}
    result = RunResult(
        chapter=chapter.slug, status="failed" if error else "ran", parameters=values, wall_s=round(wall, 2),
        notebook=str(final), finished=_now(), claims=claims, provenance=provenance, error=error,
        fingerprint=fingerprint_of(chapter, values, data_files.keys()),
    )
    os.replace(tmp, final)
    if record:
        _save_status(chapter, result)
    return result


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _children_peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


def _mark_interrupted(chapter: chapters.Chapter, values: dict[str, Any]) -> None:
    """Keep the last good result; only note that a later attempt was interrupted."""
    last = load_status(chapter)
    attempt = {"status": "interrupted", "at": _now(), "parameters": values}
    if last is None:
        last = RunResult(chapter=chapter.slug, status="interrupted", parameters=values, wall_s=0.0, notebook="",
                         finished=_now())
    last.last_attempt = attempt
    _save_status(chapter, last)


@contextlib.contextmanager
def _streamed(progress: bool):
    """Stream the chapter's own output (its progress bars, with their ETAs) to the terminal while it runs."""
    import logging

    if not progress:
        yield
        return
    logger = logging.getLogger("papermill")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    handler.terminator = ""
    # papermill logs a banner around every cell; the chapter's own lines and bars are what a reader wants to see
    handler.addFilter(lambda record: not str(record.msg).lstrip().startswith(("Executing Cell", "Ending Cell")))
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
