"""Code location for test_ops_gpu_runs: two GPU assets and one CPU asset that record when they ran.

Each asset appends {"asset", "start", "end"} to $BURNQED_TEST_INTERVALS; the GPU assets carry
the project's GPU op tag and nothing else (their jobs have no run tags).
"""

import json
import os
import time

import dagster as dg

from burnqed_assets.settings import GPU_TAG

HOLD_S = float(os.environ.get("BURNQED_TEST_HOLD_S", "4"))


def _hold(name: str, seconds: float) -> None:
    start = time.time()
    time.sleep(seconds)
    with open(os.environ["BURNQED_TEST_INTERVALS"], "a", encoding="utf-8") as f:
        f.write(json.dumps({"asset": name, "start": start, "end": time.time()}) + "\n")


@dg.asset(op_tags=GPU_TAG)
def gpu_a() -> None:
    _hold("gpu_a", HOLD_S)


@dg.asset(op_tags=GPU_TAG)
def gpu_b() -> None:
    _hold("gpu_b", HOLD_S)


@dg.asset
def cpu_c() -> None:
    _hold("cpu_c", HOLD_S)


defs = dg.Definitions(
    assets=[gpu_a, gpu_b, cpu_c],
    jobs=[dg.define_asset_job("gpu_a_job", ["gpu_a"]), dg.define_asset_job("gpu_b_job", ["gpu_b"]),
          dg.define_asset_job("cpu_c_job", ["cpu_c"])],
    executor=dg.in_process_executor,
)
