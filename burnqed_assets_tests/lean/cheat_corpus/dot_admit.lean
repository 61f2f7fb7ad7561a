-- rule: admit
-- MVarId.admit closes a goal with sorry.
import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

theorem t (x : ℝ) (h : 0 < x) : 0 < x ^ 2 := by
  run_tac do (← Lean.Elab.Tactic.getMainGoal).admit
