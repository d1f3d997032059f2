"""Shared test setup: a persistent XLA compilation cache outside the repository, so that a
second run of the suite on the same machine skips most compiles. (The headless GL backend is
chosen by `envs` itself, as for a user; the rendering tests need one installed.)"""

import os

# The suite builds envs after JAX has started, too late for an arm or pusher to set the XLA
# flags it needs on CPU (envs/base.py: set_cpu_xla_flags), so it sets them for every test, as
# a user's process gets them when it builds an arm first. This differs from a user's reacher
# or maze run, which keeps XLA's defaults: the fusion-emitter flag also shortens every compile
# by a third (results/env_throughput.md), which a 2-core suite needs.
from envs.base import FUSION_FLAG, SCHEDULER_FLAG, set_cpu_xla_flags

set_cpu_xla_flags("the test suite", (FUSION_FLAG, SCHEDULER_FLAG))

import jax  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.path.expanduser("~/.cache/gcrl-jax-tests"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

import importlib.util  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent


def load_algorithm(name: str):
    """Import algorithms/{name}.py as a module (the algorithm files are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"algorithms_{name}", REPO / "algorithms" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module
