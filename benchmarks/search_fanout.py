"""Search fan-out over managed policy servers: how the shared work queue splits theorems when one
server is slower, and whether the trees stay those of one server.

Launches the serving stand-in (SGLang's HTTP API, canned tactics; not SGLang) through the same
`policy_session` / `ManagedServer` code a GPU run uses: one server per "GPU" of
`search.sglang_gpus`, the second slowed with `--device-latency 1=S`. Lean is a transition table
in this process (no REPL), so the time goes to the policy servers. Prints, per setting, the
theorems each server searched, the wall time, and whether the trajectories equal a one-server
run row for row (the wall-clock column aside).

    python benchmarks/search_fanout.py --theorems 40 --latency 0.05 0.25 --slots 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from burnqed_assets.lean.env import CheckResult, ProofState, TacticResult  # noqa: E402
from burnqed_assets.search.engine import SearchConfig, Theorem  # noqa: E402
from burnqed_assets.search.pipeline import policy_session  # noqa: E402
from burnqed_assets.search.run import run_search  # noqa: E402
from burnqed_assets.search.serving import STANDIN_LAUNCHER  # noqa: E402
from burnqed_assets.search.serving_standin import CANNED_TACTICS  # noqa: E402
from burnqed_assets.settings import get_settings, with_overrides  # noqa: E402

CFG = SearchConfig(max_nodes=50, timeout_s=60.0, num_candidates=4, temperature=1.0)
TIMING = ("elapsed_s", "policy_s", "lean_s", "scorer_s")


class TableEnv:
    """Root r<i> -> m<i>_<k> for every canned tactic; m<i>_<k> closes when (i + k) % 3 == 0."""

    name = "table"

    def open_theorem(self, statement: str, header: str = "") -> ProofState:
        return ProofState(f"⊢ r{statement[3:]}", (f"⊢ r{statement[3:]}",))

    def run_tactic(self, state: ProofState, tactic: str) -> TacticResult:
        if tactic not in CANNED_TACTICS:
            return TacticResult("error", error="unknown tactic")
        pp = state.handle
        if pp.startswith("⊢ r"):
            nxt = f"⊢ m{pp[3:]}_{CANNED_TACTICS.index(tactic)}"
            return TacticResult("open", ProofState(nxt, (nxt,)))
        i, k = (int(x) for x in pp[3:].split("_"))
        return TacticResult("proved") if (i + k) % 3 == 0 else TacticResult("error", error="no progress")

    def check_file(self, code: str) -> CheckResult:
        return CheckResult(ok=True)

    def stats(self) -> dict:
        return {}

    def close(self) -> None:
        pass


def settings_for(root: Path, **search):
    base = get_settings("demo", root)
    return with_overrides(base, search=dataclasses.replace(
        base.search, policy_backend="sglang", http_retries=1, sglang_port=0, sglang_startup_timeout_s=60.0, **search))


def untimed(run) -> tuple[list, object]:
    results = [{k: v for k, v in r.items() if k not in TIMING} for r in run.results]
    return results, pq.read_table(run.path).drop_columns(["elapsed_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--theorems", type=int, default=40)
    ap.add_argument("--latency", type=float, nargs="+", default=[0.05, 0.25], help="extra seconds per request on GPU 1")
    ap.add_argument("--slots", type=int, nargs="+", default=[1, 2], help="search slots per server")
    args = ap.parse_args()
    theorems = [Theorem(f"thm{i}", f"thm{i}") for i in range(args.theorems)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = tmp_path / "model"
        model.mkdir()
        with policy_session(settings_for(tmp_path / "one"), model, launcher=STANDIN_LAUNCHER) as single:
            t0 = time.perf_counter()
            one = run_search(theorems, TableEnv(), single, CFG, tmp_path / "one.parquet")
            print(f"one server, {single[0].concurrency} slots: {time.perf_counter() - t0:.1f} s")
        expected = untimed(one)
        for latency in args.latency:
            for slots in args.slots:
                settings = settings_for(tmp_path / f"fan_{latency}_{slots}", sglang_gpus=("0", "1"),
                                        endpoint_concurrency=slots)
                launcher = [*STANDIN_LAUNCHER, "--device-latency", f"1={latency}"]
                with policy_session(settings, model, launcher=launcher) as endpoints:
                    t0 = time.perf_counter()
                    fan = run_search(theorems, lambda: TableEnv(), endpoints, CFG, tmp_path / "fan.parquet")
                    wall = time.perf_counter() - t0
                    split = [fan.endpoint_theorems[e.name] for e in endpoints]
                got = untimed(fan)
                same = got[0] == expected[0] and got[1].equals(expected[1])
                rows.append({"gpu1_extra_latency_s": latency, "slots_per_server": slots, "gpu0_theorems": split[0],
                             "gpu1_theorems": split[1], "wall_s": round(wall, 2), "identical_to_one_server": same})
                print(f"GPU 1 +{latency:.2f} s/request, {slots} slot(s) per server: GPU 0 {split[0]}, GPU 1 {split[1]} "
                      f"theorems, {wall:.1f} s, trees identical to one server: {same}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
