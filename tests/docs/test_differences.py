"""docs/differences.md stays honest: every map type, program type, command and
helper pyebpf's registries lack is in the page's lists (a gap the page forgets fails
here, naming it); a listed gap that has since been filled is a warning."""

from __future__ import annotations

import re
import warnings

import pytest

from pyebpf.maps import map_class
from pyebpf.progs import prog_type_ops
from pyebpf.syscall import _HANDLERS, _HANDLERS_WITH_CMD
from pyebpf.uapi import Cmd, FuncId, MapType, ProgType

from .mdrun import ROOT

PAGE = ROOT / "docs" / "differences.md"
#: Enum members that are other names of an implemented value, or no type at all.
NOT_TYPES = {"UNSPEC", "CGROUP_STORAGE_DEPRECATED", "PERCPU_CGROUP_STORAGE_DEPRECATED"}


def listed(what: str) -> set[str]:
    """The names in the page's ``<!-- missing: what -->`` ... ``<!-- end -->`` list."""
    m = re.search(rf"<!-- missing: {what} -->\n(.*?)<!-- end -->", PAGE.read_text(), re.DOTALL)
    assert m, f"differences.md has no '<!-- missing: {what} -->' list"
    return set(re.findall(r"`(\w+)`", m.group(1)))


def _handled(cmd: Cmd) -> bool:
    from pyebpf import Runtime

    Runtime()  # a runtime registers the commands of the modules it loads (BTF_LOAD...)
    return cmd in _HANDLERS or cmd in _HANDLERS_WITH_CMD


def _missing_helpers() -> set[str]:
    from pyebpf import Runtime
    from pyebpf.helpers import default_helpers

    Runtime()  # as for commands: helper families load with the runtime
    have = default_helpers()
    return {f.name for f in FuncId if f.value and f.value not in have}


MISSING = {
    "map types": lambda: {t.name for t in MapType
                          if t.name not in NOT_TYPES and map_class(t) is None},
    "program types": lambda: {t.name for t in ProgType
                              if t.name not in NOT_TYPES and prog_type_ops(t) is None},
    "commands": lambda: {c.name for c in Cmd if not _handled(c)},
    "helpers": lambda: _missing_helpers(),
}


@pytest.mark.parametrize("what", sorted(MISSING))
def test_page_lists_everything_that_is_missing(what):
    actual = MISSING[what]()
    page = listed(what)
    assert not actual - page, f"pyebpf lacks {what} {sorted(actual - page)}, which " \
                              f"differences.md does not list: add them"
    if page - actual:
        # Under-selling is not dishonest, and features land faster than pages are
        # edited: a warning (shown in the summary), not a failure.
        warnings.warn(f"differences.md lists {sorted(page - actual)} as missing {what}, but "
                      f"pyebpf has them now: remove them from the page", stacklevel=1)
