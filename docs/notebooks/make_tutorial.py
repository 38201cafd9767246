"""Make tutorial.ipynb from the first pages of the tutorial (docs/tutorial/).

The notebook is the tutorial's first steps in notebook form: the prose of the
pages as markdown cells, their ``python`` blocks as code cells (the
``output`` blocks become the cells' saved outputs, by running them). Edit the
pages, then run::

    python docs/notebooks/make_tutorial.py

which rewrites the notebook and executes it (nbclient, nbformat and ipykernel
are needed, as in the 'test' extra). tests/docs/test_notebook.py checks that
the notebook's cells are still the ones this script makes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TUTORIAL = HERE.parent / "tutorial"
NOTEBOOK = HERE / "tutorial.ipynb"
_FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)

INTRO = """# BPF with pyebpf: the first steps

This notebook is the first part of the pyebpf tutorial (`docs/tutorial/` in the
repository): BPF, the in-kernel virtual machine of Linux, taught by running it.
pyebpf re-makes the kernel's BPF subsystem in pure Python, so everything here
runs without root and without a Linux kernel. Run the cells in order
(Shift-Enter). Needs pyebpf installed (from a checkout: `pip install .`)."""

OUTRO = ("The tutorial goes on with loops, maps, an XDP program, tail calls and programs "
         "written in C: `docs/tutorial/` in the repository, or the documentation site.")

#: (page, where to stop reading it: a heading, or None for the whole page).
PAGES = (("index.md", None), ("memory.md", None), ("verifier.md", "## Loops must end"))


def page_cells(name: str, stop: str | None) -> list[tuple[str, str]]:
    """("markdown" | "code", source) for one page: prose and python blocks, in order.

    Console blocks (shell commands) and output blocks are left out; other blocks
    (C) stay as markdown. Links to other pages become plain text, and a page's
    headings go one level down (the notebook has its own title).
    """
    text = (TUTORIAL / name).read_text()
    if stop is not None:
        text = text[: text.index(stop)]
    out: list[tuple[str, str]] = []
    pos = 0

    def prose(chunk: str) -> None:
        chunk = _COMMENT.sub("", chunk)
        chunk = re.sub(r"^(#+) ", r"#\1 ", chunk, flags=re.MULTILINE)
        chunk = re.sub(r"^Next: .*$", "", chunk, flags=re.MULTILINE)
        chunk = re.sub(r"\[([^\]]+)\]\([^)]+\.md\)", r"\1", chunk).strip()
        if chunk:
            out.append(("markdown", chunk))

    for m in _FENCE.finditer(text):
        prose(text[pos:m.start()])
        pos = m.end()
        info, body = m.group("info").strip(), m.group("body").rstrip("\n")
        if info == "python":
            out.append(("code", body))
        elif info not in ("output", "console"):
            out.append(("markdown", f"```{info}\n{body}\n```"))
    prose(text[pos:])
    return out


def cells() -> list[tuple[str, str]]:
    """Every cell of the notebook, as (kind, source)."""
    out = [("markdown", INTRO)]
    for name, stop in PAGES:
        out.extend(page_cells(name, stop))
    out.append(("markdown", OUTRO))
    return out


def main() -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb = new_notebook(
        cells=[new_code_cell(src) if kind == "code" else new_markdown_cell(src)
               for kind, src in cells()],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                 "language": "python"},
                  "language_info": {"name": "python"}})
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, NOTEBOOK)
    print(f"wrote {NOTEBOOK} ({len(nb.cells)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
