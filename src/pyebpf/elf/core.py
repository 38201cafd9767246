"""CO-RE relocations (libbpf's relo_core.c): adapt field offsets, sizes and
type/enum facts compiled against the object's own BTF to a target BTF.

A relocation names a local root type, an access string (``"0:1:3"``: element
0 of the root, then member 1, then member/element 3) and a kind. Its local
value is computed from the object's BTF; its target value from the target
BTF (by default the object's own BTF, so every relocation is satisfied and
the instruction keeps its value; with a user-supplied, vmlinux-like BTF,
candidates are matched by name as libbpf does). The instruction is patched
as libbpf's ``bpf_core_patch_insn`` does (ALU immediate, load/store offset,
64-bit immediate). A relocation that can't be satisfied turns the
instruction into a call to the invalid helper 195896080 (0xbad2310), as
libbpf does: the verifier rejects the program only if that instruction is
reachable, and the loader then explains which relocation failed.
"""

from __future__ import annotations

import errno
import struct

import attrs

from ..btf import Btf, BtfError, BtfKind, BtfType, CoreRelo, CoreReloKind
from .errors import CoreRelocError
from .spec import CoreReloResult

__all__ = ["POISON_HELPER", "apply_core_relos", "essential_name"]

#: libbpf's poison: "invalid func unknown#195896080" in a verifier log means a
#: CO-RE relocation failed.
POISON_HELPER = 0xBAD2310

_FIELD_KINDS = (CoreReloKind.FIELD_BYTE_OFFSET, CoreReloKind.FIELD_BYTE_SIZE,
                CoreReloKind.FIELD_EXISTS, CoreReloKind.FIELD_SIGNED,
                CoreReloKind.FIELD_LSHIFT_U64, CoreReloKind.FIELD_RSHIFT_U64)
_TYPE_KINDS = (CoreReloKind.TYPE_ID_LOCAL, CoreReloKind.TYPE_ID_TARGET,
               CoreReloKind.TYPE_EXISTS, CoreReloKind.TYPE_SIZE, CoreReloKind.TYPE_MATCHES)
_ENUM_KINDS = (CoreReloKind.ENUMVAL_EXISTS, CoreReloKind.ENUMVAL_VALUE)
_EXISTS_KINDS = (CoreReloKind.FIELD_EXISTS, CoreReloKind.TYPE_EXISTS,
                 CoreReloKind.TYPE_MATCHES, CoreReloKind.ENUMVAL_EXISTS)
_COMPOSITE = (BtfKind.STRUCT, BtfKind.UNION)


def essential_name(name: str) -> str:
    """A type name without its ``___flavor`` suffix (bpf_core_essential_name_len)."""
    i = name.find("___")
    return name[:i] if i > 0 else name


@attrs.define
class _Access:
    type_id: int  # the type the index applies to
    idx: int
    name: str = ""  # member name (empty for array indexes and the root)


@attrs.define
class _Spec:
    """A parsed access: the root type, the accesses, the resulting bit offset."""

    root_id: int
    access: list[_Access]
    bit_offset: int = 0


class _Unmatched(Exception):
    """The relocation has no match in the target (not an error of the object)."""


def _parse_spec(btf: Btf, type_id: int, access_str: str, kind: int) -> _Spec:
    """bpf_core_parse_spec on the local BTF."""
    try:
        idxs = [int(p) for p in access_str.split(":")]
    except ValueError:
        raise CoreRelocError(f"CO-RE: invalid access string '{access_str}'") from None
    if not idxs or any(i < 0 for i in idxs):
        raise CoreRelocError(f"CO-RE: invalid access string '{access_str}'")
    spec = _Spec(type_id, [])
    if kind in _TYPE_KINDS:
        if idxs != [0]:
            raise CoreRelocError(f"CO-RE: type relocation with access '{access_str}'")
        spec.access.append(_Access(type_id, 0))
        return spec
    if kind in _ENUM_KINDS:
        t = btf.skip_mods_and_typedefs(type_id)
        if t.kind not in (BtfKind.ENUM, BtfKind.ENUM64) or len(idxs) != 1 or \
                idxs[0] >= len(t.enum_values):
            raise CoreRelocError(f"CO-RE: bad enum value access '{access_str}' on {t}")
        spec.access.append(_Access(type_id, idxs[0], t.enum_values[idxs[0]].name))
        return spec
    # Field: root array index, then members/elements.
    size = btf.sizeof(type_id)
    spec.access.append(_Access(type_id, idxs[0]))
    spec.bit_offset = idxs[0] * size * 8
    tid = type_id
    for i in idxs[1:]:
        t = btf.skip_mods_and_typedefs(tid)
        if t.kind in _COMPOSITE:
            if i >= len(t.members):
                raise CoreRelocError(f"CO-RE: member #{i} of {t} does not exist")
            m = t.members[i]
            spec.bit_offset += m.bit_offset
            spec.access.append(_Access(t.id, i, m.name))
            tid = m.type
        elif t.kind is BtfKind.ARRAY and t.array is not None:
            elem = t.array.type
            spec.bit_offset += i * btf.sizeof(elem) * 8
            spec.access.append(_Access(t.id, i))
            tid = elem
        else:
            raise CoreRelocError(f"CO-RE: access '{access_str}' goes into {t}, which is "
                                 "neither a struct/union nor an array")
    return spec


# -- matching against a target --------------------------------------------------------------
def _fields_compat(lb: Btf, lid: int, tb: Btf, tid: int) -> bool:
    lt = lb.skip_mods_and_typedefs(lid)
    tt = tb.skip_mods_and_typedefs(tid)
    if lt.kind in _COMPOSITE and tt.kind in _COMPOSITE:
        return True
    if lt.kind is not tt.kind:
        return False
    if lt.kind in (BtfKind.PTR, BtfKind.FLOAT):
        return True
    if lt.kind in (BtfKind.FWD, BtfKind.ENUM, BtfKind.ENUM64):
        return essential_name(lt.name) == essential_name(tt.name)
    if lt.kind is BtfKind.INT:
        return lt.int_offset == 0 and tt.int_offset == 0
    if lt.kind is BtfKind.ARRAY and lt.array and tt.array:
        return _fields_compat(lb, lt.array.type, tb, tt.array.type)
    return False


def _types_compat(lb: Btf, lid: int, tb: Btf, tid: int, depth: int = 0) -> bool:
    if depth > 16:
        return False
    lt = lb.skip_mods_and_typedefs(lid)
    tt = tb.skip_mods_and_typedefs(tid)
    if lt.kind is not tt.kind:
        return lt.kind in (BtfKind.ENUM, BtfKind.ENUM64) and \
            tt.kind in (BtfKind.ENUM, BtfKind.ENUM64)
    if lt.kind in (BtfKind.UNKN, BtfKind.FLOAT, BtfKind.FWD, BtfKind.ENUM, BtfKind.ENUM64,
                   BtfKind.STRUCT, BtfKind.UNION):
        return True
    if lt.kind is BtfKind.INT:
        return lt.int_offset == 0 and tt.int_offset == 0
    if lt.kind is BtfKind.PTR:
        return _types_compat(lb, lt.type, tb, tt.type, depth + 1)
    if lt.kind is BtfKind.ARRAY and lt.array and tt.array:
        return _types_compat(lb, lt.array.type, tb, tt.array.type, depth + 1)
    if lt.kind is BtfKind.FUNC_PROTO:
        if len(lt.params) != len(tt.params):
            return False
        return all(_types_compat(lb, a.type, tb, b.type, depth + 1)
                   for a, b in zip(lt.params, tt.params, strict=True)) and \
            _types_compat(lb, lt.type, tb, tt.type, depth + 1)
    return False


def _match_member(lb: Btf, local_member_type: int, name: str, tb: Btf, t: BtfType,
                  out: list[_Access], bit_off: int, depth: int = 0) -> int | None:
    """Find member ``name`` in target composite ``t`` (anonymous members searched);
    append the accesses; return the bit offset, or None."""
    if depth > 16:
        return None
    for i, m in enumerate(t.members):
        if m.name == name:
            if not _fields_compat(lb, local_member_type, tb, m.type):
                return None
            out.append(_Access(t.id, i, name))
            return bit_off + m.bit_offset
        if not m.name:
            inner = tb.skip_mods_and_typedefs(m.type)
            if inner.kind in _COMPOSITE:
                mark = len(out)
                out.append(_Access(t.id, i))
                r = _match_member(lb, local_member_type, name, tb, inner, out,
                                  bit_off + m.bit_offset, depth + 1)
                if r is not None:
                    return r
                del out[mark:]
    return None


def _match_spec(lb: Btf, local: _Spec, tb: Btf, targ_id: int, kind: int) -> _Spec | None:
    """bpf_core_spec_match: the local access replayed on a target candidate."""
    spec = _Spec(targ_id, [])
    if kind in _TYPE_KINDS:
        if not _types_compat(lb, local.root_id, tb, targ_id):
            return None
        spec.access.append(_Access(targ_id, 0))
        return spec
    if kind in _ENUM_KINDS:
        tt = tb.skip_mods_and_typedefs(targ_id)
        if tt.kind not in (BtfKind.ENUM, BtfKind.ENUM64):
            return None
        want = essential_name(local.access[0].name)
        for i, ev in enumerate(tt.enum_values):
            if essential_name(ev.name) == want:
                spec.access.append(_Access(targ_id, i, ev.name))
                return spec
        return None
    root = local.access[0]
    spec.access.append(_Access(targ_id, root.idx))
    spec.bit_offset = root.idx * tb.sizeof(targ_id) * 8
    tid = targ_id
    lid = local.root_id
    for acc in local.access[1:]:
        lt = lb.skip_mods_and_typedefs(lid)
        tt = tb.skip_mods_and_typedefs(tid)
        if lt.kind in _COMPOSITE:
            m = lt.members[acc.idx]
            if not m.name:  # anonymous members are transparent: skip them
                lid = m.type
                continue
            if tt.kind not in _COMPOSITE:
                return None
            off = _match_member(lb, m.type, m.name, tb, tt, spec.access, spec.bit_offset)
            if off is None:
                return None
            spec.bit_offset = off
            last = spec.access[-1]
            tid = tb.skip_mods_and_typedefs(last.type_id).members[last.idx].type
            lid = m.type
        elif lt.kind is BtfKind.ARRAY and lt.array is not None:
            if tt.kind is not BtfKind.ARRAY or tt.array is None:
                return None
            if tt.array.nelems and acc.idx >= tt.array.nelems:
                return None
            spec.access.append(_Access(tid, acc.idx))
            spec.bit_offset += acc.idx * tb.sizeof(tt.array.type) * 8
            tid = tt.array.type
            lid = lt.array.type
        else:
            return None
    return spec


# -- values -------------------------------------------------------------------------------------
def _field_value(btf: Btf, spec: _Spec, kind: int) -> tuple[int, int]:
    """bpf_core_calc_field_relo: (value, byte size of the field)."""
    last = spec.access[-1]
    t = btf.skip_mods_and_typedefs(last.type_id)
    bit_sz = 0
    if len(spec.access) > 1 and t.kind in _COMPOSITE:
        m = t.members[last.idx]
        field_type = m.type
        bit_sz = m.bitfield_size
    elif len(spec.access) > 1 and t.kind is BtfKind.ARRAY and t.array is not None:
        field_type = t.array.type
    else:
        field_type = spec.root_id
    bit_off = spec.bit_offset
    mt = btf.skip_mods_and_typedefs(field_type)
    if kind == CoreReloKind.FIELD_EXISTS:
        return 1, 0
    if not bit_sz:
        if bit_off % 8:
            raise CoreRelocError("CO-RE: unaligned field")
        byte_off = bit_off // 8
        byte_sz = btf.sizeof(field_type)
        bit_sz = byte_sz * 8
    else:
        byte_sz = mt.size
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise CoreRelocError("CO-RE: bitfield can't be read with a 64-bit load",
                                     errno.E2BIG)
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    if kind == CoreReloKind.FIELD_BYTE_OFFSET:
        return byte_off, byte_sz
    if kind == CoreReloKind.FIELD_BYTE_SIZE:
        return byte_sz, byte_sz
    if kind == CoreReloKind.FIELD_SIGNED:
        return int(mt.is_signed), byte_sz
    if kind == CoreReloKind.FIELD_LSHIFT_U64:
        return 64 - (bit_off + bit_sz - byte_off * 8), byte_sz
    if kind == CoreReloKind.FIELD_RSHIFT_U64:
        return 64 - bit_sz, byte_sz
    raise CoreRelocError(f"CO-RE: unknown field relocation kind {kind}")


def _is_bitfield(btf: Btf, spec: _Spec) -> bool:
    """Whether a field access ends at a bitfield member."""
    last = spec.access[-1]
    t = btf.skip_mods_and_typedefs(last.type_id)
    return len(spec.access) > 1 and t.kind in _COMPOSITE and \
        bool(t.members[last.idx].bitfield_size)


def _value(btf: Btf, spec: _Spec, kind: int, *, local_id: int) -> int:
    if kind in _FIELD_KINDS:
        return _field_value(btf, spec, kind)[0]
    if kind == CoreReloKind.TYPE_ID_LOCAL:
        return local_id
    if kind == CoreReloKind.TYPE_ID_TARGET:
        return spec.root_id
    if kind in (CoreReloKind.TYPE_EXISTS, CoreReloKind.TYPE_MATCHES):
        return 1
    if kind == CoreReloKind.TYPE_SIZE:
        return btf.sizeof(spec.root_id)
    if kind == CoreReloKind.ENUMVAL_EXISTS:
        return 1
    if kind == CoreReloKind.ENUMVAL_VALUE:
        t = btf.skip_mods_and_typedefs(spec.root_id)
        return t.enum_values[spec.access[0].idx].value
    raise CoreRelocError(f"CO-RE: unknown relocation kind {kind}")


def _candidates(local: Btf, local_id: int, target: Btf) -> list[int]:
    lt = local.skip_mods_and_typedefs(local_id) if local.type(local_id).kind in (
        BtfKind.TYPEDEF, BtfKind.CONST, BtfKind.VOLATILE, BtfKind.RESTRICT) and not \
        local.type(local_id).name else local.type(local_id)
    name = essential_name(lt.name)
    if not name:
        raise CoreRelocError(f"CO-RE: relocation against anonymous type {lt}")
    out = []
    for t in target:
        if essential_name(t.name) != name:
            continue
        if t.kind is lt.kind or (
                {t.kind, lt.kind} <= {BtfKind.ENUM, BtfKind.ENUM64}):
            out.append(t.id)
    return out


# -- patching ------------------------------------------------------------------------------------
def _poison(raw: bytearray, idx: int) -> None:
    struct.pack_into("<BBhi", raw, idx * 8, 0x85, 0, 0, POISON_HELPER)


def _patch(raw: bytearray, idx: int, local_val: int, new_val: int, where: str,
           validate: bool = True) -> None:
    """bpf_core_patch_insn. ``validate``: check that the instruction holds the local
    value first (libbpf doesn't for bitfields, whose values clang computes its way)."""
    code, _regs, off, imm = struct.unpack_from("<BBhi", raw, idx * 8)
    cls = code & 7
    if cls in (4, 7):  # ALU, ALU64
        if code & 0x08:
            raise CoreRelocError(f"{where}: ALU instruction with a register source")
        if validate and imm != _s32(local_val):
            raise CoreRelocError(f"{where}: unexpected instruction value: got {imm}, "
                                 f"expected {local_val}")
        struct.pack_into("<i", raw, idx * 8 + 4, _s32(new_val))
    elif cls in (1, 2, 3):  # LDX, ST, STX
        if validate and off != local_val:
            raise CoreRelocError(f"{where}: unexpected instruction offset: got {off}, "
                                 f"expected {local_val}")
        if new_val > 0x7FFF:
            raise CoreRelocError(f"{where}: offset {new_val} is too big for an instruction")
        struct.pack_into("<h", raw, idx * 8 + 2, new_val)
    elif code == 0x18:
        if (idx + 1) * 8 + 8 > len(raw):
            raise CoreRelocError(f"{where}: truncated 64-bit immediate load")
        (hi,) = struct.unpack_from("<i", raw, idx * 8 + 12)
        cur = (imm & 0xFFFF_FFFF) | ((hi & 0xFFFF_FFFF) << 32)
        if validate and cur != local_val & 0xFFFF_FFFF_FFFF_FFFF:
            raise CoreRelocError(f"{where}: unexpected 64-bit immediate: got {cur}, "
                                 f"expected {local_val}")
        struct.pack_into("<i", raw, idx * 8 + 4, _s32(new_val & 0xFFFF_FFFF))
        struct.pack_into("<i", raw, idx * 8 + 12, _s32((new_val >> 32) & 0xFFFF_FFFF))
    else:
        raise CoreRelocError(f"{where}: instruction class {cls} can't be relocated")


def _s32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v & 0x8000_0000 else v


def apply_core_relos(btf: Btf, relos: list[tuple[int, CoreRelo]], raw: bytearray, *,
                     target: Btf | None = None, prog: str = "") -> list[CoreReloResult]:
    """Apply ``relos`` ((instruction index in ``raw``, record)) to ``raw`` in place."""
    results = []
    for n, (idx, relo) in enumerate(relos):
        where = f"prog '{prog}': relo #{n} at insn #{idx}"
        if not 0 <= idx < len(raw) // 8:
            raise CoreRelocError(f"{where}: instruction out of range")
        try:
            kind = CoreReloKind(relo.kind)
        except ValueError:
            raise CoreRelocError(f"{where}: unknown CO-RE relocation kind {relo.kind}",
                                 errno.EOPNOTSUPP) from None
        try:
            local_t = btf.type(relo.type_id)
            local = _parse_spec(btf, relo.type_id, relo.access_str, kind)
            local_val = _value(btf, local, kind, local_id=relo.type_id)
            target_val: int | None
            if target is None or target is btf:
                target_val = local_val
            else:
                target_val = _resolve_target(btf, local, target, kind, relo.type_id)
        except BtfError as e:
            raise CoreRelocError(f"{where}: {e.strerror}") from None
        type_name = btf.type_name(local_t.id)
        if target_val is None:
            if kind in _EXISTS_KINDS:
                target_val = 0
            else:
                if raw[idx * 8] == 0x18 and idx + 1 < len(raw) // 8:
                    _poison(raw, idx + 1)
                _poison(raw, idx)
                results.append(CoreReloResult(idx, kind.name, type_name, relo.access_str,
                                              local_val, None, False,
                                              f"{kind.name} of {type_name} "
                                              f"(access {relo.access_str}): no match in "
                                              "the target BTF"))
                continue
        _patch(raw, idx, local_val, target_val, where,
               validate=not (kind in _FIELD_KINDS and _is_bitfield(btf, local)))
        results.append(CoreReloResult(idx, kind.name, type_name, relo.access_str, local_val,
                                      target_val, True))
    return results


def _resolve_target(btf: Btf, local: _Spec, target: Btf, kind: int,
                    local_id: int) -> int | None:
    cands = _candidates(btf, local_id, target)
    values = set()
    for cid in cands:
        spec = _match_spec(btf, local, target, cid, kind)
        if spec is None:
            continue
        values.add(_value(target, spec, kind, local_id=local_id))
    if not values:
        return None
    if len(values) > 1 and kind != CoreReloKind.TYPE_ID_TARGET:
        raise CoreRelocError(f"CO-RE: relocation decision ambiguity for "
                             f"{btf.type_name(local_id)}: candidates give {sorted(values)}")
    return min(values)
