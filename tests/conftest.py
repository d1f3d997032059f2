"""Shared test setup: a persistent XLA compilation cache outside the repository, so that a
second run of the suite on the same machine skips most compiles. (The headless GL backend is
chosen by `envs` itself, as for a user; the rendering tests need one installed.)"""

import os

# The arm envs need XLA's CPU fusion emitters off (see envs/arm.py); the suite turns them off
# for every test, before JAX first touches a device, which also shortens every compile.
if "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_use_fusion_emitters=false".strip()

import jax

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
