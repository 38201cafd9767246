"""The teaching notebook runs top to bottom in a fresh kernel and prints, cell by
cell, the outputs saved in it (what a reader sees before running it).

Needs nbclient, nbformat and ipykernel (in the 'test' extra); skipped without them.
"""

from __future__ import annotations

import copy
import importlib.util

import pytest

from .mdrun import ROOT, same

NOTEBOOK = ROOT / "docs" / "notebooks" / "tutorial.ipynb"

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("nbclient", "nbformat", "ipykernel")),
    reason="nbclient, nbformat and ipykernel are needed to execute the notebook")


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", ())
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


def _maker():
    spec = importlib.util.spec_from_file_location("make_tutorial",
                                                  NOTEBOOK.parent / "make_tutorial.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebook_is_made_from_the_tutorial_pages_as_they_are():
    import nbformat

    saved = nbformat.read(NOTEBOOK, as_version=4)
    have = [(c.cell_type, c.source) for c in saved.cells]
    assert have == _maker().cells(), (
        "docs/notebooks/tutorial.ipynb is out of date with docs/tutorial/: "
        "run python docs/notebooks/make_tutorial.py")


def test_notebook_cells_print_their_saved_outputs(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    saved = nbformat.read(NOTEBOOK, as_version=4)
    nb = copy.deepcopy(saved)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    # raises CellExecutionError, naming the cell, if any cell fails
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [(old, new) for old, new in zip(saved.cells, nb.cells, strict=True)
            if new.cell_type == "code"]
    assert len(code) >= 10
    for i, (old, new) in enumerate(code):
        assert same(_stdout(old), _stdout(new)), (
            f"code cell {i} ({new.source.splitlines()[0]!r}) printed\n{_stdout(new)}\n"
            f"but the notebook shows\n{_stdout(old)}")
    assert any(_stdout(old) for old, _ in code), "the saved notebook has no outputs"
