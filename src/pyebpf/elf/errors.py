"""The errors the ELF loader raises: all of them :class:`~pyebpf.errors.BpfError`."""

from __future__ import annotations

import errno

from ..errors import BpfError

__all__ = ["CoreRelocError", "ElfError"]


class ElfError(BpfError):
    """An object file pyebpf can't load: not a BPF ELF, corrupt, or using a
    feature the loader doesn't support. ``errno`` is EINVAL for malformed input,
    EOPNOTSUPP for unsupported features, ENOENT for something missing."""

    def __init__(self, message: str, err: int = errno.EINVAL) -> None:
        super().__init__(err, message)


class CoreRelocError(ElfError):
    """A CO-RE relocation that can't be resolved against the target BTF."""
