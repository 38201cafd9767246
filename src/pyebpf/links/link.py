"""``Link``: the friendly object over a link fd (a thin layer over bpf(), like Map/Program)."""

from __future__ import annotations

from typing import Any

from ..attr import InfoByFdAttr, LinkCreateAttr, LinkDetachAttr, LinkUpdateAttr, ObjPinAttr
from ..runtime import Runtime, default_runtime
from ..syscall import bpf
from ..uapi import AttachFlags, Cmd, LinkType
from .base import LinkInfo

__all__ = ["Link"]


class Link:
    """A link fd: its info, update (BPF_LINK_UPDATE), detach, pin, close."""

    def __init__(self, fd: int, runtime: Runtime | None = None) -> None:
        self.runtime = runtime if runtime is not None else default_runtime()
        self.fd = fd

    @classmethod
    def create(cls, prog_fd: int, target_fd: int, attach_type: int, *,
               runtime: Runtime | None = None, **fields: Any) -> Link:
        """BPF_LINK_CREATE (``fields``: the other LinkCreateAttr fields)."""
        rt = runtime if runtime is not None else default_runtime()
        attr = LinkCreateAttr(prog_fd=prog_fd, target_fd=target_fd,
                              attach_type=int(attach_type), **fields)
        return cls(int(bpf(Cmd.LINK_CREATE, attr, runtime=rt)), rt)

    @classmethod
    def from_pin(cls, path: str, *, runtime: Runtime | None = None) -> Link:
        rt = runtime if runtime is not None else default_runtime()
        return cls(int(bpf(Cmd.OBJ_GET, ObjPinAttr(pathname=path), runtime=rt)), rt)

    def info(self) -> LinkInfo:
        info: LinkInfo = bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=self.fd),
                             runtime=self.runtime)
        return info

    @property
    def id(self) -> int:
        return self.info().id

    def update(self, new_prog_fd: int, *, old_prog_fd: int | None = None) -> None:
        """Swap the program; with ``old_prog_fd``, only if that one is attached (EPERM)."""
        flags = int(AttachFlags.REPLACE) if old_prog_fd is not None else 0
        bpf(Cmd.LINK_UPDATE, LinkUpdateAttr(link_fd=self.fd, new_prog_fd=new_prog_fd,
                                            flags=flags, old_prog_fd=old_prog_fd or 0),
            runtime=self.runtime)

    def detach(self) -> None:
        """BPF_LINK_DETACH: off the hook; the fd stays (defunct)."""
        bpf(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=self.fd), runtime=self.runtime)

    def pin(self, path: str) -> None:
        bpf(Cmd.OBJ_PIN, ObjPinAttr(pathname=path, bpf_fd=self.fd), runtime=self.runtime)

    def close(self) -> None:
        if self.fd >= 0:
            self.runtime.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.fd < 0:
            return "<Link closed>"
        info = self.info()
        return f"<Link fd={self.fd} {LinkType(info.type).name} id={info.id} prog={info.prog_id}>"
