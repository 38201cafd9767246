"""BPF_PROG_TYPE_STRUCT_OPS: programs that implement one member of a kernel ops struct.

A struct_ops program is loaded for one member of one struct (``attach_btf_id``
names the struct in the kernel BTF, ``expected_attach_type`` is the member's
index; the verifier checks both, see pyebpf.verifier.btf_attach). Its ctx is
what the trampoline passes: the member's arguments as an array of u64
(``bpf_tracing_btf_ctx_access``): integer arguments read as scalars, pointers
to kernel structs as PTR_TO_BTF_ID of that struct, read only. The subsystem
runs it (pyebpf.struct_ops); BPF_PROG_TEST_RUN is only for the kernel's
``bpf_dummy_ops`` test struct, which pyebpf doesn't have (EOPNOTSUPP).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..errors import BpfError
from ..uapi import ProgType
from . import ProgTypeOps, register_prog_type
from .tracing import RAW_TP_ARGS

if TYPE_CHECKING:
    from ..attr import TestRunAttr
    from ..prog import BpfProg, TestRunResult
    from ..runtime import Runtime

__all__ = ["struct_ops_is_valid_access"]


def struct_ops_is_valid_access(off: int, size: int, write: bool, prog: Any) -> int | None:
    """The struct_ops type's is_valid_access (bpf_tracing_btf_ctx_access, and the
    subsystem's promotion of argument types, e.g. sock to tcp_sock)."""
    from ..kernel_btf import kernel_btf
    from ..verifier.btf_attach import btf_ctx_access

    proto = getattr(prog, "attach_func_proto", None)
    st = getattr(prog, "struct_ops_type", None)
    if proto is None or st is None:
        return None
    member = getattr(prog, "attach_member", "")
    return btf_ctx_access(kernel_btf(), proto, member, off, size, write,
                          promote=st.ctx_arg_btf_id,
                          nullable=st.nullable_args.get(member, frozenset()))


def struct_ops_test_run(rt: Runtime, prog: BpfProg, attr: TestRunAttr) -> TestRunResult:
    """bpf_struct_ops_test_run: only bpf_dummy_ops programs can be test-run."""
    raise BpfError(errno.EOPNOTSUPP, "only bpf_dummy_ops struct_ops programs can be test-run")


def returns_void(prog: Any) -> bool:
    """Whether the member a struct_ops program implements returns void (then R0
    is not checked at exit: check_return_code)."""
    proto = getattr(prog, "attach_func_proto", None)
    return proto is not None and proto.type == 0


register_prog_type(ProgTypeOps(ProgType.STRUCT_OPS, ctx=RAW_TP_ARGS,
                               test_run=struct_ops_test_run,
                               is_valid_access=struct_ops_is_valid_access))
