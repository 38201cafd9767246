"""The BPF verifier: abstract domain (tnums, scalar bounds), state, and the walk.

Modules so far: :mod:`.tnum` (kernel/bpf/tnum.c) and :mod:`.scalar` (the
scalar bounds of ``bpf_reg_state`` and their transfer functions from
kernel/bpf/verifier.c, with the log's text form).
"""
