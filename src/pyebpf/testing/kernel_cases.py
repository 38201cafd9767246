"""Run one kernel verifier selftest case the way the labelling kernel did.

``verify_case(case)`` is the candidate ``../shared/verifier-cases/score.py``
calls (``--callable pyebpf.testing.kernel_cases:verify_case``). A case is one
line of ``dev.jsonl`` reduced to its input fields (see that folder's README):
the program as hex ``struct bpf_insn`` strings, the map fixups, the program
type and load flags, and the test-run inputs. The answer is::

    {"verdict": "accept" | "reject", "message": str, "retvals": [int | None, ...],
     "run_notes": [str | None, ...]}

(``run_notes``, which the scorer ignores, says why each run without a retval
failed: the errno, the fault, "not loaded".)

What happens, in the order ``test_verifier.c`` does it:

1. A fresh :class:`~pyebpf.runtime.Runtime` per case, so nothing leaks
   between cases: privileged unless ``case["unpriv"]``; ``nr_cpus`` =
   :data:`NR_CPUS` (the labelling machine's CPU count is not recorded; no
   deterministic retval of the corpus depends on it), clock and seed fixed.
2. One map per fixup kind (:func:`create_fixup_maps`), as ``maps.json``
   describes it: element 0 initialised where the kind has ``init``;
   ``prog1``/``prog2`` are program arrays holding the three tiny programs of
   the test's type (``r0 = 42; exit``, a self tail call returning 41, and
   ``r0 = 24; exit``) at the listed keys; ``map_in_map`` is an array of maps
   whose inner map template is a 1-element int array (left empty, as the
   selftest does). Kinds with BTF (``map_spin_lock``, ``map_timer``,
   ``map_kptr``, ``sk_storage_map``) are created with the shared BTF blob when
   pyebpf can load BTF (BPF_BTF_LOAD); until then they are created without
   BTF, which the message notes (the verifier then can't see the spin lock /
   timer / kptr fields, so verdicts on those cases may differ).
3. Every listed ``BPF_LD_IMM64`` slot gets the map's fd in ``imm``
   (:func:`patch_insns`); kfunc calls get the labelling kernel's BTF id.
4. ``BPF_PROG_LOAD`` with the case's prog_type, expected_attach_type and
   prog_flags, license "GPL", log_level 1 and a 16 MiB log. Success is
   "accept"; a BpfError is "reject", with the error and the whole log in
   ``message`` (the scorer looks for the kernel's error line in it).
5. Each entry of ``runs`` (64 bytes of packet data) goes through
   ``BPF_PROG_TEST_RUN`` (repeat 1, a 256-byte data_out as test_verifier's);
   ``retvals[i]`` is r0 as u32, or None when the run failed (the type can't be
   test-run: ENOTSUPP; the program faulted or ran out of budget; an errno).
   Unprivileged cases run with capabilities back, as the labeller did.

Programs our verifier rejected are run too. When the load fails in the
verifier proper (a :class:`~pyebpf.errors.VerifierError` from a verifier other
than the structural checks), the program is loaded a second time with the
structural checks only and its runs are reported; the verdict stays "reject".
The scorer counts retvals only where the *kernel* accepted and ran the
program, so this measures the interpreter, helpers and contexts independently
of verifier false rejects (which verdict agreement measures already). Such
unverified runs are safe: every access is bounds-checked (a fault gives None)
and a run stops after :data:`RUN_BUDGET` instructions.

``verify_case`` never raises: any exception (a pyebpf bug included) becomes a
"reject" whose message starts with ``pyebpf internal error``.
"""

from __future__ import annotations

import errno
import struct
import traceback
from collections.abc import Mapping
from typing import Any

import attrs

from .. import prog as _prog  # noqa: F401  (registers PROG_LOAD / PROG_TEST_RUN)
from ..attr import MapCreateAttr, MapElemAttr, ProgLoadAttr, TestRunAttr
from ..errors import BpfError, BpfFault, VerifierError
from ..runtime import Runtime
from ..syscall import bpf
from ..uapi import Cmd, MapType, ProgType

__all__ = [
    "LOG_SIZE",
    "NR_CPUS",
    "RUN_BUDGET",
    "SHARED_BTF_HEX",
    "CaseMaps",
    "create_fixup_maps",
    "patch_insns",
    "verify_case",
]

#: Simulated CPUs of every case's runtime (the labelling machine's count is unknown).
NR_CPUS = 4
#: The verifier log buffer (the labeller's: 16 MiB).
LOG_SIZE = 16 << 20
#: test_verifier.c's data_out buffer: TEST_DATA_LEN << 2.
DATA_OUT_SIZE = 256
#: Instructions one test run may execute (the kernel's verified programs in the
#: corpus run far fewer; an unverified program may loop forever).
RUN_BUDGET = 2_000_000
_BPF_FUNC_tail_call = 12

#: maps.json's ``shared_btf_hex``: the BTF the spin-lock/timer/kptr map kinds use.
SHARED_BTF_HEX = (
    "9feb01001800000000000000000100000001000070000000000000000000000104000000200000010100"
    "000001000004040000000f00000001000000000000000f00000002000004080000001300000001000000"
    "000000001700000002000000200000001900000000000004100000002300000001000004100000002900"
    "000004000000000000003300000000000004000000005f00000000000004000000005000000000000012"
    "060000004b00000000000012060000004b0000000000001207000000000000000000000208000000000000"
    "00000000020900000000000000000000020a0000002b0000000300000418000000470000000b0000000000"
    "0000470000000c00000040000000470000000d00000080000000006270665f7370696e5f6c6f636b007661"
    "6c00636e74006c006270665f74696d65720074696d65720074006274665f7074720070726f675f74657374"
    "5f7265665f6b66756e6300707472006b707472006b7074725f756e747275737465640070726f675f746573"
    "745f6d656d62657200"
)


# -- instructions -----------------------------------------------------------------------
def _insn_bytes(insns: list[str]) -> bytearray:
    return bytearray(b"".join(bytes.fromhex(h) for h in insns))


def patch_insns(raw: bytearray, index: int, imm: int) -> None:
    """Write ``imm`` (s32) into the imm field of instruction slot ``index``."""
    struct.pack_into("<i", raw, index * 8 + 4, _s32(imm))


def _s32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v & 0x8000_0000 else v


def _tiny_prog(r0: int) -> bytes:
    """``r0 = <r0>; exit`` (create_prog_dummy_simple)."""
    return struct.pack("<BBhi", 0xB7, 0x00, 0, r0) + struct.pack("<BBhi", 0x95, 0, 0, 0)


def _tail_call_prog(map_fd: int, idx: int, r0: int) -> bytes:
    """``r3 = idx; r2 = map; call bpf_tail_call; r0 = ret; exit`` (create_prog_dummy_loop)."""
    return b"".join((
        struct.pack("<BBhi", 0xB7, 0x03, 0, idx),
        struct.pack("<BBhi", 0x18, 0x12, 0, map_fd),  # dst r2, src BPF_PSEUDO_MAP_FD
        struct.pack("<BBhi", 0x00, 0x00, 0, 0),
        struct.pack("<BBhi", 0x85, 0x00, 0, _BPF_FUNC_tail_call),
        struct.pack("<BBhi", 0xB7, 0x00, 0, r0),
        struct.pack("<BBhi", 0x95, 0x00, 0, 0),
    ))


# -- BTF ------------------------------------------------------------------------------------------
def _load_btf(rt: Runtime, blob: bytes) -> int | None:
    """BPF_BTF_LOAD ``blob`` if pyebpf supports it; the fd, or None when it can't."""
    try:
        from ..attr import record_class
        from ..syscall import _HANDLERS

        if Cmd.BTF_LOAD not in _HANDLERS:
            return None
        cls = record_class(Cmd.BTF_LOAD)
        return int(bpf(Cmd.BTF_LOAD, cls(btf=blob, btf_size=len(blob)), runtime=rt))
    except Exception:  # BTF is optional: fall back to no BTF
        return None


# -- maps -----------------------------------------------------------------------------------------
class CaseMaps:
    """The maps of one case: fd per fixup kind, and notes on what differs from the kernel."""

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}
        self.notes: list[str] = []
        self.btf_fd: int | None = None
        self._btf_tried = False

    def shared_btf(self, rt: Runtime) -> int | None:
        if not self._btf_tried:
            self._btf_tried = True
            self.btf_fd = _load_btf(rt, bytes.fromhex(SHARED_BTF_HEX))
        return self.btf_fd


def _map_type(name: str | int) -> int:
    if isinstance(name, int):
        return name
    return int(MapType[name.removeprefix("BPF_MAP_TYPE_")])


def _selftest_map_name(spec: Mapping[str, Any]) -> str:
    """The name test_verifier.c gives the map: "test_map" for the maps it creates
    with BTF (create_map_spin_lock/_timer/_kptr, create_sk_storage_map), none for
    the others; the verifier log shows it (``map=test_map``)."""
    return "test_map" if spec.get("btf") else ""


def _create_map(rt: Runtime, kind: str, spec: Mapping[str, Any], maps: CaseMaps,
                prog_type: int) -> int:
    mtype = _map_type(spec["map_type"])
    extra: dict[str, Any] = {}
    inner_fd = None
    if spec.get("inner_map"):
        inner = spec["inner_map"]
        inner_fd = bpf(Cmd.MAP_CREATE, MapCreateAttr(
            map_type=_map_type(inner["map_type"]), key_size=inner["key_size"],
            value_size=inner["value_size"], max_entries=inner["max_entries"],
            map_flags=inner.get("map_flags", 0)), runtime=rt)
        extra["inner_map_fd"] = inner_fd
    if spec.get("btf"):
        btf_fd = maps.shared_btf(rt)
        if btf_fd is not None:
            extra.update(btf_fd=btf_fd, btf_key_type_id=spec.get("btf_key_type_id", 0),
                         btf_value_type_id=spec.get("btf_value_type_id", 0))
        else:
            maps.notes.append(f"pyebpf: map {kind} created without BTF (BTF loading is not "
                              "supported yet)")
    attr = MapCreateAttr(map_type=mtype, key_size=spec["key_size"],
                         value_size=spec["value_size"], max_entries=spec["max_entries"],
                         map_flags=spec.get("map_flags", 0), map_name=_selftest_map_name(spec),
                         **extra)
    try:
        fd = bpf(Cmd.MAP_CREATE, attr, runtime=rt)
    except BpfError:
        if "btf_fd" not in extra:
            raise
        # The BTF was loaded but the map refused it: retry plain, and say so.
        maps.notes.append(f"pyebpf: map {kind} refused its BTF; created without it")
        fd = bpf(Cmd.MAP_CREATE, attrs.evolve(attr, btf_fd=0, btf_key_type_id=0,
                                              btf_value_type_id=0), runtime=rt)
    fd = int(fd)
    if inner_fd is not None:
        rt.close(int(inner_fd))  # the outer map keeps its template (the selftest closes it too)
    init = spec.get("init")
    if init:
        key = int(init.get("key", 0)).to_bytes(spec["key_size"], "little")
        bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=key,
                                             value=bytes.fromhex(init["value_hex"])),
            runtime=rt)
    if mtype == MapType.PROG_ARRAY:
        _fill_prog_array(rt, fd, spec, prog_type, maps.notes)
    return fd


def _fill_prog_array(rt: Runtime, fd: int, spec: Mapping[str, Any], prog_type: int,
                     notes: list[str]) -> None:
    """create_prog_array: three tiny programs of the test's type at the listed keys."""
    contents = spec.get("contents") or {}
    for key_s, what in contents.items():
        key = int(key_s)
        if "tail_call" in what:
            insns = _tail_call_prog(fd, key, 41)
        else:
            insns = _tiny_prog(int(what.split("r0 =", 1)[1].split(";", 1)[0]))
        attr = ProgLoadAttr(prog_type=prog_type, insns=insns, license="GPL")
        try:
            pfd = int(bpf(Cmd.PROG_LOAD, attr, runtime=rt))
        except VerifierError as err:
            # The kernel accepted these; if our verifier doesn't, keep the array
            # runnable (and say so) rather than lose the case.
            saved, rt.verifier = rt.verifier, "structural"
            try:
                pfd = int(bpf(Cmd.PROG_LOAD, attr, runtime=rt))
            finally:
                rt.verifier = saved
            notes.append(f"pyebpf: tail-call target {key} loaded unverified ({err})")
        try:
            bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=key.to_bytes(4, "little"),
                                                 value=pfd.to_bytes(4, "little")),
                runtime=rt)
        finally:
            rt.close(pfd)  # the array holds the program


def create_fixup_maps(rt: Runtime, case: Mapping[str, Any]) -> CaseMaps:
    """Create one map per fixup kind of ``case``; raises BpfError if one can't be made."""
    maps = CaseMaps()
    specs = case.get("map_specs") or {}
    prog_type = case.get("prog_type_id") or int(ProgType.SOCKET_FILTER)
    for kind in case.get("fixups") or {}:
        spec = specs.get(kind)
        if spec is None:
            raise BpfError(errno.EINVAL, f"pyebpf: no map_specs entry for fixup kind {kind}")
        try:
            maps.fds[kind] = _create_map(rt, kind, spec, maps, prog_type)
        except BpfError as err:
            raise BpfError(err.errno or errno.EINVAL,
                           f"pyebpf: cannot create map {kind} ({spec['map_type']}): "
                           f"{err}") from err
    return maps


def _patched_insns(case: Mapping[str, Any], maps: CaseMaps) -> bytearray:
    raw = _insn_bytes(case["insns"])
    for kind, indices in (case.get("fixups") or {}).items():
        for i in indices:
            patch_insns(raw, i, maps.fds[kind])
    for kf in case.get("kfunc_fixups") or []:
        if kf.get("btf_id") is not None:
            patch_insns(raw, kf["insn"], kf["btf_id"])
    return raw


# -- loading and running -----------------------------------------------------------------
def _load_attr(case: Mapping[str, Any], insns: bytes, *, log: bool,
               btf_fd: int | None) -> ProgLoadAttr:
    extra: dict[str, Any] = {}
    if btf_fd is not None:
        fi = case.get("func_info") or []
        extra.update(prog_btf_fd=btf_fd)
        if fi:
            extra.update(func_info=b"".join(struct.pack("<II", a, b) for a, b in fi),
                         func_info_rec_size=8, func_info_cnt=len(fi))
    return ProgLoadAttr(
        prog_type=case.get("prog_type_id") or int(ProgType.SOCKET_FILTER),
        insns=bytes(insns),
        license="GPL",
        log_level=1 if log else 0,
        log_size=LOG_SIZE if log else 0,
        prog_flags=case.get("prog_flags") or 0,
        expected_attach_type=case.get("expected_attach_type_id") or 0,
        attach_btf_id=_attach_btf_id(case.get("attach_btf_name")),
        **extra,
    )


def _attach_btf_id(name: str | None) -> int:
    """The kernel BTF function a TRACING/LSM case attaches to (``attach_btf_name``),
    in pyebpf's kernel BTF; 0 when it has no such function."""
    if not name:
        return 0
    from ..btf import BtfKind
    from ..kernel_btf import kernel_btf

    kind = BtfKind.TYPEDEF if name.startswith("btf_trace_") else BtfKind.FUNC  # tp_btf
    t = kernel_btf().find(name, kind)
    return t.id if t is not None else 0


def _test_run(rt: Runtime, fd: int, data_hex: str) -> tuple[int | None, str | None]:
    """One BPF_PROG_TEST_RUN: (r0 as u32, None) or (None, why it failed)."""
    attr = TestRunAttr(prog_fd=fd, data_in=bytes.fromhex(data_hex),
                       data_size_out=DATA_OUT_SIZE, repeat=1)
    try:
        result = bpf(Cmd.PROG_TEST_RUN, attr, runtime=rt)
    except BpfError as err:
        result = getattr(err, "result", None)  # ENOSPC still delivers the run's result
        if result is None:
            return None, str(err)
    except BpfFault as fault:
        return None, f"fault: {fault}"
    return int(result.retval) & 0xFFFF_FFFF, None


Runs = tuple[list[int | None], list[str | None]]


def _runs(rt: Runtime, fd: int, case: Mapping[str, Any]) -> Runs:
    runs = case.get("runs") or []
    if (case.get("runs_count") or 0) < 0:
        return [None] * len(runs), ["not run (runs_count < 0)"] * len(runs)
    f = rt.fds.get(fd)
    prog = f.obj if f is not None else None
    vm = getattr(prog, "vm", None)
    if callable(vm):
        vm().budget = RUN_BUDGET
    rt.privileged = True  # the labeller test-ran with capabilities back
    out: list[int | None] = []
    why: list[str | None] = []
    for run in runs:
        try:
            r, note = _test_run(rt, fd, run["data"])
        except Exception as exc:  # a crash in a run is that run's None
            r, note = None, f"pyebpf internal error: {type(exc).__name__}: {exc}"
        out.append(r)
        why.append(note)
    return out, why


def _message(err: BaseException, log: str, notes: list[str]) -> str:
    parts = []
    if log:
        parts.append(log.rstrip("\n"))
    parts.append(str(err))
    parts.extend(notes)
    return "\n".join(parts)


def verify_case(case: Mapping[str, Any]) -> dict[str, Any]:
    """Load (and test-run) one verifier-cases case; see the module docstring."""
    n_runs = len(case.get("runs") or [])
    try:
        return _verify_case(case)
    except Exception as exc:  # the scorer wants an answer, never a crash
        return {"verdict": "reject",
                "message": "pyebpf internal error: " + "".join(
                    traceback.format_exception_only(type(exc), exc)).strip(),
                "retvals": [None] * n_runs}


def _verify_case(case: Mapping[str, Any]) -> dict[str, Any]:
    n_runs = len(case.get("runs") or [])
    rt = Runtime(nr_cpus=NR_CPUS, seed=0, privileged=not case.get("unpriv"))
    try:
        maps = create_fixup_maps(rt, case)
    except BpfError as err:
        return {"verdict": "reject", "message": str(err), "retvals": [None] * n_runs,
                "run_notes": [str(err)] * n_runs}
    insns = _patched_insns(case, maps)
    prog_btf = None
    if case.get("btf"):
        prog_btf = _load_btf(rt, bytes.fromhex(case["btf"]))
        if prog_btf is None:
            maps.notes.append("pyebpf: program BTF/func_info not loaded (BTF loading is not "
                              "supported yet)")
    try:
        fd = bpf(Cmd.PROG_LOAD, _load_attr(case, insns, log=True, btf_fd=prog_btf),
                 runtime=rt)
    except BpfError as err:
        log = getattr(err, "log", "") or ""
        retvals: list[int | None] = [None] * n_runs
        notes: list[str | None] = ["not loaded"] * n_runs
        if isinstance(err, VerifierError) and rt.verifier != "structural":
            retvals, notes = _unverified_runs(rt, case, insns, prog_btf)
        return {"verdict": "reject", "message": _message(err, log, maps.notes),
                "retvals": retvals, "run_notes": notes}
    log = getattr(fd, "log", "")
    retvals, notes = _runs(rt, int(fd), case)
    message = "\n".join([log.rstrip("\n"), *maps.notes]) if maps.notes else log
    return {"verdict": "accept", "message": message, "retvals": retvals, "run_notes": notes}


def _unverified_runs(rt: Runtime, case: Mapping[str, Any], insns: bytes,
                     prog_btf: int | None) -> Runs:
    """Load with the structural checks only and run (see the module docstring)."""
    n_runs = len(case.get("runs") or [])
    saved = rt.verifier
    rt.verifier = "structural"
    try:
        fd = bpf(Cmd.PROG_LOAD, _load_attr(case, insns, log=False, btf_fd=prog_btf),
                 runtime=rt)
    except BpfError as err:
        return [None] * n_runs, [f"structural load failed: {err}"] * n_runs
    finally:
        rt.verifier = saved
    return _runs(rt, int(fd), case)
