"""Reading register states out of the real kernel's verifier logs (test helper).

The shared corpus ``verifier-cases/dev.jsonl`` carries the last lines of the
Linux 6.18 verifier log of each case. Lines look like::

    15: (1c) w3 -= w9                     ; R3=scalar(...) R9=scalar(...)
    from 12 to 15: R0=scalar() R1=ctx() R10=fp0
    0: R1=ctx() R10=fp0

This module splits such lines into instruction index and per-register state
text, and decodes the case's instructions, so tests can compare our formatter
and transfer functions with what the kernel printed.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import attrs

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEV_CASES = PROJECT_ROOT.parent / "shared" / "verifier-cases" / "dev.jsonl"

_INSN_LINE = re.compile(r"^(\d+): \(([0-9a-f]{2})\) (.*?)(?:\s+; (.*))?$")
_FROM_LINE = re.compile(r"^from (\d+) to (\d+): (.*)$")
_STATE_LINE = re.compile(r"^(\d+): ((?:R\d+|fp-?\d+|frame\d+:).*)$")
_SLOT_START = re.compile(r"(?:^|(?<=\s))(R\d+|fp-?\d+)=")
# what print_verifier_state may write after a slot: refs, callback marks, frames
_TRAILER = re.compile(r"\s+(?:refs=[\d,]+|cb|async_cb|frame\d+:)(?=\s|$)")


@attrs.frozen
class LogLine:
    kind: str  # "insn", "from", "state" or "other"
    idx: int | None  # instruction index (for "from": the target)
    code: int | None  # opcode byte printed in parentheses ("insn" only)
    text: str  # the disassembly ("insn") or the whole line ("other")
    states: dict[str, str]  # "R3" / "fp-8" -> state text


def split_states(text: str) -> dict[str, str]:
    """``"R1=ctx() R3=scalar(var_off=(0x0; 0x1))"`` -> {"R1": "ctx()", ...}."""
    out: dict[str, str] = {}
    starts = list(_SLOT_START.finditer(text))
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        value = text[m.end() : end]
        t = _TRAILER.search(value)
        out[m.group(1)] = (value[: t.start()] if t else value).strip()
    return out


def parse_line(line: str) -> LogLine:
    m = _INSN_LINE.match(line)
    if m:
        states = split_states(m.group(4)) if m.group(4) else {}
        return LogLine("insn", int(m.group(1)), int(m.group(2), 16), m.group(3).strip(), states)
    m = _FROM_LINE.match(line)
    if m:
        return LogLine("from", int(m.group(2)), None, line, split_states(m.group(3)))
    m = _STATE_LINE.match(line)
    if m:
        return LogLine("state", int(m.group(1)), None, line, split_states(m.group(2)))
    return LogLine("other", None, None, line, {})


# At log level 1, popping a branch rewinds the log to the jump and prints the
# popped state right after it: "8: (35) if r1 >= 0xa goto pc+1 10: R0=...".
_EMBEDDED_STATE = re.compile(r"^(.*?) (\d+: (?:R\d+|fp-?\d+)=.*)$")


def iter_log(tail: list[str]) -> Iterator[LogLine]:
    """Parse a log tail, splitting a state printed on a jump's line into its own line."""
    for line in tail:
        m = _INSN_LINE.match(line)
        if m and not m.group(4):
            e = _EMBEDDED_STATE.match(line)
            if e:
                yield parse_line(e.group(1))
                yield parse_line(e.group(2))
                continue
        yield parse_line(line)


def load_cases() -> list[dict]:  # type: ignore[type-arg]
    with DEV_CASES.open() as f:
        return [json.loads(line) for line in f]


def log_tails(case: dict) -> Iterator[list[str]]:  # type: ignore[type-arg]
    """The privileged log tail and, when present, the unprivileged one."""
    yield case.get("kernel_log_tail") or []
    unpriv = case.get("kernel_unpriv") or {}
    if unpriv.get("log_tail"):
        yield unpriv["log_tail"]


@attrs.frozen
class RawInsn:
    code: int
    dst: int
    src: int
    off: int
    imm: int


def decode_insns(case: dict) -> list[RawInsn]:  # type: ignore[type-arg]
    out = []
    for h in case["insns"]:
        code, regs, off, imm = struct.unpack("<BBhi", bytes.fromhex(h))
        out.append(RawInsn(code, regs & 0xF, regs >> 4, off, imm))
    return out
