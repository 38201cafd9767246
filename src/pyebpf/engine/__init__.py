"""Execution engines. The interpreter is the reference; others must agree with it."""

from .interpreter import DEFAULT_BUDGET, Vm

__all__ = ["DEFAULT_BUDGET", "Vm"]
