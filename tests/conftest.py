"""Test-session settings shared by every test module."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Deterministic and deadline-free: the suite must give the same verdict on a
# loaded 2-core CI machine as on a laptop. PYEBPF_HYPOTHESIS_PROFILE=dev
# explores new random examples instead.
settings.register_profile(
    "ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("PYEBPF_HYPOTHESIS_PROFILE", "ci"))
