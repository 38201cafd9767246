"""Hypothesis strategies for BPF tests: packets, ctx structs, map contents, programs.

- :func:`frames` / :func:`packets`: Ethernet frames carrying IPv4/IPv6 with
  TCP/UDP (or another protocol), well-formed or with one deliberate defect
  (:class:`~pyebpf.testing.packets.Defect`): a test knows which from
  ``frame.defects``.
- :func:`ctx_structs`: a ctx struct for a program type, valid as a test
  run's ``ctx_in`` where the type has a test run (the fields
  ``convert___skb_to_skb`` takes for ``__sk_buff``, ``xdp_md``'s metadata
  rules), else any values of the type's ctx table fields.
- :func:`values` / :func:`map_contents`: keys and values for a map, drawn from
  its BTF layout (:mod:`pyebpf.testing.layout`): structs as records, so they
  can be dict keys and seed maps directly.
- :func:`programs`: random programs the kernel's verifier accepts, from a
  grammar: straight-line ALU/JMP/stack code with forward if/else blocks,
  so that every program terminates; registers are initialised before use;
  stack accesses stay inside initialised, aligned slots; immediate divisors
  are non-zero (register divisors may be zero: BPF defines the result);
  shifts by an immediate stay below the operand width; ``r0`` holds a scalar
  at ``exit``. XDP programs may also read and write the packet behind a
  ``data_end`` check. Our own differential test runs them on pyebpf and the
  kernel; users can fuzz their assumptions about the verifier with them.

This module imports hypothesis; nothing else in pyebpf does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from hypothesis import strategies as st

from ..isa import AluOp, AtomicOp, Class, Insn, JmpOp, Mode, Size, Source
from ..uapi import ProgType
from .layout import (
    ArrayLayout,
    BytesLayout,
    FloatLayout,
    IntLayout,
    Layout,
    PerCpuLayout,
    StructLayout,
)
from .packets import IPPROTO_TCP, IPPROTO_UDP, Defect, Frame, FrameSpec, build_frame

__all__ = [
    "GeneratedProgram",
    "ctx_structs",
    "frame_specs",
    "frames",
    "map_contents",
    "packets",
    "programs",
    "values",
]

# -- packets ------------------------------------------------------------------------------------
_L4_DEFECTS = {IPPROTO_UDP: (Defect.BAD_UDP_LENGTH, Defect.BAD_L4_CHECKSUM),
               IPPROTO_TCP: (Defect.BAD_TCP_DOFF, Defect.BAD_L4_CHECKSUM)}


def _defects_for(version: int, proto: int) -> list[Defect]:
    """The defects a frame of this shape can carry."""
    if version == 0:
        return [Defect.TRUNCATED]
    out = [Defect.TRUNCATED, Defect.BAD_IP_LENGTH]
    if version == 4:
        out += [Defect.BAD_IP_CHECKSUM, Defect.BAD_IHL]
    out += list(_L4_DEFECTS.get(proto, ()))
    return out


@st.composite
def frame_specs(draw: Any, *, versions: Sequence[int] = (4, 6),
                protos: Sequence[int] = (IPPROTO_TCP, IPPROTO_UDP),
                broken: bool | None = False, max_payload: int = 64) -> FrameSpec:
    """Descriptions of frames. ``versions``: 4, 6, and 0 for a non-IP frame.
    ``protos``: IP protocol numbers (TCP and UDP get their headers). ``broken``:
    False for well-formed frames, True for exactly one defect, None for either."""
    version = draw(st.sampled_from(list(versions)))
    proto = draw(st.sampled_from(list(protos)))
    size = 4 if version != 6 else 16
    src = draw(st.binary(min_size=size, max_size=size))
    dst = draw(st.binary(min_size=size, max_size=size))
    payload = draw(st.binary(max_size=max_payload))
    ip_options = draw(st.sampled_from([b"", b"\x01\x01\x01\x00", b"\x94\x04\x00\x00"])) \
        if version == 4 else b""
    tcp_options = draw(st.sampled_from([b"", b"\x02\x04\x05\xb4", b"\x01\x01\x04\x02"])) \
        if proto == IPPROTO_TCP else b""
    defects: frozenset[Defect] = frozenset()
    if broken is None:
        broken = draw(st.booleans())
    if broken:
        defects = frozenset({draw(st.sampled_from(_defects_for(version, proto)))})
    return FrameSpec(version=version, proto=proto, src=src, dst=dst,
                     sport=draw(st.integers(0, 0xFFFF)), dport=draw(st.integers(0, 0xFFFF)),
                     payload=payload, ttl=draw(st.integers(1, 255)), ip_options=ip_options,
                     tcp_flags=draw(st.integers(0, 0xFF)), tcp_options=tcp_options,
                     ethertype=draw(st.sampled_from([0x88B5, 0x0806, 0x8100])),
                     defects=defects, truncate_to=draw(st.integers(0, 128)))


def frames(**kwargs: Any) -> st.SearchStrategy[Frame]:
    """Built frames (bytes and the spec they came from); options as :func:`frame_specs`."""
    return frame_specs(**kwargs).map(build_frame)


def packets(**kwargs: Any) -> st.SearchStrategy[bytes]:
    """Frame bytes, e.g. for ``data_in``; options as :func:`frame_specs`."""
    return frames(**kwargs).map(lambda f: f.data)


# -- ctx structs --------------------------------------------------------------------------------
_SKB_TYPES = frozenset({ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT,
                        ProgType.CGROUP_SKB, ProgType.LWT_IN, ProgType.LWT_OUT,
                        ProgType.LWT_XMIT})


def _uint(size: int) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << (8 * size)) - 1)


@st.composite
def ctx_structs(draw: Any, prog_type: ProgType | int, *,
                packet_size: int | None = None) -> bytes:
    """A ctx struct for ``prog_type`` as bytes.

    skb types: a test run's valid ``__sk_buff`` ctx_in (only the fields
    convert___skb_to_skb takes; ifindex 0 or 1, wire_len 0, gso_segs in range).
    XDP: a valid ``xdp_md`` ctx_in for a packet of ``packet_size`` bytes
    (metadata of 0..32 bytes in 4-byte steps leaving at least an Ethernet
    header of packet, no device). RAW_TRACEPOINT: 1-12
    u64 arguments. Other types: random values in the fields of their ctx table
    (pointer fields zero)."""
    from ..progs import prog_type_ops

    pt = ProgType(prog_type)
    if pt in _SKB_TYPES:
        from ..progs.skb import GSO_MAX_SEGS, SK_BUFF

        fields: dict[str, Any] = {
            "mark": draw(_uint(4)), "priority": draw(_uint(4)),
            "ingress_ifindex": draw(_uint(4)), "ifindex": draw(st.integers(0, 1)),
            "cb": draw(st.binary(min_size=20, max_size=20)), "tstamp": draw(_uint(8)),
            "gso_segs": draw(st.integers(0, GSO_MAX_SEGS)), "gso_size": draw(_uint(4)),
            "hwtstamp": draw(_uint(8)),
        }
        return _pack(SK_BUFF, fields)
    if pt is ProgType.XDP:
        from ..progs.xdp import XDP_MD

        if packet_size is None:
            raise ValueError("an xdp_md ctx_in depends on the packet: give packet_size=")
        # Metadata comes out of data_in; the kernel wants an Ethernet header after it.
        most = max(0, min(32, packet_size - 14)) // 4
        meta = draw(st.integers(0, most)) * 4
        return _pack(XDP_MD, {"data": meta, "data_end": packet_size})
    if pt in (ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE):
        args = draw(st.lists(_uint(8), min_size=1, max_size=12))
        return b"".join(a.to_bytes(8, "little") for a in args)
    ops = prog_type_ops(pt)
    if ops is None or ops.ctx is None:
        raise ValueError(f"pyebpf has no ctx table for {pt.name}")
    if not ops.ctx.fields:
        return draw(st.binary(min_size=8, max_size=min(ops.ctx.size, 256)))
    values_ = {f.name: draw(_uint(f.size)) for f in ops.ctx.fields if not f.pointer}
    return _pack(ops.ctx, values_)


def _pack(layout: Any, fields: dict[str, Any]) -> bytes:
    out = bytearray(layout.size)
    for name, value in fields.items():
        f = layout[name]
        raw = value if isinstance(value, bytes) else value.to_bytes(f.size, "little")
        out[f.offset:f.offset + len(raw)] = raw
    return bytes(out)


# -- map contents -------------------------------------------------------------------------------
def values(layout: Layout) -> st.SearchStrategy[Any]:
    """Python values for ``layout`` (ints, bytes, tuples, struct records)."""
    if isinstance(layout, IntLayout):
        bits = 8 * layout.size
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if layout.signed \
            else st.integers(0, (1 << bits) - 1)
    if isinstance(layout, FloatLayout):
        return st.floats(allow_nan=False, width=32 if layout.size == 4 else 64)
    if isinstance(layout, BytesLayout):
        return st.binary(min_size=layout.size, max_size=layout.size)
    if isinstance(layout, ArrayLayout):
        return st.tuples(*[values(layout.elem)] * layout.n)
    if isinstance(layout, PerCpuLayout):
        return st.tuples(*[values(layout.elem)] * layout.nr_cpus)
    if isinstance(layout, StructLayout):
        members = {}
        for m in layout.members:
            members[m.name] = st.integers(0, (1 << m.bitfield_size) - 1) if m.bitfield_size \
                else values(m.layout)
        return st.fixed_dictionaries(members).map(lambda d: layout.decode(layout.encode(d)))
    return st.binary(min_size=layout.size, max_size=layout.size)


def map_contents(codec: Any, *, max_entries: int | None = None,
                 max_size: int = 8) -> st.SearchStrategy[dict[Any, Any]]:
    """Contents for a map, as ``{key: value}`` in the layouts of ``codec`` (a
    :class:`~pyebpf.testing.cases.MapCodec`). Array maps get indexes below
    ``max_entries``; at most ``max_size`` entries (and ``max_entries``)."""
    from .cases import ARRAY_MAP_TYPES

    limit = max_size if max_entries is None else min(max_size, max_entries)
    if codec.map_type in ARRAY_MAP_TYPES:
        if max_entries is None:
            raise ValueError("array map contents need max_entries=")
        keys: st.SearchStrategy[Any] = st.integers(0, max_entries - 1)
    else:
        keys = values(codec.key)
    return st.dictionaries(keys, values(codec.value), max_size=limit)


# -- programs -----------------------------------------------------------------------------------
_ALU_OPS = (AluOp.ADD, AluOp.SUB, AluOp.MUL, AluOp.DIV, AluOp.OR, AluOp.AND, AluOp.LSH,
            AluOp.RSH, AluOp.MOD, AluOp.XOR, AluOp.MOV, AluOp.ARSH)
_JCC_OPS = (JmpOp.JEQ, JmpOp.JGT, JmpOp.JGE, JmpOp.JSET, JmpOp.JNE, JmpOp.JSGT, JmpOp.JSGE,
            JmpOp.JLT, JmpOp.JLE, JmpOp.JSLT, JmpOp.JSLE)
_SIZES = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}
_ATOMIC_OPS = (AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR, AtomicOp.FETCH_ADD,
               AtomicOp.FETCH_OR, AtomicOp.FETCH_AND, AtomicOp.FETCH_XOR, AtomicOp.XCHG,
               AtomicOp.CMPXCHG)
#: The registers an XDP program with packet blocks keeps for them: ctx, data, data_end.
_CTX, _DATA, _END = 6, 7, 8
#: The largest packet window a packet block checks against data_end.
MAX_PACKET_WINDOW = 64
#: Types whose programs read and write the packet directly (data/data_end in the ctx).
_DIRECT_PACKET_TYPES = frozenset({ProgType.XDP, ProgType.SCHED_CLS, ProgType.SCHED_ACT})


def _packet_fields(prog_type: ProgType) -> tuple[int, int]:
    """The ctx offsets of ``data`` and ``data_end`` (xdp_md or __sk_buff)."""
    if prog_type is ProgType.XDP:
        from ..progs.xdp import XDP_MD as layout
    else:
        from ..progs.skb import SK_BUFF as layout
    return layout["data"].offset, layout["data_end"].offset


#: bpf_get_smp_processor_id and bpf_get_numa_node_id: no arguments, and the same
#: answer on pyebpf (runtime cpu 0, node 0) and a kernel test run pinned to CPU 0.
_PURE_HELPERS = (8, 42)
_PSEUDO_CALL = 1


@attrs.frozen
class GeneratedProgram:
    """A drawn program and how it was drawn."""

    prog_type: ProgType
    insns: tuple[Insn, ...]
    #: Registers holding scalars (the others are reserved: ctx, packet pointers).
    scalars: tuple[int, ...]
    stack_slots: int

    def __len__(self) -> int:
        return len(self.insns)


@attrs.define
class _Gen:
    """The grammar's state while drawing: what is initialised, what is reserved."""

    draw: Any
    prog_type: ProgType
    regs: tuple[int, ...]
    slots: int
    v4: bool
    atomics: bool
    packet: bool
    ctx_fields: tuple[tuple[int, int], ...]
    budget: int
    #: Helpers with no pointer arguments whose result is the same on both sides.
    helpers: bool = False
    #: LD_ABS/LD_IND (skb types; r6 holds the ctx).
    legacy_loads: bool = False
    #: How many subprograms ``call pc+N`` may target (0: none; never from a subprogram).
    subprograms: int = 0

    def reg(self) -> int:
        return int(self.draw(st.sampled_from(self.regs)))

    def imm(self) -> int:
        return int(self.draw(st.one_of(st.integers(-4, 16), st.sampled_from(
            [-1, 0x7FFF_FFFF, -0x8000_0000, 0xFF, 0xFFFF, 31, 32, 63, 64]),
            st.integers(-0x8000_0000, 0x7FFF_FFFF))))

    # -- statements ------------------------------------------------------------------
    def alu(self) -> list[Insn]:
        d = self.draw
        cls = d(st.sampled_from([Class.ALU64, Class.ALU]))
        width = 64 if cls == Class.ALU64 else 32
        kind = d(st.sampled_from(["op", "op", "op", "neg", "end"]
                                 + (["movsx", "sdiv"] if self.v4 else [])))
        dst = self.reg()
        if kind == "neg":
            return [Insn(cls | AluOp.NEG, dst)]
        if kind == "end":
            bits = d(st.sampled_from([16, 32, 64]))
            if cls == Class.ALU64:  # bswap (v4) or nothing
                if not self.v4:
                    return [Insn(Class.ALU | AluOp.END | Source.X, dst, imm=bits)]
                return [Insn(Class.ALU64 | AluOp.END, dst, imm=bits)]
            src = d(st.sampled_from([Source.K, Source.X]))  # le / be
            return [Insn(Class.ALU | AluOp.END | src, dst, imm=bits)]
        if kind == "movsx":
            off = d(st.sampled_from([8, 16, 32] if cls == Class.ALU64 else [8, 16]))
            return [Insn(cls | AluOp.MOV | Source.X, dst, self.reg(), off=off)]
        if kind == "sdiv":
            op = d(st.sampled_from([AluOp.DIV, AluOp.MOD]))
            if d(st.booleans()):
                return [Insn(cls | op | Source.X, dst, self.reg(), off=1)]
            return [Insn(cls | op | Source.K, dst, off=1, imm=self._nonzero())]
        op = d(st.sampled_from(_ALU_OPS))
        if d(st.booleans()):
            return [Insn(cls | op | Source.X, dst, self.reg())]
        if op in (AluOp.LSH, AluOp.RSH, AluOp.ARSH):
            imm = d(st.integers(0, width - 1))
        elif op in (AluOp.DIV, AluOp.MOD):
            imm = self._nonzero()
        else:
            imm = self.imm()
        return [Insn(cls | op | Source.K, dst, imm=imm)]

    def _nonzero(self) -> int:
        v = self.imm()
        return v if v else 1

    def lddw(self) -> list[Insn]:
        v = self.draw(st.integers(0, (1 << 64) - 1))
        lo, hi = v & 0xFFFF_FFFF, v >> 32
        s32 = lambda x: x - (1 << 32) if x & 0x8000_0000 else x  # noqa: E731
        return [Insn(Class.LD | Size.DW | Mode.IMM, self.reg(), imm=s32(lo)),
                Insn(0, imm=s32(hi))]

    def stack(self) -> list[Insn]:
        d = self.draw
        size = d(st.sampled_from([1, 2, 4, 8]))
        off = -8 * self.slots + size * d(st.integers(0, 8 * self.slots // size - 1))
        kind = d(st.sampled_from(["ldx", "stx", "st"] + (["ldsx"] if self.v4 else [])
                                 + (["atomic"] if self.atomics else [])))
        sz = _SIZES[size]
        if kind == "ldx":
            return [Insn(Class.LDX | Mode.MEM | sz, self.reg(), 10, off)]
        if kind == "ldsx" and size != 8:
            return [Insn(Class.LDX | Mode.MEMSX | sz, self.reg(), 10, off)]
        if kind == "st":
            return [Insn(Class.ST | Mode.MEM | sz, 10, 0, off, self.imm())]
        if kind == "atomic" and size in (4, 8):
            op = d(st.sampled_from(_ATOMIC_OPS))
            if op == AtomicOp.CMPXCHG and 0 not in self.regs:
                op = AtomicOp.XCHG
            return [Insn(Class.STX | Mode.ATOMIC | sz, 10, self.reg(), off, int(op))]
        return [Insn(Class.STX | Mode.MEM | sz, 10, self.reg(), off)]

    def ctx_load(self) -> list[Insn]:
        off, size = self.draw(st.sampled_from(self.ctx_fields))
        return [Insn(Class.LDX | Mode.MEM | _SIZES[size], self.reg(), _CTX, off)]

    def packet_block(self) -> list[Insn]:
        """``data + n <= data_end`` checked, then loads and stores inside the window."""
        d = self.draw
        window = d(st.integers(1, MAX_PACKET_WINDOW))
        body: list[Insn] = []
        for _ in range(d(st.integers(1, 4))):
            size = d(st.sampled_from([s for s in (1, 2, 4, 8) if s <= window]))
            off = d(st.integers(0, window - size))
            sz = _SIZES[size]
            kind = d(st.sampled_from(["ldx", "stx", "st"]))
            if kind == "ldx":
                body.append(Insn(Class.LDX | Mode.MEM | sz, self.reg(), _DATA, off))
            elif kind == "stx":
                body.append(Insn(Class.STX | Mode.MEM | sz, _DATA, self.reg(), off))
            else:
                body.append(Insn(Class.ST | Mode.MEM | sz, _DATA, 0, off, self.imm()))
            if d(st.booleans()):
                body += self.alu()
        data_off, end_off = _packet_fields(self.prog_type)
        head = [Insn(Class.LDX | Mode.MEM | Size.W, _DATA, _CTX, data_off),
                Insn(Class.LDX | Mode.MEM | Size.W, _END, _CTX, end_off),
                Insn(Class.ALU64 | AluOp.MOV | Source.X, 9, _DATA),
                Insn(Class.ALU64 | AluOp.ADD | Source.K, 9, imm=window),
                Insn(Class.JMP | JmpOp.JGT | Source.X, 9, _END, len(body))]
        return head + body

    def _clobbered(self) -> list[Insn]:
        """After a call r1-r5 are unreadable: set the ones in use again."""
        return [Insn(Class.ALU64 | AluOp.MOV | Source.K, r, imm=self.imm())
                for r in self.regs if 1 <= r <= 5]

    def helper_call(self) -> list[Insn]:
        func = self.draw(st.sampled_from(_PURE_HELPERS))
        return [Insn(Class.JMP | JmpOp.CALL, imm=func), *self._clobbered()]

    def subprogram_call(self) -> list[Insn]:
        """``call pc+N`` to subprogram k: ``imm`` holds k until :func:`_link`."""
        k = self.draw(st.integers(0, self.subprograms - 1))
        return [Insn(Class.JMP | JmpOp.CALL, src=_PSEUDO_CALL, imm=k), *self._clobbered()]

    def legacy_load(self) -> list[Insn]:
        """LD_ABS/LD_IND: a packet load that ends the program (r0 = 0) when out of bounds."""
        d = self.draw
        sz = d(st.sampled_from([Size.B, Size.H, Size.W]))
        if d(st.booleans()):
            insn = Insn(Class.LD | Mode.ABS | sz, imm=d(st.integers(0, 127)))
        else:
            insn = Insn(Class.LD | Mode.IND | sz, src=self.reg(), imm=d(st.integers(0, 63)))
        return [insn, *self._clobbered()]

    def cond(self, skip: int) -> Insn:
        d = self.draw
        cls = d(st.sampled_from([Class.JMP, Class.JMP32]))
        op = d(st.sampled_from(_JCC_OPS))
        if d(st.booleans()):
            return Insn(cls | op | Source.X, self.reg(), self.reg(), skip)
        return Insn(cls | op | Source.K, self.reg(), 0, skip, self.imm())

    def block(self, depth: int) -> list[Insn]:
        d = self.draw
        out: list[Insn] = []
        n = d(st.integers(1, 8))
        for _ in range(n):
            if self.budget <= 0:
                break
            self.budget -= 1
            choices = ["alu"] * 6 + ["lddw"]
            if self.slots:
                choices += ["stack"] * 3
            if self.ctx_fields:
                choices += ["ctx"]
            if self.packet:
                choices += ["packet"] * 2
            if self.helpers:
                choices += ["helper"]
            if self.legacy_loads:
                choices += ["legacy"]
            if self.subprograms:
                choices += ["subprog"]
            if depth < 3:
                choices += ["if", "ifelse"]
            what = d(st.sampled_from(choices))
            if what == "if":
                then = self.block(depth + 1)
                out += [self.cond(len(then)), *then]
            elif what == "ifelse":
                then = self.block(depth + 1)
                if self.v4 and d(st.booleans()):  # gotol: a 32-bit jump offset in imm
                    over = Insn(Class.JMP32 | JmpOp.JA, imm=len(then))
                else:
                    over = Insn(Class.JMP | JmpOp.JA, off=len(then))
                other = [*self.block(depth + 1), over]
                out += [self.cond(len(other)), *other, *then]
            elif what == "stack":
                out += self.stack()
            elif what == "ctx":
                out += self.ctx_load()
            elif what == "packet":
                out += self.packet_block()
            elif what == "lddw":
                out += self.lddw()
            elif what == "helper":
                out += self.helper_call()
            elif what == "legacy":
                out += self.legacy_load()
            elif what == "subprog":
                out += self.subprogram_call()
            else:
                out += self.alu()
        return out


def _readable_ctx_fields(prog_type: ProgType,
                         exclude: frozenset[str] = frozenset()) -> tuple[tuple[int, int], ...]:
    """(offset, size) of whole scalar ctx fields the type may load, by its tables."""
    if prog_type is ProgType.XDP:
        from ..progs.xdp import XDP_MD

        # xdp_is_valid_access: egress_ifindex only for BPF_XDP_DEVMAP programs.
        return tuple((f.offset, f.size) for f in XDP_MD.fields
                     if not f.pointer and f.name != "egress_ifindex" and f.name not in exclude)
    if prog_type in _SKB_TYPES:
        from ..progs.skb import SK_BUFF, skb_access

        out = []
        for f in SK_BUFF.fields:
            if f.pointer or f.name in ("sk", "flow_keys") or f.name in exclude:
                continue
            # Array fields (cb, remote_ip6...) word by word.
            words = [(f.offset + i, 4) for i in range(0, f.size, 4)] if f.size > 8 \
                else [(f.offset, f.size if f.size in (1, 2, 4, 8) else 4)]
            for off, size in words:
                a = skb_access(prog_type, off, size, False)
                if a is not None and a.reg_type is None:
                    out.append((off, size))
        return tuple(out)
    return ()


@st.composite
def programs(draw: Any, prog_type: ProgType | int = ProgType.SOCKET_FILTER, *,
             max_statements: int = 24, stack: bool = True, ctx: bool = True,
             ctx_exclude: Sequence[str] = (), packet: bool = True, v4: bool = True,
             atomics: bool = True, calls: bool = True,
             legacy_loads: bool = True) -> GeneratedProgram:
    """Random programs the kernel's verifier accepts (see the module docstring).

    ``prog_type``: XDP or an skb type (SOCKET_FILTER, SCHED_CLS...).
    ``stack``: use 1-8 initialised 8-byte stack slots. ``ctx``: load scalar ctx
    fields the type allows, except those named in ``ctx_exclude``. ``packet``
    (XDP, SCHED_CLS, SCHED_ACT): packet loads and stores behind a data_end
    check. ``v4``: cpu v4
    instructions (sdiv/smod, movsx, ldsx, bswap, gotol). ``atomics``: atomic
    ops on the stack. ``calls``: calls of argument-less helpers and of up to
    two BPF-to-BPF subprograms (scalar arguments in r1-r5, their own stack).
    ``legacy_loads`` (skb types, with ``ctx``): LD_ABS and LD_IND."""
    pt = ProgType(prog_type)
    with_packet = packet and pt in _DIRECT_PACKET_TYPES
    ctx_fields = _readable_ctx_fields(pt, frozenset(ctx_exclude)) if ctx else ()
    legacy = legacy_loads and ctx and pt in _SKB_TYPES
    reserved = set()
    if ctx_fields or with_packet or legacy:
        reserved.add(_CTX)
    if with_packet:
        reserved |= {_DATA, _END, 9}
    regs = tuple(r for r in range(10) if r not in reserved)
    slots = draw(st.integers(1, 8)) if stack else 0
    nsub = draw(st.integers(0, 2)) if calls else 0
    g = _Gen(draw=draw, prog_type=pt, regs=regs, slots=slots, v4=v4, atomics=atomics,
             packet=with_packet, ctx_fields=ctx_fields,
             budget=draw(st.integers(1, max_statements)), helpers=calls,
             legacy_loads=legacy, subprograms=nsub)
    prologue: list[Insn] = []
    if _CTX in reserved:
        prologue.append(Insn(Class.ALU64 | AluOp.MOV | Source.X, _CTX, 1))
    main = [*prologue, *_frame_setup(g), *g.block(0), Insn(Class.JMP | JmpOp.EXIT)]
    subs = []
    for _ in range(nsub):
        # A subprogram sees scalars in r1-r5 (the caller's); it sets r0 itself and
        # uses only r0-r5, its own stack, helpers and branches.
        sg = _Gen(draw=draw, prog_type=pt, regs=(0, 1, 2, 3, 4, 5),
                  slots=draw(st.integers(0, 4)) if stack else 0, v4=v4, atomics=atomics,
                  packet=False, ctx_fields=(), budget=draw(st.integers(1, 8)),
                  helpers=calls)
        subs.append([*_frame_setup(sg, regs=(0,)), *sg.block(1),
                     Insn(Class.JMP | JmpOp.EXIT)])
    insns = _link(main, subs)
    return GeneratedProgram(prog_type=pt, insns=insns, scalars=regs, stack_slots=slots)


def _frame_setup(g: _Gen, regs: Sequence[int] | None = None) -> list[Insn]:
    """Set ``regs`` (default: every scalar register) and the frame's stack slots."""
    out = [Insn(Class.ALU64 | AluOp.MOV | Source.K, r, imm=g.imm())
           for r in (g.regs if regs is None else regs)]
    for k in range(1, g.slots + 1):
        if g.draw(st.booleans()):
            out.append(Insn(Class.STX | Mode.MEM | Size.DW, 10, g.reg(), -8 * k))
        else:
            out.append(Insn(Class.ST | Mode.MEM | Size.DW, 10, 0, -8 * k, g.imm()))
    return out


def _link(main: list[Insn], subs: list[list[Insn]]) -> tuple[Insn, ...]:
    """Append the subprograms that are called (the kernel refuses unreachable code)
    and point each ``call pc+N`` at its subprogram."""
    called = sorted({i.imm for i in main
                     if i.code == Class.JMP | JmpOp.CALL and i.src == _PSEUDO_CALL})
    starts, at = {}, len(main)
    for k in called:
        starts[k] = at
        at += len(subs[k])
    out = list(main)
    for pc, insn in enumerate(main):
        if insn.code == Class.JMP | JmpOp.CALL and insn.src == _PSEUDO_CALL:
            out[pc] = attrs.evolve(insn, imm=starts[insn.imm] - (pc + 1))
    for k in called:
        out += subs[k]
    return tuple(out)
