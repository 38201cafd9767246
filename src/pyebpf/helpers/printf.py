"""printf-like helpers: bpf_trace_printk, bpf_trace_vprintk, bpf_snprintf.

Two steps, as in the kernel. :func:`bprintf_prepare` is
``bpf_bprintf_prepare`` (kernel/bpf/helpers.c): it checks the format (only
printable or space ASCII; per conversion the flags ``0 + - space``, a width,
then ``d i u x X`` with an optional ``l``/``ll``, ``c``, ``s``, ``p`` followed
by nothing alphanumeric or by ``K x s S``, ``pks``/``pus``, ``pB``, ``pi4``/
``pI4``/``pi6``/``pI6``; no precision, no ``*``; no more conversions than
arguments: -EINVAL otherwise) and packs the arguments into the kernel's
512-byte binary buffer (numbers 4-byte aligned, strings and IP addresses
copied in through the probe-read rules, -ENOSPC when it is full).
:func:`bstr_printf` is lib/vsprintf.c's ``bstr_printf`` over that buffer:
the output is cut to the buffer size and the return value is the length the
whole output would have had.

Output of bpf_trace_printk/bpf_trace_vprintk goes to ``runtime.trace_output``
(one string per call, as formatted: a trailing newline is the program's),
readable from Python; the kernel writes it to the trace pipe.

Pointers: ``%p`` and ``%pK`` print a hash of the pointer (as the kernel does
unless booted with no_hash_pointers; the hash here is keyed by the runtime's
seed, so it is stable across runs but not the kernel's), NULL as zeros;
``%px`` the raw value; ``%ps``/``%pS``/``%pB`` print ``0x`` and the address in
hex, which is what the kernel prints for an address that is no kernel symbol.
"""

from __future__ import annotations

import errno
import hashlib
from typing import TYPE_CHECKING

from . import register_helper
from ._util import (
    M32,
    M64,
    TASK_SIZE_MAX,
    TRACING_TYPES,
    check_writable,
    is_kernel_address,
    neg,
    read_cstr,
    readable,
    runtime_of,
    strncpy_nofault,
)
from .proto import ArgType, Proto, RetType, TypeFlag

if TYPE_CHECKING:
    from ..engine.interpreter import Vm

__all__ = ["bprintf_prepare", "bstr_printf", "check_format"]

A = ArgType
MAX_BPRINTF_BIN_ARGS = 512
MAX_BPRINTF_BUF = 1024
MAX_BPRINTF_VARARGS = 12
MAX_TRACE_PRINTK_VARARGS = 3

_SPACE = frozenset(b" \t\n\v\f\r")
_DIGITS = frozenset(b"0123456789")
_ALNUM = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_POINTER_EXTS = frozenset(b"SsxKe")


def _isprint(c: int) -> bool:
    return 0x20 <= c <= 0x7E


def _ispunct(c: int) -> bool:
    return _isprint(c) and c != 0x20 and c not in _ALNUM


def _read_kernel(vm: Vm | None, addr: int, size: int) -> bytes | None:
    if vm is None or not is_kernel_address(addr) or not readable(vm.memory, addr, size):
        return None
    return vm.memory.read(addr, size)


def _copy_string(vm: Vm | None, ptr: int, ptype: int, bufsz: int) -> bytes | None:
    """bpf_trace_copy_string: the string with its NUL (cut to ``bufsz``), or None."""
    if vm is None:
        return None
    ptr &= M64
    if ptype == ord("u") or (ptype == ord("s") and ptr < TASK_SIZE_MAX):
        rt = vm.runtime
        if rt is None or ptr >= TASK_SIZE_MAX:
            return None
        return strncpy_nofault(rt.user_memory, ptr, bufsz)
    if not is_kernel_address(ptr):
        return None
    return strncpy_nofault(vm.memory, ptr, bufsz)


def _ip_string(kind: int, version: int, raw: bytes) -> bytes:
    if version == ord("4"):
        spec = "{:03d}" if kind == ord("i") else "{:d}"
        return ".".join(spec.format(b) for b in raw).encode()
    groups = [raw[i:i + 2].hex() for i in range(0, 16, 2)]
    return ("".join(groups) if kind == ord("i") else ":".join(groups)).encode()


def _symbol(addr: int) -> bytes:
    """sprint_symbol for an address that is no symbol: "0x<hex>"."""
    return f"0x{addr & M64:x}".encode()


def check_format(fmt: bytes, num_args: int) -> int:
    """0 if ``fmt`` (up to its NUL) is a valid format for ``num_args`` arguments,
    else -EINVAL: what the verifier's check_bpf_snprintf_call asks
    bpf_bprintf_prepare (its log then says "Invalid format string")."""
    result = bprintf_prepare(None, fmt.split(b"\0", 1)[0], [0] * num_args, num_args,
                             get_bin_args=False)
    return result if isinstance(result, int) else 0


def bprintf_prepare(vm: Vm | None, fmt: bytes, raw_args: list[int], num_args: int, *,
                    get_bin_args: bool = True) -> bytearray | int:
    """bpf_bprintf_prepare: the binary argument buffer, or a negative errno.

    ``fmt`` is the format up to (not including) its NUL. Without
    ``get_bin_args`` only the format is checked (``vm`` may be None).
    """
    n = len(fmt)

    def at(i: int) -> int:
        return fmt[i] if i < n else 0

    use_buf = get_bin_args and num_args > 0
    end = MAX_BPRINTF_BIN_ARGS
    buf = bytearray(end)
    pos = 0

    def put(data: bytes) -> None:
        if pos < end:
            chunk = data[: end - pos]
            buf[pos:pos + len(chunk)] = chunk

    num_spec = 0
    i = 0
    while i < n:
        c = fmt[i]
        # Plain text may carry UTF-8 (bytes >= 0x80), not ASCII control bytes.
        if c < 0x80 and not _isprint(c) and c not in _SPACE:
            return -errno.EINVAL
        if c != ord("%"):
            i += 1
            continue
        if at(i + 1) == ord("%"):
            i += 2
            continue
        if num_spec >= num_args:
            return -errno.EINVAL
        i += 1
        if at(i) >= 0x80:  # conversion specifications are ASCII-only
            return -errno.EINVAL
        while at(i) in b"0+- " and at(i):
            i += 1
        if ord("1") <= at(i) <= ord("9"):
            i += 1
            while at(i) in _DIGITS and at(i):
                i += 1
        size = 4
        ptype = 0
        string = False
        if at(i) == ord("p"):
            size = 8
            nxt = at(i + 1)
            if nxt in (ord("k"), ord("u")) and at(i + 2) == ord("s"):
                ptype = nxt
                i += 2
                string = True
            elif nxt == 0 or nxt in _SPACE or _ispunct(nxt) or nxt in b"KxsS":
                i += 1
                # just a kernel pointer: falls to the copy below
            elif nxt == ord("B"):
                if use_buf:
                    text = _symbol(raw_args[num_spec])
                    put(text[: max(end - pos - 1, 0)] + b"\0")
                    pos += len(text) + 1
                i += 2
                num_spec += 1
                continue
            else:
                if nxt not in (ord("i"), ord("I")) or at(i + 2) not in (ord("4"), ord("6")):
                    return -errno.EINVAL
                i += 2
                if use_buf:
                    ip_size = 4 if at(i) == ord("4") else 16
                    if end - pos < ip_size:
                        return -errno.ENOSPC
                    raw = _read_kernel(vm, raw_args[num_spec], ip_size) or bytes(ip_size)
                    text = _ip_string(at(i - 1), at(i), raw)
                    put(text[: max(end - pos - 1, 0)] + b"\0")
                    pos += len(text) + 1
                    num_spec += 1
                    i += 1
                    continue
        elif at(i) == ord("s"):
            ptype = ord("s")
            string = True
        elif at(i) == ord("c"):
            if use_buf:
                if pos >= end:
                    return -errno.ENOSPC
                put(bytes([raw_args[num_spec] & 0xFF]))
                pos += 1
            num_spec += 1
            i += 1
            continue
        else:
            if at(i) == ord("l"):
                size = 8
                i += 1
            if at(i) == ord("l"):
                size = 8
                i += 1
            if at(i) not in b"iduxX" or not at(i):
                return -errno.EINVAL
        if string:
            nxt = at(i + 1)
            if nxt != 0 and nxt not in _SPACE and not _ispunct(nxt):
                return -errno.EINVAL
            if use_buf:
                if pos >= end:
                    return -errno.ENOSPC
                got = _copy_string(vm, raw_args[num_spec], ptype, end - pos)
                if got is None:
                    got = b"\0"
                put(got)
                pos += len(got)
            num_spec += 1
            i += 1
            continue
        if use_buf:
            pos = (pos + 3) & ~3
            if end - pos < size:
                return -errno.ENOSPC
            value = raw_args[num_spec] & (M64 if size == 8 else M32)
            put(value.to_bytes(size, "little"))
            pos += size
        num_spec += 1
        i += 1
    return buf


def _number(num: int, base: int, signed: bool, small: bool, flags: set[int],
            width: int) -> bytes:
    """lib/vsprintf.c number() (no precision, no '#')."""
    left = ord("-") in flags
    zeropad = ord("0") in flags and not left
    sign = ""
    num &= M64
    if signed:
        if num >> 63:
            sign = "-"
            num = -num & M64
        elif ord("+") in flags:
            sign = "+"
        elif ord(" ") in flags:
            sign = " "
    digits = {8: f"{num:o}", 10: f"{num:d}", 16: f"{num:x}" if small else f"{num:X}"}[base]
    if left:
        text = (sign + digits).ljust(width)
    elif zeropad:
        text = sign + digits.rjust(width - len(sign), "0")
    else:
        text = (sign + digits).rjust(width)
    return text.encode()


def _pad(text: bytes, flags: set[int], width: int) -> bytes:
    """widen_string: spaces to the field width (after the text with '-')."""
    if len(text) >= width:
        return text
    fill = b" " * (width - len(text))
    return text + fill if ord("-") in flags else fill + text


def _hash_pointer(ptr: int, key: bytes) -> int:
    digest = hashlib.blake2b(ptr.to_bytes(8, "little"), key=key, digest_size=8).digest()
    return int.from_bytes(digest, "little") & M32


def bstr_printf(fmt: bytes, args: bytes | bytearray, size: int, *, hash_key: bytes = b""
                ) -> tuple[bytes, int]:
    """lib/vsprintf.c bstr_printf over a prepared argument buffer.

    Returns (the bytes the ``size``-byte buffer receives, NUL included when
    ``size`` > 0; the length of the whole output, NUL excluded).
    """
    out = bytearray()
    a = 0
    n = len(fmt)

    def get(nbytes: int) -> int:
        nonlocal a
        a = (a + 3) & ~3 if nbytes >= 4 else a
        raw = bytes(args[a:a + nbytes]).ljust(nbytes, b"\0")
        a += nbytes
        return int.from_bytes(raw, "little")

    def cstr() -> bytes:
        nonlocal a
        nul = args.find(b"\0", a)
        text = bytes(args[a:nul if nul >= 0 else len(args)])
        a += len(text) + 1
        return text

    i = 0
    while i < n:
        if fmt[i] != ord("%"):
            j = fmt.find(b"%", i)
            j = n if j < 0 else j
            out += fmt[i:j]
            i = j
            continue
        k = i + 1
        flags: set[int] = set()
        while k < n and fmt[k] in b"-+ #0":
            flags.add(fmt[k])
            k += 1
        width = -1
        if k < n and fmt[k] in _DIGITS:
            start = k
            while k < n and fmt[k] in _DIGITS:
                k += 1
            width = int(fmt[start:k])
        qualifier = 0
        if k < n and (fmt[k] in b"hzt" or fmt[k] | 0x20 == ord("l")):
            qualifier = fmt[k]
            k += 1
            if k < n and fmt[k] == qualifier and qualifier in b"lh":
                qualifier = ord("L") if qualifier == ord("l") else ord("H")
                k += 1
        conv = fmt[k] if k < n else 0
        i = k + 1
        if conv == ord("c"):
            value = get(1) & 0xFF
            out += _pad(bytes([value]), flags, width)
        elif conv == ord("s"):
            out += _pad(cstr(), flags, width)
        elif conv == ord("%"):
            out += b"%"
        elif conv == ord("p"):
            ext = fmt[i] if i < n else 0
            # %ps %pS %px %pK and a bare %p print the pointer argument itself;
            # other %p<letter> forms were formatted by bprintf_prepare.
            if ext in _POINTER_EXTS or ext not in _ALNUM:
                ptr = get(8)
                if ext in (ord("S"), ord("s")):
                    out += _pad(_symbol(ptr), flags, width)
                else:
                    if ext != ord("x") and ptr and ptr < M64 - 4094:
                        ptr = _hash_pointer(ptr, hash_key)
                    w = width
                    f = set(flags)
                    if w == -1:
                        w = 16
                        f.add(ord("0"))
                    out += _number(ptr, 16, False, True, f, w)
            elif len(out) < size:
                out += cstr()  # pre-formatted by bprintf_prepare (%pks, %pI4, %pB ...)
            while i < n and fmt[i] in _ALNUM:
                i += 1
        elif conv in b"xXdiuo" and conv:
            base = 16 if conv in b"xX" else 8 if conv == ord("o") else 10
            signed = conv in b"di"
            if qualifier in (ord("L"), ord("l")):
                num = get(8)
            else:
                num = get(4)
                if signed and num >> 31:
                    num -= 1 << 32
            out += _number(num, base, signed, conv == ord("x"), flags, width)
        else:
            break  # FORMAT_TYPE_INVALID
    total = len(out)
    if size <= 0:
        return b"", total
    return bytes(out[: size - 1]) + b"\0", total


# -- the helpers ---------------------------------------------------------------------------
def _format(vm: Vm, fmt: bytes, raw_args: list[int], num_args: int,
            size: int) -> tuple[bytes, int] | int:
    """Prepare and print: (buffer bytes, full length), or a negative errno."""
    bin_args = bprintf_prepare(vm, fmt, raw_args, num_args)
    if isinstance(bin_args, int):
        return bin_args
    rt = vm.runtime
    key = (getattr(rt, "seed", 0) & M64).to_bytes(8, "little")
    return bstr_printf(fmt, bin_args, size, hash_key=key)


def _emit(vm: Vm, fmt_addr: int, fmt_size: int, raw_args: list[int], num_args: int) -> int:
    rt = runtime_of(vm, "trace_printk")
    raw = vm.memory.read(fmt_addr, fmt_size)
    nul = raw.find(b"\0")
    if nul < 0:
        return neg(errno.EINVAL)
    result = _format(vm, raw[:nul], raw_args, num_args, MAX_BPRINTF_BUF)
    if isinstance(result, int):
        return neg(-result)
    data, total = result
    line = data.split(b"\0", 1)[0]
    rt.trace_output.append(line.decode("utf-8", "backslashreplace"))
    return total


@register_helper(6, "trace_printk", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY, A.ARG_CONST_SIZE), gpl_only=True),
    tier="perfmon", prog_types=TRACING_TYPES)
def trace_printk(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Format with up to three arguments into runtime.trace_output; the length printed."""
    return _emit(vm, r1, r2 & M32, [r3, r4, r5], MAX_TRACE_PRINTK_VARARGS)


def _varargs(vm: Vm, addr: int, data_len: int) -> list[int] | None:
    if data_len & 7 or data_len > MAX_BPRINTF_VARARGS * 8 or (data_len and not addr):
        return None
    raw = vm.memory.read(addr, data_len)
    return [int.from_bytes(raw[i:i + 8], "little") for i in range(0, data_len, 8)]


@register_helper(177, "trace_vprintk", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_MEM | TypeFlag.MEM_RDONLY, A.ARG_CONST_SIZE,
    A.ARG_PTR_TO_MEM | TypeFlag.PTR_MAYBE_NULL | TypeFlag.MEM_RDONLY,
    A.ARG_CONST_SIZE_OR_ZERO), gpl_only=True), tier="perfmon", prog_types=TRACING_TYPES)
def trace_vprintk(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """trace_printk with the arguments in an array of u64 (up to 12)."""
    args = _varargs(vm, r3, r4 & M32)
    if args is None:
        return neg(errno.EINVAL)
    return _emit(vm, r1, r2 & M32, args, len(args))


@register_helper(165, "snprintf", Proto(RetType.RET_INTEGER, (
    A.ARG_PTR_TO_MEM_OR_NULL, A.ARG_CONST_SIZE_OR_ZERO, A.ARG_PTR_TO_CONST_STR,
    A.ARG_PTR_TO_MEM | TypeFlag.PTR_MAYBE_NULL | TypeFlag.MEM_RDONLY,
    A.ARG_CONST_SIZE_OR_ZERO), gpl_only=True), tier="perfmon")
def snprintf(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Format into ``str`` (cut to ``str_size``, NUL-terminated); the length + 1."""
    from ..errors import BpfFault

    args = _varargs(vm, r4, r5 & M32)
    if args is None:
        return neg(errno.EINVAL)
    got = read_cstr(vm.memory, r3, 1 << 32)
    if got is None or not got[1]:
        raise BpfFault(f"bpf_snprintf: the format at {r3 & M64:#x} is not a NUL-terminated "
                       "string", addr=r3)
    size = r2 & M32
    check_writable(vm.memory, r1, size)
    result = _format(vm, got[0], args, len(args), size)
    if isinstance(result, int):
        return neg(-result)
    data, total = result
    if size:
        vm.memory.write(r1, data)
    return total + 1
