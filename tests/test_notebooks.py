import json
import shutil
import subprocess

import nbformat
import pytest

from repro import chapters
from repro.params import parse_parameters_cell
from repro.paths import NOTEBOOKS

NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOK_FILES, "no chapter notebooks found"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_sources_have_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; run nbstripout {path}"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_one_parameters_cell_matching_the_registry(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged 'parameters'"
    values = parse_parameters_cell(cells[0].source)
    chapter = chapters.get(path.stem)
    assert chapter.notebook == path
    assert values == chapter.defaults(), "the parameters cell and repro/chapters.py disagree"
    assert all(type(values[p.name]) is p.type for p in chapter.params)
    next_cell = nb.cells[nb.cells.index(cells[0]) + 1].source
    assert "chapter_setup(" in next_cell, "the cell after 'parameters' must validate them with chapter_setup"


@pytest.mark.skipif(shutil.which("nbstripout") is None, reason="nbstripout not installed")
def test_nbstripout_keeps_the_parameters_tag(tmp_path):
    src = nbformat.read(NOTEBOOK_FILES[0], as_version=4)
    for cell in src.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="noise\n")]
            cell.execution_count = 1
    dirty = tmp_path / "dirty.ipynb"
    nbformat.write(src, dirty)
    subprocess.run([shutil.which("nbstripout"), str(dirty)], check=True)
    cleaned = json.loads(dirty.read_text())
    assert not any(c.get("outputs") for c in cleaned["cells"] if c["cell_type"] == "code")
    assert sum("parameters" in c["metadata"].get("tags", []) for c in cleaned["cells"]) == 1
