"""Run the same attr record on pyebpf and on the real kernel, and compare."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from helpers._build import KernelBackend, PyBackend  # tests/helpers (tests/ is on sys.path)
from pyebpf import BpfError, Cmd, MapCreateAttr, MapElemAttr, MapInfo, Runtime, bpf
from pyebpf.errors import ENOTSUPP
from pyebpf.testing.kernel import kernel_bpf, kernel_close, possible_cpus

#: pyebpf and the kernel, each behind the same backend interface.
Pair = tuple[PyBackend, KernelBackend]


def backend_pair() -> Iterator[Pair]:
    """A PyBackend (with this machine's CPU count) and a KernelBackend, closed
    afterwards: the body of a ``pair`` fixture."""
    py, k = PyBackend(nr_cpus=possible_cpus()), KernelBackend()
    try:
        yield py, k
    finally:
        py.close()
        k.close()


def agree(pair: Pair, scenario: Callable[..., Any], *args: Any) -> None:
    """``scenario`` (a function of a backend) gives the same answer on both sides."""
    py, k = pair
    kernel = scenario(k, *args)
    assert scenario(py, *args) == kernel

#: Differential steps run in this session (one per command run on both sides).
STEPS = [0]

#: An fd number open on neither side: EBADF on both.
BAD_FD = 0x7FFF_FFF0


def errname(e: int) -> str:
    return "ENOTSUPP" if e == ENOTSUPP else errno.errorcode.get(e, str(e))


@attrs.frozen
class Outcome:
    """What one side answered: a value, or an errno."""

    value: Any = None
    err: int = 0

    @property
    def ok(self) -> bool:
        return self.err == 0

    def __repr__(self) -> str:
        return f"ok({self.value!r})" if self.ok else errname(self.err)


def on_pyebpf(rt: Runtime, cmd: Cmd, attr: Any) -> Outcome:
    try:
        return Outcome(bpf(cmd, attr, runtime=rt))
    except BpfError as e:
        assert e.errno, "a BpfError must carry an errno"
        return Outcome(err=e.errno)


def on_kernel(cmd: Cmd, attr: Any, **sizes: Any) -> Outcome:
    try:
        return Outcome(kernel_bpf(cmd, attr, **sizes))
    except BpfError as e:
        return Outcome(err=e.errno)


def new_runtime() -> Runtime:
    """A privileged pyebpf runtime with as many CPUs as the kernel has possible CPUs."""
    return Runtime(nr_cpus=possible_cpus(), privileged=True)


def same_errno(py: Outcome, k: Outcome, what: str) -> None:
    """Both failed with the same errno, or both succeeded (values not compared)."""
    STEPS[0] += 1
    if py.ok != k.ok or py.err != k.err:
        raise AssertionError(f"{what}: pyebpf {py!r} but kernel {k!r}")


def same(py: Outcome, k: Outcome, what: str) -> None:
    """The same value, or the same errno."""
    same_errno(py, k, what)
    if py.ok and py.value != k.value:
        raise AssertionError(f"{what}: pyebpf returned {py.value!r} but kernel {k.value!r}")


def info_fields(info: MapInfo) -> dict[str, Any]:
    """The bpf_map_info fields that mean the same on both sides (not the id)."""
    d = attrs.asdict(info)
    d.pop("id")
    return d


class MapPair:
    """The same map created on pyebpf and on the kernel; commands run on both."""

    def __init__(self, attr: MapCreateAttr, rt: Runtime | None = None) -> None:
        self.rt = rt if rt is not None else new_runtime()
        self.attr = attr
        self.py_fd: int | None = None
        self.k_fd: int | None = None
        py = on_pyebpf(self.rt, Cmd.MAP_CREATE, attr)
        k = on_kernel(Cmd.MAP_CREATE, attr)
        if k.ok:
            self.k_fd = k.value
        if py.ok:
            self.py_fd = py.value
        self.created = (py, k)
        self.sizes = {"key_size": attr.key_size, "value_size": attr.value_size,
                      "map_type": attr.map_type}

    def run(self, cmd: Cmd, make: Callable[[int], Any]) -> tuple[Outcome, Outcome]:
        """``make(fd)`` builds the record for each side's fd."""
        assert self.py_fd is not None and self.k_fd is not None
        py = on_pyebpf(self.rt, cmd, make(self.py_fd))
        k = on_kernel(cmd, make(self.k_fd), **self.sizes)
        return py, k

    def elem(self, cmd: Cmd, **fields: Any) -> tuple[Outcome, Outcome]:
        return self.run(cmd, lambda fd: MapElemAttr(map_fd=fd, **fields))

    def close(self) -> None:
        if self.k_fd is not None:
            kernel_close(self.k_fd)
            self.k_fd = None
        if self.py_fd is not None:
            self.rt.close(self.py_fd)
            self.py_fd = None

    def __enter__(self) -> MapPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def kernel_cgroup_run(tag: str, prog_fd: int, attach_type: int,
                      work: Callable[[], None]) -> None:
    """Attach ``prog_fd`` to a fresh cgroup v2 directory and run ``work`` in a
    forked child that joins it (and leaves it again, so the directory can go);
    the child must succeed. Skips where there is no cgroup v2 hierarchy."""
    import os

    import pytest

    from pyebpf.attr import ProgAttachAttr
    from pyebpf.uapi import AttachFlags

    root = next((r for r in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")
                 if os.path.isfile(os.path.join(r, "cgroup.procs"))), None)
    if root is None:
        pytest.skip("no cgroup v2 hierarchy")
    path = os.path.join(root, f"pyebpf_{tag}_{os.getpid()}")
    os.mkdir(path)
    cg = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        kernel_bpf(Cmd.PROG_ATTACH, ProgAttachAttr(
            target_fd=cg, attach_bpf_fd=prog_fd, attach_type=attach_type,
            attach_flags=AttachFlags.ALLOW_MULTI))
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 0
            try:
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
                work()
                with open(os.path.join(root, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        kernel_bpf(Cmd.PROG_DETACH, ProgAttachAttr(target_fd=cg, attach_bpf_fd=prog_fd,
                                                   attach_type=attach_type))
    finally:
        os.close(cg)
        os.rmdir(path)
