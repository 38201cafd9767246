"""BPF_PROG_TYPE_EXT: program extensions ("freplace").

An extension replaces one global function of a loaded program. It is loaded
with ``attach_prog_fd`` (the target program) and ``attach_btf_id`` (the
target's FUNC in the target's BTF, which must be a global function listed in
its func_info); the verifier checks that the two functions have the same
prototype (``btf_check_type_match``: argument count, scalar/ctx-pointer
argument kinds, return type) and then verifies the extension as a program of
the target's type whose arguments come from that prototype.

Attaching (BPF_LINK_CREATE, a TRACING link) patches the target: from then on
every call of the replaced function in the target, and every run of the
target if the replaced function is its main one, runs the extension instead
(:meth:`pyebpf.engine.Vm.replace_function`). One function takes one
extension at a time (EBUSY). The load-time target is used by the first
attach; another target (``target_fd`` + ``target_btf_id``) is checked for
compatibility again. Closing the link puts the original function back.
"""

from __future__ import annotations

import errno
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import BpfError
from ..links.base import BpfLink, prog_get, register_link_kind
from ..uapi import LinkType, ProgType
from . import ProgTypeOps, attach_types_only, register_prog_type

if TYPE_CHECKING:
    from ..attr import LinkCreateAttr
    from ..prog import BpfProg
    from ..runtime import Runtime

__all__ = ["ExtLink", "ext_link_create", "ext_tracing_prog_attach", "replaced_functions"]

#: Per target program: the pc of each replaced function -> the link replacing it.
_REPLACED: weakref.WeakKeyDictionary[Any, dict[int, Any]] = weakref.WeakKeyDictionary()


def replaced_functions(target: BpfProg) -> dict[int, BpfProg]:
    """The functions of ``target`` extensions replace now: start pc -> extension."""
    return {pc: link.prog for pc, link in _REPLACED.get(target, {}).items()}


def ext_link_create(rt: Runtime, attr: LinkCreateAttr, prog: BpfProg) -> ExtLink:
    """bpf_tracing_prog_attach for an extension (LINK_CREATE)."""
    return ext_tracing_prog_attach(rt, prog, attr.target_fd, attr.target_btf_id,
                                   attr.tracing_cookie)


def ext_tracing_prog_attach(rt: Runtime, prog: BpfProg, tgt_fd: int, btf_id: int,
                            cookie: int) -> ExtLink:
    """bpf_tracing_prog_attach for BPF_PROG_TYPE_EXT: the link, not yet attached
    (LINK_CREATE gives target_fd/target_btf_id; RAW_TRACEPOINT_OPEN gives neither)."""
    from ..verifier.btf_attach import ext_attach_target

    if prog.expected_attach_type != 0:
        raise BpfError(errno.EINVAL, "an extension has no expected_attach_type")
    if bool(tgt_fd) != bool(btf_id):
        raise BpfError(errno.EINVAL, "target_fd and target_btf_id come together")
    if tgt_fd:
        tgt = prog_get(rt, tgt_fd)
        if tgt is prog.dst_prog and btf_id == prog.attach_btf_id:
            insn_off = prog.attach_insn_off
        else:  # a new target: check it as the load checked the first
            _, subprog = ext_attach_target(prog, tgt, btf_id)
            insn_off = tgt.func_info[subprog].insn_off
        tgt.hold()  # the link's reference
        if prog.dst_prog is not None:  # attaching consumes the load-time target
            prog.dst_prog.release()
            prog.dst_prog = None
    else:
        tgt = prog.dst_prog
        if tgt is None:
            raise BpfError(errno.EINVAL, "the extension was attached before: give "
                           "target_fd and target_btf_id")
        btf_id, insn_off = prog.attach_btf_id, prog.attach_insn_off
        prog.dst_prog = None  # its reference moves to the link
    return ExtLink(rt, prog, tgt, btf_id, insn_off, cookie)


class ExtLink(BpfLink):
    """A TRACING link holding an extension on its target's function."""

    link_type = LinkType.TRACING

    def __init__(self, rt: Runtime, prog: BpfProg, target: BpfProg, btf_id: int,
                 insn_off: int, cookie: int) -> None:
        super().__init__(rt, prog, prog.expected_attach_type)
        self.target: BpfProg | None = target
        self.target_btf_id = btf_id
        self.insn_off = insn_off
        self.cookie = cookie

    def attach(self) -> None:
        """bpf_trampoline_link_prog for BPF_TRAMP_REPLACE: one extension per function."""
        slots = _REPLACED.setdefault(self.target, {})
        if self.insn_off in slots:
            raise BpfError(errno.EBUSY, "the function is already replaced by an extension")
        slots[self.insn_off] = self
        self.target.replaced_functions[self.insn_off] = self.prog.insns
        self.attached = True

    def release_hook(self) -> None:
        slots = _REPLACED.get(self.target, {})
        if slots.get(self.insn_off) is self:
            del slots[self.insn_off]
            del self.target.replaced_functions[self.insn_off]
        self.attached = False

    def fill_info(self, info: dict[str, int]) -> None:
        info.update(attach_type=self.attach_type, target_obj_id=self.target.id,
                    target_btf_id=self.target_btf_id, cookie=self.cookie)

    def free(self) -> None:
        super().free()
        if self.target is not None:
            self.target.release()
            self.target = None


register_prog_type(ProgTypeOps(ProgType.EXT, check_attach=attach_types_only(0)))
register_link_kind(ProgType.EXT, ext_link_create)
