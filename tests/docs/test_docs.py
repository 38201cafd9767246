"""The documentation works as written: every tutorial and how-to page, run step
by step as a reader following it would (see ``mdrun``), prints what the page
shows; and the site builds with ``mkdocs build --strict`` (no warnings)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from . import mdrun

DOCS = mdrun.ROOT / "docs"
#: The pages whose code a reader runs: the tutorial, the how-tos, the CLI page.
PAGES = sorted(
    [*(DOCS / "tutorial").glob("*.md"), *(DOCS / "howto").glob("*.md"), DOCS / "cli.md"],
    key=lambda p: (p.parent.name, p.name != "index.md", p.name))
NEEDS_KERNEL = "<!-- doc-test: needs kernel -->"


def test_every_tutorial_and_howto_page_is_tested():
    assert {p.parent.name for p in PAGES} == {"tutorial", "howto", "docs"}
    assert len(PAGES) >= 8


@pytest.mark.parametrize("page", PAGES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_page_code_prints_what_the_page_shows(page: Path, tmp_path: Path):
    text = page.read_text()
    if NEEDS_KERNEL in text:
        from pyebpf.testing.kernel import kernel_available

        if not kernel_available():
            pytest.skip("the page runs programs on the kernel; bpf() is not permitted here")
    steps = mdrun.run_page(page, tmp_path)
    assert steps > 0, f"{page.name} has no code to run"


# -- the runner itself ------------------------------------------------------------------------
def test_runner_compares_python_output_with_the_output_block(tmp_path):
    page = tmp_path / "page.md"
    for d in ("ok", "bad"):
        (tmp_path / d).mkdir()
    page.write_text("```python\nprint(6 * 7)\n```\n\n```output\n42\n```\n")
    assert mdrun.run_page(page, tmp_path / "ok") == 1
    page.write_text("```python\nprint(6 * 7)\n```\n\n```output\n43\n```\n")
    with pytest.raises(mdrun.Mismatch, match=r"page\.md:1"):
        mdrun.run_page(page, tmp_path / "bad")


def test_runner_shares_one_namespace_and_honours_directives(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nx = 2\n```\n"
        "<!-- doc-test: skip -->\n```python\nraise SystemExit('not run')\n```\n"
        "<!-- doc-test: file data.txt -->\n```text\nhello\n```\n"
        "```python\nprint(x, open('data.txt').read().strip())\n```\n"
        "```output\n2 hello\n```\n"
        "```console\n$ echo one; echo two\none\n...\n```\n")
    (tmp_path / "w").mkdir()
    assert mdrun.run_page(page, tmp_path / "w") == 4


def test_output_comparison_allows_ellipsis_only_where_written():
    assert mdrun.same("a\n...\nc", "a\nb\nb\nc\n")
    assert not mdrun.same("a\nc", "a\nb\nc")


# -- the site ---------------------------------------------------------------------------------
def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.mark.skipif(not (_has("mkdocs") and _has("mkdocstrings_handlers.python")),
                    reason="mkdocs and mkdocstrings[python] are not installed (extra 'docs')")
def test_site_builds_without_warnings(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"),
         "--config-file", str(mdrun.ROOT / "mkdocs.yml")],
        capture_output=True, text=True, cwd=mdrun.ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "site" / "tutorial" / "index.html").exists()
    assert "pyebpf.collection.load_object" in (
        tmp_path / "site" / "reference" / "elf" / "index.html").read_text()
