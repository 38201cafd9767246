"""pyebpf: the Linux BPF subsystem re-made in pure Python."""

from .errors import ENOTSUPP, BpfError, BpfFault, BudgetExhausted, InvalidInsn, VerifierError
from .isa import Insn, decode, encode

__version__ = "0.1.0"

__all__ = [
    "ENOTSUPP",
    "BpfError",
    "BpfFault",
    "BudgetExhausted",
    "Insn",
    "InvalidInsn",
    "VerifierError",
    "__version__",
    "decode",
    "encode",
]
