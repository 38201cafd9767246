"""The address space: page-aligned regions with guard pages, checked loads and stores.

Pointers are plain 64-bit integers (DESIGN.md); every access is bounds- and
permission-checked, including the ``addr + size`` wrap-around past 2**64 that
uBPF and rbpf once missed, and an out-of-bounds access by a program stops it
with a BpfFault at the faulting instruction.
"""

from __future__ import annotations

import errno

import pytest

from pyebpf.engine import Vm
from pyebpf.errors import BpfError, BpfFault
from pyebpf.memory import DEFAULT_BASE, PAGE_SIZE, AddressSpace, Perm, Region

TOP = 1 << 64
M64 = TOP - 1
SIZES = [1, 2, 4, 8]


@pytest.fixture
def space() -> AddressSpace:
    return AddressSpace()


# -- mapping -----------------------------------------------------------------------


def test_first_region_is_at_the_fixed_default_base(space: AddressSpace) -> None:
    assert space.map(8, kind="t").base == DEFAULT_BASE
    assert AddressSpace().map(8, kind="t").base == DEFAULT_BASE  # deterministic


@pytest.mark.parametrize("size", [0, 1, 100, PAGE_SIZE - 1, PAGE_SIZE, PAGE_SIZE + 1,
                                  3 * PAGE_SIZE])
def test_regions_are_page_aligned_with_a_guard_page_between(space: AddressSpace,
                                                            size: int) -> None:
    a = space.map(size, kind="t", name="a")
    b = space.map(16, kind="t", name="b")
    assert a.base % PAGE_SIZE == 0 and b.base % PAGE_SIZE == 0
    pages_a = max(1, -(-size // PAGE_SIZE))
    assert b.base == a.base + (pages_a + 1) * PAGE_SIZE  # one guard page after `a`
    guard = a.base + pages_a * PAGE_SIZE
    assert space.region_at(guard) is None
    with pytest.raises(BpfFault):
        space.load(guard, 1)


def test_map_int_gives_zeroed_bytes(space: AddressSpace) -> None:
    r = space.map(24, kind="t")
    assert r.size == 24 and bytes(r.buf) == bytes(24)


def test_map_keeps_a_bytearray_by_reference_and_copies_bytes(space: AddressSpace) -> None:
    shared = bytearray(8)
    r = space.map(shared, kind="t")
    space.store(r.base, 1, 0x5A)
    assert shared[0] == 0x5A
    frozen = bytes(8)
    r2 = space.map(frozen, kind="t")
    space.store(r2.base, 1, 0x5A)
    assert frozen == bytes(8) and r2.buf[0] == 0x5A


def test_region_describe_and_contains(space: AddressSpace) -> None:
    r = space.map(16, kind="map_value", name="counts")
    assert r.base in r and r.end - 1 in r and r.end not in r and r.base - 1 not in r
    assert r.describe() == f"map_value counts [{r.base:#x}, {r.end:#x})"
    assert space.region_at(r.base + 15) is r
    assert space.region_at(r.end) is None  # same page, past the region's bytes
    assert list(space.regions()) == [r]


def test_unaligned_base_is_refused() -> None:
    # Regression: a region at an unaligned base made an access just below it read
    # the region's last bytes (a negative offset into its buffer).
    with pytest.raises(ValueError):
        AddressSpace(base=0x10)
    with pytest.raises(ValueError):
        AddressSpace(base=TOP)


def test_region_may_end_exactly_at_the_top_of_the_address_space() -> None:
    space = AddressSpace(base=TOP - PAGE_SIZE)
    r = space.map(PAGE_SIZE, kind="t")
    assert r.end == TOP
    space.store(TOP - 8, 8, 0x1122)
    assert space.load(TOP - 8, 8) == 0x1122


@pytest.mark.parametrize("size", [PAGE_SIZE + 1, 2 * PAGE_SIZE])
def test_mapping_past_the_top_of_the_address_space_is_refused(size: int) -> None:
    # Regression: such a region got page-table entries above 2**64, where the
    # interpreter's fast path (which adds without masking) could reach them.
    space = AddressSpace(base=TOP - PAGE_SIZE)
    with pytest.raises(BpfError) as e:
        space.map(size, kind="t")
    assert e.value.errno == errno.ENOMEM
    assert not space.rpages and not space.wpages and not list(space.regions())


def test_full_address_space_refuses_further_maps() -> None:
    space = AddressSpace(base=TOP - PAGE_SIZE)
    space.map(1, kind="t")
    with pytest.raises(BpfError):
        space.map(1, kind="t")


# -- loads and stores ----------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_store_then_load_every_size_little_endian(space: AddressSpace, size: int) -> None:
    r = space.map(16, kind="t")
    value = 0x0102030405060708 & ((1 << (8 * size)) - 1)
    space.store(r.base + 3, size, value)
    assert space.load(r.base + 3, size) == value
    assert bytes(r.buf[3:3 + size]) == value.to_bytes(size, "little")
    assert bytes(r.buf[:3]) == bytes(3) and bytes(r.buf[3 + size:]) == bytes(13 - size)


@pytest.mark.parametrize("size", SIZES)
def test_store_truncates_the_value_to_its_size(space: AddressSpace, size: int) -> None:
    r = space.map(8, kind="t")
    space.store(r.base, size, -1)
    assert bytes(r.buf) == b"\xff" * size + bytes(8 - size)


@pytest.mark.parametrize("size", SIZES)
def test_access_ending_exactly_at_the_region_end_is_allowed(space: AddressSpace,
                                                            size: int) -> None:
    r = space.map(13, kind="t")
    space.store(r.end - size, size, 1)
    assert space.load(r.end - size, size) == 1


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("past", [1, 7])
def test_access_straddling_the_region_end_faults(space: AddressSpace, size: int,
                                                 past: int) -> None:
    r = space.map(13, kind="t")
    addr = r.end - size + past
    with pytest.raises(BpfFault):
        space.load(addr, size)
    with pytest.raises(BpfFault):
        space.store(addr, size, 0)
    assert bytes(r.buf) == bytes(13)


@pytest.mark.parametrize("size", SIZES)
def test_access_before_the_region_faults(space: AddressSpace, size: int) -> None:
    space.map(8, kind="t")
    r = space.map(8, kind="t")
    with pytest.raises(BpfFault):
        space.load(r.base - 1, size)
    with pytest.raises(BpfFault):
        space.load(r.base - size, size)


def test_empty_region_has_no_accessible_bytes(space: AddressSpace) -> None:
    r = space.map(0, kind="t")
    with pytest.raises(BpfFault):
        space.load(r.base, 1)
    assert space.read(r.base, 0) == b""


def test_small_integers_are_never_valid_pointers(space: AddressSpace) -> None:
    space.map(PAGE_SIZE, kind="t")
    for addr in (0, 1, 8, PAGE_SIZE, 1 << 32):
        with pytest.raises(BpfFault):
            space.load(addr, 1)


@pytest.mark.parametrize("size", SIZES)
def test_addr_plus_size_wrapping_past_2_64_faults(size: int) -> None:
    # uBPF/rbpf checked `addr + size <= end` in u64 arithmetic, so an access at
    # the top of the address space wrapped around to a tiny sum and passed.
    space = AddressSpace(base=TOP - PAGE_SIZE)
    space.map(PAGE_SIZE, kind="t", name="top")
    for addr in range(TOP - size + 1, TOP):
        with pytest.raises(BpfFault):
            space.load(addr, size)
        with pytest.raises(BpfFault):
            space.store(addr, size, 0)
        with pytest.raises(BpfFault):
            space.read(addr, size)


def test_huge_size_does_not_wrap_around() -> None:
    space = AddressSpace(base=TOP - 2 * PAGE_SIZE)
    r = space.map(16, kind="t")
    with pytest.raises(BpfFault):
        space.read(r.base + 8, M64)  # 8 + 2**64 - 1 wraps to 7 in u64 arithmetic


def test_addresses_are_taken_modulo_2_64(space: AddressSpace) -> None:
    r = space.map(8, kind="t")
    space.store(r.base + TOP, 4, 0xABCD)  # a wrapped sum names the same byte
    assert space.load(r.base - TOP, 4) == 0xABCD


# -- permissions --------------------------------------------------------------------


def test_read_only_region_rejects_stores_naming_the_region(space: AddressSpace) -> None:
    r = space.map(bytes([1, 2, 3, 4]), kind="map_value", name="frozen_map",
                  perms=Perm.R)
    assert space.load(r.base, 4) == 0x04030201
    with pytest.raises(BpfFault) as e:
        space.store(r.base, 1, 0)
    msg = str(e.value)
    assert "frozen_map" in msg and "map_value" in msg and "not writable" in msg
    with pytest.raises(BpfFault):
        space.write(r.base, b"\0")
    assert bytes(r.buf) == bytes([1, 2, 3, 4])


def test_write_only_region_rejects_loads(space: AddressSpace) -> None:
    r = space.map(8, kind="t", name="wo", perms=Perm.W)
    space.store(r.base, 8, 5)
    with pytest.raises(BpfFault) as e:
        space.load(r.base, 8)
    assert "not readable" in str(e.value)


def test_protect_changes_permissions_both_ways(space: AddressSpace) -> None:
    r = space.map(8, kind="t")
    space.protect(r, Perm.R)
    with pytest.raises(BpfFault):
        space.store(r.base, 1, 1)
    space.protect(r, Perm.RW)
    space.store(r.base, 1, 1)
    assert space.load(r.base, 1) == 1


def test_protect_does_not_remap_an_unmapped_region(space: AddressSpace) -> None:
    # Regression: protect() re-installed a region that had been unmapped.
    r = space.map(8, kind="t")
    space.unmap(r)
    space.protect(r, Perm.R)
    assert r.perms == Perm.R
    with pytest.raises(BpfFault):
        space.load(r.base, 1)


# -- unmap ---------------------------------------------------------------------------


def test_unmap_makes_later_access_fault(space: AddressSpace) -> None:
    r = space.map(3 * PAGE_SIZE, kind="t")
    keep = space.map(8, kind="t")
    space.store(r.base + 2 * PAGE_SIZE, 8, 1)
    space.unmap(r)
    for addr in (r.base, r.base + PAGE_SIZE, r.base + 2 * PAGE_SIZE):
        with pytest.raises(BpfFault):
            space.load(addr, 1)
    assert space.region_at(r.base) is None
    assert list(space.regions()) == [keep]
    space.unmap(r)  # a second unmap is harmless
    assert space.load(keep.base, 8) == 0


def test_unmap_of_another_spaces_region_is_ignored() -> None:
    # Regression: two spaces hand out the same addresses; unmapping a region of
    # one through the other removed the other's region at that address.
    a, b = AddressSpace(), AddressSpace()
    ra, rb = a.map(8, kind="t"), b.map(8, kind="t")
    assert ra.base == rb.base
    a.unmap(rb)
    assert a.load(ra.base, 8) == 0
    assert a.region_at(ra.base) is ra


def test_addresses_are_not_reused_after_unmap(space: AddressSpace) -> None:
    r = space.map(8, kind="t")
    space.unmap(r)
    assert space.map(8, kind="t").base != r.base


# -- fault messages -------------------------------------------------------------------


def test_fault_past_the_end_names_address_size_and_region(space: AddressSpace) -> None:
    r = space.map(16, kind="mem", name="input")
    with pytest.raises(BpfFault) as e:
        space.load(r.base + 12, 8)
    f = e.value
    assert f.addr == r.base + 12 and f.size == 8
    msg = str(f)
    assert f"{r.base + 12:#x}" in msg
    assert "read of 8 bytes" in msg
    assert r.describe() in msg
    assert "past its end by 4 bytes" in msg


def test_fault_on_a_guard_page_names_the_nearest_region(space: AddressSpace) -> None:
    r = space.map(16, kind="stack", name="frame#0")
    with pytest.raises(BpfFault) as e:
        space.store(r.base + PAGE_SIZE, 4, 0)
    msg = str(e.value)
    assert "write of 4 bytes" in msg and "unmapped" in msg and "frame#0" in msg


def test_fault_below_every_region_says_unmapped(space: AddressSpace) -> None:
    space.map(16, kind="t")
    with pytest.raises(BpfFault) as e:
        space.load(8, 2)
    assert e.value.addr == 8 and e.value.size == 2
    assert "unmapped address" in str(e.value)


def test_fault_address_is_masked_to_64_bits(space: AddressSpace) -> None:
    with pytest.raises(BpfFault) as e:
        space.load(-8, 8)
    assert e.value.addr == TOP - 8


# -- read / write (for helpers) ---------------------------------------------------------


def test_read_and_write_copy_bytes(space: AddressSpace) -> None:
    r = space.map(8, kind="t")
    space.write(r.base + 2, b"abc")
    assert space.read(r.base, 8) == b"\0\0abc\0\0\0"


def test_read_and_write_must_stay_in_one_region(space: AddressSpace) -> None:
    r = space.map(8, kind="t")
    with pytest.raises(BpfFault):
        space.read(r.base + 4, 5)
    with pytest.raises(BpfFault):
        space.write(r.base + 4, b"12345")
    assert bytes(r.buf) == bytes(8)


def test_empty_read_and_write_never_fault(space: AddressSpace) -> None:
    assert space.read(0, 0) == b""
    space.write(0, b"")


# -- through the interpreter -------------------------------------------------------------


@pytest.mark.parametrize(("insn", "size"), [("ldxb", 1), ("ldxh", 2), ("ldxw", 4),
                                            ("ldxdw", 8)])
def test_interpreter_out_of_bounds_load_faults_at_its_pc(insn: str, size: int) -> None:
    mem = bytes(16)
    ok = Vm(f"{insn} %r0, [%r1+{16 - size}]\nexit", helpers={})
    assert ok.run(mem) == 0
    vm = Vm(f"mov %r0, 0\nmov %r3, 1\n{insn} %r0, [%r1+{16 - size + 1}]\nexit", helpers={})
    with pytest.raises(BpfFault) as e:
        vm.run(mem)
    assert e.value.pc == 2
    assert vm.mem_region is not None
    assert e.value.addr == vm.mem_region.base + 16 - size + 1
    assert e.value.size == size


def test_interpreter_load_at_len_minus_4_as_dw_faults() -> None:
    vm = Vm("mov %r0, 0\nldxdw %r0, [%r1+12]\nexit", helpers={})
    with pytest.raises(BpfFault) as e:
        vm.run(bytes(16))
    assert e.value.pc == 1
    assert "past its end by 4 bytes" in str(e.value)


@pytest.mark.parametrize(("insn", "size"), [("stxb", 1), ("stxh", 2), ("stxw", 4),
                                            ("stxdw", 8)])
def test_interpreter_out_of_bounds_store_faults_and_writes_nothing(insn: str,
                                                                   size: int) -> None:
    vm = Vm(f"mov %r3, -1\n{insn} [%r1+{16 - size + 1}], %r3\nexit", helpers={})
    with pytest.raises(BpfFault) as e:
        vm.run(bytes(16))
    assert e.value.pc == 1
    assert vm.mem_region is not None and bytes(vm.mem_region.buf) == bytes(16)


def test_interpreter_store_to_read_only_region_faults_naming_it() -> None:
    space = AddressSpace()
    ro = space.map(bytes(8), kind="map_value", name="rodata", perms=Perm.R)
    vm = Vm("ldxdw %r0, [%r1+0]\nstw [%r1+0], 1\nexit", helpers={}, memory=space)
    with pytest.raises(BpfFault) as e:
        vm.run(r1=ro.base)
    assert e.value.pc == 1
    assert "rodata" in str(e.value) and "not writable" in str(e.value)


def test_interpreter_access_after_unmap_faults() -> None:
    space = AddressSpace()
    vm = Vm("ldxb %r0, [%r1+0]\nexit", helpers={}, memory=space)
    r = space.map(bytes([7]), kind="t")
    assert vm.run(r1=r.base) == 7
    space.unmap(r)
    with pytest.raises(BpfFault):
        vm.run(r1=r.base)


def _vm_with_input_at_the_top(text: str) -> tuple[Vm, Region]:
    # 8 stack frames take 16 pages (one guard page each); the input page is last.
    space = AddressSpace(base=TOP - 17 * PAGE_SIZE)
    vm = Vm(text, helpers={}, memory=space)
    region = space.map(bytes(range(256)) * (PAGE_SIZE // 256), kind="t", name="top")
    assert region.end == TOP
    return vm, region


def test_interpreter_access_straddling_2_64_faults() -> None:
    vm, top = _vm_with_input_at_the_top("ldxdw %r0, [%r1+4092]\nexit")
    with pytest.raises(BpfFault) as e:
        vm.run(r1=top.base)
    assert e.value.pc == 0


def test_interpreter_sum_above_2_64_wraps_instead_of_reading_past_the_top() -> None:
    vm, top = _vm_with_input_at_the_top("ldxdw %r0, [%r1+4104]\nexit")  # 2**64 + 8
    with pytest.raises(BpfFault) as e:
        vm.run(r1=top.base)
    assert e.value.addr == 8


def test_interpreter_last_bytes_below_2_64_are_readable() -> None:
    vm, top = _vm_with_input_at_the_top("ldxdw %r0, [%r1+4088]\nexit")
    assert vm.run(r1=top.base) == int.from_bytes(bytes(range(0xF8, 0x100)), "little")


def test_interpreter_address_arithmetic_wraps_modulo_2_64() -> None:
    # With the first stack frame mapped at address 0, r1 = -8 plus offset 16 is
    # address 8 (as in the kernel, which computes addresses in u64).
    vm = Vm("stdw [%r10-504], 77\nmov %r1, -8\nldxdw %r0, [%r1+16]\nstdw [%r1+24], 5\nexit",
            helpers={}, memory=AddressSpace(base=0))
    assert vm.stacks[0].base == 0
    assert vm.run() == 77
    assert vm.stacks[0].buf[16] == 5
