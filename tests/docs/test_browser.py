"""The tutorial notebook in the browser: pyebpf in Pyodide, no install.

A learner should need nothing but a browser: pyebpf is pure Python. This test
serves Pyodide (the ``pyodide`` package of the npm registry) and wheels of
micropip, pyebpf (built from this checkout) and its two dependencies (attrs and
pyelftools, the versions installed here) from a localhost HTTP server, drives
headless Chromium (Debian's ``chromium``) to a page that loads micropip,
installs the wheels with it, runs the notebook's code cells, and compares what
each cell printed with the outputs saved in the notebook.

Skipped cleanly without Chromium, without Pyodide, or where the wheels can't be
had; to set them up::

    apt-get install chromium
    npm install --prefix ~/.cache/pyebpf/pyodide pyodide@0.27

(``PYEBPF_PYODIDE`` may point to another directory holding ``pyodide.js``.)
micropip is not part of the npm package (Pyodide fetches it from its CDN), so
its wheel and its dependency's come from the PyPI registry once, by pip, and
are kept in ``~/.cache/pyebpf/wheels``; the page itself needs no internet.
"""

from __future__ import annotations

import http.server
import importlib.metadata
import importlib.util
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .mdrun import ROOT, same

pytestmark = pytest.mark.browser

NOTEBOOK = ROOT / "docs" / "notebooks" / "tutorial.ipynb"
PAGE = Path(__file__).parent / "browser" / "index.html"
PYODIDE = Path(os.environ.get(
    "PYEBPF_PYODIDE", Path.home() / ".cache" / "pyebpf" / "pyodide" / "node_modules" / "pyodide"))
#: pyebpf's dependencies (installed here, so their versions are known).
DEPENDENCIES = ("attrs", "pyelftools")
#: micropip and its dependency, the versions Pyodide 0.27 ships.
BOOTSTRAP = ("packaging==24.2", "micropip==0.9.0")
#: The Python the wheels are for: Pyodide 0.27's.
PYODIDE_PYTHON = "3.12"
WHEELS = Path.home() / ".cache" / "pyebpf" / "wheels"
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


def _download(requirements: list[str]) -> list[Path]:
    """Wheels of ``requirements`` (pinned), from the cache or the registry; skips
    the test when they can't be had."""
    WHEELS.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                           "--only-binary=:all:", "--python-version", PYODIDE_PYTHON,
                           "-d", str(WHEELS), *requirements],
                          capture_output=True, text=True, timeout=TIMEOUT)
    if proc.returncode:
        pytest.skip(f"wheels of {requirements} are not to be had: {proc.stderr[-300:]}")
    found = []
    for req in requirements:
        name, version = req.split("==")
        (wheel,) = WHEELS.glob(f"{name.replace('-', '_')}-{version}-*.whl")
        found.append(wheel)
    return found


def _pyebpf_wheel(out: Path) -> Path:
    """A wheel of this checkout (the build backend from the venv when it is there,
    else fetched by pip's isolated build)."""
    isolation = [] if importlib.util.find_spec("hatchling") is None \
        else ["--no-build-isolation"]
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                           *isolation, "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=TIMEOUT)
    if proc.returncode:
        pytest.skip(f"no wheel of pyebpf could be built: {proc.stderr[-300:]}")
    (wheel,) = out.glob("pyebpf-*.whl")
    return wheel


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
    (root / "wheels").mkdir(parents=True)
    shutil.copy(PAGE, root / "index.html")
    (root / "pyodide").symlink_to(PYODIDE)
    bootstrap = _download(list(BOOTSTRAP))
    install = [*_download([f"{d}=={importlib.metadata.version(d)}" for d in DEPENDENCIES]),
               _pyebpf_wheel(tmp_path / "dist")]
    for wheel in (*bootstrap, *install):
        shutil.copy(wheel, root / "wheels" / wheel.name)
    (root / "wheels.json").write_text(json.dumps({
        "bootstrap": [f"wheels/{w.name}" for w in bootstrap],
        "install": [f"wheels/{w.name}" for w in install]}))
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
