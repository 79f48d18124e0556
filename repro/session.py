"""What a chapter's derived-settings cell calls first, and its provenance block at the end."""
from __future__ import annotations

import json
import platform
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from repro import chapters, params, utils
from repro.paths import REPO_ROOT

PROVENANCE_MIME = "application/vnd.repro.provenance+json"


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _version(distribution: str) -> str:
    """The installed version, from package metadata (importing torch_geometric just for this costs seconds)."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


@dataclass
class Session:
    """The validated parameters of one chapter run, its device, and its clock."""

    chapter: str
    params: dict[str, Any]
    device: torch.device
    started: float = field(default_factory=time.perf_counter)

    @property
    def scale(self) -> str:
        return self.params["scale"]

    @property
    def seed(self) -> int:
        return self.params["seed"]

    def provenance(self) -> dict[str, Any]:
        return {
            "chapter": self.chapter,
            "parameters": self.params,
            "git_commit": git_commit(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "triton": _version("triton"),
            "torch_geometric": _version("torch-geometric"),
            "device": str(self.device),
            "device_name": utils.device_name(self.device),
            "wall_time_s": round(time.perf_counter() - self.started, 2),
            "peak_memory_mb": {k: round(v, 1) for k, v in utils.peak_memory_mb().items()},
        }

    def finish(self) -> dict[str, Any]:
        """Show the provenance block (and store it machine-readably for the runner)."""
        from IPython.display import display

        prov = self.provenance()
        rows = "".join(
            f"<tr><td>{k}</td><td><code>{json.dumps(v) if isinstance(v, dict) else v}</code></td></tr>"
            for k, v in prov.items()
        )
        display({"text/html": f"<table><tbody>{rows}</tbody></table>",
                 "text/plain": json.dumps(prov, indent=1), PROVENANCE_MIME: prov}, raw=True)
        return prov


def chapter_setup(chapter: str, **values: Any) -> Session:
    """Validate a chapter's parameters, seed everything, resolve the device and apply the figure style.

    Called in the cell after ``parameters`` so that papermill runs, which skip ``repro run``'s checks, get the
    same one-line errors.
    """
    spec = chapters.get(chapter)
    checked = params.validate(spec.slug, spec.params, values)
    utils.seed_everything(checked["seed"])
    utils.use_style()
    return Session(spec.slug, checked, utils.resolve_device(checked["device"]))
