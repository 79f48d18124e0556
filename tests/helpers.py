"""A throwaway chapter for runner and book tests: it records one claim, then (optionally) crashes."""
from pathlib import Path

import nbformat

from repro.chapters import Chapter, Paper


def write_chapter(folder: Path, crash: bool, hang: bool = False, scratch: bool = False) -> Chapter:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('scale = "default"\ndevice = "auto"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    body = ("import repro\nfrom repro.claims import AtLeast, Claim, Tolerance\n"
            "repro.record_claims('demo', [\n"
            "    Claim('c1', 'two exceeds one', 'more than 1', 'Table 0', 2.0, 'x', AtLeast(1), confidence='paper'),\n"
            "    Claim('k1', 'one equals one', 1, 'by construction', 1.0, 'x', Tolerance(1, 0), kind='check'),\n"
            "], scale)")
    nb.cells = [nbformat.v4.new_markdown_cell("# A demo chapter"), params, nbformat.v4.new_code_cell(body)]
    if crash:
        nb.cells.append(nbformat.v4.new_code_cell("raise RuntimeError('the experiment diverged')"))
    if scratch:  # leave a file in the temp dir, as a chapter writing checkpoints would
        nb.cells.append(nbformat.v4.new_code_cell(
            "import pathlib, tempfile\nleft = pathlib.Path(tempfile.mkdtemp()) / 'checkpoint.pt'\n"
            "left.write_bytes(b'x' * 1000)\nprint('SCRATCH', left)"))
    if hang:
        nb.cells.append(nbformat.v4.new_code_cell("import time\ntime.sleep(120)"))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / ("99_crashing.ipynb" if crash else "98_demo.ipynb")
    nbformat.write(nb, path)
    slug = "crashing" if crash else "demo"
    return Chapter(99 if crash else 98, slug, f"A {slug} chapter",
                   Paper("A demo", "Nobody", "nowhere", "0000.00000", "none"), source=path)


def register(monkeypatch, *extra: Chapter) -> None:
    from repro import chapters

    monkeypatch.setattr(chapters, "CHAPTERS", chapters.CHAPTERS + tuple(extra))
