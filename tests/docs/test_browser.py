"""The tutorial notebook in the browser: pyebpf in Pyodide, no install.

A learner should need nothing but a browser: pyebpf is pure Python. This test
serves Pyodide (the ``pyodide`` package of the npm registry), a pyebpf wheel
built from this checkout (or, without hatchling, the package as a wheel lays
it out) and its two dependencies (attrs and pyelftools, as
installed here) from a localhost HTTP server, drives headless Chromium
(Debian's ``chromium``) to a page that unpacks them into Pyodide's
site-packages and runs the notebook's code cells, and compares what each cell
printed with the outputs saved in the notebook.

Skipped cleanly without Chromium or without Pyodide; to set them up::

    apt-get install chromium
    npm install --prefix ~/.cache/pyebpf/pyodide pyodide@0.27

(``PYEBPF_PYODIDE`` may point to another directory holding ``pyodide.js``.)
The wheels are unpacked with ``pyodide.unpackArchive`` rather than micropip:
micropip is not part of the npm package (Pyodide fetches it from its CDN), and
the test must not need the internet.
"""

from __future__ import annotations

import http.server
import importlib.util
import io
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from .mdrun import ROOT, same

pytestmark = pytest.mark.browser

NOTEBOOK = ROOT / "docs" / "notebooks" / "tutorial.ipynb"
PAGE = Path(__file__).parent / "browser" / "index.html"
PYODIDE = Path(os.environ.get(
    "PYEBPF_PYODIDE", Path.home() / ".cache" / "pyebpf" / "pyodide" / "node_modules" / "pyodide"))
#: pyebpf's dependencies, by the top-level modules they install.
DEPENDENCIES = ("attr", "attrs", "elftools")
TIMEOUT = 300


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _code_cells() -> list[tuple[str, str]]:
    """(source, saved stdout) of every code cell of the notebook."""
    nb = json.loads(NOTEBOOK.read_text())
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        out = "".join("".join(o.get("text", "")) for o in cell.get("outputs", ())
                      if o.get("output_type") == "stream" and o.get("name") == "stdout")
        cells.append(("".join(cell["source"]), out))
    return cells


def _zip_installed(modules: tuple[str, ...]) -> bytes:
    """The installed pure-Python packages as one zip whose root is site-packages."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in modules:
            spec = importlib.util.find_spec(name)
            assert spec is not None and spec.origin, f"{name} is not installed"
            root = Path(spec.origin).parent
            for f in sorted(root.rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts:
                    z.write(f, f"{name}/{f.relative_to(root).as_posix()}")
    return buf.getvalue()


def _pyebpf_archive(out: Path) -> bytes:
    """pyebpf for site-packages: a wheel built from this checkout where hatchling (the
    build backend) is importable, else the source package zipped as a wheel lays it
    out. Neither needs the network."""
    if importlib.util.find_spec("hatchling") is not None:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                        "--no-build-isolation", "-w", str(out), str(ROOT)],
                       check=True, capture_output=True, timeout=TIMEOUT)
        (wheel,) = out.glob("pyebpf-*.whl")
        return wheel.read_bytes()
    buf = io.BytesIO()
    src = ROOT / "src"
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted((src / "pyebpf").rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                z.write(f, f.relative_to(src).as_posix())
    return buf.getvalue()


class _Server(http.server.ThreadingHTTPServer):
    results: queue.Queue[dict]


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.results.put(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path):
    """The directory the page is served from, and the server's URL."""
    if _chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    if not (PYODIDE / "pyodide.js").exists():
        pytest.skip(f"Pyodide is not at {PYODIDE} "
                    "(npm install --prefix ~/.cache/pyebpf/pyodide pyodide@0.27)")
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(PAGE, root / "index.html")
    (root / "pyodide").symlink_to(PYODIDE)
    (root / "pyebpf.whl").write_bytes(_pyebpf_archive(tmp_path / "dist"))
    (root / "deps.zip").write_bytes(_zip_installed(DEPENDENCIES))
    (root / "cells.json").write_text(json.dumps([src for src, _ in _code_cells()]))

    def handler(*args, **kwargs):
        return _Handler(*args, directory=str(root), **kwargs)

    server = _Server(("127.0.0.1", 0), handler)
    server.results = queue.Queue()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def test_tutorial_notebook_runs_in_pyodide_in_headless_chromium(site, tmp_path):
    server, url = site
    browser = subprocess.Popen(
        [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
         "--disable-dev-shm-usage", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        report = server.results.get(timeout=TIMEOUT)
    except queue.Empty:
        pytest.fail(f"the page reported nothing within {TIMEOUT} s")
    finally:
        os.killpg(browser.pid, signal.SIGTERM)
        browser.wait(timeout=30)
    assert "fatal" not in report, report.get("fatal")
    cells = _code_cells()
    results = report["results"]
    for i, ((src, saved), got) in enumerate(zip(cells, results, strict=False)):
        assert got["error"] is None, f"cell {i} ({src.splitlines()[0]!r}) failed: {got['error']}"
        assert same(saved, got["stdout"]), (
            f"cell {i} ({src.splitlines()[0]!r}) printed in Pyodide\n{got['stdout']}\n"
            f"but the notebook shows\n{saved}")
    assert len(results) == len(cells)
    assert report["python"].startswith("3.")
