"""The verifier log buffer of PROG_LOAD (pyebpf.prog.VerifierLog)."""

from __future__ import annotations

from pyebpf.prog import VerifierLog


def test_log_reset_forgets_what_follows_the_position() -> None:
    log = VerifierLog(1, 1 << 20)
    for piece in ("0: (b7) r0 = 0", "\n", "1: (95) exit", "\n"):
        log.write(piece)
    mid = len("0: (b7) r0 = 0\n1: (95)")
    log.reset(mid)
    assert log.text == "0: (b7) r0 = 0\n1: (95)"
    assert log.end_pos == mid
    log.write(" exit\n")
    assert log.text == "0: (b7) r0 = 0\n1: (95) exit\n"


def test_log_reset_at_or_past_the_end_changes_nothing() -> None:
    log = VerifierLog(1, 1 << 20)
    log.write("abc")
    log.reset(3)
    log.reset(10)
    assert (log.text, log.end_pos) == ("abc", 3)


def test_log_reset_to_the_start_empties_it() -> None:
    log = VerifierLog(2, 1 << 20)
    log.write("a")
    log.write("bc")
    log.reset(0)
    assert (log.text, log.end_pos) == ("", 0)
