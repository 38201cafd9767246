"""How the verifier stops: an error with the kernel's errno and message.

Every check that fails calls ``Verifier.fail(errno, message)``, which writes
the message as the log's last line (as the kernel's ``verbose()`` followed by
``return -E...`` does) and raises :class:`VerifierAbort`; ``bpf_check``'s
caller turns it into the load's error.
"""

from __future__ import annotations

__all__ = ["VerifierAbort"]


class VerifierAbort(Exception):
    """A verification failure: ``errno`` and the log line that states why."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(message)
        self.errno = err
        self.message = message
