"""struct_ops links: registering a BPF_F_LINK struct_ops map (kernel/bpf/bpf_struct_ops.c).

BPF_LINK_CREATE with ``attach_type`` BPF_STRUCT_OPS and the map's fd (in
``prog_fd``, the kernel's ``map_fd``) registers the map's table with its
subsystem for as long as the link lives; the map must be a BPF_F_LINK
struct_ops map whose value was set (state READY), else EINVAL. Closing the
last reference, or BPF_LINK_DETACH, unregisters it. BPF_LINK_UPDATE swaps in
another READY map of the same struct (the subsystem's ``update``: for TCP
congestion control, the same name), optionally only if the current one is
``old_map_fd`` (EPERM otherwise); a detached link is ENOLINK.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..errors import BpfError
from ..uapi import AttachType, LinkType, MapType
from .base import BpfLink, register_link_attach_type, settle_link

if TYPE_CHECKING:
    from ..attr import LinkCreateAttr
    from ..maps.struct_ops import StructOpsMap
    from ..runtime import Runtime

__all__ = ["StructOpsLink", "struct_ops_link_create"]


def _valid_to_reg(m: Any) -> bool:
    """bpf_struct_ops_valid_to_reg."""
    return m.map_type == MapType.STRUCT_OPS and bool(getattr(m, "valid_to_reg", False))


class StructOpsLink(BpfLink):
    """The link holding a struct_ops map's table on its subsystem."""

    link_type = LinkType.STRUCT_OPS
    supports_detach = True

    def __init__(self, rt: Runtime, m: StructOpsMap, attach_type: int) -> None:
        super().__init__(rt, None, attach_type)
        self.map: StructOpsMap | None = m

    def attach(self) -> None:
        """st_ops->reg with the map's table; the link keeps a map reference."""
        m = self.map
        assert m is not None and m.kdata is not None
        m.st.reg(m.kdata)
        m.hold()
        m.kernel_refs += 1
        self.attached = True

    def release_hook(self) -> None:
        """bpf_struct_ops_map_link_dealloc / _detach: unregister, drop the map."""
        m = self.map
        if m is not None:
            assert m.kdata is not None
            m.st.unreg(m.kdata)
            self.map = None
            m.kernel_refs -= 1
            m.release()
        self.attached = False

    def update_map(self, new_map: Any, old_map: Any) -> None:
        """bpf_struct_ops_map_link_update."""
        if not _valid_to_reg(new_map):
            raise BpfError(errno.EINVAL, "the new map is not a READY BPF_F_LINK struct_ops map")
        cur = self.map
        if cur is None:
            raise BpfError(errno.ENOLINK, "the link is detached")
        if old_map is not None and old_map is not cur:
            raise BpfError(errno.EPERM, "old_map_fd is not the link's map")
        if new_map.st is not cur.st:
            raise BpfError(errno.EINVAL, "the new map is another struct_ops type")
        new_map.st.update(new_map.kdata, cur.kdata)
        new_map.hold()
        new_map.kernel_refs += 1
        self.map = new_map
        cur.kernel_refs -= 1
        cur.release()

    def fill_info(self, info: dict[str, int]) -> None:
        info["map_id"] = self.map.id if self.map is not None else 0


def struct_ops_link_create(rt: Runtime, attr: LinkCreateAttr) -> int:
    """bpf_struct_ops_link_create: ``prog_fd`` carries the map fd."""
    from ..syscall import _map_from_fd

    m, _ = _map_from_fd(rt, attr.prog_fd)
    if not _valid_to_reg(m):
        raise BpfError(errno.EINVAL, "only an updated BPF_F_LINK struct_ops map can be linked")
    return settle_link(rt, StructOpsLink(rt, m, attr.attach_type))  # type: ignore[arg-type]


register_link_attach_type(AttachType.STRUCT_OPS, struct_ops_link_create)
