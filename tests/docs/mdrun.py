"""Run the code of a documentation page the way a reader following it would.

A page is a list of steps, in order:

* a fenced ```` ```python ```` block is executed (all blocks of a page share
  one namespace, as one interpreter session would); when the next block is an
  ```` ```output ```` block, what the code printed must match it (``...``
  matches any text, as doctest's ELLIPSIS);
* a ```` ```console ```` block holds ``$ command`` lines, each run by the shell
  in the page's working directory, followed by the output it must print;
* ``<!-- doc-test: file NAME -->`` before a block writes the block to NAME
  (in the working directory) instead of running it: a file the reader saves;
* ``<!-- doc-test: skip -->`` before a block leaves it alone (a sketch, or
  what a reader would type elsewhere).

The working directory is a fresh directory with ``examples`` and ``tests``
linked in, as a reader in a checkout of the repository has them. The console's ``python`` and
``pyebpf`` are those of the interpreter running the tests.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                    re.MULTILINE | re.DOTALL)
#: What a reader in a checkout of the repository sees beside them.
LINKED = ("examples", "tests")
_DIRECTIVE = re.compile(r"<!--\s*doc-test:\s*(?P<what>[^>]*?)\s*-->\s*$")


@attrs.frozen
class Block:
    """One fenced block: its language, its text, the line it starts on, and the
    doc-test directive written just before it (if any)."""

    lang: str
    text: str
    line: int
    directive: str = ""


def blocks(markdown: str) -> list[Block]:
    """The fenced blocks of a page, with the directive comment that precedes each."""
    out = []
    for m in _FENCE.finditer(markdown):
        before = markdown[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        d = _DIRECTIVE.search(before)
        indent = len(m.group("indent"))
        body = "\n".join(line[indent:] for line in m.group("body").split("\n"))
        out.append(Block(lang=m.group("info").strip().split(" ")[0], text=body,
                         line=markdown.count("\n", 0, m.start()) + 1,
                         directive=d.group("what") if d else ""))
    return out


@attrs.frozen
class Step:
    """Something the reader does: run code (``python``/``console``) or save a file,
    and the output the page says they will see (None: not shown)."""

    kind: str
    text: str
    line: int
    expected: str | None = None
    filename: str = ""


def steps(markdown: str) -> list[Step]:
    bs = blocks(markdown)
    out: list[Step] = []
    for i, b in enumerate(bs):
        if b.directive == "skip":
            continue
        if b.directive.startswith("file "):
            out.append(Step("file", b.text, b.line, filename=b.directive[5:].strip()))
        elif b.lang == "python":
            nxt = bs[i + 1] if i + 1 < len(bs) else None
            expected = nxt.text if nxt is not None and nxt.lang == "output" else None
            out.append(Step("python", b.text, b.line, expected))
        elif b.lang == "console":
            out.extend(_console_steps(b))
    return out


def _console_steps(b: Block) -> Iterator[Step]:
    cmd: str | None = None
    shown: list[str] = []
    line = b.line
    for i, text in enumerate(b.text.split("\n")):
        if text.startswith("$ "):
            if cmd is not None:
                yield Step("console", cmd, line, "\n".join(shown))
            cmd, shown, line = text[2:], [], b.line + 1 + i
        elif cmd is not None:
            shown.append(text)
    if cmd is not None:
        yield Step("console", cmd, line, "\n".join(shown))


class Mismatch(AssertionError):
    pass


def same(expected: str, got: str) -> bool:
    """doctest's comparison with ELLIPSIS, blind to trailing blank lines and spaces."""
    norm = [line.rstrip() for line in expected.strip("\n").split("\n")]
    want = "\n".join(norm) + "\n"
    have = "\n".join(line.rstrip() for line in got.strip("\n").split("\n")) + "\n"
    return doctest.OutputChecker().check_output(want, have, doctest.ELLIPSIS)


def run_page(path: Path, workdir: Path) -> int:
    """Run every step of the page at ``path`` in ``workdir``; raise Mismatch on the
    first step whose output differs from the page's. Returns the steps run."""
    for linked in LINKED:
        (workdir / linked).symlink_to(ROOT / linked)
    namespace: dict[str, object] = {"__name__": "__main__"}
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for name in [n for n in env if n.startswith(("PYTEST_", "COV_"))]:
        del env[name]  # a reader's shell has none of the outer test session's settings
    n = 0
    old = Path.cwd()
    os.chdir(workdir)
    try:
        for step in steps(path.read_text()):
            where = f"{path.name}:{step.line}"
            n += 1
            if step.kind == "file":
                (workdir / step.filename).write_text(step.text)
                continue
            if step.kind == "python":
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    exec(compile(step.text, where, "exec"), namespace)
                got = buf.getvalue()
            else:
                proc = subprocess.run(step.text, shell=True, cwd=workdir, env=env,
                                      capture_output=True, text=True, timeout=600)
                got = proc.stdout + proc.stderr
            if step.expected is not None and not same(step.expected, got):
                raise Mismatch(f"{where}: the page shows\n{step.expected}\n"
                               f"but the code printed\n{got}")
    finally:
        os.chdir(old)
    return n
