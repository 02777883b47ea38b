"""Hypothesis profiles for the property-based tests.

"ci" (the default) keeps the whole folder to a few seconds per store; HYPOTHESIS_PROFILE=deep
runs many more and longer interleavings locally. Examples are derandomised so a CI failure
reproduces on any machine with the same code.
"""

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, derandomize=True, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                      HealthCheck.data_too_large, HealthCheck.large_base_example])
settings.register_profile("ci", max_examples=50, stateful_step_count=25, **_COMMON)
settings.register_profile("deep", max_examples=400, stateful_step_count=60, **{**_COMMON, "derandomize": False})

PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
