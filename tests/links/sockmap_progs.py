"""Programs and socket backends the sockmap hook tests share with the kernel
differential tests: the same instructions run on pyebpf's simulated sockets
and on real TCP sockets over loopback."""

from __future__ import annotations

import select
import socket
import time
from typing import Any

from helpers._build import (
    ADD,
    JEQ,
    JNE,
    Asm,
    PyBackend,
    call,
    exit_,
    ld_map_fd,
    ldx,
    mov,
    movr,
    st,
    stx,
)
from pyebpf import BpfError, Insn, MapType, ProgType
from pyebpf.attr import LinkCreateAttr, ProgAttachAttr, ProgQueryAttr
from pyebpf.links import socket_pair
from pyebpf.uapi import AttachType, Cmd

A = AttachType
BPF_F_INGRESS = 1
#: sk_msg_md offsets.
MSG_DATA, MSG_DATA_END, MSG_FAMILY, MSG_REMOTE_IP4, MSG_LOCAL_IP4 = 0, 8, 16, 20, 24
MSG_REMOTE_PORT, MSG_LOCAL_PORT, MSG_SIZE = 60, 64, 68
#: Record map slots the recording programs fill.
SLOT_SIZE, SLOT_LINEAR, SLOT_LOCAL_PORT, SLOT_REMOTE_PORT, SLOT_RUNS, SLOT_RET = range(6)
RECORD_SLOTS = 8
#: Seconds the kernel gets after a send before the sockets are read.
SETTLE = 0.3


def alu(op: int, dst: int, imm: int) -> Insn:
    return Insn(0x07 | op, dst, 0, 0, imm)


def ret(value: int) -> list[Insn]:
    """return value."""
    return [mov(0, value), exit_()]


def redirect(func: int, map_fd: int, key: int, flags: int) -> list[Insn]:
    """return bpf_{msg,sk}_redirect_map(ctx, map, key, flags)."""
    return [*ld_map_fd(2, map_fd), mov(3, key), mov(4, flags), call(func), exit_()]


def _slot(p: Asm, rec_fd: int, slot: int, label: str) -> None:
    """r0 = &rec[slot] (jumps to ``label`` when NULL)."""
    p(st(4, 10, -4, slot), *ld_map_fd(1, rec_fd), movr(2, 10), alu(ADD, 2, -4), call(1))
    p.jmp(JEQ, 0, 0, label)


def _store(p: Asm, rec_fd: int, slot: int, reg: int) -> None:
    _slot(p, rec_fd, slot, f"skip{slot}")
    p(stx(8, 0, reg, 0)).label(f"skip{slot}")


def msg_record(rec_fd: int, verdict: int = 1) -> list[Insn]:
    """Record msg->size, data_end - data, local_port, remote_port; count runs;
    return ``verdict``."""
    p = Asm()
    p(movr(6, 1), ldx(4, 7, 6, MSG_SIZE), ldx(8, 8, 6, MSG_DATA_END), ldx(8, 9, 6, MSG_DATA),
      Insn(0x1F, 8, 9))  # r8 -= r9
    _store(p, rec_fd, SLOT_SIZE, 7)
    _store(p, rec_fd, SLOT_LINEAR, 8)
    p(ldx(4, 7, 6, MSG_LOCAL_PORT), ldx(4, 8, 6, MSG_REMOTE_PORT))
    _store(p, rec_fd, SLOT_LOCAL_PORT, 7)
    _store(p, rec_fd, SLOT_REMOTE_PORT, 8)
    _slot(p, rec_fd, SLOT_RUNS, "out")
    p(ldx(8, 1, 0, 0), alu(ADD, 1, 1), stx(8, 0, 1, 0)).label("out")
    p(*ret(verdict))
    return p.build()


def msg_addresses(rec_fd: int) -> list[Insn]:
    """Record sk_msg_md's family, local_ip4, remote_ip4 and the last 32-bit words of
    local_ip6 and remote_ip6 (slots 0..4); SK_PASS."""
    p = Asm()
    p(movr(6, 1))
    for slot, off in enumerate((MSG_FAMILY, MSG_LOCAL_IP4, MSG_REMOTE_IP4, 44 + 12, 28 + 12)):
        p(ldx(4, 7, 6, off))
        _store(p, rec_fd, slot, 7)
    p(*ret(1))
    return p.build()


#: sk_msg_md->sk, and the struct bpf_sock fields read through it.
MSG_SK = 72
SK_FAMILY, SK_TYPE, SK_PROTOCOL, SK_SRC_PORT, SK_DST_PORT, SK_STATE = 4, 8, 12, 44, 48, 72


def msg_sock_fields(rec_fd: int) -> list[Insn]:
    """Record msg->sk's family, type, protocol, src_port, dst_port, state (slots 0..5)."""
    p = Asm()
    p(ldx(8, 6, 1, MSG_SK))
    for slot, off in enumerate((SK_FAMILY, SK_TYPE, SK_PROTOCOL, SK_SRC_PORT, SK_DST_PORT,
                                SK_STATE)):
        p(ldx(4, 7, 6, off))
        _store(p, rec_fd, slot, 7)
    p(*ret(1))
    return p.build()


def msg_apply_then_drop(rec_fd: int, nbytes: int) -> list[Insn]:
    """First run: bpf_msg_apply_bytes(nbytes), SK_PASS; later runs: SK_DROP."""
    p = Asm()
    p(movr(6, 1))
    _slot(p, rec_fd, SLOT_RUNS, "drop")
    p(ldx(8, 1, 0, 0), movr(7, 1), alu(ADD, 1, 1), stx(8, 0, 1, 0))
    p.jmp(JNE, 7, 0, "drop")
    p(movr(1, 6), mov(2, nbytes), call(61), *ret(1))
    p.label("drop")(*ret(0))
    return p.build()


def msg_apply_redirect_then_pass(rec_fd: int, map_fd: int, nbytes: int, key: int,
                                 flags: int) -> list[Insn]:
    """First run: bpf_msg_apply_bytes(nbytes) and return bpf_msg_redirect_map(ctx, map,
    key, flags); later runs: SK_PASS."""
    p = Asm()
    p(movr(6, 1))
    _slot(p, rec_fd, SLOT_RUNS, "pass")
    p(ldx(8, 1, 0, 0), movr(7, 1), alu(ADD, 1, 1), stx(8, 0, 1, 0))
    p.jmp(JNE, 7, 0, "pass")
    p(movr(1, 6), mov(2, nbytes), call(61), movr(1, 6), *redirect(60, map_fd, key, flags))
    p.label("pass")(*ret(1))
    return p.build()


def msg_cork(rec_fd: int, nbytes: int) -> list[Insn]:
    """Record the size seen; bpf_msg_cork_bytes(nbytes) while fewer have come; SK_PASS."""
    p = Asm()
    p(movr(6, 1), ldx(4, 7, 6, MSG_SIZE))
    _store(p, rec_fd, SLOT_SIZE, 7)
    p(mov(8, nbytes))
    p.jmpr(0x30, 7, 8, "pass")  # if size >= nbytes goto pass
    p(movr(1, 6), mov(2, nbytes), call(62))
    p.label("pass")(*ret(1))
    return p.build()


def msg_edit(rec_fd: int, func: int, start: int, length: int) -> list[Insn]:
    """ret = bpf_msg_{push,pop}_data(ctx, start, length, 0) recorded; record the
    new size and data_end - data; SK_PASS."""
    p = Asm()
    p(movr(6, 1), mov(2, start), mov(3, length), mov(4, 0), call(func), movr(7, 0))
    _store(p, rec_fd, SLOT_RET, 7)
    p(ldx(4, 7, 6, MSG_SIZE), ldx(8, 8, 6, MSG_DATA_END), ldx(8, 9, 6, MSG_DATA),
      Insn(0x1F, 8, 9))
    _store(p, rec_fd, SLOT_SIZE, 7)
    _store(p, rec_fd, SLOT_LINEAR, 8)
    p(*ret(1))
    return p.build()


def msg_pull(rec_fd: int, start: int, end: int) -> list[Insn]:
    """ret = bpf_msg_pull_data(ctx, start, end, 0); record it and data_end - data."""
    p = Asm()
    p(movr(6, 1), mov(2, start), mov(3, end), mov(4, 0), call(63), movr(7, 0))
    _store(p, rec_fd, SLOT_RET, 7)
    p(ldx(8, 8, 6, MSG_DATA_END), ldx(8, 9, 6, MSG_DATA), Insn(0x1F, 8, 9))
    _store(p, rec_fd, SLOT_LINEAR, 8)
    p(*ret(1))
    return p.build()


def hash_redirect(func: int, map_fd: int, key: int, flags: int) -> list[Insn]:
    """return bpf_{msg,sk}_redirect_hash(ctx, map, &key, flags) (a u32 key)."""
    return [st(4, 10, -4, key), *ld_map_fd(2, map_fd), movr(3, 10), alu(ADD, 3, -4),
            mov(4, flags), call(func), exit_()]


def parser_const(n: int) -> list[Insn]:
    """A stream parser: every message is ``n`` bytes long."""
    return ret(n)


#: __sk_buff offsets an SK_SKB program reads.
SKB_LEN, SKB_PROTOCOL, SKB_DATA, SKB_DATA_END, SKB_FAMILY = 0, 16, 76, 80, 88
SKB_REMOTE_IP4, SKB_LOCAL_IP4, SKB_REMOTE_PORT, SKB_LOCAL_PORT = 92, 96, 132, 136


def skb_record(rec_fd: int, pull: int | None = None) -> list[Insn]:
    """Record skb->len, data_end - data, local_port, remote_port, family and
    local_ip4 (slots 0..5), after bpf_skb_pull_data(skb, pull) if asked (its
    return in slot 6); SK_PASS."""
    p = Asm()
    p(movr(6, 1))
    if pull is not None:
        p(mov(2, pull), call(39), movr(7, 0))
        _store(p, rec_fd, 6, 7)
    p(ldx(4, 7, 6, SKB_LEN), ldx(4, 8, 6, SKB_DATA_END), ldx(4, 9, 6, SKB_DATA),
      Insn(0x1F, 8, 9))
    _store(p, rec_fd, 0, 7)
    _store(p, rec_fd, 1, 8)
    p(ldx(4, 7, 6, SKB_LOCAL_PORT), ldx(4, 8, 6, SKB_REMOTE_PORT))
    _store(p, rec_fd, 2, 7)
    _store(p, rec_fd, 3, 8)
    p(ldx(4, 7, 6, SKB_FAMILY), ldx(4, 8, 6, SKB_LOCAL_IP4))
    _store(p, rec_fd, 4, 7)
    _store(p, rec_fd, 5, 8)
    p(*ret(1))
    return p.build()


def skb_trim(n: int) -> list[Insn]:
    """bpf_skb_change_tail(skb, n, 0), then SK_PASS."""
    return [mov(2, n), mov(3, 0), call(38), *ret(1)]


def skb_overwrite(byte: int) -> list[Insn]:
    """bpf_skb_store_bytes(skb, 0, &byte, 1, 0), then SK_PASS."""
    return [st(1, 10, -1, byte), movr(3, 10), alu(ADD, 3, -1), mov(2, 0), mov(4, 1), mov(5, 0),
            call(9), *ret(1)]


def skb_len() -> list[Insn]:
    """A stream parser: the whole skb is one message (return skb->len)."""
    return [ldx(4, 0, 1, 0), exit_()]


# -- backends --------------------------------------------------------------------------------
class PySockets:
    """pyebpf: a PyBackend for bpf() and simulated sockets."""

    name = "pyebpf"

    def __init__(self) -> None:
        self.be = PyBackend()
        self._fds: dict[int, int] = {}

    def bpf(self, cmd: Cmd, attr: Any) -> Any:
        return self.be.b(cmd, attr)

    def pair(self, family: int = socket.AF_INET) -> tuple[Any, Any]:
        return socket_pair(self.be.rt, family=int(family))

    def udp_pair(self) -> tuple[Any, Any]:
        return socket_pair(self.be.rt, "udp")

    def udp_unconnected(self, bound: bool = False) -> Any:
        from pyebpf.links import InetSocket

        s = InetSocket(self.be.rt, "udp")
        if bound:
            s.bind("127.0.0.1")
        return s

    def listener(self) -> Any:
        from pyebpf.links import InetSocket

        s = InetSocket(self.be.rt)
        s.listen()
        return s

    def unconnected(self) -> Any:
        from pyebpf.links import InetSocket

        return InetSocket(self.be.rt)

    def query(self, map_fd: int, at: int) -> tuple[int, int]:
        try:
            r = self.bpf(Cmd.PROG_QUERY, ProgQueryAttr(target_fd=map_fd, attach_type=at,
                                                       prog_ids=bytearray(16), prog_cnt=4))
        except BpfError as e:
            return e.errno, -1
        return 0, int(r.prog_cnt)

    def link_info(self, fd: int) -> dict[str, int]:
        from pyebpf.attr import InfoByFdAttr

        li = self.bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoByFdAttr(bpf_fd=fd))
        return {"type": li.type, **li.details}

    def map_id(self, fd: int) -> int:
        return int(self.be.rt.file(fd).obj.id)

    def close_fd(self, fd: int) -> None:
        self.be.rt.close(fd)

    def close_sock(self, s: Any) -> None:
        fd = self._fds.pop(id(s), None)
        if fd is not None:
            self.be.rt.close(fd)
        s.close()

    def ports(self, s: Any) -> tuple[int, int]:
        return int(s.local[1]), int(s.remote[1])

    def so_error(self, s: Any) -> int:
        return int(s.so_error())

    def fd(self, s: Any) -> int:
        if id(s) not in self._fds:
            self._fds[id(s)] = s.open()
        return self._fds[id(s)]

    def send(self, s: Any, data: bytes) -> int:
        try:
            return int(s.send(data))
        except BpfError as e:
            return -e.errno

    def recv(self, s: Any) -> bytes | int:
        """What arrived (b"" for nothing), or -errno."""
        try:
            return bytes(s.recv())
        except BpfError as e:
            return -e.errno

    def close(self) -> None:
        self.be.close()


class KernelSockets:
    """The real kernel: bpf() through the ctypes oracle, TCP sockets over loopback."""

    name = "kernel"

    def __init__(self) -> None:
        from helpers._build import KernelBackend

        self.be = KernelBackend()
        self.socks: list[socket.socket] = []
        self._sent = False

    def bpf(self, cmd: Cmd, attr: Any) -> Any:
        from pyebpf.testing.kernel import kernel_bpf

        out = kernel_bpf(cmd, attr)
        if cmd in (Cmd.LINK_CREATE,) and isinstance(out, int):
            self.be.fds.append(out)
        return out

    def _keep(self, *socks: socket.socket) -> None:
        self.socks.extend(socks)

    def pair(self, family: int = socket.AF_INET) -> tuple[Any, Any]:
        lst = socket.socket(family, socket.SOCK_STREAM)
        lst.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        lst.listen(1)
        a = socket.create_connection(lst.getsockname()[:2])
        b, _ = lst.accept()
        lst.close()
        self._keep(a, b)
        return a, b

    def udp_pair(self) -> tuple[Any, Any]:
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        a.connect(b.getsockname())
        b.connect(a.getsockname())
        self._keep(a, b)
        return a, b

    def udp_unconnected(self, bound: bool = False) -> Any:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if bound:
            s.bind(("127.0.0.1", 0))
        self._keep(s)
        return s

    def listener(self) -> Any:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self._keep(s)
        return s

    def unconnected(self) -> Any:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._keep(s)
        return s

    def query(self, map_fd: int, at: int) -> tuple[int, int]:
        """PROG_QUERY by hand: target_fd, attach_type, query_flags, attach_flags,
        prog_ids (u64), prog_cnt."""
        import ctypes
        import struct

        from pyebpf.testing.kernel import _syscall

        ids = ctypes.create_string_buffer(16)
        buf = ctypes.create_string_buffer(struct.pack("<4IQI", map_fd, at, 0, 0,
                                                      ctypes.addressof(ids), 4), 64)
        rc, err = _syscall(Cmd.PROG_QUERY, buf, 64)
        if rc < 0:
            return err, -1
        return 0, struct.unpack_from("<I", buf.raw, 24)[0]

    def _raw(self, cmd: int, attr: bytearray) -> None:
        import ctypes

        from pyebpf.testing.kernel import _syscall

        buf = ctypes.create_string_buffer(bytes(attr), len(attr))
        _, err = _syscall(cmd, buf, len(attr))
        attr[:] = buf.raw
        if err:
            raise BpfError(err, f"kernel: command {cmd} failed")

    def link_info(self, fd: int) -> dict[str, int]:
        import ctypes
        import struct

        from pyebpf.links import LinkInfo

        info = ctypes.create_string_buffer(64)
        attr = bytearray(16)
        struct.pack_into("<IIQ", attr, 0, fd, 64, ctypes.addressof(info))
        self._raw(Cmd.OBJ_GET_INFO_BY_FD, attr)
        li = LinkInfo.unpack(info.raw)
        return {"type": li.type, **li.details}

    def map_id(self, fd: int) -> int:
        from pyebpf.testing.kernel import kernel_map_info

        return int(kernel_map_info(fd).id)

    def close_fd(self, fd: int) -> None:
        import os

        self.be.fds.remove(fd)
        os.close(fd)

    def close_sock(self, s: Any) -> None:
        s.close()

    def ports(self, s: Any) -> tuple[int, int]:
        return int(s.getsockname()[1]), int(s.getpeername()[1])

    def so_error(self, s: Any) -> int:
        return int(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))

    def fd(self, s: Any) -> int:
        return int(s.fileno())

    def send(self, s: Any, data: bytes) -> int:
        self._sent = True
        try:
            return int(s.send(data, socket.MSG_DONTWAIT))
        except OSError as e:
            return -int(e.errno or 0)

    def recv(self, s: Any) -> bytes | int:
        """What arrived (or -errno): after a send, first a wait for the kernel to settle
        (redirects go through a workqueue; bytes passed before a drop leave on a
        timer, about 200 ms later), then every byte that is there."""
        if self._sent:
            time.sleep(SETTLE)
            self._sent = False
        out = bytearray()
        while True:
            ready, _, _ = select.select([s], [], [], 0)
            if not ready:
                break
            try:
                chunk = s.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break  # readable by poll, but a sockmap socket reads its psock queue
            except OSError as e:
                return -int(e.errno or 0)
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def close(self) -> None:
        for s in self.socks:
            s.close()
        for fd in self.be.fds:
            import os

            os.close(fd)


# -- bpf() wrappers both backends share ------------------------------------------------------
def errno_of(fn: Any, *args: Any) -> int:
    """0, or the errno ``fn`` raised as BpfError."""
    try:
        fn(*args)
        return 0
    except BpfError as e:
        return e.errno


def attach(be: Any, prog_fd: int, map_fd: int, at: int, flags: int = 0) -> int:
    return errno_of(be.bpf, Cmd.PROG_ATTACH, ProgAttachAttr(
        target_fd=map_fd, attach_bpf_fd=prog_fd, attach_type=at, attach_flags=flags))


def detach(be: Any, prog_fd: int, map_fd: int, at: int) -> int:
    return errno_of(be.bpf, Cmd.PROG_DETACH, ProgAttachAttr(
        target_fd=map_fd, attach_bpf_fd=prog_fd, attach_type=at))


def query(be: Any, map_fd: int, at: int) -> tuple[int, int]:
    """(errno, number of programs)."""
    return be.query(map_fd, at)  # type: ignore[no-any-return]


def link_create(be: Any, prog_fd: int, map_fd: int, at: int, flags: int = 0) -> int:
    """The link fd, or -errno."""
    try:
        return int(be.bpf(Cmd.LINK_CREATE, LinkCreateAttr(
            prog_fd=prog_fd, target_fd=map_fd, attach_type=at, flags=flags)))
    except BpfError as e:
        return -e.errno


def link_update(be: Any, link_fd: int, new_fd: int, old_fd: int = 0) -> int:
    from pyebpf.attr import LinkUpdateAttr

    return errno_of(be.bpf, Cmd.LINK_UPDATE, LinkUpdateAttr(
        link_fd=link_fd, new_prog_fd=new_fd, old_prog_fd=old_fd, flags=4 if old_fd else 0))


def link_detach(be: Any, link_fd: int) -> int:
    from pyebpf.attr import LinkDetachAttr

    return errno_of(be.bpf, Cmd.LINK_DETACH, LinkDetachAttr(link_fd=link_fd))


def insert(be: Any, map_fd: int, key: int, sock: Any, flags: int = 0,
           value_size: int = 4) -> int:
    """MAP_UPDATE_ELEM with the socket's fd as the value: 0 or the errno."""
    return errno_of(be.be.update, map_fd, key.to_bytes(4, "little"),
                    be.fd(sock).to_bytes(value_size, "little"), flags)


def record(be: Any, rec_fd: int) -> list[int]:
    return [int.from_bytes(be.be.lookup(rec_fd, i.to_bytes(4, "little"), 8), "little")
            for i in range(RECORD_SLOTS)]


def new_record(be: Any) -> int:
    return be.be.map_create(MapType.ARRAY, 4, 8, RECORD_SLOTS)


def load(be: Any, insns: list[Insn], prog_type: ProgType) -> int:
    return int(be.be.load(insns, prog_type))
