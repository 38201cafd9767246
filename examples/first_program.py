"""A first BPF program, run three ways: from assembly, from bytes, with a fault.

    python examples/first_program.py
"""

from pyebpf import BpfFault, Vm, asm, disasm, encode

# Count the bytes equal to 0x2a in a buffer (r1 = buffer, r2 = length).
prog = asm("""
    mov %r0, 0
    mov %r3, 0
loop:
    jge %r3, %r2, exit
    mov %r4, %r1
    add %r4, %r3
    ldxb %r5, [%r4]
    add %r3, 1
    jne %r5, 0x2a, loop
    add %r0, 1
    ja loop
    exit
""")

print(disasm(prog))
vm = Vm(prog)
print("matches:", vm.run(b"\x2a\x00\x2a\x2a\x01"), "in", vm.insns_executed, "instructions")

# The same program as the bytes clang or a loader would hand over.
print("from bytes:", Vm(encode(prog)).run(b"\x2a" * 10))

# Lie about the length: the read past the buffer is caught, not performed.
try:
    vm.run(b"\x2a\x2a", r2=100)
except BpfFault as fault:
    print("fault:", fault)
