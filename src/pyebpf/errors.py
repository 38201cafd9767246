"""The exceptions pyebpf raises.

Every failing ``bpf()`` command raises :class:`BpfError`, an :class:`OSError`
carrying the errno the kernel would return, so ``except OSError as e:
e.errno == errno.ENOENT`` works as it does around the real syscall. Faults of a
running program are :class:`BpfFault`; they are not syscall errors but carry the
program counter and the access that went wrong.
"""

from __future__ import annotations

import errno as _errno

__all__ = [
    "ENOTSUPP",
    "BpfError",
    "BpfFault",
    "BudgetExhausted",
    "InvalidInsn",
    "VerifierError",
]

#: The kernel-internal "operation not supported" errno (include/linux/errno.h).
#: Python's :mod:`errno` lacks it; it is distinct from ``EOPNOTSUPP`` (95).
ENOTSUPP = 524


class BpfError(OSError):
    """A failed BPF operation, with the kernel's errno and a message.

    Constructed as ``BpfError(errno.EINVAL, "message")``. Subclasses of OSError
    are not remapped by errno (``BpfError(ENOENT, ...)`` stays a BpfError), which
    is what a caller of ``bpf()`` wants.
    """

    def __init__(self, err: int, message: str) -> None:
        super().__init__(err, message)

    def __str__(self) -> str:
        name = "ENOTSUPP" if self.errno == ENOTSUPP else _errno.errorcode.get(self.errno or 0, "?")
        return f"[{name}] {self.strerror}"


class InvalidInsn(BpfError):
    """A malformed instruction encoding (bad length, unknown opcode, broken lddw).

    ``index`` is the instruction slot at fault, or ``None`` when the whole buffer
    is at fault (a length that is not a multiple of 8).
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(_errno.EINVAL, message)
        self.index = index


class VerifierError(BpfError):
    """The verifier rejected a program. ``log`` holds the verifier log text."""

    def __init__(self, err: int, message: str, log: str = "") -> None:
        super().__init__(err, message)
        self.log = log

    def explain(self, **options: object) -> object:
        """The path to the rejected instruction and, where one exists, inputs that
        make the feared fault happen: see :func:`pyebpf.explain.explain`."""
        from .explain import explain

        return explain(self, **options)  # type: ignore[arg-type]

    def _repr_html_(self) -> str:
        from .views import verifier_error_html

        return verifier_error_html(self)

    def _repr_pretty_(self, p: object, cycle: bool) -> None:
        from .views import verifier_error_text

        p.text(verifier_error_text(self))  # type: ignore[attr-defined]


class BpfFault(Exception):
    """A run-time fault of a program: a bad memory access, an unknown helper.

    The kernel would never run such a program (its verifier rejects it first);
    pyebpf can run unverified programs, and stops them here instead of letting
    them escape their memory. ``pc`` is the faulting instruction slot.
    """

    def __init__(
        self,
        message: str,
        *,
        pc: int | None = None,
        addr: int | None = None,
        size: int | None = None,
    ) -> None:
        self.message = message
        self.pc = pc
        self.addr = addr
        self.size = size
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"pc {self.pc}: " if self.pc is not None else ""
        return where + self.message

    def at(self, pc: int) -> BpfFault:
        """Attach the faulting pc (set by the engine that knows it)."""
        self.pc = pc
        self.args = (self._render(),)
        return self


class BudgetExhausted(BpfFault):
    """The program ran more instructions than its budget allows."""
