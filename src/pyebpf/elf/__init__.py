"""The ELF object loader: libbpf's conventions for clang-built BPF objects.

:func:`load_spec` parses an object into an :class:`ObjectSpec` (maps and
programs, linked, not yet created); :func:`pyebpf.load_object` also creates
and loads it.
"""

from .errors import CoreRelocError, ElfError
from .loader import KERNEL_VERSION, internal_map_name, load_spec
from .sections import LEGACY_PREFIXES, SECTION_DEFS, SecDef, section_prog_type
from .spec import CoreReloResult, MapRef, MapSpec, ObjectSpec, ProgramSpec

__all__ = [
    "KERNEL_VERSION",
    "LEGACY_PREFIXES",
    "SECTION_DEFS",
    "CoreRelocError",
    "CoreReloResult",
    "ElfError",
    "MapRef",
    "MapSpec",
    "ObjectSpec",
    "ProgramSpec",
    "SecDef",
    "internal_map_name",
    "load_spec",
    "section_prog_type",
]
