"""Helper scenarios that run the same on pyebpf and on the real kernel.

Each scenario takes a backend (:class:`~._build.PyBackend` or
:class:`~._build.KernelBackend`), loads XDP programs calling helpers, runs them
with PROG_TEST_RUN and returns plain data (retvals as signed ints, bytes read
back from maps). The unit tests pin pyebpf's answers; the differential tests
(tests/kernel/test_helpers_differential.py) require the kernel's to be equal.
"""

from __future__ import annotations

import errno
from typing import Any

from pyebpf import BpfError, Insn, MapFlags, MapType

from ._build import (
    ADD,
    JEQ,
    JNE,
    LSH,
    OR,
    Asm,
    alu,
    alur,
    call,
    exit_,
    get_value,
    ld_map_fd,
    lddw,
    ldx,
    mov,
    movr,
    s32,
    st,
    stx,
    u32,
)

Backend = Any
BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK = 0, 1, 2, 4


def _errno_of(exc: BaseException) -> int:
    return int(getattr(exc, "errno", 0) or 0)


# -- map element helpers --------------------------------------------------------------------------
def _elem_prog(map_fd: int, func: int, key: int | None, value: int | None, flags: int,
               ret_value: bool = False) -> list[Insn]:
    """r1 = map, r2 = &key (u64 on the stack), r3 = &value, r4 = flags; call func.
    With ``ret_value``: return the u32 at the returned pointer (0xdead for NULL)."""
    p = Asm()
    regs = []
    if key is not None:
        p(lddw(6, key), stx(8, 10, 6, -16))
        regs.append(2)
    if value is not None:
        p(lddw(6, value), stx(8, 10, 6, -32))
    p(ld_map_fd(1, map_fd))
    if key is not None:
        p(movr(2, 10), alu(ADD, 2, -16))
        if value is not None:
            p(movr(3, 10), alu(ADD, 3, -32), lddw(4, flags))
    elif value is not None:  # push/pop/peek: r2 = &value, r3 = flags
        p(movr(2, 10), alu(ADD, 2, -32), lddw(3, flags))
    p(call(func))
    if ret_value:
        p.jmp(JEQ, 0, 0, "null")
        p(ldx(4, 0, 0, 0), exit_())
        p.label("null")
        p(mov(0, 0xDEAD), exit_())
    elif value is not None and key is None and func in (88, 89):
        # pop/peek: return r0, and leave the value popped in the stack slot for
        # the caller to see through the retval's upper half: ret = r0 ? r0 : value
        p.jmp(JNE, 0, 0, "err")
        p(ldx(4, 0, 10, -32), exit_())
        p.label("err")
        p(exit_())
    else:
        p(exit_())
    return p.build()


def _op(be: Backend, map_fd: int, func: int, key: int | None = None,
        value: int | None = None, flags: int = 0, ret_value: bool = False) -> int:
    fd = be.load(_elem_prog(map_fd, func, key, value, flags, ret_value))
    try:
        return s32(be.run(fd))
    finally:
        be.close_fd(fd)


LOOKUP, UPDATE, DELETE, PUSH, POP, PEEK = 1, 2, 3, 87, 88, 89


def hash_update_delete(be: Backend) -> list[int]:
    """Program-side update/delete on a 2-entry hash: every errno on the way."""
    m = be.map_create(MapType.HASH, 4, 8, 2)
    return [
        _op(be, m, UPDATE, 1, 11, BPF_ANY),
        _op(be, m, UPDATE, 1, 12, BPF_NOEXIST),      # -EEXIST
        _op(be, m, UPDATE, 2, 21, BPF_EXIST),        # -ENOENT
        _op(be, m, UPDATE, 2, 22, BPF_ANY),
        _op(be, m, UPDATE, 3, 33, BPF_ANY),          # full: -E2BIG
        _op(be, m, UPDATE, 1, 13, BPF_EXIST),
        _op(be, m, UPDATE, 1, 14, BPF_F_LOCK),       # no spin lock: -EINVAL
        _op(be, m, UPDATE, 1, 15, 8),                # unknown flag: -EINVAL
        _op(be, m, LOOKUP, 1, ret_value=True),
        _op(be, m, LOOKUP, 3, ret_value=True),        # NULL
        _op(be, m, DELETE, 3),                        # -ENOENT
        _op(be, m, DELETE, 1),
        _op(be, m, LOOKUP, 1, ret_value=True),
        _op(be, m, UPDATE, 3, 34, BPF_ANY),          # room again
        _op(be, m, LOOKUP, 3, ret_value=True),
    ]


HASH_UPDATE_DELETE = [0, -errno.EEXIST, -errno.ENOENT, 0, -errno.E2BIG, 0, -errno.EINVAL,
                      -errno.EINVAL, 13, 0xDEAD, -errno.ENOENT, 0, 0xDEAD, 0, 34]


def array_update_delete(be: Backend) -> list[int]:
    m = be.map_create(MapType.ARRAY, 4, 8, 4)
    return [
        _op(be, m, UPDATE, 3, 7, BPF_ANY),
        _op(be, m, UPDATE, 4, 7, BPF_ANY),           # past the end: -E2BIG
        _op(be, m, UPDATE, 1, 7, BPF_NOEXIST),       # -EEXIST
        _op(be, m, UPDATE, 1, 9, BPF_EXIST),
        _op(be, m, UPDATE, 1, 9, 3),                 # -EINVAL
        _op(be, m, DELETE, 1),                       # -EINVAL
        _op(be, m, LOOKUP, 1, ret_value=True),
        _op(be, m, LOOKUP, 0, ret_value=True),
        _op(be, m, LOOKUP, 4, ret_value=True),        # NULL
        _op(be, m, LOOKUP, 1 << 32 | 3, ret_value=True),  # the key is the low u32: 3
    ]


ARRAY_UPDATE_DELETE = [0, -errno.E2BIG, -errno.EEXIST, 0, -errno.EINVAL, -errno.EINVAL, 9, 0,
                       0xDEAD, 7]


def queue_stack(be: Backend, map_type: int) -> list[int]:
    """push/pop/peek on a 2-slot queue or stack; pop/peek return the value on success."""
    m = be.map_create(map_type, 0, 8, 2)
    return [
        _op(be, m, POP, value=0),                    # empty: -ENOENT
        _op(be, m, PEEK, value=0),                   # -ENOENT
        _op(be, m, PUSH, value=100, flags=0),
        _op(be, m, PUSH, value=200, flags=0),
        _op(be, m, PUSH, value=300, flags=0),        # full: -E2BIG
        _op(be, m, PUSH, value=300, flags=BPF_NOEXIST),  # -EINVAL
        _op(be, m, PUSH, value=300, flags=BPF_EXIST),    # drops the oldest
        _op(be, m, PEEK, value=0),
        _op(be, m, POP, value=0),
        _op(be, m, POP, value=0),
        _op(be, m, POP, value=0),                    # -ENOENT
    ]


QUEUE = [-errno.ENOENT, -errno.ENOENT, 0, 0, -errno.E2BIG, -errno.EINVAL, 0, 200, 200, 300,
         -errno.ENOENT]
STACK = [-errno.ENOENT, -errno.ENOENT, 0, 0, -errno.E2BIG, -errno.EINVAL, 0, 300, 300, 200,
         -errno.ENOENT]


def percpu_lookup(be: Backend, nr_cpus: int) -> list[int]:
    """bpf_map_lookup_percpu_elem on a per-CPU array set from user space."""
    m = be.map_create(MapType.PERCPU_ARRAY, 4, 8, 2)
    be.update(m, u32(1), b"".join((1000 + c).to_bytes(8, "little") for c in range(nr_cpus)))
    out = []
    for cpu in (0, 1, nr_cpus - 1, nr_cpus, 0xFFFF_FFFF, 1 << 32):
        p = Asm()
        p(st(4, 10, -4, 1), ld_map_fd(1, m), movr(2, 10), alu(ADD, 2, -4), lddw(3, cpu),
          call(195))
        p.jmp(JEQ, 0, 0, "null")
        p(ldx(4, 0, 0, 0), exit_())
        p.label("null")
        p(mov(0, 0xDEAD), exit_())
        fd = be.load(p.build())
        out.append(s32(be.run(fd)))
        be.close_fd(fd)
    return out


def percpu_lookup_expected(nr_cpus: int) -> list[int]:
    # cpu is a u32 argument: 1 << 32 is CPU 0.
    return [1000, 1001, 1000 + nr_cpus - 1, 0xDEAD, 0xDEAD, 1000]


# -- callbacks ------------------------------------------------------------------------------------
def loop(be: Backend, nr_loops: int, stop_at: int = -1, flags: int = 0) -> int:
    """bpf_loop summing i into a stack counter; ret = (sum << 8) | (bpf_loop's r0 & 0xff),
    or bpf_loop's r0 when negative."""
    p = Asm()
    p(mov(6, 0), stx(8, 10, 6, -8), lddw(1, nr_loops))
    p.ld_func(2, "cb")
    p(movr(3, 10), alu(ADD, 3, -8), lddw(4, flags), call(181))
    p.jmp(0xC0, 0, 0, "neg")  # JSLT r0, 0
    p(movr(6, 0), alu(0x50, 6, 0xFF), ldx(8, 0, 10, -8), alu(LSH, 0, 8), alur(OR, 0, 6), exit_())
    p.label("neg")
    p(exit_())
    p.label("cb")
    p(ldx(8, 0, 2, 0), alur(ADD, 0, 1), stx(8, 2, 0, 0), mov(0, 0))
    p.jmp(JEQ, 1, stop_at & 0xFFFF_FFFF if stop_at >= 0 else 0x7FFF_FFFF, "stop")
    p(exit_())
    p.label("stop")
    p(mov(0, 1), exit_())
    insns = p.build()
    fd = be.load(insns, funcs=[(0, "main", 1), (p.labels["cb"], "cb", 0)])
    try:
        return s32(be.run(fd))
    finally:
        be.close_fd(fd)


LOOP_CASES = {
    "five": ((5,), (0 + 1 + 2 + 3 + 4) << 8 | 5),
    "zero": ((0,), 0),
    "stop_at_3": ((10, 3), (0 + 1 + 2 + 3) << 8 | 4),
    "stop_at_0": ((10, 0), 1),
    "flags": ((5, -1, 1), -errno.EINVAL),
    # The verifier inlines bpf_loop when flags are a known 0: its -E2BIG is a 32-bit
    # move (so not negative as a 64-bit value) and it compares all 64 bits of nr_loops.
    "too_many": ((8 * 1024 * 1024 + 1,), -errno.E2BIG & 0xFF),
    "u64_count": (((1 << 32) | 3,), -errno.E2BIG & 0xFF),
}


def for_each(be: Backend, map_type: int, stop_key: int = -1, flags: int = 0) -> int:
    """bpf_for_each_map_elem summing u64 values of 4 elements (keys 0..3, value 10*(k+1));
    ret = (sum << 8) | count, or the negative error."""
    m = be.map_create(map_type, 4, 8, 4, MapFlags.ZERO_SEED if map_type == MapType.HASH else 0)
    copies = be.nr_cpus if map_type == MapType.PERCPU_ARRAY else 1
    for k in range(4):
        be.update(m, u32(k), (10 * (k + 1)).to_bytes(8, "little") * copies)
    p = Asm()
    p(mov(6, 0), stx(8, 10, 6, -8), ld_map_fd(1, m))
    p.ld_func(2, "cb")
    p(movr(3, 10), alu(ADD, 3, -8), lddw(4, flags), call(164))
    p.jmp(0xC0, 0, 0, "neg")
    p(movr(6, 0), ldx(8, 0, 10, -8), alu(LSH, 0, 8), alur(OR, 0, 6), exit_())
    p.label("neg")
    p(exit_())
    p.label("cb")  # (map, key, value, ctx)
    p(ldx(8, 0, 4, 0), ldx(8, 5, 3, 0), alur(ADD, 0, 5), stx(8, 4, 0, 0))
    p(ldx(4, 1, 2, 0), mov(0, 0))
    p.jmp(JEQ, 1, stop_key & 0xFFFF_FFFF if stop_key >= 0 else 0x7FFF_FFFF, "stop")
    p(exit_())
    p.label("stop")
    p(mov(0, 1), exit_())
    fd = be.load(p.build(), funcs=[(0, "main", 1), (p.labels["cb"], "cb", 0)])
    try:
        return s32(be.run(fd))
    finally:
        be.close_fd(fd)


FOR_EACH_CASES = {
    "array_all": ((MapType.ARRAY,), 100 << 8 | 4),
    "array_stop_at_1": ((MapType.ARRAY, 1), 30 << 8 | 2),
    "array_flags": ((MapType.ARRAY, -1, 1), -errno.EINVAL),
    "hash_all": ((MapType.HASH,), 100 << 8 | 4),
    "percpu_array_all": ((MapType.PERCPU_ARRAY,), 100 << 8 | 4),  # the same on every CPU
    "hash_flags": ((MapType.HASH, -1, 2), -errno.EINVAL),
}


# -- tail calls -----------------------------------------------------------------------------------
def tail_chain(be: Backend, length: int, *, slots: int = 40) -> tuple[int, int]:
    """Programs 0..length-1, program i counting itself in a map and tail-calling i+1.
    Returns (retval of program 0: 1 if the last tail call fell through, the count)."""
    pa = be.map_create(MapType.PROG_ARRAY, 4, 4, slots)
    cnt = be.map_create(MapType.ARRAY, 4, 8, 1)
    fds = []
    for i in range(length):
        p = Asm()
        p(movr(6, 1))
        get_value(p, cnt, 7)
        p(mov(1, 1), Insn(0xDB, 7, 1, 0, 0))  # lock *(u64 *)(r7 + 0) += r1
        p(movr(1, 6), ld_map_fd(2, pa), mov(3, i + 1), call(12), mov(0, 1), exit_())
        fds.append(be.load(p.build()))
    for i, fd in enumerate(fds):
        be.update(pa, u32(i), u32(fd))
    ret = be.run(fds[0])
    count = int.from_bytes(be.lookup(cnt, u32(0), 8), "little")
    return ret, count


def tail_call_misses(be: Backend) -> list[int]:
    """Index out of range, empty slot, u32 truncation of the index: 5 when the tail
    call falls through, the target's 77 when it is taken."""
    pa = be.map_create(MapType.PROG_ARRAY, 4, 4, 4)
    target = Asm()(mov(0, 77), exit_()).build()
    tfd = be.load(target)
    be.update(pa, u32(0), u32(tfd))
    out = []
    for index in (4, 1, 0xFFFF_FFFF, 1 << 32, 0):
        p = Asm()
        p(ld_map_fd(2, pa), lddw(3, index), call(12), mov(0, 5), exit_())
        fd = be.load(p.build())
        out.append(s32(be.run(fd)))
        be.close_fd(fd)
    return out


TAIL_CALL_MISSES = [5, 5, 5, 77, 77]


def prog_array_syscalls(be: Backend) -> list[Any]:
    """The syscall side of a PROG_ARRAY: update/lookup/delete errnos and compat."""
    out: list[Any] = []

    def attempt(fn: Any) -> Any:
        try:
            r = fn()
            return "ok" if r is None else r
        except BpfError as e:
            return errno.errorcode.get(_errno_of(e), _errno_of(e))

    for vs, ks, flags in ((8, 4, 0), (4, 8, 0), (4, 4, MapFlags.RDONLY_PROG),
                          (4, 4, MapFlags.WRONLY_PROG), (4, 4, MapFlags.MMAPABLE),
                          (4, 4, MapFlags.RDONLY)):
        out.append(attempt(lambda ks=ks, vs=vs, flags=flags: be.map_create(
            MapType.PROG_ARRAY, ks, vs, 4, flags) and "ok"))
    pa = be.map_create(MapType.PROG_ARRAY, 4, 4, 4)
    ret0 = [mov(0, 0), exit_()]
    xdp = be.load(ret0)
    xdp_frags = be.load(ret0, prog_flags=1 << 5)
    sf = be.load(ret0, prog_type=1)
    arr = be.map_create(MapType.ARRAY, 4, 4, 1)
    out += [
        attempt(lambda: be.lookup(pa, u32(0), 4)),                    # ENOENT
        attempt(lambda: be.lookup(pa, u32(9), 4)),                    # ENOENT
        attempt(lambda: be.delete(pa, u32(0))),                       # ENOENT
        attempt(lambda: be.delete(pa, u32(9))),                       # E2BIG
        attempt(lambda: be.update(pa, u32(0), u32(999))),             # EBADF
        attempt(lambda: be.update(pa, u32(0), u32(arr))),             # EINVAL (a map)
        attempt(lambda: be.update(pa, u32(9), u32(999))),             # E2BIG before the fd
        attempt(lambda: be.update(pa, u32(0), u32(999), BPF_NOEXIST)),  # EINVAL before all
        attempt(lambda: be.update(pa, u32(0), u32(xdp))),             # ok: owner XDP
        attempt(lambda: be.update(pa, u32(0), u32(xdp), BPF_EXIST)),  # EINVAL
        attempt(lambda: be.update(pa, u32(1), u32(sf))),              # EINVAL: other type
        attempt(lambda: be.update(pa, u32(1), u32(xdp_frags))),       # EINVAL: frags
        attempt(lambda: be.update(pa, u32(1), u32(xdp))),             # ok: the same twice
        attempt(lambda: be.delete(pa, u32(0))),
        attempt(lambda: be.delete(pa, u32(1))),
        attempt(lambda: be.update(pa, u32(1), u32(sf))),              # EINVAL: owner stays
    ]
    return out


PROG_ARRAY_SYSCALLS = ["EINVAL", "EINVAL", "EINVAL", "EINVAL", "EINVAL", "ok",
                       "ENOENT", "ENOENT", "ENOENT", "E2BIG", "EBADF", "EINVAL", "E2BIG",
                       "EINVAL", "ok", "EINVAL", "EINVAL", "EINVAL", "ok", "ok", "ok", "EINVAL"]


def prog_array_owner_at_load(be: Backend) -> list[Any]:
    """Loading a program that uses a prog array claims the array for its type."""
    out: list[Any] = []
    pa = be.map_create(MapType.PROG_ARRAY, 4, 4, 4)
    user = [*ld_map_fd(1, pa), mov(0, 0), exit_()]
    for prog_type, eat in ((1, 0), (6, 0), (1, 0)):  # SOCKET_FILTER claims it; XDP can't
        try:
            be.load(user, prog_type=prog_type, expected_attach_type=eat)
            out.append("ok")
        except BpfError as e:
            out.append(errno.errorcode.get(_errno_of(e), _errno_of(e)))
    xdp = be.load([mov(0, 0), exit_()])
    try:
        be.update(pa, u32(0), u32(xdp))
        out.append("ok")
    except BpfError as e:
        out.append(errno.errorcode.get(_errno_of(e), _errno_of(e)))
    # expected_attach_type matters for program arrays.
    pa2 = be.map_create(MapType.PROG_ARRAY, 4, 4, 4)
    xdp_eat = be.load([mov(0, 0), exit_()], expected_attach_type=37)  # BPF_XDP
    for fd in (xdp_eat, xdp):
        try:
            be.update(pa2, u32(0), u32(fd))
            out.append("ok")
        except BpfError as e:
            out.append(errno.errorcode.get(_errno_of(e), _errno_of(e)))
    return out


PROG_ARRAY_OWNER_AT_LOAD = ["ok", "EINVAL", "ok", "EINVAL", "ok", "EINVAL"]


# -- printf-like helpers --------------------------------------------------------------------------
FMT_VS = 256
OUT_VS = 256
#: Strings placed in the read-only format map, after the format: (offset, bytes).
STRINGS = {128: b"hello", 160: b"a longer string, 31 chars long", 200: b"", 208: b"\x01\x02"}
IPV4 = 216  # 4 bytes: 10.0.200.7
IPV6 = 224  # 16 bytes


def _fmt_value(fmt: bytes) -> bytes:
    value = bytearray(FMT_VS)
    value[: len(fmt)] = fmt
    for off, s in STRINGS.items():
        value[off:off + len(s) + 1] = s + b"\0"
    value[IPV4:IPV4 + 4] = bytes([10, 0, 200, 7])
    value[IPV6:IPV6 + 16] = bytes.fromhex("20010db8000000000000000000000001")
    return bytes(value)


def _load_args(p: Asm, args: list[Any], base_reg: int, at: int) -> None:
    """Store args (ints, or ("str", offset) / ("ptr", offset): pointers into the
    format map) as u64s at r10 + at + 8 * i."""
    for i, a in enumerate(args):
        if isinstance(a, tuple):
            p(movr(1, base_reg), alu(ADD, 1, a[1]))
        else:
            p(lddw(1, a))
        p(stx(8, 10, 1, at + 8 * i))


def snprintf(be: Backend, fmt: bytes, args: list[Any], size: int = OUT_VS,
             null_out: bool = False) -> tuple[int, bytes]:
    """bpf_snprintf(out, size, fmt, args, 8 * len(args)): (r0, the out buffer)."""
    fmap = be.map_create(MapType.ARRAY, 4, FMT_VS, 1, MapFlags.RDONLY_PROG)
    be.update(fmap, u32(0), _fmt_value(fmt))
    be.freeze(fmap)
    out = be.map_create(MapType.ARRAY, 4, OUT_VS, 1)
    be.update(out, u32(0), b"\xAA" * OUT_VS)
    p = Asm()
    get_value(p, out, 9, tag="o")
    get_value(p, fmap, 8, tag="f")
    n = len(args)
    _load_args(p, args, 8, -8 * n)
    if null_out:
        p(mov(1, 0), mov(2, 0))
    else:
        p(movr(1, 9), mov(2, size))
    p(movr(3, 8))
    if n:
        p(movr(4, 10), alu(ADD, 4, -8 * n), mov(5, 8 * n))
    else:
        p(mov(4, 0), mov(5, 0))
    p(call(165), exit_())
    fd = be.load(p.build())
    try:
        ret = s32(be.run(fd))
    finally:
        be.close_fd(fd)
    return ret, be.lookup(out, u32(0), OUT_VS)


def trace_printk(be: Backend, fmt: bytes, args: list[Any], fmt_size: int | None = None,
                 vprintk: bool = False) -> int:
    """bpf_trace_printk(fmt, fmt_size, a1, a2, a3) (or bpf_trace_vprintk): its r0."""
    fmap = be.map_create(MapType.ARRAY, 4, FMT_VS, 1)
    be.update(fmap, u32(0), _fmt_value(fmt))
    p = Asm()
    get_value(p, fmap, 8, tag="f")
    size = len(fmt) + 1 if fmt_size is None else fmt_size
    if vprintk:
        n = len(args)
        _load_args(p, args, 8, -8 * max(n, 1))
        p(movr(1, 8), mov(2, size))
        if n:
            p(movr(3, 10), alu(ADD, 3, -8 * n), mov(4, 8 * n))
        else:
            p(mov(3, 0), mov(4, 0))
        p(call(177), exit_())
    else:
        for i, a in enumerate(args):
            if isinstance(a, tuple):
                p(movr(3 + i, 8), alu(ADD, 3 + i, a[1]))
            else:
                p(lddw(3 + i, a))
        p(movr(1, 8), mov(2, size), call(6), exit_())
    fd = be.load(p.build())
    try:
        return s32(be.run(fd))
    finally:
        be.close_fd(fd)


S = lambda off: ("str", off)  # noqa: E731
#: (format, args) -> the output (snprintf returns its length + 1), on Linux 6.18.
SNPRINTF_CASES: dict[str, tuple[bytes, list[Any], bytes]] = {
    "plain": (b"hello world", [], b"hello world"),
    "percent": (b"100%% sure", [], b"100% sure"),
    "d": (b"%d|%i|%u", [-5, 7, -1], b"-5|7|4294967295"),
    "d_truncates_to_32": (b"%d", [(1 << 32) + 12], b"12"),
    "ld": (b"%ld %lld", [-5, 1 << 40], b"-5 1099511627776"),
    "lu": (b"%lu %llu", [-1, 1 << 63], b"18446744073709551615 9223372036854775808"),
    "x": (b"%x %X %lx %llX", [0xBEEF, 0xBEEF, 0xDEADBEEFCAFE, -1],
          b"beef BEEF deadbeefcafe FFFFFFFFFFFFFFFF"),
    "width": (b"[%5d][%-5d][%05d][%+d][% d][%+5d]", [42, 42, 42, 42, 42, -42],
              b"[   42][42   ][00042][+42][ 42][  -42]"),
    "zero_neg": (b"[%05d][%-05d][%5u][%+u]", [-42, -42, 7, 7], b"[-0042][-42  ][    7][7]"),
    "hex_width": (b"[%08x][%-8X][%2x]", [0xAB, 0xAB, 0xABCDEF], b"[000000ab][AB      ][abcdef]"),
    "c": (b"[%c][%3c][%-3c][%03c]", [ord("A"), ord("B"), ord("C"), ord("D")],
          b"[A][  B][C  ][  D]"),
    "s": (b"<%s> <%10s> <%-7s> <%s> <%05s>", [S(128), S(128), S(128), S(200), S(128)],
          b"<hello> <     hello> <hello  > <> <hello>"),
    "s_null": (b"<%s>", [0], b"<>"),
    "s_bad_kernel_ptr": (b"<%s>", [0xFFFF_FF80_0000_0000], b"<>"),
    "s_non_canonical": (b"<%s>", [0x8000_0000_0000_0000], b"<>"),
    "pks": (b"%pks!", [S(160)], b"a longer string, 31 chars long!"),
    "pus_kernel_ptr": (b"[%pus]", [S(128)], b"[]"),
    "px": (b"%px|%20px|%-18px|", [0x1234, 0x1234, 0x1234],
           b"0000000000001234|                1234|1234              |"),
    "p_null": (b"%p %pK", [0, 0], b"0000000000000000 0000000000000000"),
    "pI4": (b"%pI4 %pi4", [("ptr", IPV4), ("ptr", IPV4)], b"10.0.200.7 010.000.200.007"),
    "pI6": (b"%pI6", [("ptr", IPV6)], b"2001:0db8:0000:0000:0000:0000:0000:0001"),
    "pi6": (b"%pi6", [("ptr", IPV6)], b"20010db8000000000000000000000001"),
    "pI4_bad_ptr": (b"%pI4", [0], b"0.0.0.0"),
    "many": (b"%d%d%d%d%d%d%d%d%d%d%d%d", list(range(12)), b"01234567891011"),
    "tab_newline": (b"a\tb\n", [], b"a\tb\n"),
    "utf8_text": ("café %d €".encode(), [1], "café 1 €".encode()),
    "ps_null": (b"%ps", [0], b"0x0"),
    "pB": (b"[%pB]", [0], b"[0x0]"),
}
#: Formats bpf_bprintf_prepare refuses (-EINVAL). The kernel's verifier rejects
#: them at load for bpf_snprintf (the format is a constant); trace_printk's
#: helper returns -EINVAL at run time.
INVALID_FORMATS: dict[str, tuple[bytes, list[Any]]] = {
    "too_many_specs": (b"%d %d", [1]),
    "precision": (b"%.2d", [1]),
    "star": (b"%*d", [1, 2]),
    "hash_flag": (b"%#x", [1]),
    "h": (b"%hd", [1]),
    "z": (b"%zu", [1]),
    "lc": (b"%lc", [1]),
    "unknown_conv": (b"%q", [1]),
    "trailing_percent": (b"abc%", [1]),
    "s_followed_by_alnum": (b"%sx", [S(128)]),
    "pa": (b"%pa", [0]),
    "pI5": (b"%pI5", [0]),
    "control_char": (b"a\x07b", []),
    "non_ascii_spec": (b"%\xc3\xa9", [1]),
    "width_then_percent": (b"%5%", [1]),
}


def snprintf_truncation(be: Backend) -> list[tuple[int, bytes]]:
    """Output cut to the buffer (NUL-terminated), r0 the full length + 1; NULL/0 ok."""
    out = []
    for size in (1, 4, 6):
        ret, buf = snprintf(be, b"hello %d", [12345], size=size)
        out.append((ret, buf[:size + 1]))
    ret, buf = snprintf(be, b"hello %d", [12345], null_out=True)
    out.append((ret, buf[:2]))
    return out


SNPRINTF_TRUNCATION = [(12, b"\0\xaa"), (12, b"hel\0\xaa"), (12, b"hello\0\xaa"),
                       (12, b"\xaa\xaa")]

#: trace_printk (fmt, args, fmt_size) -> r0 on Linux 6.18.
TRACE_PRINTK_CASES: dict[str, tuple[bytes, list[Any], int | None, int]] = {
    "plain": (b"hi\n", [], None, 3),
    "three": (b"%d %s %x\n", [-1, S(128), 255], None, 12),
    "four_specs": (b"%d %d %d %d\n", [1, 2, 3], None, -errno.EINVAL),
    "no_nul_in_size": (b"abc", [], 3, -errno.EINVAL),
    "nul_early": (b"abc", [], 2 + 2, 3),
    "long": (b"%s%s%s", [S(160), S(160), S(160)], None, 90),
    "bad_conv": (b"%z\n", [1], None, -errno.EINVAL),
    "utf8": ("→ %d\n".encode(), [5], None, 6),
    "del_char": (b"a\x7fb", [], None, -errno.EINVAL),
    "c1_control_text": (b"a\x85b", [], None, 3),
}


# -- strings ------------------------------------------------------------------------------------
STR_VS = 64


def strtox(be: Backend, cases: list[tuple[bytes, int, int]],
           unsigned: bool) -> list[tuple[int, int]]:
    """bpf_strtol/strtoul over (buffer, buf_len 1..32, flags): [(r0, *res)].

    One program for every case: the buffer (at +8), buf_len (at +56) and flags
    (at +48) come from a map value, *res goes back to its first 8 bytes."""
    m = be.map_create(MapType.ARRAY, 4, STR_VS, 1)
    p = Asm()
    get_value(p, m, 9, tag="b")
    p(movr(1, 9), alu(ADD, 1, 8), ldx(4, 2, 9, 56), alu(0x50, 2, 31), alu(ADD, 2, 1),
      ldx(8, 3, 9, 48), movr(4, 10), alu(ADD, 4, -8), call(106 if unsigned else 105),
      ldx(8, 1, 10, -8), stx(8, 9, 1, 0), exit_())
    fd = be.load(p.build())
    out = []
    try:
        for buf, length, flags in cases:
            value = bytearray(STR_VS)
            value[8:8 + len(buf)] = buf[:32]
            value[48:56] = (flags & (1 << 64) - 1).to_bytes(8, "little")
            value[56:60] = (length - 1).to_bytes(4, "little")
            be.update(m, u32(0), bytes(value))
            ret = s32(be.run(fd))
            res = int.from_bytes(be.lookup(m, u32(0), STR_VS)[:8], "little")
            out.append((ret, res))
    finally:
        be.close_fd(fd)
    return out


def _c(s: bytes, flags: int = 0, length: int | None = None) -> tuple[bytes, int, int]:
    return s, (len(s) if length is None else length) or 1, flags


M64 = (1 << 64) - 1
E = errno
#: (buffer, buf_len, flags) -> (strtol's r0, *res) on Linux 6.18.
STRTOL_CASES: list[tuple[tuple[bytes, int, int], tuple[int, int]]] = [
    (_c(b"123"), (3, 123)),
    (_c(b"-123"), (4, -123 & M64)),
    (_c(b"  \t42xyz"), (5, 42)),
    (_c(b"0x1f"), (4, 31)),
    (_c(b"0x1f", 10), (1, 0)),
    (_c(b"0x1f", 16), (4, 31)),
    (_c(b"1f", 16), (2, 31)),
    (_c(b"017"), (3, 15)),
    (_c(b"017", 10), (3, 17)),
    (_c(b"08"), (1, 0)),
    (_c(b"0x"), (1, 0)),
    (_c(b"0xg"), (1, 0)),
    (_c(b"0xg", 16), (-E.EINVAL, 0)),
    (_c(b"+5"), (-E.EINVAL, 0)),
    (_c(b"-"), (-E.EINVAL, 0)),
    (_c(b"   "), (-E.EINVAL, 0)),
    (_c(b"abc"), (-E.EINVAL, 0)),
    (_c(b"12", 2), (-E.EINVAL, 0)),
    (_c(b"12", 1 << 5), (-E.EINVAL, 0)),
    (_c(b"9223372036854775807"), (19, (1 << 63) - 1)),
    (_c(b"9223372036854775808"), (-E.ERANGE, 0)),
    (_c(b"-9223372036854775808"), (20, 1 << 63)),
    (_c(b"-9223372036854775809"), (-E.ERANGE, 0)),
    (_c(b"18446744073709551616"), (-E.ERANGE, 0)),
    (_c(b"12345", 0, 3), (3, 123)),
    (_c(b"12\x0034"), (2, 12)),
    (_c(b"1" * 31 + b"2"), (-E.ERANGE, 0)),
    (_c(b"0" * 31 + b"7"), (32, 7)),
    (_c(b"\xa07"), (2, 7)),  # the kernel's isspace() includes 0xA0
]
#: strtoul differs for signs and range.
STRTOUL_CASES: list[tuple[tuple[bytes, int, int], tuple[int, int]]] = [
    (_c(b"123"), (3, 123)),
    (_c(b"-123"), (-E.EINVAL, 0)),
    (_c(b"18446744073709551615"), (20, M64)),
    (_c(b"18446744073709551616"), (-E.ERANGE, 0)),
    (_c(b"0xFFFFFFFFFFFFFFFF"), (18, M64)),
    (_c(b" 0777 "), (5, 0o777)),
]


def strncmp(be: Backend, s2: bytes, cases: list[tuple[bytes, int]]) -> list[int]:
    """bpf_strncmp(s1, s1_sz, s2) with s2 a constant string in a frozen map."""
    cmap = be.map_create(MapType.ARRAY, 4, 32, 1, MapFlags.RDONLY_PROG)
    be.update(cmap, u32(0), s2.ljust(32, b"\0"))
    be.freeze(cmap)
    m = be.map_create(MapType.ARRAY, 4, STR_VS, 1)
    p = Asm()
    get_value(p, m, 9, tag="b")
    get_value(p, cmap, 8, tag="c")
    p(movr(1, 9), alu(ADD, 1, 8), ldx(4, 2, 9, 56), alu(0x50, 2, 31), alu(ADD, 2, 1),
      movr(3, 8), call(182), exit_())
    fd = be.load(p.build())
    out = []
    try:
        for s1, size in cases:
            value = bytearray(STR_VS)
            value[8:8 + len(s1)] = s1
            value[56:60] = (size - 1).to_bytes(4, "little")
            be.update(m, u32(0), bytes(value))
            out.append(s32(be.run(fd)))
    finally:
        be.close_fd(fd)
    return out


STRNCMP_S2 = b"hello"
STRNCMP_CASES: list[tuple[tuple[bytes, int], int]] = [
    ((b"hello", 5), 0),
    ((b"hello", 6), 0),
    ((b"help", 4), 1),
    ((b"hellz", 5), 1),
    ((b"hellz", 4), 0),
    ((b"hello world", 11), 1),
    ((b"hell", 5), -1),
    ((b"", 1), -1),
    ((b"\xffa", 2), 1),
]


# -- probe reads ----------------------------------------------------------------------------------
def probe_read(be: Backend, func: int, src: Any, size: int) -> tuple[int, bytes]:
    """probe_read_{kernel,user}[_str](dst, size, src) into a map value pre-filled with
    0xAA; ``src`` is an int or ("map", offset) in a map holding "kernel string"."""
    m = be.map_create(MapType.ARRAY, 4, 64, 1)
    srcmap = be.map_create(MapType.ARRAY, 4, 64, 1)
    be.update(m, u32(0), b"\xAA" * 64)
    be.update(srcmap, u32(0), b"kernel string\0tail".ljust(64, b"\x55"))
    p = Asm()
    get_value(p, m, 9, tag="d")
    get_value(p, srcmap, 8, tag="s")
    if isinstance(src, tuple):
        p(movr(3, 8), alu(ADD, 3, src[1]))
    else:
        p(lddw(3, src))
    p(movr(1, 9), mov(2, size), call(func), exit_())
    fd = be.load(p.build(), prog_type=2 if func in (4, 45) else 6)  # compat ones: kprobe
    try:
        ret = s32(be.run(fd)) if func not in (4, 45) else 0
    finally:
        be.close_fd(fd)
    return ret, be.lookup(m, u32(0), 64)[:24]


PK, PU, PKS, PUS = 113, 112, 115, 114
HOLE = 0xFFFF_FF80_0000_0000  # in the x86-64 "unused hole": canonical, never mapped
#: (func, src, size) -> (r0, the first 24 bytes of dst) on Linux 6.18.
PROBE_CASES: dict[str, tuple[tuple[int, Any, int], tuple[int, bytes]]] = {
    "kernel_map": ((PK, ("map", 0), 8), (0, b"kernel s" + b"\xaa" * 16)),
    "kernel_null": ((PK, 0, 8), (-errno.ERANGE, bytes(8) + b"\xaa" * 16)),
    "kernel_user_addr": ((PK, 0x7F00_0000_0000, 8), (-errno.ERANGE, bytes(8) + b"\xaa" * 16)),
    "kernel_non_canonical": ((PK, 0x8000_0000_0000_0000, 8),
                             (-errno.ERANGE, bytes(8) + b"\xaa" * 16)),
    "kernel_hole": ((PK, HOLE, 8), (-errno.EFAULT, bytes(8) + b"\xaa" * 16)),
    "kernel_size_0": ((PK, ("map", 0), 0), (0, b"\xaa" * 24)),
    "kernel_null_size_0": ((PK, 0, 0), (-errno.ERANGE, b"\xaa" * 24)),
    "user_kernel_addr": ((PU, ("map", 0), 8), (-errno.EFAULT, bytes(8) + b"\xaa" * 16)),
    "user_null": ((PU, 0, 8), (-errno.EFAULT, bytes(8) + b"\xaa" * 16)),
    "kernel_str": ((PKS, ("map", 0), 20), (14, b"kernel string\0" + b"\xaa" * 10)),
    "kernel_str_cut": ((PKS, ("map", 0), 6), (6, b"kerne\0" + b"\xaa" * 18)),
    "kernel_str_empty": ((PKS, ("map", 13), 20), (1, b"\0" + b"\xaa" * 23)),
    "kernel_str_null": ((PKS, 0, 20), (-errno.ERANGE, bytes(20) + b"\xaa" * 4)),
    "kernel_str_hole": ((PKS, HOLE, 20), (-errno.EFAULT, bytes(20) + b"\xaa" * 4)),
    "kernel_str_size_0": ((PKS, ("map", 0), 0), (0, b"\xaa" * 24)),
    "user_str_null": ((PUS, 0, 20), (-errno.EFAULT, bytes(20) + b"\xaa" * 4)),
    "user_str_kernel_addr": ((PUS, ("map", 0), 20), (-errno.EFAULT, bytes(20) + b"\xaa" * 4)),
}


# -- ring buffers --------------------------------------------------------------------------------
def ringbuf_query(be: Backend) -> list[int]:
    """bpf_ringbuf_output / reserve+submit / reserve+discard, then bpf_ringbuf_query:
    [output's r0, AVAIL_DATA, RING_SIZE, CONS_POS, PROD_POS, output with bad flags,
    reserve with flags (NULL: 0), reserve bigger than the ring (0)]."""
    rb = be.map_create(MapType.RINGBUF, 0, 0, 4096)
    out = []

    def prog(*body: Insn | list[Insn]) -> int:
        fd = be.load(Asm()(*body).build())
        try:
            return s32(be.run(fd))
        finally:
            be.close_fd(fd)

    stack_msg = [*lddw(1, int.from_bytes(b"hello\0\0\0", "little")), stx(8, 10, 1, -8)]
    out.append(prog(*stack_msg, ld_map_fd(1, rb), movr(2, 10), alu(ADD, 2, -8), mov(3, 5),
                    mov(4, 0), call(130), exit_()))
    reserve_submit = Asm()
    reserve_submit(ld_map_fd(1, rb), mov(2, 12), mov(3, 0), call(131))
    reserve_submit.jmp(JEQ, 0, 0, "null")
    reserve_submit(st(8, 0, 0, 1), movr(1, 0), mov(2, 0), call(132), mov(0, 0), exit_())
    reserve_submit.label("null")
    reserve_submit(mov(0, 1), exit_())
    out.append(prog(reserve_submit.build()))
    discard = Asm()
    discard(ld_map_fd(1, rb), mov(2, 8), mov(3, 0), call(131))
    discard.jmp(JEQ, 0, 0, "null")
    discard(movr(1, 0), mov(2, 0), call(133), mov(0, 0), exit_())
    discard.label("null")
    discard(mov(0, 1), exit_())
    out.append(prog(discard.build()))
    for flag in range(4):
        out.append(prog(ld_map_fd(1, rb), mov(2, flag), call(134), exit_()))
    out.append(prog(*stack_msg, ld_map_fd(1, rb), movr(2, 10), alu(ADD, 2, -8), mov(3, 5),
                    mov(4, 4), call(130), exit_()))
    for size, flags in ((8, 1), (8192, 0)):
        fails = Asm()
        fails(ld_map_fd(1, rb), mov(2, size), mov(3, flags), call(131))
        fails.jmp(JEQ, 0, 0, "null")
        fails(movr(1, 0), mov(2, 0), call(133), mov(0, 1), exit_())
        fails.label("null")
        fails(mov(0, 0), exit_())
        out.append(prog(fails.build()))
    return out


#: 5 + 8 -> 16 bytes, 12 + 8 -> 24, 8 + 8 -> 16 (discarded records still count).
RINGBUF_QUERY = [0, 0, 0, 56, 4096, 0, 56, -errno.EINVAL, 0, 0]
