"""Time of MJX forward kinematics against kinematic-chain depth, for XLA's CPU fusion emitters.

    python results/notes/fusion_depth.py --depths 6 7 8 9                                   # XLA's default
    XLA_FLAGS=--xla_cpu_use_fusion_emitters=false python results/notes/fusion_depth.py      # emitters off

Builds a chain of `depth` hinged capsules (each body rotated 90 degrees about x), jits
`mjx` kinematics of one env and prints the median ms per call over 10 calls after the compile.
Run it once per XLA_FLAGS setting (XLA reads the flag once per process).
"""

import os
import statistics
import time
from dataclasses import dataclass

import jax
import mujoco
import tyro
from mujoco import mjx
from mujoco.mjx._src import smooth


def chain_xml(depth: int) -> str:
    bodies = "".join(
        '<body pos="0 0 0.1" quat="0.7071 0.7071 0 0"><joint axis="0 0 1"/>'
        '<geom type="capsule" size="0.02" fromto="0 0 0 0 0 0.1"/>'
        for _ in range(depth)
    )
    return f"<mujoco><worldbody>{bodies}{'</body>' * depth}</worldbody></mujoco>"


@dataclass(frozen=True)
class Args:
    depths: tuple[int, ...] = (6, 7, 8, 9)
    """kinematic-chain depths to time"""


def main(args: Args) -> None:
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, jax {jax.__version__}")
    for depth in args.depths:
        model = mjx.put_model(mujoco.MjModel.from_xml_string(chain_xml(depth)))
        data = mjx.make_data(model)
        kinematics = jax.jit(lambda d, m=model: smooth.kinematics(m, d))
        jax.block_until_ready(kinematics(data))
        times = []
        for _ in range(10):
            start = time.perf_counter()
            jax.block_until_ready(kinematics(data))
            times.append((time.perf_counter() - start) * 1000)
        print(f"depth {depth}: {statistics.median(times):.2f} ms per call", flush=True)


if __name__ == "__main__":
    main(tyro.cli(Args))
