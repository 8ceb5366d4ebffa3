"""Test-wide settings: strict promotion so silent broadcasting fails tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import pytest
from hypothesis import HealthCheck, settings

# The jaxcnn command keeps compiled programs on disk by default; tests count
# compilations and must not share a cache with each other or with the user's runs
# (tests/cli/test_compile_cache.py gives its runs a cache directory of their own).
os.environ["JAXCNN_COMPILE_CACHE"] = "off"

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

# Hypothesis profiles, chosen with HYPOTHESIS_PROFILE (test files scale their own
# max_examples from the profile's, e.g. a quarter of it for the costliest tests):
# - "default": the same 40 examples every run (derandomized), for development;
# - "ci": 100 fresh examples per run (.ci/run): over many runs the search covers far
#   more than any fixed set; a failure prints the seed that reproduces it;
# - "mutation": "default" without the example database, so the mutation check's
#   verdicts (python -m tests.mutation) never depend on an earlier run;
# - "thorough": 400 examples, for a long local search.
settings.register_profile(
    "default",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
    print_blob=True,
)
settings.register_profile("mutation", settings.get_profile("default"), database=None)
settings.register_profile("thorough", max_examples=400, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(params=["eager", "jit"])
def variant(request: pytest.FixtureRequest) -> Callable[[Callable[..., Any]], Any]:
    """Run a function as is, or under ``jax.jit`` (chex-style variants)."""
    if request.param == "jit":
        return jax.jit
    return lambda fn: fn
