"""Where things live: the repository, the data cache and the book's build area."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"
BOOK_SOURCE = REPO_ROOT / "book"


def build_dir() -> Path:
    """The book's build area: executed chapters, their status files, the scoreboard and the HTML.

    ``REPRO_BUILD`` overrides the default ``book/_build`` (tests build into a temporary folder).
    """
    return Path(os.environ.get("REPRO_BUILD", BOOK_SOURCE / "_build")).resolve()


def data_cache() -> Path:
    """The writable data cache: ``REPRO_DATA``, else the git-ignored ``data/cache`` of this checkout."""
    env = os.environ.get("REPRO_DATA")
    if env:
        return Path(env).expanduser().resolve()
    if (REPO_ROOT / "pyproject.toml").exists():
        return REPO_ROOT / "data" / "cache"
    return Path.home() / ".cache" / "repro"
