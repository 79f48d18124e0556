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


# Untracked files here change what a chapter runs, so they make the tree dirty; elsewhere they do not.
CODE_FOLDERS = ("repro/", "kernels/", "notebooks/")


def git_commit() -> str:
    """The short commit, with "-dirty" when a tracked file changed or an untracked file sits in the code folders."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=10).stdout.splitlines()
        dirty = any(not line.startswith("??") or line[3:].startswith(CODE_FOLDERS) for line in status if line)
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict[str, Any]:
    """What "could I get this number again?" needs beyond the code: date, commit, versions, CUDA stack, threads and
    the settings that change execution. The runner records it for every run, failed ones included."""
    import os
    from datetime import datetime, timezone

    from repro.fingerprint import package_versions

    cuda = {}
    if torch.cuda.is_available():
        cuda = {"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                "gpu": torch.cuda.get_device_name(0), "driver": _nvidia_driver()}
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "packages": package_versions(),
        **cuda,
        # timings from an oversubscribed host say little: the load at the start of the run is part of the record
        "load_average_1m": round(os.getloadavg()[0], 2),
        "threads": {"cpu_count": os.cpu_count(), "torch": torch.get_num_threads(),
                    **{k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
                       if k in os.environ}},
        "settings": {k: v for k, v in sorted(os.environ.items()) if k.startswith("REPRO_") or k == "TRITON_INTERPRET"},
    }


def _nvidia_driver() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        return out.splitlines()[0] if out else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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
        from repro.data import used_files

        return {
            "chapter": self.chapter,
            "parameters": self.params,
            **environment(),
            "data_files": used_files(),
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
