"""Domain layer (lean): no Dagster imports here.

Public API: `make_lean_env(settings)` (the supervised REPL env: Lean or the REPL stand-in),
`lean.pool.make_pool(settings)` (the warm worker pool), `verify_proof`, `static_scan`, the `LeanEnv`
protocol and its records (`ProofState`, `TacticResult`, `CheckResult`). `ReplayLeanEnv` is the
stand-in's recorded table (`make_replay_env`: a test helper).
"""

from burnqed_assets.lean.env import CheckResult, LeanEnv, Message, ProofState, TacticResult
from burnqed_assets.lean.factory import make_lean_env, make_replay_env
from burnqed_assets.lean.replay import ReplayLeanEnv, UnknownTheoremError
from burnqed_assets.lean.verify import VerifyResult, static_scan, verify_proof

__all__ = [
    "CheckResult",
    "LeanEnv",
    "Message",
    "ProofState",
    "ReplayLeanEnv",
    "TacticResult",
    "UnknownTheoremError",
    "VerifyResult",
    "make_lean_env",
    "make_replay_env",
    "static_scan",
    "verify_proof",
]
