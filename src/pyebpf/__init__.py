"""pyebpf: the Linux BPF subsystem re-made in pure Python.

    >>> from pyebpf import asm, disasm, Vm
    >>> prog = asm("mov %r0, 1\\nadd %r0, %r1\\nexit")
    >>> print(disasm(prog), end="")
    0: (b7) r0 = 1
    1: (0f) r0 += r1
    2: (95) exit
    >>> Vm(prog).run(r1=41)
    42
"""

from .attr import (
    GetIdAttr,
    InfoByFdAttr,
    LinkCreateAttr,
    LinkDetachAttr,
    LinkUpdateAttr,
    MapBatchAttr,
    MapCreateAttr,
    MapElemAttr,
    MapFdAttr,
    ObjPinAttr,
    ProgAttachAttr,
    ProgLoadAttr,
    ProgQueryAttr,
    RawTracepointOpenAttr,
    TestRunAttr,
    UserPtr,
)
from .engine import Vm
from .errors import ENOTSUPP, BpfError, BpfFault, BudgetExhausted, InvalidInsn, VerifierError
from .isa import Insn, decode, encode
from .isa.asm import AsmError, asm
from .isa.disasm import disasm, format_insn
from .objects import KeyNotFound, Map
from .prog import BpfProg, LoadedFd, ProgInfo, TestRunResult  # registers PROG_LOAD/TEST_RUN
from .runtime import Runtime, default_runtime
from .syscall import BatchResult, MapInfo, bpf
from .uapi import (
    BPF_ANY,
    BPF_EXIST,
    BPF_F_LOCK,
    BPF_NOEXIST,
    AttachType,
    Cmd,
    FuncId,
    LinkType,
    MapFlags,
    MapType,
    ProgType,
)

# isort: split
from .btf import Btf, BtfError, BtfExt
from .collection import Collection, load_object
from .elf import ElfError, MapSpec, ObjectSpec, ProgramSpec, load_spec
from .links import (  # registers LINK_*/PROG_ATTACH/QUERY/RAW_TRACEPOINT_OPEN
    BpfLink,
    Cgroup,
    Link,
    LinkInfo,
    Netdev,
    Netns,
    ProgQueryResult,
    Socket,
    cgroup_root,
    current_net,
    init_net,
)
from .objects import Program

__version__ = "0.1.0"

__all__ = [
    "BPF_ANY",
    "BPF_EXIST",
    "BPF_F_LOCK",
    "BPF_NOEXIST",
    "ENOTSUPP",
    "AttachType",
    "BatchResult",
    "Cmd",
    "FuncId",
    "GetIdAttr",
    "InfoByFdAttr",
    "KeyNotFound",
    "LinkType",
    "Map",
    "MapBatchAttr",
    "MapCreateAttr",
    "MapElemAttr",
    "MapFdAttr",
    "MapFlags",
    "MapInfo",
    "MapType",
    "ObjPinAttr",
    "BpfProg",
    "LoadedFd",
    "ProgInfo",
    "ProgLoadAttr",
    "TestRunAttr",
    "TestRunResult",
    "ProgType",
    "Runtime",
    "UserPtr",
    "bpf",
    "default_runtime",
    "AsmError",
    "BpfError",
    "BpfFault",
    "BudgetExhausted",
    "Insn",
    "InvalidInsn",
    "VerifierError",
    "Vm",
    "__version__",
    "asm",
    "decode",
    "disasm",
    "encode",
    "format_insn",
    "Btf",
    "BtfError",
    "BtfExt",
    "Collection",
    "ElfError",
    "MapSpec",
    "ObjectSpec",
    "Program",
    "ProgramSpec",
    "load_object",
    "load_spec",
    "BpfLink",
    "Cgroup",
    "Link",
    "LinkCreateAttr",
    "LinkDetachAttr",
    "LinkInfo",
    "LinkUpdateAttr",
    "Netdev",
    "Netns",
    "ProgAttachAttr",
    "ProgQueryAttr",
    "ProgQueryResult",
    "RawTracepointOpenAttr",
    "Socket",
    "cgroup_root",
    "current_net",
    "init_net",
]
